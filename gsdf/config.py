"""Configuration: load, validate against the JSON schema, apply presets, resolve experiments.

The science configuration lives in ``config/config.yaml`` (validated by
``gsdf/schemas/config.schema.yaml``, package data) and ``config/experiments/*.yaml`` (one per
model variant, overrides only). Runtime settings (threads, GPUs, partitions) live in Snakemake
profiles.

Resolution order of an experiment's settings, later wins:

1. defaults of the dataclasses that consume them (``gsdf.models.args``, the reference's settings
   of each model, and ``gsdf.train.TrainConfig``), filled in when the stage builds them;
2. ``config/experiments/{file}.yaml``, which holds only what differs from those defaults, merged
   over the experiment file its ``base:`` names (if any, recursively);
3. ``experiment_overrides`` in the config (what a preset such as the small CPU one changes):
   a mapping from a selector to overrides; ``all`` applies to every experiment, a model name
   (``gf``, ``pose`` ...) to the experiments of that model, an experiment file's name to it;
4. the experiment's own entry under ``sweeps`` (for sweep entries such as ``gsdf_lat21``).

Stage configuration objects are dataclasses built with :func:`from_dict`, which refuses unknown
keys with a message naming the key and the allowed ones.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
# The config schema ships inside the package (package data), so a non-editable install finds it.
SCHEMA_PATH = Path(str(importlib.resources.files("gsdf") / "schemas" / "config.schema.yaml"))
CONFIG_PATH = REPO_ROOT / "config" / "config.yaml"


class ConfigError(ValueError):
    """A configuration value is missing, misspelled or of the wrong type."""


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} not found")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return {} if data is None else data


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Recursive dict merge; ``override`` wins. Inputs are not modified."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ----------------------------------------------------------------------------------------------
# Validation with readable messages
# ----------------------------------------------------------------------------------------------


def _schema_at(schema: dict, path: list) -> dict:
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
    return node


def _describe(error: jsonschema.ValidationError, schema: dict) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(_schema_at(schema, list(error.absolute_path)).get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = f"under '{key}'" if error.absolute_path else "at the top level"
        return f"unknown config key(s) {extra} {where}; allowed keys: {allowed}"
    if error.validator == "enum":
        return f"config key '{key}' = {error.instance!r} is not allowed; allowed values: " \
               f"{error.validator_value}"
    if error.validator == "type":
        return f"config key '{key}' = {error.instance!r} has the wrong type; expected " \
               f"{error.validator_value}"
    if error.validator == "required":
        return f"config section '{key}' is missing a required key: {error.message}"
    return f"config key '{key}': {error.message}"


def _from_text(text: str, typ: Any) -> Any:
    """``text`` as a value of JSON-schema type name or Python type ``typ``; ``text`` if it is
    not one. Snakemake's ``--config key={a: 3}`` gives nested values as strings."""
    low = text.strip().lower()
    try:
        if typ in ("integer", int):
            return int(text)
        if typ in ("number", float):
            return float(text)
    except ValueError:
        return text
    if typ in ("boolean", bool) and low in ("true", "false"):
        return low == "true"
    if typ in ("null", type(None)) and low in ("null", "none", "~"):
        return None
    return text


def coerce_strings(schema: dict, instance: Any) -> Any:
    """Turn strings into the numbers, booleans or nulls the schema asks for (command-line
    values), recursively. Strings the schema allows are left alone."""
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if isinstance(instance, str) and "null" in types and instance.strip() in ("null", "~"):
        return None
    if isinstance(instance, str) and "string" not in types:
        for typ in types:
            value = _from_text(instance, typ)
            if value is not instance:
                return value
        return instance
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {k: coerce_strings(props.get(k, extra if isinstance(extra, dict) else {}), v)
                for k, v in instance.items()}
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        return [coerce_strings(schema["items"], v) for v in instance]
    return instance


def _fill_defaults(schema: dict, instance: Any) -> Any:
    """Fill missing keys with the schema's ``default`` values, recursively (objects only)."""
    if not isinstance(instance, dict) or schema.get("type") != "object":
        return instance
    for name, sub in schema.get("properties", {}).items():
        if name not in instance and "default" in sub:
            instance[name] = copy.deepcopy(sub["default"])
        if name in instance:
            instance[name] = _fill_defaults(sub, instance[name])
    return instance


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    return load_yaml(path)


