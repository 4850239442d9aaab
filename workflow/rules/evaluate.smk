# Stage `evaluate`: the published protocol over every test sample of an experiment
# (config `evaluate`, gsdf/stages/evaluate.py): metrics_per_sample.csv, metrics.csv (mean and
# median of every metric, counts of evaluated / failed samples) and the best / median / worst
# samples by hand Chamfer rendered for the report, and a gallery of six samples spread over
# that ranking. Besides the paper's metrics: the pose network's joint error next to the
# mean-pose baseline of the packed training split, and the view extents of the surfaces.


rule evaluate:
    input:
        unpack(pipe.evaluate_inputs),
    output:
        per_sample=report(
            pipe.pattern("metrics_per_sample"),
            caption="../report/metrics_per_sample.rst",
            category="Evaluation",
            subcategory="{exp}_{dataset}",
        ),
        metrics=report(
            pipe.pattern("metrics"),
            caption="../report/metrics.rst",
            category="Evaluation",
            subcategory="{exp}_{dataset}",
        ),
        best=report(
            pipe.render_pattern("best"),
            caption="../report/renders.rst",
            category="Renders",
            subcategory="{exp}_{dataset}",
        ),
        median=report(
            pipe.render_pattern("median"),
            caption="../report/renders.rst",
            category="Renders",
            subcategory="{exp}_{dataset}",
        ),
        worst=report(
            pipe.render_pattern("worst"),
            caption="../report/renders.rst",
            category="Renders",
            subcategory="{exp}_{dataset}",
        ),
        gallery=report(
            pipe.render_pattern("gallery"),
            caption="../report/gallery.rst",
            category="Renders",
            subcategory="{exp}_{dataset}",
        ),
    log:
        pipe.log("evaluate", "{exp}_{dataset}"),
    conda:
        "../../envs/gsdf.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        cfg=pipe.exp_params("evaluate"),
        split_dir=pipe.split_dir("test"),
        meshes=pipe.exp_dir("meshes_dir"),
        poses=pipe.exp_dir("poses_dir"),
    shell:
        "gsdf evaluate --split-dir {params.split_dir:q} --dataset-shards {input.gt:q}"
        " --recon-shards {input.recon:q} --meshes-dir {params.meshes:q}"
        " --poses-dir {params.poses:q}"
        " --train-annotations {input.train_annotations:q}"
        " --per-sample {output.per_sample:q}"
        " --metrics {output.metrics:q}"
        " --renders {output.best:q} {output.median:q} {output.worst:q}"
        " --gallery {output.gallery:q}"
        " --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"
