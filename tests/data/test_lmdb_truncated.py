"""A truncated LMDB (a copy cut short) is refused on open with its path, not a SIGBUS."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from gsdf.data.lmdb_io import SDF_FORMAT, PackError, SDFReader, write_lmdb

ROWS = 3000  # 72 KB per value: LMDB stores each on overflow pages


def write_db(path):
    rng = np.random.default_rng(0)
    values = [(f"s{i:03d}", rng.random((ROWS, 6), dtype=np.float32).tobytes()) for i in range(40)]
    write_lmdb(path, iter(values), sum(len(v) for _, v in values), len(values),
               {"format": SDF_FORMAT, "pos_num": [ROWS // 2] * 40, "neg_num": [ROWS // 2] * 40})
    return [k for k, _ in values]


def read_all_in_subprocess(path) -> subprocess.CompletedProcess:
    code = ("import sys; from gsdf.data.lmdb_io import SDFReader\n"
            "r = SDFReader(sys.argv[1])\n"
            "print(sum(len(r.get(k)[0]) for k in r.meta['keys']))\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ))


def test_intact_database_reads(tmp_path):
    keys = write_db(tmp_path / "sdf_hand.lmdb")
    proc = read_all_in_subprocess(tmp_path / "sdf_hand.lmdb")
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == len(keys) * ROWS // 2


def test_truncated_database_fails_with_its_path_not_sigbus(tmp_path):
    db = tmp_path / "sdf_hand.lmdb"
    write_db(db)
    data = db / "data.mdb"
    size = data.stat().st_size
    os.truncate(data, size // 2)  # meta pages intact, half of the values gone
    proc = read_all_in_subprocess(db)
    # Without the check on open, the first read past the end of the mapped file is a SIGBUS.
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "truncated" in proc.stderr and "rerun pack" in proc.stderr
    assert str(db) in proc.stderr
    with pytest.raises(PackError, match="truncated"):
        SDFReader(db)


def test_entries_disagreeing_with_meta_info_are_refused(tmp_path):
    import json

    db = tmp_path / "sdf_obj.lmdb"
    write_db(db)
    meta = json.loads((db / "meta_info.json").read_text())
    meta["keys"].append("extra")
    meta["index"]["extra"] = 40
    meta["count"] = 41
    meta["pos_num"].append(1)
    meta["neg_num"].append(1)
    (db / "meta_info.json").write_text(json.dumps(meta))
    with pytest.raises(PackError, match="40 entries but meta_info.json says 41"):
        SDFReader(db)


def test_missing_data_file_is_refused(tmp_path):
    db = tmp_path / "rgb.lmdb"
    write_db(db)
    (db / "data.mdb").unlink()
    with pytest.raises(PackError, match="no data.mdb"):
        SDFReader(db)
