# Stage `train_pose` (gSDF's hand pose network, gsdf/stages/train_pose.py): `gsdf train_pose`
# under torchrun; {resources.nproc} processes (one per GPU, else CPU processes on gloo; runtime
# settings such as {resources.checkpoint_every} resume, never retrain). A killed or preempted job leaves checkpoint.last.pt beside its outputs and a rerun of the rule resumes
# from it; checkpoint.pt exists only once training finished.


rule train_pose:
    input:
        unpack(pipe.train_pose_inputs),
    output:
        checkpoint=pipe.pattern("pose_checkpoint"),
        log_csv=pipe.pattern("pose_train_log"),
        curves=report(
            pipe.pattern("pose_curves"),
            caption="../report/learning_curves.rst",
            category="Training",
            subcategory="pose_{pose_exp}",
        ),
        config=pipe.pattern("pose_config"),
    log:
        pipe.log("train_pose", "{dataset}_{pose_exp}"),
    conda:
        "../../envs/gsdf.yaml"
    threads: 2
    resources:
        nproc=1,
        checkpoint_every=1,
        mem_mb=8000,
    params:
        cfg=pipe.exp_params("train_pose", "pose_exp"),
        data=pipe.packed_dir("train"),
        last=pipe.last_checkpoint,
    shell:
        "torchrun --standalone --nproc_per_node {resources.nproc} --no-python"
        " gsdf train_pose --data {params.data:q} --checkpoint {output.checkpoint:q}"
        " --log-csv {output.log_csv:q} --curves {output.curves:q}"
        " --config-out {output.config:q} --threads {threads} --params {params.cfg:q}"
        " --checkpoint-every {resources.checkpoint_every}"
        " > {log:q} 2>&1 && rm -f {params.last:q}"
