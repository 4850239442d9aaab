"""Stage ``sample_sdf``: SDF points around the hand and the object of every sample of a dataset
shard (the sampling itself: :mod:`gsdf.geometry.sdf`; the shard file: :mod:`gsdf.data.sdf_shard`),
and a preview PNG of one sample (rule ``sample_sdf_preview``).

Samples with bad input (missing, unreadable, empty or NaN mesh, missing part labels, bad meta)
are skipped and listed with the reason in the shard's ``skipped.csv``; samples the dataset stage
already skipped are listed too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsdf.config import ConfigError, from_dict, to_dict
from gsdf.data.sdf_shard import load_shard, save_shard
from gsdf.data.skipped import write_skipped
from gsdf.geometry.mesh_io import load_mesh, load_vertex_parts
from gsdf.geometry.sdf import PairSamples, SampleSDFConfig, sample_pair, sample_seed
from gsdf.paths import SplitLayout
from gsdf.utils.io import atomic_path, read_json

log = logging.getLogger("gsdf.sample_sdf")


@dataclass(frozen=True)
class Inputs:
    """Attributes:
        split_dir: the canonical split, ``results/datasets/{dataset}/{split}``.
        manifest: the dataset shard manifest ``shards/shard_{k}.json`` (the ids).
    """

    split_dir: Path
    manifest: Path


@dataclass(frozen=True)
class Outputs:
    """Attributes:
        shard: the SDF shard, ``results/{dataset}/sdf/{split}/shard_{k}.npz``.
        skipped: ``skipped_{k}.csv`` (id, reason) beside it.
    """

    shard: Path
    skipped: Path


@dataclass(frozen=True)
class PreviewInputs:
    """Attributes: split_dir: the canonical split of the shard; shard: an SDF shard."""

    split_dir: Path
    shard: Path


@dataclass(frozen=True)
class PreviewOutputs:
    """Attributes: png: the preview to write."""

    png: Path


def config_from_params(params: dict) -> tuple[SampleSDFConfig, float]:
    """(``SampleSDFConfig``, ``recon_scale``) from a job's params (``sample_sdf`` + ``dataset``).

    Raises:
        ConfigError: no ``dataset.recon_scale`` (the hand-frame scale has no safe default).
    """
    cfg = from_dict(SampleSDFConfig, params.get("sample_sdf", {}), "sample_sdf")
    recon_scale = (params.get("dataset") or {}).get("recon_scale")
    if recon_scale is None:
        raise ConfigError("sample_sdf: --params has no dataset.recon_scale (the hand-frame "
                          "scale, datasets.{dataset}.recon_scale in config/config.yaml)")
    return cfg, float(recon_scale)


def check_image(path: str | Path) -> tuple[int, int]:
    """Decode an image completely (training decodes it later; a truncated JPEG must be skipped
    here, with its reason, not stop a job downstream). Returns (width, height).

    Raises:
        OSError: missing, truncated or not an image (naming the file).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    try:
        with Image.open(path) as img:
            img.load()  # decodes every scanline: a truncated file raises here
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise OSError(f"{path}: image does not decode ({err})") from err


def sample_one(layout: SplitLayout, sample_id: str, recon_scale: float, cfg: SampleSDFConfig
               ) -> PairSamples:
    """Load one sample of the canonical layout and sample it. Raises ValueError/OSError on bad
    input (the caller records it as skipped)."""
    meta_path = layout.meta(sample_id)
    meta = read_json(meta_path)
    joints = np.asarray(meta.get("hand_joints_3d", []), dtype=np.float64)
    if joints.shape != (21, 3):
        raise ValueError(f"{meta_path}: hand_joints_3d has shape {joints.shape}, expected (21, 3)")
    if not np.isfinite(joints).all():
        raise ValueError(f"{meta_path}: hand_joints_3d has NaN or infinite values")
    check_image(layout.rgb(sample_id))
    hand_path = layout.mesh("hand", sample_id)
    hand = load_mesh(hand_path)
    parts = load_vertex_parts(hand, hand_path)
    obj = load_mesh(layout.mesh("obj", sample_id))
    rng = np.random.default_rng(sample_seed(cfg.seed, sample_id))
    return sample_pair(hand, parts, obj, joints[0], recon_scale, cfg, rng)


def run(inputs: Inputs, outputs: Outputs, params: dict, *, progress: bool = True) -> dict:
    """Sample every id of the shard manifest; write the SDF shard and its skipped.csv.

    Args:
        params: ``{"sample_sdf": {...}, "dataset": {"recon_scale", ...}}``.
        progress: tqdm bar (runtime).
    Returns:
        counts ``{"done": ..., "skipped": ...}``.
    Raises:
        FileNotFoundError: the split folder does not exist.
    """
    from tqdm import tqdm

    if not Path(inputs.split_dir).is_dir():
        raise FileNotFoundError(f"split folder {inputs.split_dir} not found; run the "
                                "synth/prepare stage first")
    cfg, recon_scale = config_from_params(params)
    layout = SplitLayout(inputs.split_dir)
    man = read_json(inputs.manifest)
    ids = [str(i) for i in man.get("ids", [])]
    skipped = [{"id": s.get("id"), "reason": f"dataset stage: {s.get('reason')}"}
               for s in man.get("skipped", [])]
    done_ids, samples = [], []
    for sid in tqdm(ids, desc=f"sample_sdf {Path(inputs.manifest).stem}", disable=not progress):
        try:
            samples.append(sample_one(layout, sid, recon_scale, cfg))
            done_ids.append(sid)
        except (ValueError, OSError) as err:  # MeshError is a ValueError
            log.warning("skipping %s: %s", sid, err)
            skipped.append({"id": sid, "reason": str(err).replace("\n", " ")})
    resolved = {"sample_sdf": to_dict(cfg), "recon_scale": recon_scale}
    save_shard(outputs.shard, done_ids, samples, recon_scale, resolved, cfg.compressed)
    write_skipped(outputs.skipped, skipped)
    counts = {"done": len(done_ids), "skipped": len(skipped)}
    log.info("sample_sdf %s: %d samples done, %d skipped", inputs.manifest, counts["done"],
             counts["skipped"])
    return counts


