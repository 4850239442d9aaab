"""Config loading: defaults, readable errors, presets, experiment resolution."""

import pytest

from gsdf.config import ConfigError, deep_merge, from_dict, load_config, resolve_experiment


def test_defaults_filled_and_valid():
    cfg = load_config()
    assert cfg["dataset"] == "synth"
    assert cfg["datasets"]["dexycb"]["recon_scale"] == pytest.approx(6.2)
    assert cfg["datasets"]["obman"]["recon_scale"] == pytest.approx(7.0)


def test_typo_names_key_and_allowed_keys():
    with pytest.raises(ConfigError) as err:
        load_config(overrides={"datasets": {"synth": {"recon_scal": 3}}})
    msg = str(err.value)
    assert "recon_scal" in msg and "recon_scale" in msg and "datasets.synth" in msg


def test_wrong_enum_lists_allowed_values():
    with pytest.raises(ConfigError, match=r"allowed values: \['synth', 'obman', 'dexycb'\]"):
        load_config(overrides={"dataset": "foo"})


def test_wrong_type_is_reported():
    with pytest.raises(ConfigError, match="hand.seed.*expected integer"):
        load_config(overrides={"hand": {"seed": "x"}})


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset"):
        load_config(overrides={"preset": "huge"})


def test_deep_merge_does_not_mutate():
    a = {"x": {"y": 1, "z": 2}}
    b = {"x": {"y": 3}}
    assert deep_merge(a, b) == {"x": {"y": 3, "z": 2}}
    assert a == {"x": {"y": 1, "z": 2}}


def test_sweep_inherits_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("model: m\nmodel_args: {a: 1, b: 2}\n")
    cfg = {"sweeps": {"base_b3": {"base": "base", "model_args": {"b": 3}}},
           "experiment_overrides": {"all": {"model_args": {"a": 5}},
                                    "other_model": {"model_args": {"a": 7}}}}
    exp = resolve_experiment(cfg, "base_b3", experiments_dir=tmp_path)
    assert exp["model_args"] == {"a": 5, "b": 3}
    assert exp["name"] == "base_b3"
    cfg["experiment_overrides"]["m"] = {"model_args": {"b": 9, "c": 1}}
    exp = resolve_experiment(cfg, "base", experiments_dir=tmp_path)
    assert exp["model_args"] == {"a": 5, "b": 9, "c": 1}
    with pytest.raises(ConfigError, match="allowed experiments"):
        resolve_experiment(cfg, "nope", experiments_dir=tmp_path)


def test_from_dict_refuses_unknown_keys():
    from dataclasses import dataclass

    @dataclass
    class C:
        lr: float = 1e-4
        epochs: int = 3

    assert from_dict(C, {"lr": 1}).lr == 1.0
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epoch'\] in 'train'"):
        from_dict(C, {"epoch": 3}, "train")


def test_preset_extends_another(tmp_path, monkeypatch):
    presets = tmp_path / "config" / "presets"
    presets.mkdir(parents=True)
    (presets / "base.yaml").write_text("synth: {a: 1, b: 2}\n")
    (presets / "big.yaml").write_text("extends: base\nsynth: {b: 3}\n")
    (presets / "loop.yaml").write_text("extends: loop\n")
    monkeypatch.chdir(tmp_path)
    from gsdf.config import apply_preset

    assert apply_preset({"preset": "big"})["synth"] == {"a": 1, "b": 3}
    assert apply_preset({"preset": "big"}, {"synth": {"a": 9}})["synth"] == {"a": 9, "b": 3}
    with pytest.raises(ConfigError, match="cycle"):
        apply_preset({"preset": "loop"})


def test_shipped_presets_are_valid():
    from gsdf.models import parse_model_args
    from gsdf.train.config import train_config
    from gsdf.train.run import dataset_options

    for preset in ("default", "micro", "bench"):
        cfg = load_config(overrides={"preset": preset})
        for exp in ("gf", "alignsdf", "gsdf", "gsdf_video", "pose"):
            resolved = resolve_experiment(cfg, exp)
            args = parse_model_args(resolved["model"], resolved["model_args"])  # raises if bad
            # one key per concept: the data side takes the model's input size
            options = dataset_options(resolved, train_config(resolved, cfg["train"]))
            assert options["image_size"] == args.image_size == 64
    bench = load_config(overrides={"preset": "bench"})
    assert bench["synth"]["num_train_sequences"] == 1600
    assert bench["synth"]["view_spread_deg"] == 45.0  # inherited from default
    assert bench["experiment_overrides"]["gf"]["model_args"]["sdf_latent"] == 64
    gsdf = resolve_experiment(bench, "gsdf")
    assert gsdf["train"]["epochs"] == 15 and gsdf["train"]["batch_size"] == 8  # merged
    assert resolve_experiment(bench, "pose")["model_args"]["joints_loss"] == "l1"


def test_command_line_strings_become_schema_types():
    # Snakemake's --config gives nested values as strings: synth={num_train_sequences: 3}
    cfg = load_config(overrides={"datasets": {"synth": {"num_shards": "3", "root": "null",
                                                        "recon_scale": "6.5"}}})
    assert cfg["datasets"]["synth"]["num_shards"] == 3
    assert cfg["datasets"]["synth"]["root"] is None
    assert cfg["datasets"]["synth"]["recon_scale"] == 6.5
    with pytest.raises(ConfigError, match="expected integer"):
        load_config(overrides={"datasets": {"synth": {"num_shards": "three"}}})


