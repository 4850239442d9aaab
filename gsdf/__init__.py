"""gsdf: gSDF, AlignSDF and Grasping Field for hand-object reconstruction, as a Snakemake workflow.

See README.md for the commands and docs/architecture.md for the contracts between stages.
"""

__version__ = "0.1.0"
