"""One source of defaults: for every config section read into a dataclass, the schema's
defaults, the dataclass's defaults and the values written in config/config.yaml agree; the
experiment files hold only what differs from the model's args dataclass (the reference's
settings) and from the training defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsdf.config import (
    CONFIG_PATH,
    RENAMED_KEYS,
    load_experiment_file,
    load_schema,
    load_yaml,
    to_dict,
)

EXPERIMENTS = Path(__file__).resolve().parents[1] / "config" / "experiments"


def _sections() -> dict[str, type]:
    from gsdf.data.pack import PackConfig
    from gsdf.eval.evaluate import EvalConfig
    from gsdf.eval.reconstruct import ReconstructConfig
    from gsdf.geometry.sdf import SampleSDFConfig
    from gsdf.synth.config import SynthConfig
    from gsdf.train.config import TrainConfig

    return {"sample_sdf": SampleSDFConfig, "pack": PackConfig, "train": TrainConfig,
            "reconstruct": ReconstructConfig, "evaluate": EvalConfig, "synth": SynthConfig}


@pytest.mark.parametrize("section", sorted(_sections()))
def test_schema_dataclass_and_config_yaml_defaults_agree(section):
    cls = _sections()[section]
    schema = load_schema()["properties"][section]["properties"]
    written = load_yaml(CONFIG_PATH)[section]
    defaults = to_dict(cls())
    # keys merged into model_args (RENAMED_KEYS) are refused by the config: no field keeps them
    assert not {k.split(".", 1)[1] for k in RENAMED_KEYS if k.startswith(f"{section}.")} \
        & set(defaults)
    assert set(schema) == set(defaults) == set(written), section
    for key, value in defaults.items():
        assert schema[key]["default"] == value, f"{section}.{key}: schema vs {cls.__name__}"
        assert written[key] == value, f"{section}.{key}: config.yaml vs {cls.__name__}"
        assert schema[key].get("description"), f"{section}.{key} has no description"


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _at(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return list(tree) if isinstance(tree, tuple) else tree


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_experiment_files_hold_only_overrides(path):
    """Every value an experiment file sets differs from what it would get without it: its
    base file's value, else the default of the model's args dataclass / TrainConfig."""
    from gsdf.config import deep_merge
    from gsdf.models import get_spec
    from gsdf.train.config import TrainConfig

    own = load_yaml(path)
    inherited = load_experiment_file(EXPERIMENTS, own["base"]) if "base" in own else {}
    model = own.get("model", inherited.get("model"))
    spec = get_spec(model)  # a registered model
    before = {"model_args": deep_merge(to_dict(spec.args()), inherited.get("model_args") or {}),
              "train": deep_merge(to_dict(TrainConfig()), inherited.get("train") or {})}
    for section in ("model_args", "train"):
        for key, value in _leaves(own.get(section) or {}):
            assert value != _at(before[section], key), \
                f"{path.name}: {section}.{key} = {value!r} restates the default; remove it"
    unknown = set(own) - {"base", "model", "pose_experiment", "model_args", "train"}
    assert not unknown, f"{path.name}: unexpected keys {sorted(unknown)}"


def test_model_defaults_are_the_reference_settings():
    """Values the reference's experiment files set (zerchen/gSDF playground/*/experiments/
    obman_*.yaml; see gsdf/models/args.py), where its config.py defaults differ."""
    from gsdf.models.args import AlignSDFArgs, GFArgs, GSDFArgs, GSDFVideoArgs, PoseArgs

    for cls in (GFArgs, AlignSDFArgs, GSDFArgs, GSDFVideoArgs):
        assert cls().hand_cls_weight == 0.0  # every experiment file: hand_cls_weight: 0.
    assert AlignSDFArgs().corner_weight == 0.0  # obman_resnet18_hkine6_otrans6.yaml
    assert GSDFArgs().corner_weight == 0.5  # hsdf_osdf_2net_pa/config.py (not in its yaml)
    assert PoseArgs().depth_dim == 0.20 and PoseArgs().hand_ordinal_weight == 1.0  # obman_hand
    assert AlignSDFArgs().depth_dim == GSDFArgs().depth_dim == 0.28
    assert GSDFVideoArgs().num_frames == 3  # hsdf_osdf_2net_video_pa/config.py
