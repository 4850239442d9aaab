"""The recipe of docs/adding_a_model.md, run as written: its code blocks define and register a
model from this test, its experiment file resolves, and the model trains two steps through the
training stage's entry point on a real packed split, then loads back from its checkpoint."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest
import torch

from gsdf.config import ConfigError, deep_merge, load_config, resolve_experiment
from gsdf.models import MODELS, ModelSpec, build_model, parse_model_args, register, unregister

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "adding_a_model.md"
DATA_FIXTURES = REPO / "tests" / "data" / "sdf_fixtures.py"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture
def gf_pixel(monkeypatch):
    """The doc's model file as module ``gsdf.models.gf_pixel``, its spec registered."""
    model_src, spec_src = _blocks("python")
    module = types.ModuleType("gsdf.models.gf_pixel")
    monkeypatch.setitem(sys.modules, "gsdf.models.gf_pixel", module)
    exec(compile(model_src, f"{DOC} (model file)", "exec"), module.__dict__)
    exec(compile(spec_src, f"{DOC} (registry)", "exec"),
         {"register": register, "ModelSpec": ModelSpec})
    yield module
    unregister("gf_pixel")
    assert "gf_pixel" not in MODELS


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    """A real packed split (6 samples) built with the data stage's own test fixtures."""
    spec = importlib.util.spec_from_file_location("recipe_sdf_fixtures", DATA_FIXTURES)
    fx = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fx)
    return fx.sample_and_pack(tmp_path_factory.mktemp("packed"))


def test_the_documented_model_trains_two_steps_and_reloads(gf_pixel, packed, tmp_path):
    from gsdf.train import TrainOutputs, load_trained_model, read_checkpoint, run_train
    from gsdf.train.distributed import seed_everything

    torch.set_num_threads(1)
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "gf_pixel.yaml").write_text(_blocks("yaml")[0])
    # small settings from the micro preset: its gf entry (the model GFPixelArgs extends) and
    # its `all` entry (64 px, one epoch); batch 3 over the 6 packed samples = two steps
    config = load_config(overrides={"preset": "micro"})
    small = deep_merge(config["experiment_overrides"]["gf"],
                       {"model_args": {"pixel_channels": 16}, "train": {"batch_size": 3}})
    config["experiment_overrides"]["gf_pixel"] = small
    exp = resolve_experiment(config, "gf_pixel", experiments)
    assert exp["model"] == "gf_pixel" and exp["model_args"]["image_size"] == 64

    out = TrainOutputs.in_dir(tmp_path / "run")
    rows = run_train({"experiment": exp, "dataset": {"name": "synth", "recon_scale": 7.0},
                      "train": config["train"]}, packed, out, device="cpu", progress=False)
    assert rows[-1]["steps"] == 2 and torch.isfinite(torch.tensor(rows[-1]["loss"]))
    assert read_checkpoint(out.checkpoint)["model"] == "gf_pixel"

    model, trained = load_trained_model(out.checkpoint, expect=exp)
    assert isinstance(model, gf_pixel.PixelAlignedGF)
    assert model.args == parse_model_args("gf_pixel", exp["model_args"])
    assert model.args.pixel_channels == 16 and model.args.sdf_latent == 32  # micro's
    seed_everything(0)  # the initial weights of the run (train.seed 0)
    initial = build_model("gf_pixel", exp["model_args"]).state_dict()
    moved = [k for k, v in model.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, initial[k])]
    assert any(k.startswith("sdf_encoder") for k in moved)  # two Adam steps changed it


def test_the_documented_model_validates_its_own_settings(gf_pixel):
    with pytest.raises(ConfigError, match=r"'pixel_neck_stages' = 0.*allowed values: 1 to 5"):
        build_model("gf_pixel", {"pixel_neck_stages": 0})
    # inherited checks: no pose estimate, so only raw point encodings
    with pytest.raises(ConfigError, match=r"hand_encode_style.*must be 'raw'"):
        build_model("gf_pixel", {"hand_encode_style": "kine", "hand_point_latent": 6})
    with pytest.raises(ConfigError, match=r"unknown build context \['pose_checkpoint'\]"):
        build_model("gf_pixel", {}, pose_checkpoint="pose.pt")
    spec = MODELS["gf_pixel"]
    assert spec.data_kind == "sdf" and spec.context == () and not spec.pose_network


def test_specs_are_checked_when_registered():
    from gsdf.models.args import GFArgs

    build = MODELS["gf"].build
    with pytest.raises(ValueError, match="already registered"):
        register(ModelSpec("gf", GFArgs, build))
    with pytest.raises(ValueError, match=r"data_kind 'images'.*\['sdf', 'pose', 'video'\]"):
        ModelSpec("toy", GFArgs, build, data_kind="images")
    with pytest.raises(ValueError, match=r"unknown context keys \['mano'\]"):
        ModelSpec("toy", GFArgs, build, context=("mano",))
    with pytest.raises(ValueError, match="pose_network=True needs.*pose_checkpoint"):
        ModelSpec("toy", GFArgs, build, pose_network=True)
    with pytest.raises(TypeError, match="ModelArgs"):
        ModelSpec("toy", dict, build)
    with pytest.raises(ConfigError, match=r"'model' = 'toy' is not a registered model"):
        build_model("toy", {})


def test_a_model_declaring_the_hand_asset_gets_the_runs_hand(tmp_path):
    """A spec whose context lists ``hand_asset`` is all it takes: training loads the run's hand
    asset for it and records which one, and a checkpoint of it is rebuilt with that hand."""
    from gsdf.checkpoint import CheckpointError, _recorded_hand_asset
    from gsdf.hand import HandAsset
    from gsdf.models.args import GFArgs
    from gsdf.models.registry import uses_hand_asset
    from gsdf.train.run import _hand_context

    seen = {}

    def build(args, **context):
        seen.update(context)
        return torch.nn.Linear(1, 1)

    register(ModelSpec("toy_hand", GFArgs, build, context=("hand_asset",)))
    try:
        assert uses_hand_asset("toy_hand") and MODELS["toy_hand"].uses_hand_asset
        experiment = {"name": "toy_hand", "model": "toy_hand"}
        hand = _hand_context(experiment, {"dataset": {"name": "synth"}, "hand": {"seed": 3}})
        assert isinstance(hand["hand_asset"], HandAsset)
        assert experiment["hand"] == {"asset": "procedural", "seed": 3}
        build_model("toy_hand", {}, **hand)
        assert seen["hand_asset"] is hand["hand_asset"]
        recorded = {"model": "toy_hand", "experiment": experiment}
        assert isinstance(_recorded_hand_asset(recorded, tmp_path / "c.pt")["hand_asset"],
                          HandAsset)
        mano = {"model": "toy_hand", "experiment": {"hand": {"asset": "mano", "seed": 0}}}
        with pytest.raises(CheckpointError, match="trained with the MANO hand"):
            _recorded_hand_asset(mano, tmp_path / "c.pt")
    finally:
        unregister("toy_hand")
    # a model without the context key gets no hand, even with a hand recorded
    experiment = {"name": "gf", "model": "gf"}
    assert _hand_context(experiment, {"hand": {"seed": 3}}) == {} and "hand" not in experiment
    assert _recorded_hand_asset({"model": "gf", "experiment": recorded["experiment"]}, "p") == {}


def test_the_shipped_models_with_a_hand_layer():
    from gsdf.models.registry import uses_hand_asset

    shipped = ("gf", "alignsdf", "gsdf", "gsdf_video", "pose")
    assert {n for n in shipped if uses_hand_asset(n)} == {"alignsdf", "gsdf", "gsdf_video"}
