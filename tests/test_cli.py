import argparse
import re
import subprocess

from gsdf.cli import build_parser

STAGES = ["synth", "sample_sdf", "pack", "train_pose", "train_sdf", "reconstruct", "evaluate",
          "compare"]


def test_help_lists_stages_in_pipeline_order():
    out = subprocess.run(["gsdf", "--help"], capture_output=True, text=True, check=True).stdout
    positions = [re.search(rf"\n    {s}\s", out).start() for s in STAGES]
    assert positions == sorted(positions), out


def test_every_stage_takes_params():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(STAGES) <= set(sub.choices)
    for stage in STAGES:
        options = {o for a in sub.choices[stage]._actions for o in a.option_strings}
        assert "--params" in options, stage


def run_gsdf(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["gsdf", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def assert_one_paragraph(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_user_errors_print_one_paragraph_without_traceback(tmp_path):
    """#25 item 9: config errors, missing files and bad checkpoints."""
    train = ["train_sdf", "--data", str(tmp_path), "--checkpoint", str(tmp_path / "c.pt"),
             "--log-csv", str(tmp_path / "l.csv"), "--curves", str(tmp_path / "c.png")]
    assert_one_paragraph(run_gsdf(*train), "gsdf train_sdf: --params is missing")
    (tmp_path / "m.json").write_text('{"ids": ["a"]}')
    recon = ["reconstruct", "--packed-dir", str(tmp_path), "--shard-manifest",
             str(tmp_path / "m.json"), "--meshes-dir", str(tmp_path / "meshes"),
             "--poses-dir", str(tmp_path / "poses"), "--out", str(tmp_path / "o.json")]
    assert_one_paragraph(run_gsdf(*recon, "--checkpoint", str(tmp_path / "none.pt")),
                         "gsdf reconstruct:", "none.pt not found")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert_one_paragraph(run_gsdf(*recon, "--checkpoint", str(tmp_path / "bad.pt")),
                         "gsdf reconstruct:", "bad.pt")
    assert_one_paragraph(run_gsdf("sample_sdf", "--split-dir", str(tmp_path / "nowhere"),
                                  "--manifest", "m.json", "--out", "o.npz", "--skipped", "s.csv"),
                         "gsdf sample_sdf:", "nowhere not found")
    assert_one_paragraph(run_gsdf("sample_sdf", "--split-dir", str(tmp_path), "--params",
                                  '{"sample_sdf": {"points": 3}}', "--manifest", "m.json",
                                  "--out", "o.npz", "--skipped", "s.csv"),
                         "unknown key(s) ['points']")


def test_a_stage_removes_stale_temporaries_of_its_files_at_start(tmp_path):
    """#25 item 8: what a killed job left beside this job's files goes when the job starts."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [tmp_path / f".shard_000.{dead.pid}.abcd1234.tmp.npz",
             tmp_path / f".rgb.lmdb.tmp{dead.pid}"]
    stale[0].write_bytes(b"half")
    stale[1].mkdir()
    (stale[1] / "data.mdb").write_bytes(b"half")
    other = tmp_path / f".unrelated.{dead.pid}.abcd1234.tmp.npz"
    other.write_bytes(b"not ours")
    proc = run_gsdf("pack", "--split-dir", str(tmp_path / "nowhere"), "--manifests", "m.json",
                    "--sdf-shards", str(tmp_path / "shard_000.npz"),
                    "--annotations", str(tmp_path / "annotations.json"),
                    "--rgb-lmdb", str(tmp_path / "rgb.lmdb"),
                    "--sdf-hand-lmdb", str(tmp_path / "sdf_hand.lmdb"),
                    "--sdf-obj-lmdb", str(tmp_path / "sdf_obj.lmdb"),
                    "--skipped", str(tmp_path / "skipped.csv"))
    assert proc.returncode == 1 and "nowhere" in proc.stderr  # the job itself fails later
    assert not any(p.exists() for p in stale)
    assert other.exists()


def test_every_subcommand_is_a_stage_module_with_its_contract():
    """`gsdf X` == gsdf/stages/X.py with Inputs, Outputs and run (the stage contract)."""
    import dataclasses
    import importlib

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for stage in sub.choices:
        module = importlib.import_module(f"gsdf.stages.{stage}")
        assert dataclasses.is_dataclass(module.Inputs), stage
        assert dataclasses.is_dataclass(module.Outputs), stage
        assert callable(module.run), stage