def _first_loadable(shard, layout: SplitLayout, index: int
                    ) -> tuple[int, dict, np.ndarray] | tuple[None, list[str], None]:
    """(index, meta, image) of the first sample from ``index`` on whose meta and image load, else
    (None, reasons, None): one bad file must not stop the run (it was skipped or fails later
    with its own reason)."""
    from PIL import Image

    reasons = []
    for i in [(index + k) % len(shard) for k in range(len(shard))]:
        sid = shard.ids[i]
        try:
            meta = read_json(layout.meta(sid))
            np.asarray(meta["cam_intr"], dtype=np.float64).reshape(3, 3)
            check_image(layout.rgb(sid))
            return i, meta, np.asarray(Image.open(layout.rgb(sid)).convert("RGB"))
        except (OSError, ValueError, KeyError) as err:
            log.warning("preview: skipping %s: %s", sid, err)
            reasons.append(f"{sid}: {err}")
    return None, reasons, None


def run_preview(inputs: PreviewInputs, outputs: PreviewOutputs, params: dict | None = None, *,
                index: int = 0, max_points: int = 4000) -> str:
    """PNG of one sample of the shard: its image, the inside points projected onto it (hand red,
    object blue), and a side view of the near-surface points coloured by hand/object sign.

    Draws the first sample from ``index`` on whose image and meta load (a truncated JPEG is
    passed over). Returns the sample id drawn, or ``""`` when no sample loads (the PNG then
    says why).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shard = load_shard(inputs.shard)
    index, meta, image = _first_loadable(shard, SplitLayout(inputs.split_dir), index)
    if index is None:
        fig = plt.figure(figsize=(6, 2))
        text = "no sample of this shard to preview" + (
            f" ({len(meta)} unreadable: {meta[0]} ...)" if meta else " (empty shard)")
        fig.text(0.02, 0.5, text, wrap=True, fontsize=8)
        sid = ""
    else:
        sid = shard.ids[index]
        data = np.concatenate([shard.get(index, "hand").data, shard.get(index, "obj").data])
        data = data[np.random.default_rng(0).permutation(len(data))[:max_points]]
        cam = data[:, :3] / (shard.recon_scale / 2.0) + shard.wrist[index]  # camera metres
        uv = cam @ np.asarray(meta["cam_intr"], dtype=np.float64).reshape(3, 3).T
        fig = _preview_figure(sid, image, data, uv[:, :2] / uv[:, 2:3])
    with atomic_path(outputs.png) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return sid


def _preview_figure(sid: str, image: np.ndarray, data: np.ndarray, uv: np.ndarray):
    """The three panels of :func:`run_preview`. ``data`` (N, 5) hand-frame rows, ``uv`` (N, 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    in_hand, in_obj = data[:, 3] <= 0, data[:, 4] <= 0
    outside = ~in_hand & ~in_obj
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    axes[0].imshow(image)
    axes[0].set_title(f"{sid}")
    axes[1].imshow(image, alpha=0.5)
    axes[1].scatter(*uv[in_obj].T, s=2, c="tab:blue", label="inside object")
    axes[1].scatter(*uv[in_hand].T, s=2, c="tab:red", label="inside hand")
    axes[1].set_xlim(0, image.shape[1])
    axes[1].set_ylim(image.shape[0], 0)
    axes[1].legend(loc="lower right", fontsize=7, markerscale=4)
    axes[1].set_title("inside points projected (camera intrinsics)")
    near = np.minimum(np.abs(data[:, 3]), np.abs(data[:, 4])) < 0.05
    ax = axes[2]
    ax.scatter(*data[outside & near][:, [0, 2]].T, s=1, c="0.75", label="outside both")
    ax.scatter(*data[in_obj][:, [0, 2]].T, s=2, c="tab:blue", label="sdf_obj < 0")
    ax.scatter(*data[in_hand][:, [0, 2]].T, s=2, c="tab:red", label="sdf_hand < 0")
    ax.set_aspect("equal")
    ax.set_xlabel("x (hand frame)")
    ax.set_ylabel("z (hand frame)")
    ax.legend(loc="lower right", fontsize=7, markerscale=4)
    ax.set_title("side view, hand frame (|sdf| < 0.05 or inside)")
    for a in axes[:2]:
        a.axis("off")
    fig.tight_layout()
    return fig
