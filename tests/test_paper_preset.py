"""The ``paper`` preset resolves, for every experiment, to the reference's settings.

The values below were read from zerchen/gSDF (commit 05101b5); the file each comes from is given
beside it. ``1net`` = ``playground/hsdf_osdf_1net``, ``2net_pa`` = ``playground/hsdf_osdf_2net_pa``,
``video`` = ``playground/hsdf_osdf_2net_video_pa``, ``pose_kpt`` = ``playground/pose_kpt``.
"""

from __future__ import annotations

import dataclasses

import pytest

from gsdf.config import load_config, resolve_experiment
from gsdf.models.registry import parse_model_args
from gsdf.train.config import train_config

DECODER = {  # {1net,2net_pa,video}/config.py cfg.sdf_head (5 layers: 4 hidden of 512)
    "decoder.dims": (512, 512, 512, 512),
    "decoder.dropout_layers": (0, 1, 2, 3),
    "decoder.dropout_prob": 0.2,
    "decoder.norm_layers": (0, 1, 2, 3),
    "decoder.latent_in": (2,),
}
SDF_COMMON = {
    **DECODER,
    "image_size": 256,                # config.py cfg.image_size (256, 256)
    "backbone": "resnet18",           # config.py cfg.backbone / backbone_shape 'resnet_18'
    "backbone_weights": "imagenet",   # tools/train.py get_model(cfg, True) -> init_weights()
    "sdf_latent": 256,                # config.py cfg.sdf_latent
    "clamp_dist": 0.05,               # config.py cfg.clamp_dist
    "sdf_loss": "clamped",            # net.py: L1 on clamped SDFs (DeepSDF)
    "sdf_add_epoch": 1201,            # config.py cfg.sdf_add_epoch
    "hand_sdf_weight": 0.5,           # experiments/*.yaml hand_sdf_weight
    "obj_sdf_weight": 0.5,            # experiments/*.yaml obj_sdf_weight
    "hand_cls": False,                # config.py cfg.hand_cls
    "hand_cls_weight": 0.0,           # experiments/*.yaml hand_cls_weight: 0.
}
SDF_TRAIN = {
    "train.epochs": 1600,             # config.py cfg.end_epoch
    "train.batch_size": 64,           # config.py cfg.train_batch_size (per GPU, 4 GPUs)
    # cfg.train_batch_size x cfg.num_gpus (tools/dist_train.sh 4, the README's commands)
    "train.global_batch_size": 256,
    "train.lr": 1e-4,                 # config.py cfg.lr
    "train.lr_decay_epochs": (600, 1200),  # config.py cfg.lr_dec_epoch
    "train.lr_decay_factor": 0.5,     # config.py cfg.lr_dec_factor
    "train.weight_decay": 0.0,        # common/base.py get_optimizer: Adam without decay
    "train.num_points": 2000,         # config.py cfg.num_sample_points
    "train.augment": True,            # datasets/sdf_dataset.py: get_aug_config in train mode
}
REFERENCE: dict[str, dict] = {
    "gf": {  # 1net/experiments/obman_resnet18_hnerf3_onerf3.yaml
        **SDF_COMMON, **SDF_TRAIN,
        "hand_encode_style": "raw", "obj_encode_style": "raw",  # 'nerf' with 3-d latents
        "hand_point_latent": 3, "obj_point_latent": 3,
    },
    "alignsdf": {  # 1net/experiments/obman_resnet18_hkine6_otrans6.yaml + 1net/config.py
        **SDF_COMMON, **SDF_TRAIN,
        "hand_encode_style": "kine", "obj_encode_style": "kine",
        "hand_point_latent": 6, "obj_point_latent": 6,
        "mano_ncomps": 15,             # 1net/config.py cfg.mano_pca_latent
        "depth_dim": 0.28,             # 1net/config.py cfg.depth_dim
        "heatmap_depth": 64,           # 1net/config.py cfg.heatmap_size (64, 64, 64)
        "obj_rot": False,              # 1net/config.py cfg.obj_rot
        "mano_joints_weight": 0.5,     # 1net/config.py cfg.mano_joints_weight
        "mano_shape_weight": 5e-7,     # 1net/config.py cfg.mano_shape_weight
        "mano_pose_weight": 5e-5,      # 1net/config.py cfg.mano_pose_weight
        "obj_center_weight": 0.5,      # 1net/config.py cfg.volume_weight
        "corner_weight": 0.0,          # the experiment YAML's corner_weight: 0.
    },
    "gsdf": {  # 2net_pa/experiments/obman_presnet18_sresnet18_hkine6_okine6.yaml + README
        **SDF_COMMON, **SDF_TRAIN,
        "hand_encode_style": "kine", "obj_encode_style": "kine",
        "hand_point_latent": 51,       # README: "hand_point_latent 51 obj_point_latent 72"
        "obj_point_latent": 72,
        "pixel_channels": 256,         # 2net_pa/net.py UNet(512, 256, 1)
        "pixel_neck_stages": 1,
        "pixel_neck_skips": False,
        "with_add_feats": True,        # 2net_pa/config.py cfg.with_add_feats
        "neck_stages": 3,              # 2net_pa/net.py UNet(neck_inplanes, 256, 3)
        "depth_dim": 0.28,             # 2net_pa/config.py cfg.depth_dim
        "obj_rot": False,              # 2net_pa/config.py cfg.obj_rot
        "obj_center_weight": 0.5,      # 2net_pa/config.py cfg.volume_weight
        "pose_source": "network",      # test_with_gt False
    },
    "gsdf_video": {  # video/experiments/dexycbs0_3frames_presnet18_sresnet18_hkine6_okine6.yaml
        **SDF_COMMON, **SDF_TRAIN,
        "hand_point_latent": 51, "obj_point_latent": 72,  # README video command
        "num_frames": 3,               # video/config.py cfg.num_frames
        "train.batch_size": 16,        # video/config.py cfg.train_batch_size
        "train.global_batch_size": 64,  # 16 per GPU x 4 GPUs
        "with_add_feats": True,        # video/config.py cfg.with_add_feats
    },
    "pose": {  # pose_kpt/experiments/obman_hand.yaml + pose_kpt/config.py
        "image_size": 256,             # pose_kpt/config.py cfg.image_size
        "backbone": "resnet18",        # pose_kpt/config.py cfg.backbone
        "backbone_weights": "imagenet",  # pose_kpt/net.py get_model: backbone.init_weights()
        "neck_channels": 256, "neck_stages": 3,  # pose_kpt/net.py UNet(512, 256, 3)
        "neck_skips": False,
        "heatmap_depth": 64,           # pose_kpt/config.py cfg.heatmap_size
        "depth_dim": 0.20,             # obman_hand.yaml depth_dim
        "joints_weight": 1.0,          # pose_kpt/config.py cfg.volume_weight
        "joints_loss": "mse",          # pose_kpt/net.py loss_l2
        "hand_ordinal_weight": 1.0,    # obman_hand.yaml hand_ordinal_weight
        "train.epochs": 100,           # pose_kpt/config.py cfg.end_epoch
        "train.batch_size": 32,        # obman_hand.yaml train_batch_size
        "train.global_batch_size": 128,  # 32 per GPU x 4 GPUs
        "train.lr": 1e-4,              # pose_kpt/config.py cfg.lr
        # pose_kpt/config.py cfg.lr_dec_epoch [40, 80, 120]; 120 is past end_epoch 100
        "train.lr_decay_epochs": (40, 80),
        "train.lr_decay_factor": 0.5,  # pose_kpt/config.py cfg.lr_dec_factor
    },
}
STAGES = {
    "sample_sdf.recon_cube_fraction": 0.0,  # GF preprocessing: no reconstruction-cube points
    "sample_sdf.ray_fraction": 0.0,         # no camera-ray points
    "sample_sdf.near_fraction": 0.94,       # GF PreprocessMesh: 94% near the surface
    "reconstruct.resolution": 128,          # config.py cfg.mesh_resolution
    "reconstruct.fit_cube": True,           # recon.py get_higher_res_cube
    "reconstruct.refine": "lipschitz",      # certified: the dense grid's mesh
    "evaluate.num_points": 30000,           # datasets/*/{obman,dexycb}.py _evaluate, solver.py
    "evaluate.icp_max_iter": 100,           # recon.py icp_solver.run_icp_f(max_iter=100)
    "evaluate.protocol": "reference",
}
DATASETS = {
    "obman": {"recon_scale": 7.0,  # 1net/experiments/obman_*.yaml recon_scale
              "aug": None},        # datasets/base_dataset.py get_aug_config('obman'): no shift
    "dexycb": {"recon_scale": 6.2,  # */experiments/dexycbs0_*.yaml recon_scale
               "aug": {"trans_factor": 0.1}},  # get_aug_config('dexycb') trans_factor 0.10
}