def validate_config(config: Mapping, schema: dict | None = None) -> dict:
    """Validate ``config`` against the schema, filling defaults. Returns a new dict.

    Raises:
        ConfigError: naming the offending key and the allowed keys, values or type.
    """
    schema = load_schema() if schema is None else schema
    check_renamed_keys(config, "config", top=True)
    for section in ("experiment_overrides", "sweeps"):
        for key, value in (config.get(section) or {}).items():
            check_renamed_keys(value, f"{section}.{key}")
    filled = _fill_defaults(schema, coerce_strings(schema, copy.deepcopy(dict(config))))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(
            _describe(e, schema) for e in errors))
    return filled


def config_dir(name: str) -> Path:
    """``config/{name}`` of the working directory if it exists (a copied workflow), else the one
    of this checkout."""
    local = Path("config") / name
    return local if local.is_dir() else REPO_ROOT / "config" / name


# The preset of ``preset: auto`` (or no preset) for each dataset: the real datasets get the
# reference's settings, the synthetic one the 2-core CPU run.
DATASET_PRESETS = {"synth": "default", "obman": "paper", "dexycb": "paper"}


def apply_preset(config: Mapping, command_line: Mapping | None = None) -> dict:
    """Merge ``config/presets/{preset}.yaml`` over ``config``; command-line values still win.

    ``preset: auto`` (or none) picks the dataset's preset, :data:`DATASET_PRESETS`: ``paper``
    for ``obman`` / ``dexycb``, ``default`` for ``synth``. The returned config names the preset
    applied.
    """
    command_line = command_line or {}
    preset = preset_name(deep_merge(config, command_line))
    presets_dir = config_dir("presets")
    preset_file = presets_dir / f"{preset}.yaml"
    if not preset_file.exists():
        allowed = sorted(p.stem for p in presets_dir.glob("*.yaml"))
        raise ConfigError(f"config key 'preset' = {preset!r}: no file {preset_file}; "
                          f"allowed values: {allowed}")
    merged = deep_merge(config, _load_preset(presets_dir, preset))
    merged = deep_merge(merged, command_line)
    merged["preset"] = preset
    return merged


def preset_name(config: Mapping) -> str:
    """The preset ``config`` asks for; ``auto`` (or none) is the dataset's,
    :data:`DATASET_PRESETS` (``paper`` for ``obman`` / ``dexycb``, ``default`` for ``synth``)."""
    preset = config.get("preset") or "auto"
    if preset == "auto":
        preset = DATASET_PRESETS.get(config.get("dataset", "synth"), "default")
    return str(preset)


def preset_configfile(config: Mapping, out_dir: str | Path = ".snakemake/gsdf") -> str:
    """The preset named by ``config["preset"]`` as one YAML file (its ``extends`` chain merged),
    for the Snakefile's second ``configfile:`` directive.

    Snakemake merges every ``configfile:`` over the config so far and then the command line's
    ``--config`` / ``--configfile`` values over that again, so the preset lands between
    ``config/config.yaml`` and what the user typed, as :func:`apply_preset` does.

    Returns:
        the path of ``{out_dir}/preset_{name}.yaml`` (rewritten when its content changes).
    Raises:
        ConfigError: no such preset (naming the allowed ones), or a cycle of ``extends``.
    """
    from gsdf.utils.io import write_text

    preset = preset_name(config)
    presets_dir = config_dir("presets")
    if not (presets_dir / f"{preset}.yaml").exists():
        allowed = sorted(p.stem for p in presets_dir.glob("*.yaml"))
        raise ConfigError(f"config key 'preset' = {preset!r}: no file "
                          f"{presets_dir / f'{preset}.yaml'}; allowed values: {allowed}")
    path = Path(out_dir) / f"preset_{preset}.yaml"
    text = ("# Written by gsdf.config.preset_configfile: config/presets/" + f"{preset}.yaml"
            " with its `extends` chain merged. Do not edit.\n"
            + yaml.safe_dump(_load_preset(presets_dir, preset), sort_keys=True))
    if not path.exists() or path.read_text() != text:
        write_text(path, text)
    return str(path)


def _load_preset(presets_dir: Path, name: str, seen: tuple[str, ...] = ()) -> dict:
    """A preset file, merged over the preset it ``extends`` (if any)."""
    if name in seen:
        raise ConfigError(f"presets extend each other in a cycle: {' -> '.join(seen + (name,))}")
    path = presets_dir / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"preset {seen[-1]!r} extends {name!r}: no file {path}")
    data = load_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    return deep_merge(_load_preset(presets_dir, parent, seen + (name,)), data)


