"""The micro pipeline under faults (#25): two runs at once, kill -9 during each stage then a
rerun, a foreign checkpoint, a truncated LMDB, and bad samples of every kind.

All tests share the session's reference run (``conftest.reference``) and run in file order;
they live in one file so that ``pytest -n 2 --dist loadfile`` makes that run once. The last
tests change the reference folder (restoring what later tests need).
"""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pandas as pd
import psutil
import pytest
from faultkit import (
    copy_workflow,
    kill_group,
    processes_in,
    read_metrics,
    snakemake,
    stage_process,
    start_snakemake,
    temporaries,
    wait_for,
)

pytestmark = pytest.mark.slow

STAGES = ("synth", "sample_sdf", "pack", "train", "reconstruct", "evaluate")


def test_a_second_run_in_the_same_folder_refuses_and_the_first_is_unharmed(reference):
    second = reference.concurrent
    assert second.returncode != 0
    assert "cannot be locked" in second.stdout + second.stderr
    for exp, metrics in reference.metrics.items():
        assert int(metrics["num_samples"].iloc[0]) == 8, exp
    assert temporaries(reference.workdir / "results") == []


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_kill_9_during_every_stage_then_rerun_gives_the_uninterrupted_metrics(reference,
                                                                              tmp_path):
    work = copy_workflow(tmp_path / "run")
    killed = []
    for stage in STAGES:
        run = start_snakemake(work, "--rerun-incomplete")

        def running(stage=stage, run=run):
            if run.poll() is not None:
                return "finished"
            return stage_process(work, stage)

        proc = wait_for(running, 900, f"stage {stage}", interval=0.02)
        if proc == "finished":  # the stage went by between two looks: nothing to kill
            continue
        if stage == "train":
            time.sleep(8)  # into the training (an earlier kill is caught too, see test_proc)
        kill_group(run)
        killed.append(stage)
        # every process of the job dies with it, the torchrun worker included (it runs in its
        # own session, out of reach of the process-group kill)
        wait_for(lambda proc=proc: gone(proc.pid), 30, f"the killed {stage} process to exit")
        wait_for(lambda: not processes_in(work), 30, "every process of the killed run to exit")
        snakemake(work, "--unlock")
    assert "train" in killed, killed
    snakemake(work, "--rerun-incomplete")
    for exp, metrics in read_metrics(work).items():
        pd.testing.assert_frame_equal(metrics, reference.metrics[exp], check_exact=False,
                                      rtol=1e-9, obj=exp)
    # stages remove the stale temporaries of killed writers when they rerun
    assert temporaries(work / "results") == []


def force(work, target: str):
    """Run the job of ``target`` again (only that job), returning the finished process."""
    return snakemake(work, "--force", target, check=False)


def test_another_models_checkpoint_is_refused(reference):
    """#25 item 1: gf's checkpoint copied over gsdf's is not meshed and scored as gsdf."""
    res = reference.workdir / "results"
    ckpt = res / "gsdf_synth" / "checkpoint.pt"
    saved = ckpt.with_name("checkpoint.pt.saved")
    os.replace(ckpt, saved)
    try:
        # a plain copy (new mtime): with gf's older mtime Snakemake would retrain gsdf first
        shutil.copy(res / "gf_synth" / "checkpoint.pt", ckpt)
        proc = force(reference.workdir, "results/gsdf_synth/reconstruct/shard_000.json")
        assert proc.returncode != 0
        log = (res / "logs" / "reconstruct" / "gsdf_synth_000.log").read_text()
        assert "holds a 'gf' model, expected 'gsdf'" in log, log[-2000:]
        assert "Traceback" not in log
    finally:
        os.replace(saved, ckpt)


