"""gsdf.data (see docs/architecture.md)."""
