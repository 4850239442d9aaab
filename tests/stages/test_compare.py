"""Stage compare called with explicit Inputs / Outputs: the paper's table from several
metrics.csv files."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from gsdf.eval.evaluate import METRICS, summarize
from gsdf.stages import compare


def _metrics_csv(path, chamfer_hand, joint, metrics=METRICS):
    rows = []
    for k, cd in enumerate(chamfer_hand):
        row = {"id": str(k), "failed": False, "reason": ""}
        row.update({m: 0.5 for m in metrics})
        row["chamfer_hand_cm2"] = cd
        row["hand_joint_err_cm"] = joint
        rows.append(row)
    rows[-1]["failed"] = True
    summarize(pd.DataFrame(rows)).to_csv(path, index=False)
    return path


def test_comparison_csv_markdown_and_plot(tmp_path):
    a = _metrics_csv(tmp_path / "a.csv", [0.1, 0.2, 10.0], 1.5)  # median 0.2, mean 3.43
    b = _metrics_csv(tmp_path / "b.csv", [0.3, 0.3, 0.3], np.nan)  # no joints predicted
    out = [tmp_path / n for n in ("cmp.csv", "cmp.md", "cmp.png")]
    compare.run(compare.Inputs({"gf": b, "gsdf": a}), compare.Outputs(*out),
                {"dataset": {"name": "synth"}})
    table = pd.read_csv(out[0]).set_index("experiment")
    assert list(table.index) == ["gf", "gsdf"]
    assert table.loc["gsdf", "CDh_cm2"] == 0.2  # the median, as the paper quotes
    assert table.loc["gsdf", "chamfer_hand_cm2_mean"] > 3
    assert np.isnan(table.loc["gf", "Eh_cm"])
    assert table.loc["gsdf", "num_failed"] == 1
    md = out[1].read_text().splitlines()
    assert md[0] == "| synth | CDh | F@1h | F@5h | CDo | F@5o | F@10o | Eh | Eo |"
    assert md[2].startswith("| gf | 0.300 |") and "| **0.200** |" in md[3]
    assert Image.open(out[2]).size[0] > 500


def test_the_diagnostic_columns_are_carried_and_missing_ones_are_empty(tmp_path):
    new = _metrics_csv(tmp_path / "new.csv", [0.1, 0.2, 0.3], 1.5)
    # a metrics.csv of an evaluation before the pose and view-extent diagnostics existed
    old = _metrics_csv(tmp_path / "old.csv", [0.1, 0.2, 0.3], 1.5,
                       metrics=METRICS[:METRICS.index("pose_err_cm")])
    out = [tmp_path / n for n in ("cmp.csv", "cmp.md", "cmp.png")]
    compare.run(compare.Inputs({"old": old, "new": new}), compare.Outputs(*out),
                {"dataset": {"name": "synth"}})
    table = pd.read_csv(out[0]).set_index("experiment")
    for column in ("pose_err_cm_mean", "mean_pose_err_cm_mean", "depth_ratio_hand_median",
                   "depth_ratio_obj_median"):
        assert table.loc["new", column] == 0.5  # every sample's 0.5
        assert np.isnan(table.loc["old", column])
    assert out[1].read_text().splitlines()[0].endswith("| Eh | Eo |")  # the paper's table