def test_a_truncated_lmdb_is_refused_with_its_path(reference):
    """#25 item 6: reconstruct on a truncated rgb.lmdb says "truncated, rerun pack" (it died
    with SIGBUS, exit 135, before)."""
    data = reference.workdir / "results" / "synth" / "test" / "rgb.lmdb" / "data.mdb"
    original = data.read_bytes()
    stat = data.stat()
    try:
        os.truncate(data, len(original) // 2)
        proc = force(reference.workdir, "results/gsdf_synth/reconstruct/shard_000.json")
        assert proc.returncode != 0
        log = (reference.workdir / "results" / "logs" / "reconstruct" /
               "gsdf_synth_000.log").read_text()
        assert "truncated" in log and "rerun pack" in log and "rgb.lmdb" in log, log[-2000:]
        assert "Traceback" not in log
    finally:
        data.write_bytes(original)
        os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def corrupt_test_samples(split) -> dict[str, str]:
    """Break six of the eight test samples, one way each; returns id -> words of the reason."""
    ids = json.loads((split / "shards" / "shard_000.json").read_text())["ids"]
    assert len(ids) == 8
    broken = {}
    jpg = split / "rgb" / f"{ids[0]}.jpg"
    jpg.write_bytes(jpg.read_bytes()[:600])
    broken[ids[0]] = "does not decode"
    (split / "mesh_obj" / f"{ids[1]}.ply").write_text("ply\nformat ascii 1.0\nelement vertex 0\n"
                                                     "element face 0\nend_header\n")
    broken[ids[1]] = "mesh_obj"
    from gsdf.geometry.mesh_io import load_mesh, load_vertex_parts, save_mesh

    hand_path = split / "mesh_hand" / f"{ids[2]}.ply"
    hand = load_mesh(hand_path)
    parts = load_vertex_parts(hand, hand_path)
    vertices = np.array(hand.vertices)
    vertices[5] = np.nan
    save_mesh(hand_path, vertices, hand.faces, vertex_parts=parts)
    broken[ids[2]] = "NaN"
    (split / "meta" / f"{ids[3]}.json").unlink()
    broken[ids[3]] = "meta"
    meta = json.loads((split / "meta" / f"{ids[4]}.json").read_text())
    del meta["cam_intr"]
    (split / "meta" / f"{ids[4]}.json").write_text(json.dumps(meta))
    broken[ids[4]] = "cam_intr"
    meta = json.loads((split / "meta" / f"{ids[5]}.json").read_text())
    meta["hand_joints_3d"][3][1] = float("nan")
    (split / "meta" / f"{ids[5]}.json").write_text(json.dumps(meta))
    broken[ids[5]] = "hand_joints_3d"
    return broken


def test_bad_samples_are_skipped_counted_and_never_scored_with_old_predictions(reference):
    """#25 items 2 and 3 and the bad-input classes: truncated JPEG, empty mesh, NaN mesh,
    missing meta, missing meta key, NaN joints. The run completes; each bad sample is listed
    with its reason; evaluate fails it with the upstream reason and never scores the prediction
    the reference run left for it."""
    work, res = reference.workdir, reference.workdir / "results"
    broken = corrupt_test_samples(res / "datasets" / "synth" / "test")
    assert (res / "gsdf_synth" / "poses" / f"{next(iter(broken))}.json").exists()
    # the canonical files are no rule's outputs: rerun sample_sdf of the test split by hand
    proc = snakemake(work, "all", "--forcerun", "results/synth/sdf/test/shard_000.npz",
                     check=False)
    assert proc.returncode == 0, proc.stderr[-5000:]
    # the stage that skipped a sample says why (sample_sdf's or pack's skipped csv)
    reasons: dict[str, str] = {}
    for path in (res / "synth" / "sdf" / "test" / "skipped_000.csv",
                 res / "synth" / "test" / "skipped.csv"):
        for row in pd.read_csv(path).itertuples():
            reasons[row.id] = reasons.get(row.id, "") + " " + row.reason
    for sid, words in broken.items():
        assert words in reasons[sid], (sid, reasons[sid])
    for exp in ("gf", "alignsdf", "gsdf"):
        per_sample = pd.read_csv(res / f"{exp}_synth" / "metrics_per_sample.csv")
        per_sample = per_sample.set_index("id")
        for sid in broken:
            reason = per_sample.loc[sid, "reason"]
            assert per_sample.loc[sid, "failed"] and reason.startswith("skipped upstream: ")
            assert np.isnan(per_sample.loc[sid, "hand_joint_err_cm"])
            for name in (f"meshes/{sid}_hand.ply", f"meshes/{sid}_obj.ply", f"poses/{sid}.json"):
                assert not (res / f"{exp}_synth" / name).exists(), name
        metrics = pd.read_csv(res / f"{exp}_synth" / "metrics.csv").iloc[0]
        assert metrics["num_samples"] == 8 and metrics["num_skipped_upstream"] == 6
        assert metrics["num_evaluated"] + metrics["num_failed"] == 2
    assert (res / "synth" / "sdf" / "preview.png").stat().st_size > 0
    assert temporaries(res) == []
