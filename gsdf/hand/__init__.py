"""gsdf.hand (see docs/architecture.md)."""
