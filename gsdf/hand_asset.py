"""Which hand asset a run uses, checked before any job starts (no torch import: the Snakefile
calls :func:`check_hand_config` when it is parsed).

MANO (``hand.mano_root``) on the real datasets and whenever ``hand.asset: mano``, as the
reference, whose IK (zerchen/gSDF ``common/mano/inverse_kinematics.py``) and AlignSDF MANO
branch (``common/mano/manolayer.py``) use MANO; the procedural hand (``hand.seed``) on the
synthetic dataset otherwise. :func:`gsdf.models.hand_model.load_hand_asset` loads it; which
models have a hand layer is their registry spec's (:func:`gsdf.models.registry.uses_hand_asset`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gsdf.config import ConfigError

# Datasets whose annotations are MANO fits: their models use the MANO asset.
REAL_DATASETS = ("obman", "dexycb")


def hand_asset_kind(hand_cfg: Mapping[str, Any] | None, dataset: str | None) -> str:
    """``"mano"`` on a real dataset or with ``hand.asset: mano``, else ``"procedural"``."""
    kind = (hand_cfg or {}).get("asset", "procedural")
    if kind not in ("procedural", "mano"):
        raise ConfigError(f"config key 'hand.asset' = {kind!r}; allowed values: "
                          f"['procedural', 'mano']")
    return "mano" if dataset in REAL_DATASETS else kind


def check_hand_config(config: Mapping[str, Any]) -> None:
    """Stop before any job runs when the configured dataset needs MANO and ``hand.mano_root``
    does not hold ``MANO_RIGHT.pkl`` (directly, or in ``models/``).

    Raises:
        ConfigError: MANO is needed and ``hand.mano_root`` is not set or lacks the pickle; the
            message says what to do.
    """
    hand_cfg = config.get("hand") or {}
    dataset = config.get("dataset")
    if hand_asset_kind(hand_cfg, dataset) != "mano":
        return
    why = (f"dataset {dataset!r} is annotated with MANO" if dataset in REAL_DATASETS
           else "hand.asset is 'mano'")
    how = ("download MANO (https://mano.is.tue.mpg.de, free registration), put MANO_RIGHT.pkl "
           "(from mano_v*/models/) in a folder and set hand.mano_root to it (config/config.yaml "
           "or --config \"hand={mano_root: /path/to/mano}\"); see docs/paper.md")
    root = hand_cfg.get("mano_root")
    if not root:
        raise ConfigError(f"{why}, but hand.mano_root is not set: {how}")
    path = Path(str(root)).expanduser()
    found = path.is_file() or any(
        (path / sub / "MANO_RIGHT.pkl").is_file() for sub in (".", "models", "mano/models"))
    if not found:
        raise ConfigError(f"{why}, but hand.mano_root = {str(root)!r} holds no MANO_RIGHT.pkl "
                          f"(nor models/MANO_RIGHT.pkl): {how}")
