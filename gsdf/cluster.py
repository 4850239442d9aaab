"""What a SLURM cluster can give, checked against what the workflow's jobs will ask for.

A SLURM job that asks for more than any node of its partition has (CPUs, memory, GPUs) or for
a longer time limit than the partition allows is not rejected by default: it pends forever
(``squeue`` reason ``PartitionConfig``, ``PartitionTimeLimit``, ``ReqNodeNotAvail``) and
Snakemake waits with it. :func:`check_workflow`, called from the Snakefile's ``onstart`` when
the slurm executor runs, compares the largest request of every rule (over all its retry
attempts) with ``sinfo``'s limits before anything is submitted, and stops the run with one
line per problem naming the rule, the profile key to change and what the cluster offers.

It also catches two profile mistakes that otherwise surface as crashes or silent changes:

* a job without a time limit (``runtime``) under SLURM: the cluster profile was loaded with
  ``--profile``, so the local ``workflow/profiles/default`` (the automatic workflow profile)
  replaced its ``default-resources`` and ``set-threads``; use ``--workflow-profile``;
* a training rule whose ``nproc`` (torchrun processes) differs from its GPU request: each
  process drives one GPU, so both must be equal.

``GSDF_SKIP_CLUSTER_CHECK=1`` skips the check (for clusters whose ``sinfo`` does not show what
jobs can use, e.g. GPUs not declared as ``gres``). ``python -m gsdf.cluster`` prints the limits
``sinfo`` reports, one line per partition.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping

SKIP_ENV = "GSDF_SKIP_CLUSTER_CHECK"
# The rules that run `torchrun --nproc_per_node {resources.nproc}`.
TRAINING_RULES = ("train_pose", "train_sdf")
SINFO_FORMAT = "%P|%c|%m|%G|%l|%a"


class ClusterCheckError(RuntimeError):
    """The workflow's requests do not fit the cluster; the message lists every problem."""


@dataclasses.dataclass(frozen=True)
class Partition:
    """The largest node of a SLURM partition and the partition's time limit.

    Attributes:
        name: partition name (without sinfo's ``*`` default marker).
        default: jobs without ``-p`` go here.
        cpus: CPUs of its largest node.
        mem_mb: memory of its largest node (MB, sinfo's ``RealMemory``).
        gpus: GPUs (``gres`` entries named ``gpu``) of its best-equipped node.
        max_minutes: the partition's ``MaxTime`` in minutes; None if unlimited.
        nodes: number of nodes.
        up: the partition accepts jobs (sinfo availability ``up``).
    """

    name: str
    default: bool
    cpus: int
    mem_mb: int
    gpus: int
    max_minutes: float | None
    nodes: int
    up: bool = True


@dataclasses.dataclass(frozen=True)
class Request:
    """The largest request of one rule's jobs (over every job and retry attempt).

    Attributes:
        rule: rule name.
        partition: ``slurm_partition``, None for the cluster's default partition.
        cpus: CPUs per job (``cpus_per_task`` if set, else the rule's threads; per GPU
            ``cpus_per_gpu`` times the GPUs).
        mem_mb: memory per job (``mem_mb``, or ``mem_mb_per_cpu`` times the CPUs).
        gpus: GPUs per job (``gpu``, or the count in ``gres: gpu:N`` / ``gpu:type:N``).
        runtime: time limit in minutes at the last attempt; None if the job has none.
        nodes: ``nodes`` (1 if unset).
        nproc: torchrun processes (training rules), None elsewhere.
    """

    rule: str
    partition: str | None
    cpus: int
    mem_mb: int
    gpus: int
    runtime: float | None
    nodes: int = 1
    nproc: int | None = None


