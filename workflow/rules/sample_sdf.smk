# Stage `sample_sdf`: SDF points around the hand and the object of every sample of a dataset
# shard (gsdf/stages/sample_sdf.py; gsdf/data/sdf_shard.py owns the shard format), plus a
# preview PNG of one sample.


rule sample_sdf:
    input:
        manifest=pipe.pattern("dataset_shard"),
    output:
        shard=pipe.pattern("sdf_shard"),
        skipped=pipe.pattern("sdf_skipped"),
    log:
        pipe.log("sample_sdf", "{dataset}_{split}_{shard}"),
    conda:
        "../../envs/gsdf.yaml"
    # libigl's distance and winding-number queries run on one core (measured: CPU time equals
    # wall time), so two shards run side by side on a 2-core machine.
    threads: 1
    resources:
        mem_mb=2000,
    params:
        cfg=pipe.dataset_params("sample_sdf"),
        split_dir=pipe.split_dir(),
    shell:
        "gsdf sample_sdf --split-dir {params.split_dir:q} --manifest {input.manifest:q}"
        " --out {output.shard:q} --skipped {output.skipped:q} --no-progress"
        " --params {params.cfg:q} > {log:q} 2>&1"


rule sample_sdf_preview:
    input:
        unpack(pipe.sdf_preview_inputs),
    output:
        png=report(
            pipe.pattern("sdf_preview"),
            caption="../report/sdf_preview.rst",
            category="Dataset",
        ),
    log:
        pipe.log("sample_sdf", "{dataset}_preview"),
    conda:
        "../../envs/gsdf.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        split_dir=pipe.split_dir("train"),
    shell:
        "gsdf sample_sdf --split-dir {params.split_dir:q} --from-shard {input.shard:q}"
        " --preview {output.png:q} > {log:q} 2>&1"
