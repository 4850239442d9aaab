"""SDF points per second for a hand + object pair: gsdf (libigl) vs trimesh vs mesh-to-sdf.

One "point" = its signed distance to the hand AND to the object (what ``sample_sdf`` computes).
Meshes: a hand-like closed surface of ~3k faces (palm + five fingers) and an object
of 20k faces (a bumpy ellipsoid icosphere, 2% of its faces deleted: holes, as ShapeNet meshes).
Points are drawn as ``sample_sdf`` draws them (near both surfaces + 6% uniform).

Besides speed, it checks each method against exact references on the same points: distance error
(vs libigl's exact point-triangle distance), wrong nearest faces (trimesh), and far sign
disagreements (> 2 mm from the surface) on the holed object relative to the closed object.

Run (2-core CPU, other jobs running; the numbers are indicative)::

    python benchmarks/bench_sdf.py      # gsdf + trimesh (+ mesh-to-sdf if installed)
    python benchmarks/bench_sdf.py --subset 2000 --json results/bench_sdf.json

mesh-to-sdf is a benchmark-only dependency: ``pip install -e .[bench]``; its default ``scan`` mode
renders depth maps with OpenGL, which headless needs ``apt-get install libosmesa6``,
``pip install --no-deps pyopengl==3.1.7`` (pyrender pins 3.1.0, too old for OSMesa contexts) and
``PYOPENGL_PLATFORM=osmesa`` (set by this script unless already set).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import trimesh

from gsdf.geometry.sdf import MeshSDF, SampleSDFConfig, draw_points, sample_pair

MM = 1e-3


FINGERS_X = (-0.06, -0.03, -0.01, 0.01, 0.03)  # thumb .. pinky, metres


def _hand_part_sdf(p: np.ndarray) -> np.ndarray:
    """(..., 6) SDFs of the palm box and the five finger capsules, metres."""
    q = np.abs(p - (0.0, -0.04, 0.0)) - (0.04, 0.04, 0.0125)
    out = [np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)]
    for x in FINGERS_X:
        a, b = np.array([x, -0.08, 0.0]), np.array([x, -0.15, 0.0])
        h = np.clip(((p - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        out.append(np.linalg.norm(p - a - h[..., None] * (b - a), axis=-1) - 0.008)
    return np.stack(out, axis=-1)


def hand_mesh(step: float = 0.0052) -> tuple[trimesh.Trimesh, np.ndarray]:
    """A hand-like single closed surface of ~3k faces (palm + five fingers, marching cubes of
    their union, as MANO-like meshes are one surface) and its vertex parts, metres."""
    from skimage.measure import marching_cubes

    lo, hi = np.array([-0.08, -0.17, -0.03]), np.array([0.06, 0.01, 0.03])
    axes = [np.arange(a, b + step, step) for a, b in zip(lo, hi, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)  # (X, Y, Z, 3)
    verts, faces, _, _ = marching_cubes(_hand_part_sdf(grid).min(-1), 0.0, spacing=(step,) * 3)
    verts = verts + lo
    parts = _hand_part_sdf(verts).argmin(-1)
    return trimesh.Trimesh(verts, faces, process=False), parts


def object_meshes(seed: int = 0) -> tuple[trimesh.Trimesh, trimesh.Trimesh]:
    """(closed, holed) 20k-face bumpy ellipsoid next to the palm, metres."""
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=5)
    v = sphere.vertices * (0.04, 0.03, 0.05)
    v *= 1 + 0.05 * np.sin(7 * sphere.vertices[:, :1]) * np.cos(5 * sphere.vertices[:, 1:2])
    v += (0.0, -0.06, -0.05)
    closed = trimesh.Trimesh(v, sphere.faces, process=False)
    keep = np.ones(len(sphere.faces), bool)
    keep[rng.choice(len(keep), int(0.02 * len(keep)), replace=False)] = False
    return closed, trimesh.Trimesh(v, sphere.faces[keep], process=False)


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points-per-mesh", type=int, default=20000,
                        help="sample_sdf points per mesh (2x this points in all)")
    parser.add_argument("--subset", type=int, default=2000,
                        help="points given to the slow methods (trimesh, mesh-to-sdf)")
    parser.add_argument("--repeat", type=int, default=3, help="gsdf timing repeats (best of)")
    parser.add_argument("--no-mesh-to-sdf", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    hand, parts = hand_mesh()
    closed, obj = object_meshes()
    print(f"hand: {len(hand.faces)} faces (watertight: {hand.is_watertight}); object: "
          f"{len(obj.faces)} faces with holes (closed version {len(closed.faces)})")
    cfg = SampleSDFConfig(points_per_mesh=args.points_per_mesh)
    rng = np.random.default_rng(0)
    both = np.concatenate([hand.vertices, obj.vertices])
    center = 0.5 * (both.min(0) + both.max(0))
    radius = float(np.linalg.norm(both - center, axis=1).max()) * cfg.buffer
    pts = np.concatenate([draw_points(hand, center, radius, cfg, rng),
                          draw_points(obj, center, radius, cfg, rng)])
    n = len(pts)
    results: dict[str, dict] = {}

    # --- gsdf: exact distance + nearest face (libigl AABB) and fast winding number sign
    hand_sdf, obj_sdf = MeshSDF(hand.vertices, hand.faces), MeshSDF(obj.vertices, obj.faces)
    s_closed, _ = MeshSDF(closed.vertices, closed.faces)(pts)
    far = np.abs(s_closed) > 2 * MM
    for hand_sign in ("winding", "pseudonormal"):
        wall, cpu = np.inf, np.inf
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            s_hand, _ = hand_sdf(pts) if hand_sign == "winding" else hand_sdf.pseudonormal(pts)
            s_obj, _ = obj_sdf(pts)
            wall = min(wall, time.perf_counter() - t)
            cpu = min(cpu, time.process_time() - c)
        cfg_sign = SampleSDFConfig(points_per_mesh=args.points_per_mesh, hand_sign=hand_sign)
        best_pair = min(timed(sample_pair, hand, parts, obj, np.zeros(3), 7.0, cfg_sign,
                              np.random.default_rng(i))[1] for i in range(args.repeat))
        results[f"gsdf (hand {hand_sign})"] = {
            "points": n, "seconds": wall, "points_per_s": n / wall,
            "points_per_cpu_s": n / cpu,
            "sample_pair_points_per_s": n / best_pair,
            "far_sign_flips_vs_closed": float(np.mean(np.sign(s_obj[far])
                                                      != np.sign(s_closed[far]))),
        }
    exact_hand, exact_obj = np.abs(s_hand), np.abs(s_obj)

    sub = np.random.default_rng(1).choice(n, min(args.subset, n), replace=False)
    P = pts[sub]

    # --- trimesh.proximity.signed_distance (positive inside)
    (t_hand, dt1) = timed(trimesh.proximity.signed_distance, hand, P)
    (t_obj, dt2) = timed(trimesh.proximity.signed_distance, obj, P)
    _, dist_cp, tri = trimesh.proximity.closest_point(obj, P)
    own = np.array([MeshSDF(obj.vertices, obj.faces[[f]]).unsigned(p[None])[0][0]
                    for p, f in zip(P, tri, strict=True)])
    far_sub = far[sub]
    results["trimesh"] = {
        "points": len(P), "seconds": dt1 + dt2, "points_per_s": len(P) / (dt1 + dt2),
        "max_abs_dist_error_mm": float(max(np.abs(np.abs(t_hand) - exact_hand[sub]).max(),
                                           np.abs(np.abs(t_obj) - exact_obj[sub]).max()) / MM),
        "wrong_nearest_face": float(np.mean(own > exact_obj[sub] + 1e-7)),
        "far_sign_flips_vs_closed": float(np.mean(np.sign(-t_obj[far_sub])
                                                  != np.sign(s_closed[sub][far_sub]))),
    }

    # --- mesh-to-sdf (positive outside), default scan mode, and sample mode
    if not args.no_mesh_to_sdf:
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
        try:
            import mesh_to_sdf
        except ImportError as err:
            print(f"mesh-to-sdf not installed ({err}); pip install -e .[bench]")
        else:
            for mode in ("scan", "sample"):
                try:
                    m_hand, d1 = timed(mesh_to_sdf.mesh_to_sdf, hand, P,
                                       surface_point_method=mode)
                    m_obj, d2 = timed(mesh_to_sdf.mesh_to_sdf, obj, P, surface_point_method=mode)
                except Exception as err:  # OpenGL context errors come in many types
                    print(f"mesh-to-sdf {mode}: failed ({type(err).__name__}: {err})")
                    continue
                results[f"mesh-to-sdf ({mode})"] = {
                    "points": len(P), "seconds": d1 + d2, "points_per_s": len(P) / (d1 + d2),
                    "max_abs_dist_error_mm": float(max(
                        np.abs(np.abs(m_hand) - exact_hand[sub]).max(),
                        np.abs(np.abs(m_obj) - exact_obj[sub]).max()) / MM),
                    "far_sign_flips_vs_closed": float(np.mean(
                        np.sign(m_obj[far_sub]) != np.sign(s_closed[sub][far_sub]))),
                }

    ref = results["trimesh"]["points_per_s"]
    print(f"\n{'method':22s} {'points':>7s} {'s':>8s} {'points/s':>10s} {'x trimesh':>9s}  "
          "accuracy")
    for name, r in results.items():
        acc = {k: round(v, 4) for k, v in r.items()
               if k not in ("points", "seconds", "points_per_s")}
        print(f"{name:22s} {r['points']:7d} {r['seconds']:8.3f} {r['points_per_s']:10.0f} "
              f"{r['points_per_s'] / ref:9.1f}  {acc}")
    ours = results["gsdf (hand winding)"]
    load = os.getloadavg()[0]
    print(f"\ntargets (hand winding): >= 20x trimesh: {ours['points_per_s'] / ref:.1f}x; "
          f">= 60,000 points/s: {ours['points_per_s']:,.0f} wall-clock "
          f"({ours['points_per_cpu_s']:,.0f} per CPU-second); load average {load:.1f} "
          f"on {os.cpu_count()} cores")
    if args.json:
        from gsdf.utils.io import write_json

        write_json(args.json, {"hand_faces": len(hand.faces), "object_faces": len(obj.faces),
                               "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
                               "results": results})


if __name__ == "__main__":
    main()