def parse_time_limit(text: str) -> float | None:
    """SLURM's time format (``infinite``, ``D-HH:MM:SS``, ``HH:MM:SS``, ``MM:SS``, ``MM``) in
    minutes; None when unlimited."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return None
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [int(p) for p in text.split(":")]
    if days and len(parts) == 1:          # D-HH
        parts = [parts[0], 0, 0]
    elif days and len(parts) == 2:        # D-HH:MM
        parts = [parts[0], parts[1], 0]
    if len(parts) == 3:
        h, m, s = parts
    elif len(parts) == 2:
        h, m, s = 0, parts[0], parts[1]
    else:
        h, m, s = 0, parts[0], 0
    return days * 1440 + h * 60 + m + s / 60


def parse_gres_gpus(gres: str) -> int:
    """GPUs in a node's or a job's gres string: ``gpu:4``, ``gpu:a100:2(S:0-1)``,
    ``gpu:v100:2,gpu:a100:2`` (6 would be 4), ``(null)`` or ``gpu`` alone (1)."""
    gres = re.sub(r"\([^)]*\)", "", gres or "")  # socket bindings such as (S:0,1)
    total = 0
    for item in gres.split(","):
        fields = item.strip().split(":")
        if fields[0] != "gpu":
            continue
        count = fields[-1] if len(fields) > 1 else "1"
        m = re.fullmatch(r"(\d+)([KMGT]?)", count)
        total += int(m.group(1)) if m else 1
    return total


def parse_sinfo(text: str) -> dict[str, Partition]:
    """Partitions from ``sinfo --noheader --Node --format='%P|%c|%m|%G|%l|%a'`` (one line per
    node and partition; the largest node of each partition counts)."""
    acc: dict[str, dict] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 6:
            raise ValueError(f"unexpected sinfo line {line!r} (format {SINFO_FORMAT})")
        name, cpus, mem, gres, limit, avail = (f.strip() for f in fields[:6])
        default = name.endswith("*")
        name = name.rstrip("*")
        p = acc.setdefault(name, {"default": default, "cpus": 0, "mem_mb": 0, "gpus": 0,
                                  "max_minutes": parse_time_limit(limit), "nodes": 0,
                                  "up": avail.lower().startswith("up")})
        p["default"] |= default
        p["cpus"] = max(p["cpus"], int(re.match(r"\d+", cpus).group()))
        p["mem_mb"] = max(p["mem_mb"], int(re.match(r"\d+", mem).group()))
        p["gpus"] = max(p["gpus"], parse_gres_gpus(gres))
        p["nodes"] += 1
    return {name: Partition(name=name, **p) for name, p in acc.items()}


def sinfo_partitions() -> dict[str, Partition]:
    """Run ``sinfo`` on this machine (the login node)."""
    proc = subprocess.run(["sinfo", "--noheader", "--Node", f"--format={SINFO_FORMAT}"],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ClusterCheckError(f"sinfo failed ({proc.returncode}): {proc.stderr.strip()}")
    return parse_sinfo(proc.stdout)


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def request_from_resources(rule: str, threads: int, resources: Mapping,
                           runtime: float | None = None) -> Request:
    """One job's request from its evaluated Snakemake resources (how the slurm executor plugin
    turns them into ``sbatch`` options). ``runtime`` overrides ``resources['runtime']``."""
    gpus = _int(resources.get("gpu")) or parse_gres_gpus(str(resources.get("gres") or ""))
    if _int(resources.get("cpus_per_task")) > 0:
        cpus = _int(resources.get("cpus_per_task"))
    elif gpus and _int(resources.get("cpus_per_gpu")) > 0:
        cpus = _int(resources.get("cpus_per_gpu")) * gpus
    else:
        cpus = max(1, int(threads))
    if _int(resources.get("mem_mb_per_cpu")) > 0:
        mem = _int(resources.get("mem_mb_per_cpu")) * cpus
    else:
        mem = _int(resources.get("mem_mb"))
    if runtime is None and resources.get("runtime") not in (None, ""):
        runtime = parse_time_limit(str(resources["runtime"])) if isinstance(
            resources["runtime"], str) else float(resources["runtime"])
    return Request(rule=rule, partition=(str(resources["slurm_partition"])
                                         if resources.get("slurm_partition") else None),
                   cpus=cpus, mem_mb=mem, gpus=gpus, runtime=runtime,
                   nodes=max(1, _int(resources.get("nodes"), 1)),
                   nproc=_int(resources.get("nproc"), 1) if rule in TRAINING_RULES else None)


def largest(requests: Iterable[Request]) -> list[Request]:
    """Per (rule, partition), the largest of each quantity (one line per rule in a report)."""
    out: dict[tuple[str, str | None], Request] = {}
    for r in requests:
        key = (r.rule, r.partition)
        if key not in out:
            out[key] = r
            continue
        o = out[key]
        runtime = (None if o.runtime is None or r.runtime is None
                   else max(o.runtime, r.runtime))
        out[key] = dataclasses.replace(
            o, cpus=max(o.cpus, r.cpus), mem_mb=max(o.mem_mb, r.mem_mb),
            gpus=max(o.gpus, r.gpus), runtime=runtime, nodes=max(o.nodes, r.nodes),
            nproc=None if o.nproc is None else max(o.nproc, r.nproc or 1))
    return list(out.values())


def _minutes(m: float | None) -> str:
    if m is None:
        return "unlimited"
    return f"{m:g} min" if m < 120 else f"{m:g} min ({m / 60:g} h)"


def _no_gpus(r: Request, partitions: Mapping[str, Partition]) -> str:
    """A hint when ``r`` wants GPUs and no partition has any, else ``""``."""
    if r.gpus and not any(p.gpus for p in partitions.values()):
        return "; no partition has GPUs (sinfo gres): use workflow/profiles/slurm-cpu"
    return ""


def _partition_of(r: Request, partitions: Mapping[str, Partition], default: Partition | None,
                  where: str) -> tuple[Partition | None, str]:
    """The partition ``r`` runs on, or ``(None, the problem)``."""
    if r.partition is None:
        if default is None:
            return None, (f"rule {r.rule}: no slurm_partition and the cluster has no "
                          f"default partition; set `{where} slurm_partition` (or "
                          f"default-resources) to one of {sorted(partitions)}")
        return default, ""
    part = partitions.get(r.partition)
    if part is None:
        return None, (f"rule {r.rule}: partition {r.partition!r} does not exist; "
                      f"set `{where} slurm_partition` (or default-resources) to one "
                      f"of {sorted(partitions)}" + _no_gpus(r, partitions))
    return part, ""


def _fit_problems(r: Request, part: Partition, partitions: Mapping[str, Partition],
                  where: str) -> list[str]:
    """What of ``r`` the partition ``part`` cannot give (state, processes, nodes, CPUs,
    memory, GPUs, time limit)."""
    problems: list[str] = []
    pname = f"partition {part.name!r}"
    if not part.up:
        problems.append(f"rule {r.rule}: {pname} is not up (sinfo availability); choose "
                        f"another with `{where} slurm_partition`")
    if r.nproc is not None and r.gpus and r.nproc != r.gpus:
        problems.append(f"rule {r.rule}: nproc {r.nproc} (torchrun processes) != gpu "
                        f"{r.gpus}: each process drives one GPU; set `{where} nproc` and "
                        f"`gpu` (or `gres: gpu:N`) to the same number")
    if r.nproc is not None and r.nodes > 1:
        problems.append(f"rule {r.rule}: asks for {r.nodes} nodes, but training runs "
                        f"`torchrun --standalone` on one node; set `{where} nodes` to 1 "
                        f"(docs/cluster.md, multi-node)")
    if r.nodes > part.nodes:
        problems.append(f"rule {r.rule}: asks for {r.nodes} nodes, {pname} has "
                        f"{part.nodes}; lower `{where} nodes`")
    if r.cpus > part.cpus:
        problems.append(f"rule {r.rule}: asks for {r.cpus} CPUs, the largest node of "
                        f"{pname} has {part.cpus}; lower `set-threads: {r.rule}` (or "
                        f"`{where} cpus_per_task` / `cpus_per_gpu`)")
    if r.mem_mb > part.mem_mb:
        problems.append(f"rule {r.rule}: asks for {r.mem_mb} MB of memory, the largest "
                        f"node of {pname} has {part.mem_mb} MB; lower `{where} mem_mb`")
    if r.gpus > part.gpus:
        fix = (f"lower `{where} gpu` and `nproc`" if r.gpus else "")
        problems.append(f"rule {r.rule}: asks for {r.gpus} GPUs, the best node of {pname} "
                        f"has {part.gpus} (sinfo gres); {fix} or set `{where} "
                        f"slurm_partition` to a GPU partition" + _no_gpus(r, partitions))
    if r.runtime is not None and part.max_minutes is not None and r.runtime > part.max_minutes:
        problems.append(f"rule {r.rule}: asks for {_minutes(r.runtime)} (runtime at its "
                        f"last retry), {pname} allows {_minutes(part.max_minutes)}; lower "
                        f"`{where} runtime` (or `retries`)")
    return problems


def check_requests(requests: Iterable[Request], partitions: Mapping[str, Partition],
                   require_runtime: bool = True) -> list[str]:
    """Every request that cannot run on the cluster, as a sentence naming the rule and the key.

    Args:
        requests: the workflow's requests (see :func:`largest`).
        partitions: :func:`sinfo_partitions`.
        require_runtime: a request without a time limit is a problem (see the module doc).
    Returns:
        problems, empty if every request fits.
    """
    problems: list[str] = []
    no_runtime: list[str] = []
    default = next((p for p in partitions.values() if p.default), None)
    for r in sorted(requests, key=lambda r: (r.rule, r.partition or "")):
        where = f"set-resources: {r.rule}:"
        part, problem = _partition_of(r, partitions, default, where)
        if part is None:
            problems.append(problem)
            continue
        problems += _fit_problems(r, part, partitions, where)
        if r.runtime is None:
            no_runtime.append(r.rule)
    if no_runtime and require_runtime:
        problems.append(
            f"rules {', '.join(sorted(set(no_runtime)))}: no time limit (runtime): the "
            f"cluster profile's default-resources were replaced, most likely by the local "
            f"profile workflow/profiles/default, which Snakemake loads as the workflow profile "
            f"when the cluster profile is given with --profile; run with `--workflow-profile "
            f"workflow/profiles/slurm` (or slurm-cpu) instead")
    return problems


def workflow_requests(workflow) -> list[Request]:
    """The largest request of every rule among the jobs this run will submit, over every
    retry attempt (``runtime`` and other resources may depend on ``attempt``)."""
    requests = []
    for job in workflow.dag.needrun_jobs():
        rule = job.rule
        if job.is_local or getattr(rule, "norun", False):
            continue
        attempts = 1 + int(job.restart_times or 0)
        for attempt in sorted({1, attempts}):
            res = rule.expand_resources(job.wildcards_dict, job.input, attempt,
                                        skip_evaluation={"tmpdir"})
            requests.append(request_from_resources(rule.name, res.get("_cores", 1), res))
    return largest(requests)


def check_workflow(workflow, log=print) -> None:
    """The ``onstart`` check: raise :class:`ClusterCheckError` listing every request the
    cluster cannot satisfy. Does nothing unless the slurm executor runs."""
    plugin = getattr(workflow, "executor_plugin", None)
    if plugin is None or getattr(plugin, "name", "") != "slurm":
        return
    if os.environ.get(SKIP_ENV):
        log(f"gsdf: {SKIP_ENV} is set: not checking the requests against sinfo")
        return
    if shutil.which("sinfo") is None:
        raise ClusterCheckError("the slurm executor runs but `sinfo` is not on PATH: submit "
                                "from a login node of the cluster")
    partitions = sinfo_partitions()
    requests = workflow_requests(workflow)
    problems = check_requests(requests, partitions)
    if problems:
        raise ClusterCheckError(
            "these jobs would pend forever or crash on this cluster (sinfo limits; "
            f"set {SKIP_ENV}=1 to submit anyway):\n  " + "\n  ".join(problems)
            + "\nChange the keys in the workflow profile (workflow/profiles/README.md).")
    log("gsdf: every job fits the cluster (" + ", ".join(
        f"{r.rule}: {r.cpus} CPU, {r.mem_mb} MB, {r.gpus} GPU, {_minutes(r.runtime)}"
        for r in requests) + ")")


def format_partitions(partitions: Mapping[str, Partition]) -> str:
    lines = ["partition  nodes  CPUs/node  memory/node (MB)  GPUs/node  time limit"]
    for p in partitions.values():
        lines.append(f"{p.name + ('*' if p.default else ''):<10} {p.nodes:>5}  {p.cpus:>9}  "
                     f"{p.mem_mb:>16}  {p.gpus:>9}  {_minutes(p.max_minutes)}"
                     + ("" if p.up else "  (down)"))
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        print(format_partitions(sinfo_partitions()))
    except (ClusterCheckError, FileNotFoundError) as err:
        print(f"gsdf.cluster: {err}", file=sys.stderr)
        sys.exit(1)
