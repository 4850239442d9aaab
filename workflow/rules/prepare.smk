# Stage `prepare`: the real datasets (ObMan, DexYCB; config `datasets.{obman,dexycb}`,
# gsdf/stages/prepare.py) in the canonical layout. One job per split shard writes its samples
# into the split folder, then its manifest, the same manifest as `synth` (which owns dataset=synth). The raw
# download is checked while the DAG is built (prepare_check), so a missing root or MANO pickle
# stops before any job with a message naming the config key.


rule prepare:
    input:
        pipe.prepare_check,
    output:
        manifest=pipe.pattern("dataset_shard"),
    log:
        pipe.log("prepare", "{dataset}_{split}_{shard}"),
    wildcard_constraints:
        dataset="obman|dexycb",
    conda:
        "../../envs/gsdf.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    params:
        cfg=pipe.prepare_params,
        split_dir=pipe.split_dir(),
    shell:
        "gsdf prepare --split {wildcards.split} --shard {wildcards.shard}"
        " --split-dir {params.split_dir:q} --manifest {output.manifest:q} --no-progress"
        " --params {params.cfg:q} > {log:q} 2>&1"
