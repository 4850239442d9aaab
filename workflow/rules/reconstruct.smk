# Stage `reconstruct`: per test shard, the trained model's hand and object meshes (camera space)
# and predicted poses of the shard's samples; coarse-to-fine meshing by default
# (config `reconstruct`, gsdf/eval/reconstruct.py). The shard manifest lists the ids done and
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
    resources:
        mem_mb=4000,
    params:
        cfg=pipe.exp_params("reconstruct"),
        packed=pipe.packed_dir("test"),
        results=pipe.results_root,
    shell:
        "gsdf reconstruct --checkpoint {input.checkpoint:q} --packed-dir {params.packed:q}"
        " --shard-manifest {input.manifest:q} --results {params.results:q}"
        " --exp {wildcards.exp} --dataset {wildcards.dataset} --out {output.manifest:q}"
        " --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"
