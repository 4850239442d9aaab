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
