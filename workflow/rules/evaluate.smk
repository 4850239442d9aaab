# Stage `evaluate`: the published protocol over every test sample of an experiment
# (config `evaluate`, gsdf/eval/evaluate.py): metrics_per_sample.csv, metrics.csv (mean and
# median of every metric, counts of evaluated / failed samples) and the best / median / worst
# samples by hand Chamfer rendered for the report.

import os.path


def evaluate_params(wildcards):
    return pipe.experiment_params(wildcards.exp, wildcards.dataset, "evaluate")


def evaluate_input(wildcards):
    """Every reconstruct shard of the experiment and the canonical test split's manifests."""
    return {
        "recon": pipe.shards(
            "recon_shard", wildcards.dataset, "test", exp=wildcards.exp
        ),
        "gt": pipe.shards("dataset_shard", wildcards.dataset, "test"),
    }


def evaluate_render(which):
    """PNG of the `which` (best / median / worst) sample under the renders folder."""
    return os.path.join(pipe.pattern("renders_dir"), which + ".png")


def evaluate_results_root(wildcards):
    """The results root (meshes and poses are found under it by sample id)."""
    return config["results"]


rule evaluate:
    input:
        unpack(evaluate_input),
    output:
        per_sample=report(
            pipe.pattern("metrics_per_sample"),
            caption="../report/metrics_per_sample.rst",
            category="Evaluation",
            subcategory="{exp}_{dataset}",
        ),
        metrics=report(
            pipe.pattern("metrics"),
            caption="../report/metrics.rst",
            category="Evaluation",
            subcategory="{exp}_{dataset}",
        ),
        best=report(
            evaluate_render("best"),
            caption="../report/renders.rst",
            category="Renders",
            subcategory="{exp}_{dataset}",
        ),
        median=report(
            evaluate_render("median"),
            caption="../report/renders.rst",
            category="Renders",
            subcategory="{exp}_{dataset}",
        ),
        worst=report(
            evaluate_render("worst"),
            caption="../report/renders.rst",
            category="Renders",
            subcategory="{exp}_{dataset}",
        ),
    log:
        config["results"] + "/logs/evaluate/{exp}_{dataset}.log",
    conda:
        "../../envs/gsdf.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        cfg=evaluate_params,
        results=evaluate_results_root,
    shell:
        "gsdf evaluate --results {params.results:q} --exp {wildcards.exp}"
        " --dataset {wildcards.dataset} --dataset-shards {input.gt:q}"
        " --recon-shards {input.recon:q} --per-sample {output.per_sample:q}"
        " --metrics {output.metrics:q}"
        " --renders {output.best:q} {output.median:q} {output.worst:q}"
        " --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"
