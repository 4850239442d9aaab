# Stage `reconstruct`: per test shard, the trained model's hand and object meshes (camera space)
# and predicted poses of the shard's samples; coarse-to-fine meshing by default
# (config `reconstruct`, gsdf/eval/reconstruct.py). The shard manifest lists the ids done and
# the ids whose field had no zero crossing.


def reconstruct_params(wildcards):
    return pipe.experiment_params(wildcards.exp, wildcards.dataset, "reconstruct")


def reconstruct_input(wildcards):
    """Checkpoint, packed test split and the dataset's test shard manifest (the ids), plus the
    pose checkpoint of gsdf-style experiments (their model is built around it)."""
    test = {"dataset": wildcards.dataset, "split": "test"}
    inputs = {
        "checkpoint": pipe.path(
            "checkpoint", exp=wildcards.exp, dataset=wildcards.dataset
        ),
        "annotations": pipe.path("annotations", **test),
        "rgb": pipe.path("rgb_lmdb", **test),
        "manifest": pipe.path("dataset_shard", shard=wildcards.shard, **test),
    }
    pose_exp = pipe.experiment(wildcards.exp).get("pose_experiment")
    if pose_exp:
        inputs["pose"] = pipe.path(
            "pose_checkpoint", dataset=wildcards.dataset, pose_exp=pose_exp
        )
    return inputs


def reconstruct_packed_dir(wildcards):
    return pipe.path("packed_dir", dataset=wildcards.dataset, split="test")


def reconstruct_results_root(wildcards):
    """The results root (meshes and poses are found under it by sample id)."""
    return config["results"]


rule reconstruct:
    input:
        unpack(reconstruct_input),
    output:
        manifest=pipe.pattern("recon_shard"),
    log:
        config["results"] + "/logs/reconstruct/{exp}_{dataset}_{shard}.log",
    conda:
        "../../envs/gsdf.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        cfg=reconstruct_params,
        packed=reconstruct_packed_dir,
        results=reconstruct_results_root,
    shell:
        "gsdf reconstruct --checkpoint {input.checkpoint:q} --packed-dir {params.packed:q}"
        " --shard-manifest {input.manifest:q} --results {params.results:q}"
        " --exp {wildcards.exp} --dataset {wildcards.dataset} --out {output.manifest:q}"
        " --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"
