"""gsdf.train (see docs/architecture.md)."""