def _flatten(obj, prefix=""):
    if dataclasses.is_dataclass(obj):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    out = {}
    for key, value in obj.items():
        if dataclasses.is_dataclass(value) or isinstance(value, dict) and key != "aug":
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return out


@pytest.mark.parametrize("dataset", ["obman", "dexycb"])
@pytest.mark.parametrize("exp", sorted(REFERENCE))
def test_paper_preset_is_the_reference(exp, dataset):
    cfg = load_config(overrides={"dataset": dataset})
    assert cfg["preset"] == "paper"  # preset auto on a real dataset
    resolved = resolve_experiment(cfg, exp)
    values = _flatten(parse_model_args(resolved["model"], resolved.get("model_args")))
    values.update(_flatten(train_config(resolved, cfg["train"]), "train."))
    wrong = {key: (values.get(key, "<missing>"), want)
             for key, want in REFERENCE[exp].items() if values.get(key, "<missing>") != want}
    assert not wrong, f"{exp} on {dataset}: (resolved, reference) {wrong}"


@pytest.mark.parametrize("dataset", ["obman", "dexycb"])
def test_paper_preset_stages_and_datasets(dataset):
    cfg = load_config(overrides={"dataset": dataset})
    values = {key: cfg[key.split(".")[0]][key.split(".")[1]] for key in STAGES}
    assert values == STAGES
    for key, want in DATASETS[dataset].items():
        assert cfg["datasets"][dataset][key] == want, key


