"""Session fixture of issue 4: a packed split built from the toy samples of sdf_fixtures.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sdf_fixtures import sample_and_pack


@pytest.fixture(scope="session")
def packed_split(tmp_path_factory) -> Path:
    """A packed split (6 samples, 2 sequences of 3 frames): the folder with annotations.json."""
    return sample_and_pack(tmp_path_factory.mktemp("packed"))
