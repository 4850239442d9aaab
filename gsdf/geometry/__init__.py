"""gsdf.geometry (see docs/architecture.md)."""
