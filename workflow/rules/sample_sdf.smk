# Stage `sample_sdf`: SDF points around the hand and the object of every sample of a dataset
# shard (gsdf/geometry/sdf.py owns the shard format), plus a preview PNG of one sample.


def sample_sdf_params(wildcards):
    return pipe.stage_params("sample_sdf", wildcards.dataset)


def sample_sdf_split_dir(wildcards):
    return pipe.path("split_dir", dataset=wildcards.dataset, split=wildcards.split)


def sample_sdf_preview_split_dir(wildcards):
    return pipe.path("split_dir", dataset=wildcards.dataset, split="train")


def sample_sdf_preview_input(wildcards):
    return {
        "shard": pipe.path(
            "sdf_shard", dataset=wildcards.dataset, split="train", shard=0
        ),
        "manifest": pipe.path(
            "dataset_shard", dataset=wildcards.dataset, split="train", shard=0
        ),
    }


rule sample_sdf:
    input:
        manifest=pipe.pattern("dataset_shard"),
    output:
        shard=pipe.pattern("sdf_shard"),
        skipped=pipe.pattern("sdf_skipped"),
    log:
        f"{config['results']}/logs/sample_sdf/{{dataset}}_{{split}}_{{shard}}.log",
    conda:
        "../../envs/gsdf.yaml"
    threads: 2
    resources:
        mem_mb=2000,
    params:
        cfg=sample_sdf_params,
        split_dir=sample_sdf_split_dir,
    shell:
        "gsdf sample_sdf --split-dir {params.split_dir:q} --manifest {input.manifest:q}"
        " --out {output.shard:q} --skipped {output.skipped:q} --no-progress"
        " --params {params.cfg:q} > {log:q} 2>&1"


rule sample_sdf_preview:
    input:
        unpack(sample_sdf_preview_input),
    output:
        png=pipe.pattern("sdf_preview"),
    log:
        f"{config['results']}/logs/sample_sdf/{{dataset}}_preview.log",
    conda:
        "../../envs/gsdf.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        split_dir=sample_sdf_preview_split_dir,
    shell:
        "gsdf sample_sdf --split-dir {params.split_dir:q} --from-shard {input.shard:q}"
        " --preview {output.png:q} > {log:q} 2>&1"
