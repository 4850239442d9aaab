# Stage `pack` (the reference's "cocoify"): a split's canonical layout and SDF shards become
# annotations.json (COCO style) and the rgb / sdf_hand / sdf_obj LMDB databases
# (gsdf/stages/pack.py; gsdf/data/lmdb_io.py owns the format), and skipped.csv. Both splits are packed; training reads train,
# reconstruction reads test.


rule pack:
    input:
        unpack(pipe.pack_inputs),
    output:
        annotations=pipe.pattern("annotations"),
        rgb=directory(pipe.pattern("rgb_lmdb")),
        sdf_hand=directory(pipe.pattern("sdf_hand_lmdb")),
        sdf_obj=directory(pipe.pattern("sdf_obj_lmdb")),
        skipped=pipe.pattern("pack_skipped"),
    log:
        pipe.log("pack", "{dataset}_{split}"),
    conda:
        "../../envs/gsdf.yaml"
    threads: 1
    # lmdb_batch: values per LMDB write transaction, a runtime setting (not in --params, so
    # changing it reruns nothing); a profile overrides it with set-resources: pack:lmdb_batch=N.
    resources:
        mem_mb=2000,
        lmdb_batch=256,
    params:
        cfg=pipe.dataset_params("pack"),
        split_dir=pipe.split_dir(),
    shell:
        "gsdf pack --split-dir {params.split_dir:q} --manifests {input.manifests:q}"
        " --sdf-shards {input.sdf:q} --annotations {output.annotations:q}"
        " --rgb-lmdb {output.rgb:q} --sdf-hand-lmdb {output.sdf_hand:q}"
        " --sdf-obj-lmdb {output.sdf_obj:q} --skipped {output.skipped:q}"
        " --batch {resources.lmdb_batch} --params {params.cfg:q} > {log:q} 2>&1"
