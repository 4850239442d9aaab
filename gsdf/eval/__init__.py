"""gsdf.eval (see docs/architecture.md)."""
