"""Stage ``predict``: a trained gsdf / gsdf_video model on your own photos, no ground truth.

Rule ``predict`` (``workflow/rules/predict.smk``) runs it over the folder ``predict.images``
into ``results/{exp}_{dataset}/predict/``; ``gsdf predict IMAGE... --checkpoint EXP_DIR`` runs
it on given photos. The work is in :mod:`gsdf.eval.predict`; see docs/predict.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gsdf.eval.predict import MANIFEST, images_in, run_predict


@dataclasses.dataclass(frozen=True)
class Inputs:
    """``checkpoint``: an experiment folder or its ``checkpoint.pt``; ``images``: photo files,
    or one folder whose photos are all used."""

    checkpoint: Path
    images: tuple[Path, ...]


@dataclasses.dataclass(frozen=True)
class Outputs:
    """``out_dir``: where ``{name}_hand.ply``, ``{name}_obj.ply``, ``{name}.json`` and
    ``{name}_overlay.png`` go; ``manifest``: ``out_dir/predict_manifest.json`` (written last)."""

    out_dir: Path

    @property
    def manifest(self) -> Path:
        return self.out_dir / MANIFEST


def photos(images: Sequence[Path]) -> list[Path]:
    """The photo files of ``images``: a single folder is expanded to its photos."""
    if len(images) == 1 and Path(images[0]).is_dir():
        return images_in(images[0])
    return [Path(p) for p in images]


def run(inputs: Inputs, outputs: Outputs, params: Mapping[str, Any],
        bbox: Sequence[float] | None = None, device: str | None = None,
        threads: int | None = None) -> dict[str, Any]:
    """Reconstruct every photo; returns the manifest (``done``, ``skipped``).

    Args:
        params: ``{"reconstruct": {...}, "predict": {"focal": pixels or None}, "hand": {...}}``
            (``hand``: the config's hand section, for a model trained with the MANO hand).
        bbox: ``(x, y, w, h)`` box of the hand and object, pixels, for every photo (CLI only).
        device, threads: runtime.
    """
    focal = (params.get("predict") or {}).get("focal")
    return run_predict(photos(inputs.images), inputs.checkpoint, outputs.out_dir, bbox=bbox,
                       focal=focal, params={"reconstruct": params.get("reconstruct") or {},
                                            "hand": params.get("hand")},
                       device=device, threads=threads)
