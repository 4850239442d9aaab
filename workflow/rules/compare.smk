# Stage `compare` (the report's tables): every experiment of config["experiments"] on a
# dataset side by side, laid out like the paper's tables (gsdf/stages/compare.py):
# {dataset}_comparison.csv, .md and a bar chart. `snakemake --report report.html` collects
# these and the evaluation renders.


rule compare:
    input:
        unpack(pipe.compare_inputs),
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
        pipe.log("compare", "{dataset}"),
    conda:
        "../../envs/gsdf.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        pairs=pipe.compare_pairs,
        cfg=pipe.compare_params,
    shell:
        "gsdf compare --metrics {params.pairs}"
        " --csv {output.csv:q} --md {output.md:q} --plot {output.plot:q}"
        " --params {params.cfg:q} > {log:q} 2>&1"
