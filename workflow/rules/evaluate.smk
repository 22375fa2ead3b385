# Evaluation: per-case metrics per node, then one summary per experiment.


rule evaluate:
    input:
        pred=NODE_FILES.pred,
        manifest=P.manifest,
        cache=P.cache_dir,
        splits=P.splits,
    output:
        NODE_FILES.metrics,
    params:
        fold=get_node_fold,
    log:
        P.log("evaluate", "{run}", "{modality}", "loop{loop}"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/evaluate.py"


rule summarize:
    input:
        unpack(get_summary_inputs),
    output:
        summary=P.summary("{exp}"),
        per_case=P.per_case("{exp}"),
    log:
        P.log("summarize", "{exp}"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/summarize.py"