def test_from_dict_converts_strings_by_type_hint():
    from dataclasses import dataclass, field

    @dataclass
    class C:
        n: int = 1
        x: float = 1.0
        flag: bool = False
        dims: tuple[int, ...] = (1,)
        path: str | None = None
        k: int | None = None
        extra: list = field(default_factory=list)

    c = from_dict(C, {"n": "3", "x": "0.5", "flag": "true", "dims": ["64", "64"], "path": "7",
                      "k": "null"})
    assert (c.n, c.x, c.flag, c.dims, c.path, c.k) == (3, 0.5, True, (64, 64), "7", None)


def test_experiment_file_inherits_its_base(tmp_path):
    (tmp_path / "a.yaml").write_text("model: m\npose_experiment: p\n"
                                     "model_args: {x: 1, y: {u: 1, v: 2}}\ntrain: {epochs: 3}\n")
    (tmp_path / "b.yaml").write_text("base: a\nmodel: n\nmodel_args: {y: {v: 5}}\n")
    (tmp_path / "c.yaml").write_text("base: b\ntrain: {epochs: 4}\n")
    cfg = {"sweeps": {"c_x": {"base": "c", "model_args": {"x": 9}}},
           "experiment_overrides": {"m": {"train": {"lr": 1}}, "n": {"train": {"seed": 2}},
                                    "b": {"train": {"batch_size": 7}}}}
    exp = resolve_experiment(cfg, "c_x", experiments_dir=tmp_path)
    assert exp == {"name": "c_x", "model": "n", "pose_experiment": "p",
                   "model_args": {"x": 9, "y": {"u": 1, "v": 5}},
                   # selectors: the resolved model (n) and the file reached (c), not the bases
                   "train": {"epochs": 4, "seed": 2}}


def test_experiment_base_cycles_and_unknown_bases_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b\nmodel: m\n")
    (tmp_path / "b.yaml").write_text("base: a\n")
    (tmp_path / "self.yaml").write_text("base: self\nmodel: m\n")
    (tmp_path / "orphan.yaml").write_text("base: nope\nmodel: m\n")
    with pytest.raises(ConfigError, match=r"cycle: a -> b -> a"):
        resolve_experiment({}, "a", experiments_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"cycle: self -> self"):
        resolve_experiment({}, "self", experiments_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"orphan.yaml: base 'nope': no file .*nope.yaml; "
                                          r"allowed experiment files: \['a', 'b', 'orphan', "
                                          r"'self'\]"):
        resolve_experiment({}, "orphan", experiments_dir=tmp_path)
    sweeps = {"s1": {"base": "s2"}, "s2": {"base": "s1"}}
    with pytest.raises(ConfigError, match=r"sweeps inherit from each other in a cycle: "
                                          r"s1 -> s2 -> s1"):
        resolve_experiment({"sweeps": sweeps}, "s1", experiments_dir=tmp_path)
    (tmp_path / "nomodel.yaml").write_text("model_args: {x: 1}\n")
    with pytest.raises(ConfigError, match="must set 'model'"):
        resolve_experiment({}, "nomodel", experiments_dir=tmp_path)


@pytest.mark.parametrize("old,new", [("image_size", "model_args.image_size"),
                                     ("frames", "model_args.num_frames")])
def test_an_old_experiment_file_fails_naming_the_key_to_use(tmp_path, old, new):
    (tmp_path / "old.yaml").write_text(f"model: gf\ntrain: {{{old}: 64}}\n")
    with pytest.raises(ConfigError, match=rf"old.yaml: 'train.{old}' is no longer a config "
                                          rf"key.*'{new}'"):
        resolve_experiment({}, "old", experiments_dir=tmp_path)
    (tmp_path / "new.yaml").write_text("model: gf\n")
    sweeps = {"new_x": {"base": "new", "train": {old: 64}}}
    with pytest.raises(ConfigError, match=rf"sweeps.new_x: 'train.{old}'.*'{new}'"):
        resolve_experiment({"sweeps": sweeps}, "new_x", experiments_dir=tmp_path)


def test_a_non_editable_install_finds_the_schema(tmp_path):
    """The wheel ships the config schema as package data; the installed package validates a
    config from any folder."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    src, wheel_dir, target = tmp_path / "src", tmp_path / "wheel", tmp_path / "site"
    shutil.copytree(repo / "gsdf", src / "gsdf",
                    ignore=shutil.ignore_patterns("__pycache__"))  # build outside the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", str(src), "-w", str(wheel_dir)], check=True, timeout=300,
                   capture_output=True)
    (wheel,) = wheel_dir.glob("gsdf-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=300, capture_output=True)
    code = ("import gsdf.config as c; s = c.load_schema(); "
            f"assert str(c.SCHEMA_PATH).startswith({str(target)!r}), c.SCHEMA_PATH; "
            "print(sorted(s['properties'])[:3])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=120,
                         capture_output=True, text=True, env={"PYTHONPATH": str(target),
                                                              "PATH": "/usr/bin:/bin"})
    assert out.stdout.startswith("[")
