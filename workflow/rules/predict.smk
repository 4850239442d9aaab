# Stage `predict`: a trained gsdf / gsdf_video experiment on the photos of the folder
# `predict.images` (gsdf/eval/predict.py, docs/predict.md): per photo {name}_hand.ply,
# {name}_obj.ply, {name}.json and {name}_overlay.png under results/{exp}_{dataset}/predict/,
# the hand frame placed from the model's own pose network (no ground truth). Built only when
# predict.images is set.


rule predict:
    input:
        unpack(pipe.predict_inputs),
    output:
        manifest=pipe.pattern("predict_manifest"),
    log:
        pipe.log("predict", "{exp}_{dataset}"),
    conda:
        "../../envs/gsdf.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        cfg=pipe.exp_params("predict"),
        folder=pipe.predict_folder,
        out=pipe.predict_dir,
    shell:
        "gsdf predict {params.folder:q} --checkpoint {input.checkpoint:q} --out {params.out:q}"
        " --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"