def test_preset_follows_the_dataset_unless_chosen():
    assert load_config()["preset"] == "default"  # synth
    assert load_config(overrides={"dataset": "obman", "preset": "bench"})["preset"] == "bench"
    paper_synth = load_config(overrides={"preset": "paper"})
    assert paper_synth["sample_sdf"]["ray_fraction"] == 0.0
    default = load_config(overrides={"preset": "default"})
    assert default["sample_sdf"]["ray_fraction"] > 0.0  # the default preset differs


def test_video_model_starts_from_the_image_gsdf_in_the_workflow(tmp_path):
    from types import SimpleNamespace

    from gsdf.workflow import Pipeline

    (tmp_path / "MANO_RIGHT.pkl").write_bytes(b"")  # the start-up check looks for the file
    cfg = load_config(overrides={"dataset": "dexycb", "hand": {"mano_root": str(tmp_path)}})
    # tools/train.py: hsdf_osdf_2net_video_pa loads pose_model, backbone, neck, volume_head,
    # the SDF heads, backbone_2_sdf and sdf_encoder from the image model's checkpoint
    assert resolve_experiment(cfg, "gsdf_video")["init_experiment"] == "gsdf"
    pipe = Pipeline(cfg)
    wc = SimpleNamespace(exp="gsdf_video", dataset="dexycb")
    inputs = pipe.train_sdf_inputs(wc)
    assert inputs["init"] == pipe.path("checkpoint", exp="gsdf", dataset="dexycb")
    assert "pose" in inputs
    arg = pipe.pose_checkpoint_arg(wc, SimpleNamespace(keys=inputs.keys, **inputs))
    assert f"--init-checkpoint {inputs['init']}" in arg and "--pose-checkpoint" in arg
    assert "init" not in pipe.train_sdf_inputs(SimpleNamespace(exp="gsdf", dataset="dexycb"))
