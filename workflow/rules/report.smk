# Stage `compare` (the report's tables): every experiment of config["experiments"] on a
# dataset side by side, laid out like the paper's tables (gsdf/eval/compare.py):
# {dataset}_comparison.csv, .md and a bar chart. `snakemake --report report.html` collects
# these and the evaluation renders.


def compare_input(wildcards):
    return {
        exp: pipe.path("metrics", exp=exp, dataset=wildcards.dataset)
        for exp in config["experiments"]
    }


def compare_pairs(wildcards, input):
    """`exp=path` pairs, in the order of config["experiments"]."""
    return " ".join("{}={}".format(exp, input[exp]) for exp in config["experiments"])


rule compare:
    input:
        unpack(compare_input),
    output:
        csv=report(
            pipe.pattern("comparison"),
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        md=pipe.pattern("comparison_md"),
        plot=report(
            pipe.pattern("comparison_plot"),
            caption="../report/comparison.rst",
            category="Comparison",
        ),
    log:
        config["results"] + "/logs/compare/{dataset}.log",
    conda:
        "../../envs/gsdf.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        pairs=compare_pairs,
    shell:
        "gsdf compare --dataset {wildcards.dataset} --metrics {params.pairs}"
        " --csv {output.csv:q} --md {output.md:q} --plot {output.plot:q}"
        " > {log:q} 2>&1"
