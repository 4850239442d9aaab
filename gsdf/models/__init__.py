"""gsdf.models (see docs/architecture.md)."""
