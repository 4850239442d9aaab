"""Up-front checks of every experiment, sweep, selector and the MANO file (#25 item 4)."""

from __future__ import annotations

import pytest

from gsdf.config import ConfigError, check_config, load_config


def cfg(**overrides):
    return load_config(overrides={"preset": "micro", **overrides})


def test_default_and_micro_configs_pass_and_check_the_pose_experiment():
    assert check_config(load_config()) == ["gf", "alignsdf", "gsdf", "pose"]
    assert "pose" in check_config(cfg())


@pytest.mark.parametrize("overrides, message", [
    ({"experiment_overrides": {"gsfd": {"train": {"epochs": 2}}}},
     r"experiment_overrides.gsfd: unknown selector \(did you mean 'gsdf'\?\)"),
    ({"experiment_overrides": {"gsdf": {"model_args": {"sdf_latnt": 8}}}},
     r"experiment 'gsdf' .*unknown key\(s\) \['sdf_latnt'\] in 'model_args'"),
    ({"experiment_overrides": {"all": {"train": {"epohcs": 2}}}},
     r"experiment 'gf' .*unknown key\(s\) \['epohcs'\] in 'train'"),
    ({"experiment_overrides": {"gf": {"trian": {"epochs": 2}}}},
     r"experiment 'gf' \(after experiment_overrides\): unknown key\(s\) \['trian'\]"),
    ({"experiment_overrides": {"pose": {"model_args": {"neck_channel": 8}}}},
     r"experiment 'pose' .*\['neck_channel'\]"),
    ({"sweeps": {"gsdf_lat8": {"model_args": {"sdf_latent": 8}}}},
     r"sweeps.gsdf_lat8' is missing a required key: 'base'"),
    ({"sweeps": {"gsdf_lat8": {"base": "gsdf", "model_arg": {"sdf_latent": 8}}}},
     r"sweeps.gsdf_lat8: unknown key\(s\) \['model_arg'\]"),
    ({"sweeps": {"gsdf_lat8": {"base": "gsfd"}}},
     r"experiment 'gsdf_lat8' \(base 'gsfd'\): no file"),
    ({"sweeps": {"gsdf_x": {"base": "gsdf", "train": {"lr_decay_epochs": [9, 3]}}}},
     r"sweeps.gsdf_x .*lr_decay_epochs must be increasing"),
    ({"sweeps": {"gsdf_x": {"base": "gsdf", "pose_experiment": "gf"}}},
     r"sweeps.gsdf_x: pose_experiment = 'gf' is not a 'pose' model"),
    ({"experiments": ["gf", "alignsfd"]},
     r"'alignsfd' is neither config/experiments/alignsfd.yaml nor a 'sweeps' entry "
     r"\(did you mean 'alignsdf'\?\)"),
    ({"hand": {"asset": "mano"}},
     r"hand.asset = 'mano' needs hand.mano_root"),
])
def test_mistakes_at_every_level_fail_before_any_job(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_config(cfg(**overrides))


def test_a_sweep_not_in_experiments_is_still_checked():
    config = cfg(sweeps={"gf_wide": {"base": "gf", "model_args": {"decoder": {"dimz": [8]}}}})
    assert "gf_wide" not in config["experiments"]
    with pytest.raises(ConfigError, match=r"sweeps.gf_wide .*\['dimz'\]"):
        check_config(config)


def test_a_missing_mano_file_names_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"hand.mano_root = .*MANO_RIGHT.pkl not found"):
        check_config(cfg(hand={"asset": "mano", "mano_root": str(tmp_path)}))
    # named but unused: still checked
    with pytest.raises(FileNotFoundError, match="hand.mano_root"):
        check_config(cfg(hand={"mano_root": str(tmp_path / "nowhere")}))
