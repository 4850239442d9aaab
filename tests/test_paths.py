import ast
import re
from pathlib import Path

import pytest

from gsdf.paths import Layout


def test_pattern_and_path_agree():
    lay = Layout("res")
    assert lay.pattern("sdf_shard") == "res/{dataset}/sdf/{split}/shard_{shard}.npz"
    assert lay.sdf_shard(dataset="synth", split="train", shard=3) == Path(
        "res/synth/sdf/train/shard_003.npz")
    assert lay.metrics(exp="gsdf", dataset="obman") == Path("res/gsdf_obman/metrics.csv")


def test_missing_field_and_unknown_name():
    lay = Layout("res")
    with pytest.raises(ValueError, match="needs"):
        lay.path("sdf_shard", dataset="synth")
    with pytest.raises(KeyError, match="unknown artifact"):
        lay.pattern("nope")


# --- one owner of per-sample paths -----------------------------------------------------------

GSDF = Path(__file__).resolve().parents[1] / "gsdf"
SAMPLE_FOLDERS = "rgb|mask|depth|meta|mesh_hand|mesh_obj|shards|meshes|poses"
# A folder name joined with `/` (pathlib or in an f-string), or a sample file name built from
# an id: what only gsdf/paths.py may write.
COMPOSING = [
    re.compile(rf'/\s*"({SAMPLE_FOLDERS})"'),
    re.compile(rf'"({SAMPLE_FOLDERS})"\s*/'),
    re.compile(rf'["\']({SAMPLE_FOLDERS})/\{{'),
    re.compile(r'\{(sid|sample_id|id|i)\}(_hand|_obj)?\.(jpg|png|ply|json)'),
]


def _docstring_lines(text: str) -> set[int]:
    """1-based line numbers of the docstrings of ``text`` (bare string statements: module,
    class, function and attribute docstrings, which may name paths)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(
                node.value.value, str):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def composing_lines(text: str) -> list[str]:
    """Code lines of ``text`` (not comments, not docstrings) that compose a canonical
    per-sample path."""
    skip = _docstring_lines(text)
    return [line.strip() for n, line in enumerate(text.splitlines(), 1)
            if n not in skip and not line.lstrip().startswith("#")
            and any(p.search(line) for p in COMPOSING)]


def test_the_detector_finds_the_old_ways():
    bad = ['meta = read_json(split_dir / "meta" / f"{sid}.json")',
           'paths = split_dir / "mesh_hand" / f"{sample_id}.ply"',
           'image = {"file_name": f"rgb/{sid}.jpg"}', 'out = root / "meshes" / f"{id}_hand.ply"']
    assert [composing_lines(b) for b in bad] == [[b] for b in bad]
    assert composing_lines('png = Path(self.pattern("renders_dir")) / f"{which}.png"') == []


# Readers and fixture writers of the downloads' own layouts (ObMan's {split}/meta/{id}.pkl ...),
# not the canonical one.
RAW_FORMAT_READERS = ("data/obman.py", "data/dexycb.py", "testing/raw_datasets.py")


def test_only_gsdf_paths_composes_per_sample_paths():
    offenders = {}
    for path in sorted(GSDF.rglob("*.py")):
        if path == GSDF / "paths.py" or str(path.relative_to(GSDF)) in RAW_FORMAT_READERS:
            continue
        lines = composing_lines(path.read_text())
        if lines:
            offenders[str(path.relative_to(GSDF))] = lines
    assert offenders == {}, offenders


def test_split_and_prediction_layouts():
    from gsdf.paths import PredictionLayout, SplitLayout

    split = SplitLayout("d/train")
    assert split.rgb("a_1") == Path("d/train/rgb/a_1.jpg")
    assert split.mesh("obj", "a_1") == Path("d/train/mesh_obj/a_1.ply")
    assert split.relative("rgb", "a_1") == "rgb/a_1.jpg"
    assert split.shard_manifest(2) == Path("d/train/shards/shard_002.json")
    lay = Layout("res")
    pred = PredictionLayout(lay.meshes_dir(exp="gf", dataset="synth"),
                            lay.poses_dir(exp="gf", dataset="synth"))
    assert pred.mesh("hand", "a_1") == Path("res/gf_synth/meshes/a_1_hand.ply")
    assert pred.pose("a_1") == Path("res/gf_synth/poses/a_1.json")
    with pytest.raises(ValueError, match="part"):
        pred.mesh("arm", "a_1")