def load_config(path: str | Path = CONFIG_PATH, overrides: Mapping | None = None) -> dict:
    """Load, merge overrides and preset, validate. The same resolution the Snakefile does."""
    raw = deep_merge(load_yaml(path), overrides or {})
    return validate_config(apply_preset(raw, overrides))


# ----------------------------------------------------------------------------------------------
# Experiments
# ----------------------------------------------------------------------------------------------


#: keys that were merged into another: ``old -> new``. A config or experiment that still sets an
#: old key is refused with a message naming the new one (one key per concept).
RENAMED_KEYS = {
    "train.image_size": "model_args.image_size",
    "train.frames": "model_args.num_frames",
}


def check_renamed_keys(data: Any, where: str, top: bool = False) -> None:
    """Refuse keys of :data:`RENAMED_KEYS` in ``data`` (an experiment mapping, or with
    ``top=True`` the config, whose global ``train`` section has no ``model_args``).

    Raises:
        ConfigError: naming ``where``, the old key and the key to use instead.
    """
    if not isinstance(data, Mapping):
        return
    for old, new in RENAMED_KEYS.items():
        section, key = old.split(".")
        if isinstance(data.get(section), Mapping) and key in data[section]:
            target = (f"'{new}' of the experiments (config/experiments/*.yaml, "
                      f"experiment_overrides or sweeps)") if top else f"'{new}'"
            raise ConfigError(f"{where}: '{old}' is no longer a config key; the value has one "
                              f"owner, {target}: set it there and remove '{old}'")


def _experiment_file(config: Mapping, name: str) -> str:
    """The experiment file a sweep entry leads to through its ``base`` chain (``name`` itself
    for an experiment file); the chain is known to be acyclic once it has resolved."""
    sweeps = config.get("sweeps") or {}
    seen = {name}
    while name in sweeps and sweeps[name].get("base") not in seen | {None}:
        name = sweeps[name]["base"]
        seen.add(name)
    return name


def _experiment_files(experiments_dir: Path) -> list[str]:
    return sorted(p.stem for p in experiments_dir.glob("*.yaml"))


def load_experiment_file(experiments_dir: str | Path, name: str,
                         _chain: tuple[str, ...] = ()) -> dict:
    """``{experiments_dir}/{name}.yaml`` merged over the experiment file its ``base:`` names
    (recursively, like ConvONet's ``inherit_from``); the returned dict has no ``base``.

    Raises:
        ConfigError: a missing file (naming the allowed ones), a ``base`` cycle, a file that is
            not a mapping, or a key of :data:`RENAMED_KEYS`.
    """
    experiments_dir = Path(experiments_dir)
    if name in _chain:
        raise ConfigError(f"experiment files inherit from each other in a cycle: "
                          f"{' -> '.join(_chain + (name,))} (key 'base')")
    path = experiments_dir / f"{name}.yaml"
    if not path.exists():
        where = (f"{experiments_dir / _chain[-1]}.yaml: base {name!r}" if _chain
                 else f"experiment {name!r}")
        raise ConfigError(f"{where}: no file {path}; allowed experiment files: "
                          f"{_experiment_files(experiments_dir)}")
    data = load_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: an experiment file must be a mapping of keys")
    check_renamed_keys(data, str(path))
    data = dict(data)
    base = data.pop("base", None)
    if base is None:
        return data
    return deep_merge(load_experiment_file(experiments_dir, str(base), _chain + (name,)), data)


