# Stage `synth`: the embedded synthetic dataset (config `synth`, gsdf/stages/synth.py). One job
# per split shard writes the canonical layout (rgb, mask, depth, meshes, meta) of its sequences
# into the split folder, then its manifest; the contact sheet (at the top of the dataset folder)
# shows 16 train samples.


rule synth:
    output:
        manifest=pipe.pattern("dataset_shard"),
    log:
        pipe.log("synth", "{dataset}_{split}_{shard}"),
    wildcard_constraints:
        dataset="synth",
    conda:
        "../../envs/gsdf.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        cfg=pipe.stage_params("synth", "synth"),
        split_dir=pipe.split_dir(),
    shell:
        "gsdf synth --split {wildcards.split} --shard {wildcards.shard}"
        " --split-dir {params.split_dir:q} --manifest {output.manifest:q} --no-progress"
        " --params {params.cfg:q} > {log:q} 2>&1"


rule synth_contact_sheet:
    input:
        pipe.shards("dataset_shard", "synth", "train"),
    output:
        png=report(
            pipe.path("contact_sheet", dataset="synth"),
            caption="../report/contact_sheet.rst",
            category="Dataset",
        ),
    log:
        pipe.log("synth", "contact_sheet"),
    conda:
        "../../envs/gsdf.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        split_dir=pipe.split_dir("train", "synth"),
    shell:
        "gsdf synth --contact-sheet {output.png:q} --split-dir {params.split_dir:q}"
        " > {log:q} 2>&1"
