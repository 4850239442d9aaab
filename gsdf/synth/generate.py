"""Sequences of synthetic hand-object samples: object, grasp, smooth motion, camera, rendering.

One sequence (``video_id``) is generated from its own random stream ``(seed, video_id,
attempt)``, so the result does not depend on which shard or process generates it. A sequence
holds one object held by one hand; over its 8-16 frames the hand-object pair rotates and moves
smoothly, the object drifts slightly in the hand and the fingers re-close onto it (so flexion
varies smoothly), lighting moves a little. An attempt whose grasp misses the contact targets or
whose hand or object covers too few pixels is replaced by the next attempt.
"""

from __future__ import annotations

import colorsys
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from gsdf.hand import HandAsset
from gsdf.synth.camera import Camera, fit_depth
from gsdf.synth.config import SynthConfig
from gsdf.synth.grasp import (
    THUMB_ABDUCTION,
    Grasp,
    GraspParams,
    GraspSolver,
    HandRig,
    smooth_closures,
)
from gsdf.synth.objects import ObjectMesh, UserMeshes, files_in, make_object, scale_object
from gsdf.synth.render import HAND, OBJECT, Lighting, RenderMesh, render

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Grasp quality targets (issue 3): a hand vertex within 2 mm of the surface, at most 5 mm deep.
MAX_GAP = 0.002
MAX_PENETRATION = 0.005
# Skin albedos from light to dark (linear RGB in [0, 1]); a tone is drawn between two neighbours.
SKIN_TONES = np.array([
    [0.97, 0.82, 0.72], [0.92, 0.72, 0.60], [0.83, 0.60, 0.46],
    [0.68, 0.47, 0.34], [0.50, 0.34, 0.24], [0.33, 0.22, 0.15],
])


@dataclass(frozen=True)
class Sample:
    """One frame, everything the canonical layout stores.

    Attributes:
        id: ``"{video_id:06d}_{frame_idx:03d}"``.
        rgb: (H, W, 3) uint8. mask: (H, W) uint8 (0 bg, 1 hand, 2 object).
        depth: (H, W) float32 metres (0 = background).
        hand_vertices: (V, 3) camera space, metres. hand_faces: (F, 3) watertight.
        hand_parts: (V,) uint8 part labels.
        obj_vertices: (Vo, 3) camera space, metres. obj_faces: (Fo, 3).
        meta: the annotation (keys of docs/architecture.md, plus ``hand_trans``).
        grasp: penetration and gap of the grasp, metres (diagnostics, not written).
    """

    id: str
    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    hand_vertices: np.ndarray
    hand_faces: np.ndarray
    hand_parts: np.ndarray
    obj_vertices: np.ndarray
    obj_faces: np.ndarray
    meta: dict
    grasp: dict = field(default_factory=dict)


def sample_id(video_id: int, frame_idx: int) -> str:
    return f"{video_id:06d}_{frame_idx:03d}"


def _smooth(x: np.ndarray) -> np.ndarray:
    """Smoothstep on [0, 1] (zero velocity at both ends)."""
    return x * x * (3.0 - 2.0 * x)


def _random_color(rng: np.random.Generator) -> np.ndarray:
    h, s, v = rng.uniform(0, 1), rng.uniform(0.25, 0.9), rng.uniform(0.35, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def _skin(rng: np.random.Generator) -> np.ndarray:
    i = rng.integers(len(SKIN_TONES) - 1)
    tone = SKIN_TONES[i] + rng.uniform() * (SKIN_TONES[i + 1] - SKIN_TONES[i])
    return np.clip(tone * rng.uniform(0.93, 1.07, 3), 0, 1)


def _background(rng: np.random.Generator, h: int, w: int,
                images: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """(H, W, 3) float RGB background in [0, 1].

    A random crop of one of ``images`` (uint8 RGB) if given; otherwise a colour gradient with
    low-frequency blotches, sometimes a stripe or checker pattern, and fine grain.
    """
    if images:
        img = images[rng.integers(len(images))]
        ih, iw = img.shape[:2]
        side = int(min(ih, iw) * rng.uniform(0.4, 1.0))
        y0, x0 = int(rng.integers(0, ih - side + 1)), int(rng.integers(0, iw - side + 1))
        crop = cv2.resize(img[y0:y0 + side, x0:x0 + side], (w, h), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop, dtype=np.float64) / 255.0
    c0, c1 = _random_color(rng), _random_color(rng)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    ramp = np.clip(0.5 + (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)), 0, 1)
    img = c0 + ramp[..., None] * (c1 - c0)
    cells = int(rng.integers(3, 9))
    noise = rng.uniform(-1, 1, (cells, cells, 3)).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=max(h, w) / cells / 2.5)
    noise /= max(float(np.abs(noise).max()), 1e-6)
    img = img + rng.uniform(0.05, 0.25) * noise
    kind = rng.random()
    if kind < 0.4:  # stripes (kind < 0.2) or a checkerboard, as on cloth, tables, tiles
        freq = rng.uniform(4, 20) * 2 * np.pi
        a = rng.uniform(0, np.pi)
        u = np.cos(a) * xx + np.sin(a) * yy
        v = -np.sin(a) * xx + np.cos(a) * yy
        wave = np.sin(freq * u) if kind < 0.2 else np.sin(freq * u) * np.sin(freq * v)
        pattern = cv2.GaussianBlur(np.sign(wave).astype(np.float32), (0, 0), sigmaX=1.0)
        img = img + rng.uniform(0.05, 0.2) * pattern[..., None] * _random_color(rng)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 0.7)
    img = img + rng.uniform(0.0, 0.04) * grain
    return np.clip(img, 0, 1)