def resolve_experiment(config: Mapping, name: str,
                       experiments_dir: str | Path | None = None) -> dict:
    """The full settings of experiment ``name`` (see the module docstring for the order).

    ``name`` is a ``sweeps`` entry or an experiment file; a sweep's ``base`` names another sweep
    entry or an experiment file, an experiment file's ``base`` another experiment file.

    Returns:
        dict with at least ``name``, ``model`` and whatever the experiment files define
        (``model_args``, ``train``, ``pose_experiment`` ...). Values the files leave out are the
        defaults of the model's args dataclass and of ``gsdf.train.TrainConfig``.

    Raises:
        ConfigError: unknown experiment or base, a ``base`` cycle, no ``model``, or a key of
            :data:`RENAMED_KEYS`.
    """
    if experiments_dir is None:
        experiments_dir = config_dir("experiments")
    experiments_dir = Path(experiments_dir)
    sweeps = config.get("sweeps") or {}
    chain: list[dict] = []
    seen = [name]
    cur = name
    while cur in sweeps:
        entry = sweeps[cur]
        check_renamed_keys(entry, f"sweeps.{cur}")
        chain.append(entry)
        parent = entry.get("base")
        if parent is None:
            raise ConfigError(f"sweeps.{cur}: missing 'base' (the experiment it inherits from)")
        if parent in seen:
            raise ConfigError(f"sweeps inherit from each other in a cycle: "
                              f"{' -> '.join([*seen, parent])} (key 'base')")
        seen.append(parent)
        cur = parent
    if not (experiments_dir / f"{cur}.yaml").exists():
        raise ConfigError(f"experiment {name!r} (base {cur!r}): no file "
                          f"{experiments_dir / cur}.yaml; allowed experiments: "
                          f"{_experiment_files(experiments_dir) + sorted(sweeps)}")
    resolved = load_experiment_file(experiments_dir, cur)
    overrides = config.get("experiment_overrides") or {}
    # "all" first, then the model's registry name, then the experiment file's name.
    for selector in dict.fromkeys(("all", resolved.get("model"), cur)):
        check_renamed_keys(overrides.get(selector), f"experiment_overrides.{selector}")
        resolved = deep_merge(resolved, overrides.get(selector) or {})
    for entry in reversed(chain):
        resolved = deep_merge(resolved, {k: v for k, v in entry.items() if k != "base"})
    resolved["name"] = name
    if "model" not in resolved:
        raise ConfigError(f"experiment {name!r}: {experiments_dir / cur}.yaml (or its base) "
                          f"must set 'model'")
    return resolved


# ----------------------------------------------------------------------------------------------
# Typed config objects
# ----------------------------------------------------------------------------------------------

T = TypeVar("T")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        return from_dict(tp, value, where)
    if origin in (tuple,) and isinstance(value, list | tuple):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where) for v in value)
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        for arg in args:
            if dataclasses.is_dataclass(arg) and isinstance(value, Mapping):
                return from_dict(arg, value, where)
        if isinstance(value, str) and str not in args:
            for arg in args:
                converted = _from_text(value, arg)
                if converted is not value:
                    return converted
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and tp in (int, float, bool):
        return _from_text(value, tp)
    return value


