"""gsdf.synth (see docs/architecture.md)."""
