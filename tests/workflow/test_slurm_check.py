"""gsdf.cluster: sinfo parsing and the submission check (no cluster needed), and the shipped
profiles against the clusters they are meant for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.resources import Resources

from gsdf import cluster

REPO = Path(__file__).resolve().parents[2]

SINFO = """\
cpu*|64|257000|(null)|1-00:00:00|up
cpu*|32|128000|(null)|1-00:00:00|up
gpu|48|500000|gpu:a100:4(S:0,1)|2-00:00:00|up
gpu|48|500000|gpu:a100:2(S:0-1),mps:100|2-00:00:00|up
debug|8|16000|(null)|30:00|down
"""


@pytest.mark.parametrize("text, minutes", [
    ("infinite", None), ("UNLIMITED", None), ("1-00:00:00", 1440.0), ("2:00:00", 120.0),
    ("30:00", 30.0), ("45", 45.0), ("2-12", 3600.0), ("1-02:30", 1590.0), ("0:01:30", 1.5),
])
def test_time_limits(text, minutes):
    assert cluster.parse_time_limit(text) == minutes


@pytest.mark.parametrize("gres, gpus", [
    ("(null)", 0), ("", 0), ("gpu:4", 4), ("gpu", 1), ("gpu:a100:2(S:0-1)", 2),
    ("gpu:v100:2,gpu:a100:2", 4), ("gpu:tesla:4(S:0,1),mps:100", 4), ("mps:100", 0),
])
def test_gres_gpus(gres, gpus):
    assert cluster.parse_gres_gpus(gres) == gpus


def test_sinfo_partitions_take_the_largest_node():
    parts = cluster.parse_sinfo(SINFO)
    assert sorted(parts) == ["cpu", "debug", "gpu"]
    cpu, gpu, debug = parts["cpu"], parts["gpu"], parts["debug"]
    assert (cpu.default, cpu.cpus, cpu.mem_mb, cpu.gpus, cpu.nodes) == (True, 64, 257000, 0, 2)
    assert cpu.max_minutes == 1440
    assert (gpu.default, gpu.gpus, gpu.max_minutes, gpu.nodes) == (False, 4, 2880, 2)
    assert not debug.up and debug.max_minutes == 30


def test_request_from_resources_follows_the_plugin():
    r = cluster.request_from_resources("evaluate", 8, {"mem_mb": 4000, "runtime": 60})
    assert (r.cpus, r.mem_mb, r.gpus, r.runtime, r.nproc) == (8, 4000, 0, 60, None)
    r = cluster.request_from_resources(
        "train_sdf", 2, {"cpus_per_task": 16, "mem_mb_per_cpu": 1000, "gres": "gpu:a100:4",
                         "nproc": 4, "runtime": "1-00:00:00", "slurm_partition": "gpu"})
    assert (r.cpus, r.mem_mb, r.gpus, r.runtime, r.nproc, r.partition) == \
        (16, 16000, 4, 1440, 4, "gpu")
    r = cluster.request_from_resources("train_pose", 2, {"gpu": 2, "cpus_per_gpu": 6})
    assert (r.cpus, r.gpus, r.runtime, r.nproc) == (12, 2, None, 1)


def test_largest_keeps_the_maximum_of_each_quantity():
    a = cluster.Request("reconstruct", None, 2, 8000, 0, 30)
    b = cluster.Request("reconstruct", None, 4, 2000, 0, 90)
    (m,) = cluster.largest([a, b])
    assert (m.cpus, m.mem_mb, m.runtime) == (4, 8000, 90)


def test_check_names_rule_and_key():
    parts = cluster.parse_sinfo(SINFO)
    ok = [cluster.Request("synth", None, 1, 2000, 0, 30),
          cluster.Request("train_sdf", "gpu", 16, 64000, 4, 1440, nproc=4)]
    assert cluster.check_requests(ok, parts) == []
    bad = [
        cluster.Request("evaluate", None, 96, 2000, 0, 30),               # CPUs
        cluster.Request("reconstruct", None, 1, 300000, 0, 30),           # memory
        cluster.Request("train_pose", None, 2, 8000, 4, 60, nproc=4),     # no GPUs in cpu
        cluster.Request("train_sdf", "gpu", 16, 64000, 4, 4320, nproc=2),  # time, nproc
        cluster.Request("pack", "big", 1, 1000, 0, 30),                    # no partition
        cluster.Request("compare", "debug", 1, 1000, 0, 10),               # down
        cluster.Request("synth", None, 1, 1000, 0, None),                  # no runtime
        cluster.Request("train_sdf", "gpu", 16, 64000, 2, 60, nodes=2, nproc=2),  # nodes
    ]
    problems = cluster.check_requests(bad, parts)
    text = "\n".join(problems)
    assert "rule evaluate: asks for 96 CPUs, the largest node of partition 'cpu' has 64; " \
           "lower `set-threads: evaluate`" in text
    assert "rule reconstruct: asks for 300000 MB" in text
    assert "`set-resources: reconstruct: mem_mb`" in text
    assert "rule train_pose: asks for 4 GPUs, the best node of partition 'cpu' has 0" in text
    assert "rule train_sdf: nproc 2 (torchrun processes) != gpu 4" in text
    assert "rule train_sdf: asks for 4320 min (72 h)" in text
    assert "partition 'gpu' allows 2880 min (48 h)" in text
    assert "rule pack: partition 'big' does not exist" in text
    assert "rule compare: partition 'debug' is not up" in text
    assert "rules synth: no time limit (runtime)" in text and "--workflow-profile" in text
    assert "rule train_sdf: asks for 2 nodes, but training runs `torchrun --standalone`" \
        in text
    assert len(problems) == 9


def test_gpu_request_on_a_cpu_only_cluster_points_to_slurm_cpu():
    cpu_only = cluster.parse_sinfo("main*|2|23081|(null)|infinite|up\n")
    problems = cluster.check_requests(
        [cluster.Request("train_sdf", "gpu", 16, 64000, 4, 720, nproc=4),
         cluster.Request("reconstruct", None, 2, 16000, 1, 240)], cpu_only)
    assert problems[0].startswith("rule reconstruct: asks for 1 GPUs, the best node of "
                                  "partition 'main' has 0")
    assert problems[1].startswith("rule train_sdf: partition 'gpu' does not exist")
    assert all(p.endswith("use workflow/profiles/slurm-cpu") for p in problems)


def _profile_requests(name: str) -> list[cluster.Request]:
    """Every rule's request under a shipped profile at its last retry, evaluated by
    Snakemake's own resource parser (as `--set-resources` / `--default-resources`)."""
    prof = yaml.safe_load((REPO / "workflow" / "profiles" / name / "config.yaml").read_text())
    attempt = prof["retries"] + 1
    rules = {"synth": (1, {"mem_mb": 2000}), "pack": (1, {"mem_mb": 2000}),
             "train_pose": (2, {"nproc": 1, "mem_mb": 8000}),
             "train_sdf": (2, {"nproc": 1, "mem_mb": 8000}),
             "reconstruct": (2, {"mem_mb": 4000}), "evaluate": (2, {"mem_mb": 4000})}
    defaults = prof.get("default-resources", {})
    requests = []
    for rule, (threads, rule_res) in rules.items():
        threads = prof.get("set-threads", {}).get(rule, threads)
        values = {**defaults, **rule_res, **prof.get("set-resources", {}).get(rule, {})}
        parsed = Resources.parse([f"{k}={v}" for k, v in values.items()],
                                 allow_expressions=True)
        res = {}
        for key in values:
            resource = parsed[key]
            if resource.is_evaluable():
                resource = resource.evaluate(wildcards=None, input=None, attempt=attempt,
                                             threads=threads, rulename=rule,
                                             async_run=None)
            res[key] = resource.value
        requests.append(cluster.request_from_resources(rule, threads, res))
    return requests


def test_slurm_cpu_profile_fits_a_small_node():
    small = {"main": cluster.Partition("main", True, cpus=2, mem_mb=8000, gpus=0,
                                       max_minutes=240, nodes=1)}
    requests = _profile_requests("slurm-cpu")
    assert cluster.check_requests(requests, small) == []
    assert max(r.runtime for r in requests) <= 180  # the last retry's time limit


def test_slurm_profile_fits_a_gpu_cluster_and_scales_runtime():
    requests = {r.rule: r for r in _profile_requests("slurm")}
    parts = cluster.parse_sinfo(SINFO)
    assert cluster.check_requests(requests.values(), parts) == []
    train = requests["train_sdf"]
    assert (train.gpus, train.nproc, train.partition, train.runtime) == (4, 4, "gpu", 1440)
    assert requests["synth"].runtime == 120 * 4  # 4th attempt