def load_backgrounds(folder: str | Path
                     ) -> tuple[tuple[np.ndarray, ...], tuple[tuple[str, str], ...]]:
    """Read every image of ``folder`` (sorted, not recursive) as uint8 RGB.

    Returns:
        the images and the (path, reason) of the files that could not be read.

    Raises:
        FileNotFoundError: missing folder or no image file. ValueError: no readable image.
    """
    files = files_in(folder, IMAGE_SUFFIXES, "synth.background_dir", "image")
    images, skipped = [], []
    for path in files:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None or min(img.shape[:2]) < 16:
            skipped.append((str(path), "unreadable or smaller than 16 pixels"))
            continue
        images.append(np.ascontiguousarray(img[..., ::-1]))
    if not images:
        raise ValueError(f"synth.background_dir: none of the {len(files)} images in {folder} "
                         "could be read")
    return tuple(images), tuple(skipped)


def _lighting(rng: np.random.Generator) -> Lighting:
    n = int(rng.integers(1, 3))
    dirs = rng.normal(size=(n, 3))
    dirs[:, 2] = -np.abs(dirs[:, 2]) - 0.6  # lights on the camera side
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    tint = rng.uniform(0.9, 1.1, (n, 3))
    strength = rng.uniform(0.45, 0.85, (n, 1)) / np.sqrt(n)
    ambient = rng.uniform(0.2, 0.45) * rng.uniform(0.92, 1.08, 3)
    return Lighting(ambient, dirs, strength * tint)


def _rotate_lighting(light: Lighting, rot: np.ndarray) -> Lighting:
    return Lighting(light.ambient, light.directions @ rot.T, light.intensities)


