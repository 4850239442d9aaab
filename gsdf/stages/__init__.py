"""One module per workflow stage: the contract between a Snakemake rule and the library.

Stage ``X`` is one rule (``workflow/rules/X.smk``), one CLI subcommand (``gsdf X``), one module
(``gsdf/stages/X.py``) and one results folder, all with the same name (STYLE.md habit 10).

Every stage module defines:

* ``Inputs`` and ``Outputs``: frozen dataclasses of explicit paths, one field per file or folder
  the rule names in its ``input:`` / ``output:`` blocks. A stage never derives a path from
  another path's position and never rebuilds one from a results root; the per-sample files of a
  canonical split are reached through ``gsdf.paths.SplitLayout``.
* ``run(inputs, outputs, params, **runtime)``: the stage's work over the library.
  ``params`` is the job's science configuration (what the rule passes as ``--params``: exactly
  the config that triggers a rerun, e.g. ``{"sample_sdf": {...}, "dataset": {...}}``).
  ``runtime`` holds settings that change speed or memory but never results (threads, DataLoader
  workers, point batch sizes, LMDB write batches, progress bars); they come from the profile or
  CLI flags and never enter ``params``, the rerun trigger or a training's resume identity.

The CLI (``gsdf.cli``) parses arguments into these objects and calls ``run``; nothing else.
Library packages (``geometry``, ``data``, ``models``, ``train``, ``eval``, ``hand``, ``synth``)
hold no stage runners.
"""
