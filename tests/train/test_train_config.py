"""TrainConfig: the schema's `train` defaults, unknown keys, invalid values, resolution order."""

from __future__ import annotations

import dataclasses

import pytest

from gsdf.config import RENAMED_KEYS, ConfigError, load_config, load_schema, to_dict
from gsdf.train import TrainConfig, train_config
from gsdf.train.run import data_kind, dataset_options


def test_schema_defaults_equal_dataclass_defaults():
    schema = load_schema()["properties"]["train"]["properties"]
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    # train.image_size / train.frames moved to model_args (gsdf.config.RENAMED_KEYS): no field
    assert not {k.split(".")[1] for k in RENAMED_KEYS if k.startswith("train.")} & set(fields)
    assert set(schema) == set(fields)
    for name, default in fields.items():
        value = schema[name]["default"]
        assert (list(default) if isinstance(default, tuple) else default) == value, name
        assert schema[name]["description"]


def test_experiment_overrides_global_defaults():
    defaults = load_config()["train"]
    cfg = train_config({"model": "gf", "train": {"epochs": 3, "lr_decay_epochs": [2]}}, defaults)
    assert cfg.epochs == 3 and cfg.lr_decay_epochs == (2,) and cfg.batch_size == 64


def test_unknown_key_names_allowed_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epoch'\] in 'train'.*epochs"):
        train_config({"model": "gf", "train": {"epoch": 3}})


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"lr": -1.0}, {"lr_decay_factor": 2.0},
                                 {"lr_decay_epochs": [5, 2]}, {"precision": "fp16"},
                                 {"global_batch_size": 0}])
def test_invalid_values_refused(bad):
    with pytest.raises(ConfigError, match="train."):
        train_config({"model": "gf", "train": bad})


def test_augmentation_settings_checked_and_converted_before_training():
    # Snakemake hands nested --config values over as strings
    cfg = train_config({"model": "pose", "train": {"aug": {"rot_factor": "15.0",
                                                           "rot_prob": "1"}}})
    assert cfg.aug["rot_factor"] == 15.0 and isinstance(cfg.aug["rot_factor"], float)
    assert cfg.aug["rot_prob"] == 1.0
    # only the keys given: the dataset's defaults (datasets.{name}.aug) fill the others
    assert "trans_factor" not in cfg.aug
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['rotfactor'\] in 'train.aug'"):
        train_config({"model": "pose", "train": {"aug": {"rotfactor": 15.0}}})


def test_config_typo_in_train_section_refused():
    with pytest.raises(ConfigError, match="batchsize"):
        load_config(overrides={"train": {"batchsize": 3}})


def test_dataset_options_follow_the_model():
    cfg = TrainConfig(num_points=64)
    assert data_kind("pose") == "pose" and data_kind("gsdf_video") == "video"
    assert data_kind("gsdf") == "sdf" and data_kind("gf") == "sdf"
    opts = dataset_options({"model": "gsdf_video", "model_args": {
        "num_frames": 5, "clamp_dist": 0.04, "image_size": 128}}, cfg)
    assert opts["kind"] == "video" and opts["frames"] == 5 and opts["clamp"] == 0.04
    assert opts["num_points"] == 64 and opts["image_size"] == 128
    # the input side and the clip length are the model's: one key each, defaults included
    opts = dataset_options({"model": "gsdf_video", "model_args": {}}, cfg)
    assert opts["image_size"] == 256 and opts["frames"] == 3
    with pytest.raises(ConfigError, match="num_frames"):
        dataset_options({"model": "gsdf_video", "model_args": {"num_frames": 4}}, cfg)


@pytest.mark.parametrize("old,new", [("image_size", "model_args.image_size"),
                                     ("frames", "model_args.num_frames")])
def test_moved_train_keys_fail_loudly_naming_the_new_key(old, new):
    with pytest.raises(ConfigError, match=rf"'train.{old}' is no longer.*'{new}'"):
        load_config(overrides={"train": {old: 64}})
    with pytest.raises(ConfigError, match=rf"experiment_overrides.all.*'train.{old}'.*'{new}'"):
        load_config(overrides={"experiment_overrides": {"all": {"train": {old: 64}}}})
    with pytest.raises(ConfigError, match=rf"experiment 'gf'.*'train.{old}' is no longer.*'{new}'"):
        train_config({"name": "gf", "model": "gf", "train": {old: 64}})


def test_a_checkpoint_written_with_the_retired_train_keys_still_resumes_and_loads():
    from gsdf.train.config import recorded_train
    from gsdf.train.resume import same_run

    experiment = {"name": "gf", "model": "gf"}
    cfg = train_config(experiment)
    old = {"image_size": 256, "frames": None, **to_dict(cfg)}  # as such checkpoints hold it
    assert recorded_train(old) == to_dict(cfg)
    ckpt = {"experiment": experiment, "train": old, "dataset": {}}
    assert same_run(ckpt, experiment, {}, cfg)
    other = {**old, "epochs": cfg.epochs + 1}  # any other difference is another run
    assert not same_run(dict(ckpt, train=other), experiment, {}, cfg)
    assert train_config(experiment, recorded_train(old)) == cfg


@pytest.mark.parametrize("key", ["num_workers", "checkpoint_every", "sync_bn"])
def test_runtime_keys_are_refused_with_the_flag_to_use(key):
    with pytest.raises(ConfigError, match=f"runtime settings.*train.{key} -> --"):
        train_config({"name": "gf", "model": "gf", "train": {key: 1}})


def test_workers_from_the_jobs_cpus():
    from gsdf.train import TrainRuntime

    assert TrainRuntime(cpus=16).workers(1, gpu=True) == 15  # one CPU feeds the GPU
    assert TrainRuntime(cpus=16).workers(4, gpu=True) == 3  # 4 CPUs per GPU process
    assert TrainRuntime(cpus=2).workers(1, gpu=False) == 0  # CPU training: load in-process
    assert TrainRuntime(cpus=8).workers(1, gpu=False) == 2
    assert TrainRuntime(num_workers=5, cpus=2).workers(1, gpu=False) == 5


@pytest.mark.parametrize(("name", "per_gpu"), [("gsdf", 64), ("gf", 64), ("pose", 32),
                                               ("gsdf_video", 16)])
def test_paper_preset_global_batch_is_the_references_on_any_gpu_count(name, per_gpu):
    from gsdf.config import resolve_experiment

    config = load_config(overrides={"preset": "paper"})
    cfg = train_config(resolve_experiment(config, name), config["train"])
    assert cfg.per_process_batch(4) == per_gpu  # the reference: 4 GPUs
    assert cfg.per_process_batch(1) == 4 * per_gpu and cfg.per_process_batch(8) == per_gpu // 2
