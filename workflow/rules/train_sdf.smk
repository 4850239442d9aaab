# Stage `train_sdf` (gf, alignsdf, gsdf, gsdf_video; gsdf/stages/train_sdf.py): `gsdf train_sdf`
# under torchrun; {resources.nproc} processes (one per GPU, else CPU processes on gloo). Resumes
# from checkpoint.last.pt like train_pose. gsdf-style experiments name their pose network in
# `pose_experiment`: its checkpoint is an input, so retraining the pose network reruns exactly
# the SDF models built on it.


rule train_sdf:
    input:
        unpack(pipe.train_sdf_inputs),
    output:
        checkpoint=pipe.pattern("checkpoint"),
        log_csv=pipe.pattern("train_log"),
        curves=report(
            pipe.pattern("learning_curves"),
            caption="../report/learning_curves.rst",
            category="Training",
            subcategory="{exp}_{dataset}",
        ),
        config=pipe.pattern("exp_config"),
    log:
        pipe.log("train_sdf", "{exp}_{dataset}"),
    conda:
        "../../envs/gsdf.yaml"
    threads: 2
    resources:
        nproc=1,
        checkpoint_every=1,
        mem_mb=8000,
    params:
        cfg=pipe.exp_params("train_sdf"),
        data=pipe.packed_dir("train"),
        pose=pipe.pose_checkpoint_arg,
        last=pipe.last_checkpoint,
    shell:
        "torchrun --standalone --nproc_per_node {resources.nproc} --no-python"
        " gsdf train_sdf --data {params.data:q} --checkpoint {output.checkpoint:q}"
        " --log-csv {output.log_csv:q} --curves {output.curves:q}"
        " --config-out {output.config:q} {params.pose} --threads {threads}"
        " --checkpoint-every {resources.checkpoint_every}"
        " --params {params.cfg:q} > {log:q} 2>&1 && rm -f {params.last:q}"
