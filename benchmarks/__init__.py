"""Speed measurements, kept out of the test suite; run from the repo root, e.g.
``python -m benchmarks.bench_evaluate``."""
