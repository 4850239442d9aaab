"""Shared test helpers live beside this file (``mano_fixture.py``, ``raw_fixtures.py``): pytest
puts this folder on ``sys.path`` when it loads this conftest, so any test can import them."""