class SequenceGenerator:
    """Generates the frames of any sequence of the synthetic dataset.

    Args:
        cfg: the ``synth`` settings.
        asset: the hand asset (procedural or MANO).
        user_meshes: meshes to use instead of the procedural families (``synth.user_mesh_dir``).
        camera: the camera (default: fx = fy = 480, cx = cy = 128, 256x256).
        backgrounds: uint8 RGB images to crop backgrounds from (``synth.background_dir``);
            procedural backgrounds if empty.
    """

    def __init__(self, cfg: SynthConfig, asset: HandAsset, user_meshes: UserMeshes | None = None,
                 camera: Camera | None = None, backgrounds: tuple[np.ndarray, ...] = ()):
        self.cfg = cfg
        self.backgrounds = tuple(backgrounds)
        self.rig = HandRig(asset)
        self.user_meshes = user_meshes
        self.camera = camera or Camera()
        s = 4
        self.preview_camera = Camera(self.camera.fx / s, self.camera.fy / s, self.camera.cx / s,
                                     self.camera.cy / s, self.camera.width // s,
                                     self.camera.height // s)

    # --- random choices ---------------------------------------------------------------------

    def _object(self, rng: np.random.Generator) -> ObjectMesh:
        size = rng.uniform(*self.cfg.obj_size)
        if self.user_meshes is not None:
            mesh = self.user_meshes.meshes[rng.integers(len(self.user_meshes.meshes))]
            return scale_object(mesh, size)
        family = self.cfg.families[rng.integers(len(self.cfg.families))]
        return make_object(family, rng, size, self.cfg.obj_min_thickness)

    def _relative_rotation(self, rng: np.random.Generator, obj: ObjectMesh,
                           axes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Object rest -> hand-local rotation: mostly a power grasp (long axis across the palm),
        sometimes any orientation."""
        u, n, w = axes
        if rng.random() < 0.35:
            return Rotation.random(random_state=rng).as_matrix()
        long_axis = np.eye(3)[np.argmax(obj.extents)]
        align, _ = Rotation.align_vectors(w[None], long_axis[None])
        roll = Rotation.from_rotvec(w * rng.uniform(0, 2 * np.pi))
        tilt = Rotation.from_rotvec(n * np.radians(rng.uniform(-30, 30)))
        return (tilt * roll * align).as_matrix()

    def _view_rotation(self, rng: np.random.Generator, u: np.ndarray, n: np.ndarray,
                       w: np.ndarray) -> Rotation:
        """Hand-local -> camera rotation of a sequence's first frame: uniformly random
        (``view_spread_deg`` 180), else the canonical view (fingers ``u`` up in the image, palm
        normal ``n`` towards the camera) turned by at most ``view_spread_deg`` about a random
        axis (angle uniform in [0, spread])."""
        spread = self.cfg.view_spread_deg
        if spread >= 180:
            return Rotation.random(random_state=rng)
        # camera axes: x right, y down, z forward; u -> -y, n -> -z, w = n x u -> -x
        local = np.stack([u, n, w], axis=1)  # (3, 3) columns
        target = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
        canonical = Rotation.from_matrix(target @ local.T)
        axis = rng.normal(size=3)
        axis /= max(np.linalg.norm(axis), 1e-12)
        turn = Rotation.from_rotvec(axis * np.radians(rng.uniform(0.0, spread)))
        return turn * canonical

    def _attempt(self, video_id: int, attempt: int) -> tuple[list[dict], dict]:
        """Random plan and grasps of one attempt (no rendering yet)."""
        cfg, rig = self.cfg, self.rig
        rng = np.random.default_rng([cfg.seed, video_id, attempt])
        n_frames = int(rng.integers(cfg.frames_per_sequence[0], cfg.frames_per_sequence[1] + 1))
        obj = self._object(rng)
        solver = GraspSolver(rig, obj)
        shape = np.clip(rng.normal(0, cfg.hand_shape_std, 10), -2.5, 2.5)
        abduction = rng.uniform(rig.abd_range[:, 0], rig.abd_range[:, 1]) * 0.5
        profile = rng.uniform(0.75, 1.0, 15)
        # palm axes of this hand (for the object orientation and the occlusion choice)
        probe = GraspParams(shape, abduction, profile, np.eye(3), np.zeros(2))
        _, joints = rig.forward(solver._pose(probe, np.array([[0.05] * 5, [0.6] * 5])), shape)
        _, u, n, w = solver.palm_frame(joints[0], joints[1])
        rel0 = self._relative_rotation(rng, obj, (u, n, w))
        drift_axis = Rotation.random(random_state=rng).as_rotvec()
        drift_axis /= max(np.linalg.norm(drift_axis), 1e-12)
        drift_angle = np.radians(rng.uniform(0, 10)) * (cfg.motion_drift > 0)
        off0 = np.array([rng.uniform(-0.01, 0.02), rng.uniform(-0.015, 0.015)])
        lift = 0.0
        if rng.random() < cfg.fingertip_grasp_prob:  # held by the fingers, off the palm
            lift = rng.uniform(0.01, 0.03)
            off0[0] += rng.uniform(0.01, 0.03)
        off1 = off0 + rng.uniform(-1, 1, 2) * cfg.motion_drift
        # global motion: rotation about the pair centre, pixel offset and depth
        rot0 = self._view_rotation(rng, u, n, w)
        palm_towards_camera = (rot0.apply(n)[2] < 0)
        if palm_towards_camera != (rng.random() < cfg.occlusion_prob):
            rot0 = Rotation.from_rotvec([0, np.pi, 0]) * rot0  # look from the other side
        spin_axis = Rotation.random(random_state=rng).as_rotvec()
        spin_axis /= max(np.linalg.norm(spin_axis), 1e-12)
        spin = np.radians(cfg.motion_rotation_deg) * rng.uniform(0.3, 1.0)
        px0 = rng.uniform(-8, 8, 2)
        px1 = px0 + rng.uniform(-1, 1, 2) * cfg.motion_translation_px
        depth_u = np.array([rng.uniform(0, 1), rng.uniform(-1, 1)])
        light = _lighting(rng)
        light_axis = Rotation.random(random_state=rng).as_rotvec()
        light_axis /= max(np.linalg.norm(light_axis), 1e-12)
        looks = {"skin": _skin(rng), "obj_color": _random_color(rng),
                 "obj_specular": rng.uniform(0.05, 0.5),
                 "background": _background(rng, self.camera.height, self.camera.width,
                                           self.backgrounds)}
        frames = []
        for f in range(n_frames):
            tau = _smooth(np.array(f / max(n_frames - 1, 1)))
            rel = Rotation.from_rotvec(drift_axis * drift_angle * tau).as_matrix() @ rel0
            params = GraspParams(shape, abduction, profile, rel, off0 + tau * (off1 - off0),
                                 lift=lift)
            grasp = solver.solve(params)
            rot = Rotation.from_rotvec(spin_axis * spin * (tau - 0.5)) * rot0
            frames.append({"grasp": grasp, "rot": rot.as_matrix(),
                           "px": px0 + tau * (px1 - px0), "tau": float(tau),
                           "light": _rotate_lighting(light, Rotation.from_rotvec(
                               light_axis * np.radians(20) * (tau - 0.5)).as_matrix())})
        # If the thumb had to be swung out of the way in some frames only, swing it in all of
        # them (its abduction would jump otherwise).
        thumb_abd = {float(fr["grasp"].params.abduction[THUMB_ABDUCTION]) for fr in frames}
        if len(thumb_abd) > 1:
            for fr in frames:
                p = fr["grasp"].params
                swung = np.array(p.abduction, dtype=np.float64)
                swung[THUMB_ABDUCTION] = min(thumb_abd)
                fr["grasp"] = solver.solve(dataclasses.replace(p, abduction=swung))
        # Fingers close smoothly over the sequence (a finger that slips off the object between
        # two frames would otherwise jump to a fist), never deeper than their contact.
        closure = smooth_closures(np.stack([fr["grasp"].closure for fr in frames]),
                                  np.stack([fr["grasp"].touching for fr in frames]))
        for fr, c in zip(frames, closure, strict=True):
            g: Grasp = fr["grasp"]
            if not np.array_equal(c, g.closure):
                fr["grasp"] = solver.finish(g.params, g.obj_translation, c,
                                            g.touching & (c >= g.closure - 1e-12))
        plan = {"rng": rng, "obj": obj, "shape": shape, "looks": looks, "depth_u": depth_u}
        return frames, plan

    def _place_camera(self, frames: list[dict], plan: dict) -> None:
        """Choose the depth trajectory so every frame fits in the image and the object stays
        large enough; fills ``frame["transform"]`` (hand-local -> camera, 4x4)."""
        cfg, cam, obj = self.cfg, self.camera, plan["obj"]
        fits = []
        for fr in frames:
            g: Grasp = fr["grasp"]
            pts = np.concatenate([g.vertices, obj.vertices @ g.obj_rotation.T + g.obj_translation])
            lo, hi = pts.min(0), pts.max(0)
            fr["centre"] = (lo + hi) / 2
            rel = (pts - fr["centre"]) @ fr["rot"].T
            fits.append(fit_depth(rel, cam, margin_px=6.0, center_px=tuple(fr["px"])))
        near = max(cfg.cam_distance[0], max(fits))
        # keep the object's largest extent over ~70 px (so it covers enough pixels)
        far_obj = cam.fx * float(obj.extents.max()) / 70.0
        far = max(near, min(cfg.cam_distance[1], far_obj))
        d0 = near + plan["depth_u"][0] * (far - near)
        d1 = float(np.clip(d0 + plan["depth_u"][1] * cfg.motion_depth, near, far))
        for fr in frames:
            depth = d0 + fr["tau"] * (d1 - d0)
            du, dv = fr["px"]
            t = depth * np.array([du / cam.fx, dv / cam.fy, 1.0])
            m = np.eye(4)
            m[:3, :3] = fr["rot"]
            m[:3, 3] = t - fr["rot"] @ fr["centre"]
            fr["transform"] = m

    def _meshes(self, fr: dict, plan: dict) -> tuple[np.ndarray, np.ndarray]:
        g: Grasp = fr["grasp"]
        m = fr["transform"]
        hand = g.vertices @ m[:3, :3].T + m[:3, 3]
        obj = plan["obj"].vertices @ (m[:3, :3] @ g.obj_rotation).T \
            + (m[:3, :3] @ g.obj_translation + m[:3, 3])
        return hand, obj

    def _render(self, hand: np.ndarray, obj: np.ndarray, fr: dict, plan: dict,
                camera: Camera, supersample: int, background: np.ndarray):
        looks = plan["looks"]
        meshes = [RenderMesh(hand, self.rig.faces, looks["skin"], HAND, None, 0.08),
                  RenderMesh(obj, plan["obj"].faces, looks["obj_color"], OBJECT, 0.6,
                             looks["obj_specular"])]
        return render(meshes, camera, fr["light"], background, supersample)

    def _coverage_ok(self, frames: list[dict], plan: dict) -> bool:
        """Cheap low-resolution check that hand and object each cover ``min_coverage``."""
        cam = self.preview_camera
        bg = np.zeros((cam.height, cam.width, 3))
        for fr in frames:
            hand, obj = self._meshes(fr, plan)
            mask = self._render(hand, obj, fr, plan, cam, 1, bg).mask
            if min((mask == HAND).mean(), (mask == OBJECT).mean()) < self.cfg.min_coverage:
                return False
        return True

    def sequence(self, video_id: int) -> list[Sample]:
        """All frames of sequence ``video_id`` (deterministic for a given config)."""
        cfg = self.cfg
        for attempt in range(cfg.max_attempts):
            frames, plan = self._attempt(video_id, attempt)
            good_grasps = all(fr["grasp"].gap <= MAX_GAP
                              and fr["grasp"].penetration <= MAX_PENETRATION for fr in frames)
            if not good_grasps and attempt + 1 < cfg.max_attempts:
                continue
            self._place_camera(frames, plan)
            if attempt + 1 == cfg.max_attempts or self._coverage_ok(frames, plan):
                break
        return [self._sample(video_id, f, fr, plan, attempt) for f, fr in enumerate(frames)]

    def _sample(self, video_id: int, frame_idx: int, fr: dict, plan: dict,
                attempt: int) -> Sample:
        cam, rig = self.camera, self.rig
        g: Grasp = fr["grasp"]
        m = fr["transform"]
        rot, t = m[:3, :3], m[:3, 3]
        shape = plan["shape"]
        # The stored pose/shape/trans reproduce the camera-space hand through the hand layer:
        # layer(pose, shape, trans) = R (x - J0) + J0 + trans, with x the hand-local vertices.
        wrist0 = rig.rest_wrist(shape)
        trans = t + rot @ wrist0 - wrist0
        pose = np.concatenate([Rotation.from_matrix(rot).as_rotvec(), g.finger_pose])
        hand_v, joints = rig.forward(pose[None], shape, trans[None])
        hand_v, joints = hand_v[0], joints[0]
        obj_tf = np.eye(4)
        obj_tf[:3, :3] = rot @ g.obj_rotation
        obj_tf[:3, 3] = rot @ g.obj_translation + t
        obj: ObjectMesh = plan["obj"]
        obj_v = obj.vertices @ obj_tf[:3, :3].T + obj_tf[:3, 3]
        rest_corners = obj.rest_corners
        out = self._render(hand_v, obj_v, fr, plan, cam, self.cfg.supersample,
                           plan["looks"]["background"])
        uv = cam.project(np.concatenate([hand_v, obj_v]))
        lo = np.clip(uv.min(0), 0, [cam.width, cam.height])
        hi = np.clip(uv.max(0), 0, [cam.width, cam.height])
        meta = {
            "cam_intr": cam.K,
            "hand_joints_3d": joints,
            "hand_pose": pose,
            "hand_shape": shape,
            "hand_trans": trans,
            "hand_side": rig.side,
            "obj_transform": obj_tf,
            "obj_center_3d": obj_tf[:3, :3] @ obj.rest_center + obj_tf[:3, 3],
            "obj_corners_3d": rest_corners @ obj_tf[:3, :3].T + obj_tf[:3, 3],
            "obj_rest_corners_3d": rest_corners,
            "video_id": int(video_id),
            "frame_idx": int(frame_idx),
            "bbox": np.concatenate([lo, hi - lo]),
            "obj_family": obj.family,
        }
        return Sample(id=sample_id(video_id, frame_idx), rgb=out.rgb, mask=out.mask,
                      depth=out.depth, hand_vertices=hand_v, hand_faces=rig.faces,
                      hand_parts=rig.parts, obj_vertices=obj_v, obj_faces=obj.faces, meta=meta,
                      grasp={"penetration": g.penetration, "gap": g.gap, "attempt": attempt,
                             "touching": int(g.touching.sum())})
