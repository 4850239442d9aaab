# Stage `reconstruct`: per test shard, the trained model's hand and object meshes (camera space)
# and predicted poses of the shard's samples; coarse-to-fine meshing by default
# (config `reconstruct`, gsdf/stages/reconstruct.py). The shard manifest lists the ids done and
# the ids whose field had no zero crossing.


rule reconstruct:
    input:
        unpack(pipe.reconstruct_inputs),
    output:
        manifest=pipe.pattern("recon_shard"),
    log:
        pipe.log("reconstruct", "{exp}_{dataset}_{shard}"),
    conda:
        "../../envs/gsdf.yaml"
    threads: 2
    # point_batch: query points per decoder call, a runtime setting (memory only; not in
    # --params, so changing it reruns nothing): set-resources: reconstruct:point_batch=N.
    resources:
        mem_mb=4000,
        point_batch=65536,
    params:
        cfg=pipe.exp_params("reconstruct"),
        packed=pipe.packed_dir("test"),
        meshes=pipe.exp_dir("meshes_dir"),
        poses=pipe.exp_dir("poses_dir"),
    shell:
        "gsdf reconstruct --checkpoint {input.checkpoint:q} --packed-dir {params.packed:q}"
        " --shard-manifest {input.manifest:q} --out {output.manifest:q}"
        " --meshes-dir {params.meshes:q} --poses-dir {params.poses:q}"
        " --threads {threads} --point-batch-size {resources.point_batch}"
        " --params {params.cfg:q} > {log:q} 2>&1"
