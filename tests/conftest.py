"""Shared test helpers live beside this file (``eval_fixtures.py``): pytest puts this folder on
``sys.path`` when it loads this conftest, so any test can import them. The MANO and raw-dataset
fixtures, which the benchmarks use too, are the package's :mod:`gsdf.testing`. The fixtures
below serve the evaluation and stage tests."""

from __future__ import annotations

import eval_fixtures
import pytest


@pytest.fixture
def make_split():
    """``make_split(results, ids) -> Layout``: writes a canonical test split."""
    return eval_fixtures.write_split


@pytest.fixture
def split_with_predictions(tmp_path):
    """4 samples: two good (one scaled and shifted), one without object mesh, one corrupt."""
    return eval_fixtures.split_with_predictions(tmp_path)
