# Evaluation: per-case metrics per node, then one summary per experiment.


rule evaluate:
    input:
        pred=f"{NODE_DIR}/pred.npz",
        manifest=f"{R}/data/manifest.csv",
        splits=f"{R}/data/splits.json",
    output:
        f"{NODE_DIR}/metrics.csv",
    params:
        step="evaluate",
        fold=config["split"]["fold"],
    log:
        f"{R}/logs/evaluate/{{run}}/{{modality}}/loop{{loop}}.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/step.py"


rule summarize:
    input:
        get_summary_inputs,
    output:
        summary=f"{R}/experiments/{{exp}}/summary.json",
        per_case=f"{R}/experiments/{{exp}}/per_case.csv",
    params:
        step="summarize",
        nodes=get_summary_nodes,
    log:
        f"{R}/logs/summarize/{{exp}}.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/step.py"
