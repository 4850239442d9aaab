"""``gsdf predict``: hand and object meshes from your own photos, with no ground truth.

Per photo (docs/predict.md):

1. read it with Pillow (EXIF orientation applied) and take the intrinsics of the full photo:
   ``--focal`` (pixels) if given, else the EXIF ``FocalLengthIn35mmFilm`` (converted over the
   photo's diagonal, 43.27 mm in 35 mm film), else EXIF ``FocalLength`` with the sensor's
   ``FocalPlaneXResolution``, else :data:`DEFAULT_FOCAL_35MM` (a phone's main camera); the
   principal point is the photo's centre;
2. crop a square around ``--bbox`` (default: the whole photo, padded to a square) enlarged by
   :data:`BBOX_ENLARGE`, as the training crops frame their hand-object pair, and resize it to
   the model's input size; the crop's intrinsics follow exactly;
3. place the hand frame from the model's own pose network (:mod:`gsdf.eval.hand_frame`,
   :mod:`gsdf.hand.root`), run the model and mesh both fields as ``reconstruct`` does;
4. write ``{name}_hand.ply``, ``{name}_obj.ply`` (camera space of the photo, metres),
   ``{name}.json`` and ``{name}_overlay.png`` (the meshes over the photo, and from the side).

Bad input (not an image, a crop smaller than the model's input, a box outside the photo, a
model without a pose network) raises :class:`PredictInputError` naming the argument.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import trimesh
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from gsdf.eval.reconstruct import ReconstructConfig, reconstruct_sample
from gsdf.geometry.mesh_io import save_mesh
from gsdf.utils.io import atomic_path, write_json

log = logging.getLogger("gsdf.predict")

# 35 mm-equivalent focal length assumed when neither --focal nor EXIF gives one: the main
# camera of most phones (24-28 mm); diagonal field of view 2 atan(43.27 / 2 / 26) = 79.5 deg.
DEFAULT_FOCAL_35MM = 26.0
DIAGONAL_35MM = float(np.hypot(36.0, 24.0))  # 43.27 mm
# Side of the square crop / longest side of --bbox: how the training images frame their
# hand-object pair. Measured on 449 images of the default preset's synthetic dataset (256 px /
# longest side of meta "bbox", the pair's projected box): median 1.24, 10-90% 1.13-1.42
# (docs/predict.md).
BBOX_ENLARGE = 1.25
# Longest side of the photo in the overlay (ray casting every pixel of a 12 MP photo is slow).
OVERLAY_SIDE = 512
MODELS_WITH_POSE = ("gsdf", "gsdf_video")

_EXIF_IFD = 0x8769
_FOCAL_LENGTH = 0x920A
_FOCAL_35MM = 0xA405
_FOCAL_PLANE_XRES = 0xA20E
_FOCAL_PLANE_UNIT = 0xA210
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0}  # EXIF resolution unit -> mm


class PredictInputError(ValueError):
    """Bad input of ``gsdf predict``; the message names the argument."""


@dataclasses.dataclass(frozen=True)
class Photo:
    """A photo as the model sees it.

    Attributes:
        rgb: (H, W, 3) uint8, EXIF orientation applied.
        focal: focal length of the full photo, pixels.
        focal_source: ``--focal`` | ``exif FocalLengthIn35mmFilm`` | ``exif FocalLength`` |
            ``default``.
    """

    rgb: np.ndarray
    focal: float
    focal_source: str

    @property
    def cam_intr(self) -> np.ndarray:
        """(3, 3) intrinsics of the full photo (principal point at its centre)."""
        h, w = self.rgb.shape[:2]
        return np.array([[self.focal, 0.0, w / 2.0], [0.0, self.focal, h / 2.0], [0, 0, 1.0]])


def _rational(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return out if np.isfinite(out) and out > 0 else None


def exif_focal(image: Image.Image, width: int, height: int) -> tuple[float, str] | None:
    """Focal length in pixels of a ``width`` x ``height`` photo from its EXIF, or None."""
    exif = image.getexif()
    tags = dict(exif)
    tags.update(exif.get_ifd(_EXIF_IFD))
    f35 = _rational(tags.get(_FOCAL_35MM))
    if f35:
        return f35 * float(np.hypot(width, height)) / DIAGONAL_35MM, "exif FocalLengthIn35mmFilm"
    f_mm, xres = _rational(tags.get(_FOCAL_LENGTH)), _rational(tags.get(_FOCAL_PLANE_XRES))
    unit = _UNIT_MM.get(int(tags.get(_FOCAL_PLANE_UNIT, 2) or 2))
    if f_mm and xres and unit:
        return f_mm * xres / unit, "exif FocalLength"
    return None


def load_photo(path: str | Path, focal: float | None = None) -> Photo:
    """Read ``path`` (any format Pillow reads) and its focal length (see the module docstring).

    Raises:
        PredictInputError: not a readable image, or a non-positive ``focal``.
    """
    path = Path(path)
    if focal is not None and not (np.isfinite(focal) and focal > 0):
        raise PredictInputError(f"--focal must be a positive number of pixels, got {focal}")
    try:
        with Image.open(path) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
            found = exif_focal(img, *upright.size)
            rgb = np.asarray(upright.convert("RGB"))
    except FileNotFoundError as err:
        raise PredictInputError(f"IMAGE {path}: file not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise PredictInputError(f"IMAGE {path}: not an image Pillow can read ({err}); give "
                                "a JPEG or PNG photo") from err
    h, w = rgb.shape[:2]
    if focal is not None:
        return Photo(rgb, float(focal), "--focal")
    if found is not None:
        return Photo(rgb, found[0], found[1])
    return Photo(rgb, DEFAULT_FOCAL_35MM * float(np.hypot(w, h)) / DIAGONAL_35MM, "default")


def square_crop(bbox: Sequence[float] | None, width: int, height: int,
                enlarge: float = BBOX_ENLARGE) -> tuple[int, int, int]:
    """``(x0, y0, side)`` of the square crop, pixels (it may extend past the photo: padded).

    Args:
        bbox: ``(x, y, w, h)`` of the hand and object, pixels, inside the photo; None: the
            whole photo (then the square is the photo's longest side, not enlarged).

    Raises:
        PredictInputError: an empty box or one not inside the photo.
    """
    if bbox is None:
        side = max(width, height)
        return (width - side) // 2, (height - side) // 2, side
    x, y, w, h = (float(v) for v in bbox)
    if not (np.isfinite([x, y, w, h]).all() and w > 0 and h > 0):
        raise PredictInputError(f"--bbox {x:g} {y:g} {w:g} {h:g}: width and height must be "
                                "positive (X Y W H in pixels)")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise PredictInputError(
            f"--bbox {x:g} {y:g} {w:g} {h:g} is not inside the {width}x{height} photo "
            "(X Y W H in pixels of the photo as displayed, EXIF orientation applied)")
    side = int(round(enlarge * max(w, h)))
    return int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2)), side


def crop_and_resize(rgb: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    """The square ``[x0, x0 + side) x [y0, y0 + side)`` of ``rgb`` (H, W, 3), zero-padded where
    it leaves the photo, resized to (size, size, 3) uint8."""
    h, w = rgb.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    crop = padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def crop_intrinsics(cam_intr: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    """Intrinsics (3, 3) of the crop resized to ``size``: ``u' = (u - x0) * size / side``
    (pixel corners map to pixel corners, as ``cv2.resize``)."""
    a = size / side
    k = np.asarray(cam_intr, dtype=np.float64)
    return np.array([[k[0, 0] * a, 0.0, (k[0, 2] - x0) * a],
                     [0.0, k[1, 1] * a, (k[1, 2] - y0) * a], [0.0, 0.0, 1.0]])


def checkpoint_path(exp_dir: str | Path) -> Path:
    """``EXP_DIR/checkpoint.pt`` (or the file itself)."""
    path = Path(exp_dir)
    return path / "checkpoint.pt" if path.is_dir() else path


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu",
               hand: dict | None = None) -> tuple[Any, dict]:
    """The trained model of ``--checkpoint`` (an experiment folder or its checkpoint.pt).

    ``hand``: the config's ``hand`` section; needed for a model trained with the MANO hand
    (its ``mano_root``); a procedural-hand model rebuilds its hand from the checkpoint.

    Raises:
        PredictInputError: missing, unreadable, unfinished, or of a model without a pose
            network.
    """
    from gsdf.checkpoint import CheckpointError, load_trained_model, read_checkpoint
    from gsdf.config import ConfigError

    path = checkpoint_path(checkpoint)
    try:
        name = read_checkpoint(path).get("model")
        if name not in MODELS_WITH_POSE:
            raise PredictInputError(
                f"--checkpoint {checkpoint}: a {name!r} model has no pose network to place "
                "the hand without ground truth; give the folder of a "
                f"{' or '.join(MODELS_WITH_POSE)} experiment (e.g. results/gsdf_synth)")
        context = {}
        recorded = ((read_checkpoint(path).get("experiment") or {}).get("hand") or {})
        if hand is not None and recorded.get("asset") == "mano":
            from gsdf.models.hand_model import load_hand_asset

            context["hand_asset"] = load_hand_asset({**hand, "asset": "mano"}, None)
        return load_trained_model(path, device, **context)
    except (FileNotFoundError, CheckpointError, ConfigError) as err:
        raise PredictInputError(f"--checkpoint {checkpoint}: {err}") from err


def _batch(image: np.ndarray, cam_intr: np.ndarray, recon_scale: float, frames: int,
           device: torch.device) -> dict[str, Any]:
    """A batch of one (a clip of ``frames`` copies for the video model)."""
    from gsdf.data.datasets import IMAGENET_MEAN, IMAGENET_STD

    img = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD  # (S, S, 3)
    img_t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]  # (1, 3, S, S)
    k = torch.as_tensor(cam_intr, dtype=torch.float32)[None]
    wrist = torch.tensor([[0.0, 0.0, 0.5]])  # replaced by the solved root
    if frames > 1:
        img_t = img_t[:, None].repeat(1, frames, 1, 1, 1)
        k = k[:, None].repeat(1, frames, 1, 1)
        wrist = wrist[:, None].repeat(1, frames, 1)
    return {"id": ["photo"], "image": img_t.to(device), "cam_intr": k.to(device),
            "hand_center_3d": wrist.to(device),
            "recon_scale": torch.tensor([recon_scale], dtype=torch.float32, device=device)}


def render_overlay(photo: Photo, meshes: dict[str, trimesh.Trimesh | None],
                   joints: np.ndarray | None, out: str | Path) -> dict[str, int]:
    """``out`` PNG: the photo with the meshes blended over it | the meshes from the side.

    Returns:
        ``{"hand_pixels", "obj_pixels"}``: pixels of each mesh inside the (downscaled) photo.
    """
    from gsdf.eval.render import HAND_RGB, OBJ_RGB, render_camera, render_meshes

    h, w = photo.rgb.shape[:2]
    scale = min(1.0, OVERLAY_SIDE / max(h, w))
    ow, oh = max(1, round(w * scale)), max(1, round(h * scale))
    base = cv2.resize(photo.rgb, (ow, oh), interpolation=cv2.INTER_AREA)
    k = photo.cam_intr.copy()
    k[:2] *= np.array([[ow / w], [oh / h]])
    pairs = [(meshes.get("hand"), HAND_RGB), (meshes.get("obj"), OBJ_RGB)]
    render, labels = render_camera(pairs, k, ow, oh)
    seen = labels >= 0
    blend = base.copy()
    blend[seen] = (0.35 * base[seen] + 0.65 * render[seen]).astype(np.uint8)
    canvas = Image.fromarray(blend)
    if joints is not None:
        from gsdf.hand.root import project

        draw = ImageDraw.Draw(canvas)
        for u, v in project(joints, k):
            draw.ellipse((u - 2, v - 2, u + 2, v + 2), fill=(255, 255, 0))
    side = render_meshes(pairs, size=oh, yaw=np.pi / 2)
    sheet = Image.new("RGB", (ow + oh, oh), "white")
    sheet.paste(canvas, (0, 0))
    sheet.paste(Image.fromarray(side), (ow, 0))
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return {"hand_pixels": int((labels == 0).sum()), "obj_pixels": int((labels == 1).sum())}


def predict_photo(model: Any, experiment: dict, image: str | Path, out_dir: str | Path,
                  bbox: Sequence[float] | None = None, focal: float | None = None,
                  cfg: ReconstructConfig | None = None,
                  device: str | torch.device = "cpu") -> dict[str, Any]:
    """Reconstruct one photo and write its four outputs under ``out_dir``.

    Returns:
        the record written to ``{name}.json``.

    Raises:
        PredictInputError: bad image, box or crop; gsdf.hand.root.RootSolveError: the pose
            network's joints are degenerate.
    """
    from gsdf.eval.hand_frame import with_predicted_frame

    image, out_dir = Path(image), Path(out_dir)
    cfg = cfg or ReconstructConfig()
    device = torch.device(device)
    photo = load_photo(image, focal)
    h, w = photo.rgb.shape[:2]
    size = int(model.args.image_size)
    x0, y0, side = square_crop(bbox, w, h)
    if side < size:
        what = "--bbox" if bbox is not None else "IMAGE"
        raise PredictInputError(
            f"{what} {image if bbox is None else ' '.join(f'{v:g}' for v in bbox)}: the crop "
            f"is {side} px, smaller than the model's input of {size} px; give a larger box or "
            "a higher-resolution photo")
    crop = crop_and_resize(photo.rgb, x0, y0, side, size)
    k_crop = crop_intrinsics(photo.cam_intr, x0, y0, side, size)
    recon_scale = float(experiment["dataset"]["recon_scale"])
    frames = int(getattr(model.args, "num_frames", 1) or 1) if model.name == "gsdf_video" else 1
    batch = _batch(crop, k_crop, recon_scale, frames, device)
    batch, sols = with_predicted_frame(model, batch)
    out = reconstruct_sample(model, batch, cfg, device)
    # The crop camera and the photo camera share their 3D frame (a crop only changes K).
    name = image.stem
    meshes: dict[str, trimesh.Trimesh | None] = {}
    files: dict[str, str | None] = {}
    for branch in ("hand", "obj"):
        mesh = out["meshes"].get(branch)
        path = out_dir / f"{name}_{branch}.ply"
        if mesh is None:
            path.unlink(missing_ok=True)
            meshes[branch], files[branch] = None, None
        else:
            save_mesh(path, mesh[0], mesh[1])
            meshes[branch] = trimesh.Trimesh(mesh[0], mesh[1], process=False)
            files[branch] = path.name
    joints = out["pose"]["joints"]
    overlay = render_overlay(photo, meshes, joints, out_dir / f"{name}_overlay.png")
    record = {
        "image": str(image), "image_size": [w, h],
        "cam_intr": photo.cam_intr, "focal_source": photo.focal_source,
        "crop": {"x0": x0, "y0": y0, "side": side, "size": size, "cam_intr": k_crop},
        "root": sols[0].root, "root_depth_solved": sols[0].depth,
        "root_reprojection_px": sols[0].reprojection_px, "hand_size_m": sols[0].hand_size,
        "hand_scale": 1.0 / sols[0].scale,
        "joints": joints, "obj_center": out["pose"]["obj_center"],
        "meshes": files, "no_surface": [b for b in ("hand", "obj") if files[b] is None],
        "overlay": overlay, "checkpoint_experiment": experiment.get("name"),
    }
    write_json(out_dir / f"{name}.json", record)
    return record


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".heic")
MANIFEST = "predict_manifest.json"


def images_in(folder: str | Path) -> list[Path]:
    """The photos of a folder (by suffix, sorted), for the ``predict`` rule.

    Raises:
        PredictInputError: not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PredictInputError(f"predict.images: {folder} is not a folder of photos")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def run_predict(images: Sequence[str | Path], checkpoint: str | Path, out_dir: str | Path,
                bbox: Sequence[float] | None = None, focal: float | None = None,
                params: dict | None = None, device: str | None = None,
                threads: int | None = None) -> dict[str, Any]:
    """Load the model once and reconstruct every photo (see :func:`predict_photo`); write
    ``out_dir/predict_manifest.json``.

    A photo that cannot be used (not an image, too small a crop, a box outside it, degenerate
    joints, a name used twice) is skipped with its reason; the others go on.

    Args:
        params: optional ``{"reconstruct": {...}}`` meshing settings (``hand_frame`` is
            always ``predicted`` here) and ``{"hand": {...}}`` (``mano_root`` of a model
            trained with the MANO hand).

    Returns:
        the manifest: ``done`` (records), ``skipped`` (``{"image", "reason"}``).

    Raises:
        PredictInputError: a bad ``--checkpoint`` or ``--focal``, or no photo at all.
    """
    from gsdf.config import from_dict
    from gsdf.hand.root import RootSolveError

    section = dict((params or {}).get("reconstruct") or {})
    section["hand_frame"] = "predicted"
    cfg = from_dict(ReconstructConfig, section, "reconstruct")
    if focal is not None and not (np.isfinite(focal) and focal > 0):
        raise PredictInputError(f"--focal must be a positive number of pixels, got {focal}")
    if threads:
        torch.set_num_threads(int(threads))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, experiment = load_model(checkpoint, device, (params or {}).get("hand"))
    manifest: dict[str, Any] = {"done": [], "skipped": [], "checkpoint": str(checkpoint)}
    names: set[str] = {Path(MANIFEST).stem}
    for image in images:
        try:
            if Path(image).stem in names:
                raise PredictInputError(f"IMAGE {image}: another photo (or the manifest) "
                                        f"already writes {Path(image).stem}.json; rename it")
            names.add(Path(image).stem)
            record = predict_photo(model, experiment, image, out_dir, bbox, focal, cfg, device)
        except (PredictInputError, RootSolveError) as err:
            log.error("%s: skipped: %s", image, err)
            manifest["skipped"].append({"image": str(image), "reason": str(err)})
            continue
        log.info("%s: root %s m (focal %.0f px, %s), meshes %s", image,
                 np.round(record["root"], 3).tolist(), record["cam_intr"][0][0],
                 record["focal_source"], record["meshes"])
        manifest["done"].append(record)
    manifest["config"] = {"reconstruct": dataclasses.asdict(cfg), "bbox": bbox, "focal": focal}
    write_json(Path(out_dir) / MANIFEST, manifest)
    return manifest
