# Stages `train_pose` (gSDF's hand pose network) and `train_sdf` (gf, alignsdf, gsdf,
# gsdf_video): `gsdf train` under torchrun; {resources.nproc} processes (one per GPU, else CPU
# processes on gloo). A killed or preempted job leaves checkpoint.last.pt beside its outputs and
# a rerun of the rule resumes from it; checkpoint.pt exists only once training finished.
# gsdf-style experiments name their pose network in `pose_experiment`: its checkpoint is an
# input, so retraining the pose network reruns exactly the SDF models built on it.


import os.path
import shlex


def train_data_input(wildcards):
    """The packed train split of the dataset (annotations + the three LMDBs)."""
    fields = {"dataset": wildcards.dataset, "split": "train"}
    return {
        "annotations": pipe.path("annotations", **fields),
        "rgb": pipe.path("rgb_lmdb", **fields),
        "sdf_hand": pipe.path("sdf_hand_lmdb", **fields),
        "sdf_obj": pipe.path("sdf_obj_lmdb", **fields),
    }


def train_packed_dir(wildcards):
    return pipe.path("packed_dir", dataset=wildcards.dataset, split="train")


def train_pose_params(wildcards):
    return pipe.experiment_params(wildcards.pose_exp, wildcards.dataset, "train_pose")


def train_sdf_input(wildcards):
    """Packed train split, plus the pose checkpoint of gsdf-style experiments."""
    inputs = train_data_input(wildcards)
    pose_exp = pipe.experiment(wildcards.exp).get("pose_experiment")
    if pose_exp:
        inputs["pose"] = pipe.path(
            "pose_checkpoint", dataset=wildcards.dataset, pose_exp=pose_exp
        )
    return inputs


def train_sdf_params(wildcards):
    return pipe.experiment_params(wildcards.exp, wildcards.dataset, "train_sdf")


def train_sdf_pose_arg(wildcards, input):
    """`--pose-checkpoint PATH` when the experiment has a pose network, else nothing."""
    if "pose" in input.keys():
        return "--pose-checkpoint " + shlex.quote(str(input.pose))
    return ""


rule train_pose:
    input:
        unpack(train_data_input),
    output:
        checkpoint=pipe.pattern("pose_checkpoint"),
        log_csv=pipe.pattern("pose_train_log"),
        curves=pipe.pattern("pose_curves"),
        config=pipe.pattern("pose_config"),
    log:
        os.path.join(
            config["results"], "logs", "train_pose", "{dataset}_{pose_exp}.log"
        ),
    threads: 2
    resources:
        nproc=1,
        mem_mb=8000,
    params:
        cfg=train_pose_params,
        data=train_packed_dir,
    shell:
        "torchrun --standalone --nproc_per_node {resources.nproc} --no-python"
        " gsdf train --data {params.data:q} --checkpoint {output.checkpoint:q}"
        " --log-csv {output.log_csv:q} --curves {output.curves:q}"
        " --config-out {output.config:q} --threads {threads} --params {params.cfg:q}"
        " > {log:q} 2>&1"


rule train_sdf:
    input:
        unpack(train_sdf_input),
    output:
        checkpoint=pipe.pattern("checkpoint"),
        log_csv=pipe.pattern("train_log"),
        curves=pipe.pattern("learning_curves"),
        config=pipe.pattern("exp_config"),
    log:
        os.path.join(config["results"], "logs", "train_sdf", "{exp}_{dataset}.log"),
    threads: 2
    resources:
        nproc=1,
        mem_mb=8000,
    params:
        cfg=train_sdf_params,
        data=train_packed_dir,
        pose=train_sdf_pose_arg,
    shell:
        "torchrun --standalone --nproc_per_node {resources.nproc} --no-python"
        " gsdf train --data {params.data:q} --checkpoint {output.checkpoint:q}"
        " --log-csv {output.log_csv:q} --curves {output.curves:q}"
        " --config-out {output.config:q} {params.pose} --threads {threads}"
        " --params {params.cfg:q} > {log:q} 2>&1"