def from_dict(cls: type[T], data: Mapping | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys.

    Args:
        cls: a dataclass type; nested dataclass fields are built recursively.
        data: the mapping (``None`` means all defaults).
        where: dotted config location used in error messages, e.g. ``"train"``.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"'{where}'" if where else cls.__name__
        raise ConfigError(f"unknown key(s) {unknown} in {prefix}; allowed keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints.get(name, Any), value, f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from err


def to_dict(obj: Any) -> Any:
    """Dataclass (possibly nested) -> plain dict of builtins."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def parse_params(text: str | None) -> dict:
    """Parse a CLI ``--params`` value: a JSON object, or ``@path`` to a JSON/YAML file."""
    if not text:
        return {}
    if text.startswith("@"):
        return load_yaml(text[1:])
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--params is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise ConfigError("--params must be a JSON object")
    return value


# ----------------------------------------------------------------------------------------------
# Up-front checks (before any job starts)
# ----------------------------------------------------------------------------------------------

# Top-level keys an experiment (file, override or sweep entry) may set.
EXPERIMENT_KEYS = ("name", "model", "model_args", "train", "pose_experiment", "description")


def _did_you_mean(name: str, allowed: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_config(config: Mapping, experiments_dir: str | Path | None = None) -> list[str]:
    """Resolve and validate everything jobs would only read mid-run, so that a mistake fails
    ``snakemake -n`` instead of a job (after Snakemake has deleted the outputs it was to
    replace).

    Checks every ``experiment_overrides`` selector (``all``, a registered model, an experiment
    file), every experiment of ``experiments`` and every ``sweeps`` entry with the pose
    experiment each one names: resolved, with known top-level keys, ``model_args`` parsed by the
    model's dataclass, ``train`` by :class:`gsdf.train.config.TrainConfig`; and the MANO model
    file when ``hand.asset`` is ``mano`` or ``hand.mano_root`` is set.

    Args:
        config: the validated config (:func:`validate_config`).
        experiments_dir: ``config/experiments`` (default: :func:`config_dir`).
    Returns:
        The names of the experiments checked.
    Raises:
        ConfigError: naming the config key, the wrong value and the allowed ones.
        FileNotFoundError: the MANO model file is missing (with setup instructions).
    """
    if experiments_dir is None:
        experiments_dir = config_dir("experiments")
    experiments_dir = Path(experiments_dir)
    files = sorted(p.stem for p in experiments_dir.glob("*.yaml"))
    sweeps = config.get("sweeps") or {}
    _check_selectors_and_sweeps(config, files, sweeps)
    todo = list(dict.fromkeys([*(config.get("experiments") or []), *sweeps]))
    checked: list[str] = []
    while todo:
        name = todo.pop(0)
        if name in checked:
            continue
        pose = _check_experiment(config, name, files, sweeps, experiments_dir)
        if pose is not None:
            todo.append(pose)
        checked.append(name)
    check_hand(config.get("hand") or {})
    return checked


def _check_selectors_and_sweeps(config: Mapping, files: list[str], sweeps: Mapping) -> None:
    """Every ``experiment_overrides`` selector names ``all``, a model or an experiment file;
    every ``sweeps`` entry has a ``base`` and only experiment keys."""
    from gsdf.models.registry import MODELS

    selectors = ["all", *sorted(MODELS), *files]
    for selector in config.get("experiment_overrides") or {}:
        if selector not in selectors:
            hint = _did_you_mean(selector, selectors)
            raise ConfigError(
                f"experiment_overrides.{selector}: unknown selector{hint}; a selector is 'all', "
                f"a model name {sorted(MODELS)} or an experiment file "
                f"{files} (config/experiments/*.yaml)")
    for name, entry in sweeps.items():
        if not isinstance(entry, Mapping) or "base" not in entry:
            raise ConfigError(f"sweeps.{name}: needs 'base' (the experiment it changes, one of "
                              f"{files + sorted(sweeps)})")
        unknown = sorted(set(entry) - set(EXPERIMENT_KEYS) - {"base"})
        if unknown:
            raise ConfigError(f"sweeps.{name}: unknown key(s) {unknown}; allowed keys: "
                              f"{sorted({'base', *EXPERIMENT_KEYS} - {'name'})}")


def _check_experiment(config: Mapping, name: str, files: list[str], sweeps: Mapping,
                      experiments_dir: Path) -> str | None:
    """Resolve experiment (or sweep) ``name`` and check its keys, ``model_args`` and ``train``;
    returns the pose experiment it names (checked to be a ``pose`` model), if any."""
    from gsdf.models.registry import parse_model_args
    from gsdf.train.config import train_config

    where = f"sweeps.{name}" if name in sweeps else f"experiment {name!r}"
    if name not in sweeps and name not in files:
        raise ConfigError(f"experiments: {name!r} is neither config/experiments/{name}.yaml "
                          f"nor a 'sweeps' entry{_did_you_mean(name, files + sorted(sweeps))};"
                          f" allowed: {files + sorted(sweeps)}")
    exp = resolve_experiment(config, name, experiments_dir)
    unknown = sorted(set(exp) - set(EXPERIMENT_KEYS))
    if unknown:
        raise ConfigError(f"{where} (after experiment_overrides): unknown key(s) {unknown}; "
                          f"allowed keys: {sorted(EXPERIMENT_KEYS)}")
    try:
        parse_model_args(exp["model"], exp.get("model_args"))
        train_config(exp, config.get("train"))
    except ConfigError as err:
        raise ConfigError(f"{where} (config/experiments/{_experiment_file(config, name)}"
                          f".yaml + experiment_overrides + sweeps): {err}") from err
    pose = exp.get("pose_experiment")
    if pose is not None:
        if pose not in files and pose not in sweeps:
            raise ConfigError(f"{where}: pose_experiment = {pose!r} is not an experiment "
                              f"file or sweep{_did_you_mean(str(pose), files)}")
        if resolve_experiment(config, pose, experiments_dir).get("model") != "pose":
            raise ConfigError(f"{where}: pose_experiment = {pose!r} is not a 'pose' model")
    return pose


def check_hand(hand: Mapping) -> None:
    """The ``hand`` section: the MANO model file exists when it is used or named.

    Raises:
        ConfigError: ``asset: mano`` without ``mano_root``.
        FileNotFoundError: no ``MANO_RIGHT.pkl`` where ``hand.mano_root`` points.
    """
    root = hand.get("mano_root")
    if hand.get("asset") == "mano" and not root:
        raise ConfigError("hand.asset = 'mano' needs hand.mano_root (the folder holding "
                          "MANO_RIGHT.pkl); see README 'Real datasets', or set hand.asset: "
                          "procedural")
    if root:
        from gsdf.hand.mano import resolve_mano_path

        try:
            resolve_mano_path(root, "right")
        except FileNotFoundError as err:
            raise FileNotFoundError(f"config key hand.mano_root = {root!r}: {err}") from err
