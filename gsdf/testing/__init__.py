"""Fixtures in the real formats, built from nothing, shared by the tests and the benchmarks (so
that neither needs the real datasets, the MANO pickle, or a ``sys.path`` entry into ``tests/``).

* :mod:`gsdf.testing.mano_fixture`: a MANO pickle in the official format (without chumpy);
* :mod:`gsdf.testing.raw_datasets`: tiny raw ObMan and DexYCB downloads posed by it.
"""
