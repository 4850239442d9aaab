import os
import stat

import pytest

from gsdf.utils.io import atomic_path, read_json, write_json


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "a.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_umask_permissions(tmp_path):
    target = tmp_path / "b.json"
    write_json(target, {"x": 1})
    assert read_json(target) == {"x": 1}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


# --- a full disk (#25 item 7) -----------------------------------------------------------------

import contextlib  # noqa: E402
import errno  # noqa: E402
import subprocess  # noqa: E402

import gsdf.utils.io as gio  # noqa: E402


def test_enospc_is_a_clear_error_and_keeps_the_previous_file(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"good" * 1000)
    with pytest.raises(gio.DiskFullError) as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"x" * 10)
            raise OSError(errno.ENOSPC, "No space left on device")
    msg = str(info.value)
    assert info.value.errno == errno.ENOSPC
    assert msg.startswith("[Errno 28] no space left on /") and "MB free, needs ~" in msg
    assert str(target) in msg
    assert target.read_bytes() == b"good" * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_library_write_error_on_a_full_disk_is_a_disk_full_error(tmp_path, monkeypatch):
    """torch.save reports a full disk as RuntimeError('... unexpected pos ...')."""
    target = tmp_path / "model.pt"
    monkeypatch.setattr(gio, "free_bytes", lambda where: 4096)
    with pytest.raises(gio.DiskFullError, match="needs ~0.0 MB"):
        with atomic_path(target):
            raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 576")
    monkeypatch.setattr(gio, "free_bytes", lambda where: 10 << 30)
    with pytest.raises(RuntimeError, match="unexpected pos"):  # plenty of space: not a full disk
        with atomic_path(target):
            raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 576")
    assert list(tmp_path.iterdir()) == []


@contextlib.contextmanager
def tiny_tmpfs(path, size="1m"):
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); the simulated ENOSPC "
                    f"tests cover the logic")
    try:
        yield path
    finally:
        # lazy: a failed torch.save may still hold its (deleted) file open until collected
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_full_tmpfs_checkpoint_keeps_the_last_good_one(tmp_path):
    torch = pytest.importorskip("torch")
    from gsdf.checkpoint import save_checkpoint

    with tiny_tmpfs(tmp_path / "fs") as fs:
        target = fs / "checkpoint.pt"
        small = {"a": torch.arange(1000)}
        torch.save(small, target)
        before = target.read_bytes()
        big = {"a": torch.zeros(1 << 20)}  # 4 MB on a 1 MB filesystem
        with pytest.raises(gio.DiskFullError) as info:
            with atomic_path(target) as tmp:
                torch.save(big, tmp)
        assert f"no space left on {fs}" in str(info.value)
        assert target.read_bytes() == before
        assert [p.name for p in fs.iterdir()] == ["checkpoint.pt"]
        # the training's own writer (required keys present) says the same
        ckpt = {k: 0 for k in __import__("gsdf.checkpoint", fromlist=["x"]).REQUIRED_KEYS}
        ckpt["blob"] = big["a"]
        with pytest.raises(gio.DiskFullError):
            save_checkpoint(target, ckpt)
        assert target.read_bytes() == before
        assert [p.name for p in fs.iterdir()] == ["checkpoint.pt"]


# --- stale temporaries of killed jobs (#25 item 8) ----------------------------------------------


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    out = tmp_path / "meshes"
    out.mkdir()
    dead = dead_pid()
    stale = [tmp_path / f".shard_000.{dead}.abcd1234.tmp.npz",
             tmp_path / f".rgb.lmdb.tmp{dead}",
             out / f".s001_hand.{dead}.zz_99xyz.tmp.ply"]
    stale[0].write_bytes(b"x")
    stale[1].mkdir()
    (stale[1] / "data.mdb").write_bytes(b"x")
    stale[2].write_bytes(b"x")
    live = [tmp_path / f".shard_000.{os.getppid()}.abcd1234.tmp.npz",  # a running writer
            out / f".s002_hand.{os.getpid()}.abcd1234.tmp.ply",
            tmp_path / f".other.{dead}.abcd1234.tmp.npz"]  # not a temporary of our outputs
    for p in live:
        p.write_bytes(b"y")
    keep = [tmp_path / "shard_000.npz", out / "s001_hand.ply"]
    for p in keep:
        p.write_bytes(b"z")
    removed = gio.remove_stale_temporaries([tmp_path / "shard_000.npz", tmp_path / "rgb.lmdb",
                                            out])
    assert sorted(removed) == sorted(stale)
    assert all(not p.exists() for p in stale)
    assert all(p.exists() for p in live + keep)


def test_temporaries_without_a_pid_go_only_when_older_than_the_job(tmp_path):
    old = tmp_path / ".a.abcd1234.tmp.json"
    new = tmp_path / ".a.efgh5678.tmp.json"
    old.write_text("x")
    new.write_text("y")
    os.utime(old, (1000, 1000))
    assert gio.remove_stale_temporaries([tmp_path / "a.json"], job_start=2000) == [old]
    assert new.exists()


def test_atomic_temporaries_carry_the_writer_pid(tmp_path):
    with atomic_path(tmp_path / "x.ply") as tmp:
        assert gio._parse_temporary(tmp.name) == ("x", os.getpid())
        assert gio.remove_stale_temporaries([tmp_path / "x.ply"]) == []
        tmp.write_text("ok")
    assert (tmp_path / "x.ply").read_text() == "ok"
