"""Typed configuration of the ``synth`` stage (config section ``synth:`` of config/config.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from gsdf.config import ConfigError
from gsdf.synth.objects import FAMILIES


@dataclass(frozen=True)
class SynthConfig:
    """Settings of the synthetic dataset. Every field is a key of the config section ``synth``.

    Lengths in metres, angles in degrees, pixels where named ``_px``.
    """

    seed: int = 0
    num_train_sequences: int = 24
    num_test_sequences: int = 6
    frames_per_sequence: tuple[int, int] = (8, 8)
    families: tuple[str, ...] = tuple(FAMILIES)
    user_mesh_dir: str | None = None
    background_dir: str | None = None
    obj_size: tuple[float, float] = (0.06, 0.20)
    obj_min_thickness: float = 0.03
    cam_distance: tuple[float, float] = (0.35, 0.8)
    view_spread_deg: float = 180.0
    occlusion_prob: float = 0.75
    fingertip_grasp_prob: float = 0.3
    hand_shape_std: float = 1.0
    motion_rotation_deg: float = 40.0
    motion_translation_px: float = 12.0
    motion_depth: float = 0.08
    motion_drift: float = 0.01
    supersample: int = 2
    min_coverage: float = 0.02
    max_attempts: int = 4
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"synth.{key} = {getattr(self, key)!r}: {why}")

        for key in ("num_train_sequences", "num_test_sequences"):
            if getattr(self, key) < 0:
                raise bad(key, "must be >= 0")
        lo, hi = self.frames_per_sequence
        if not 1 <= lo <= hi:
            raise bad("frames_per_sequence", "must be [min, max] with 1 <= min <= max")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ConfigError(f"synth.families: unknown object family {unknown or '(empty)'}; "
                              f"allowed families: {sorted(FAMILIES)}")
        lo, hi = self.obj_size
        if not 0 < lo <= hi:
            raise bad("obj_size", "must be [min, max] metres with 0 < min <= max")
        if not self.obj_min_thickness > 0:
            raise bad("obj_min_thickness", "must be > 0 (metres)")
        lo, hi = self.cam_distance
        if not 0 < lo <= hi:
            raise bad("cam_distance", "must be [min, max] metres with 0 < min <= max")
        if not 0 <= self.view_spread_deg <= 180:
            raise bad("view_spread_deg", "must be in [0, 180] degrees")
        for key in ("occlusion_prob", "fingertip_grasp_prob"):
            if not 0 <= getattr(self, key) <= 1:
                raise bad(key, "must be in [0, 1]")
        if self.supersample < 1:
            raise bad("supersample", "must be >= 1")
        if not 0 <= self.min_coverage < 0.5:
            raise bad("min_coverage", "must be in [0, 0.5)")
        if self.max_attempts < 1:
            raise bad("max_attempts", "must be >= 1")
        if not 1 <= self.jpeg_quality <= 100:
            raise bad("jpeg_quality", "must be in 1..100")
        for key in ("hand_shape_std", "motion_rotation_deg", "motion_translation_px",
                    "motion_depth", "motion_drift"):
            if getattr(self, key) < 0:
                raise bad(key, "must be >= 0")
