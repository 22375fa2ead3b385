# Training nodes (run, modality, loop) and the margins made from their predictions.
# Loop l >= 1 warm-starts from loop l-1 of its branch and reads the margins its source
# branch made in loop l-1 (self: itself; cross: the other modality; none, the epoch-matched
# control: no margins). Inference over every case happens at the end of the training job
# (pred.npz), so the margin rule is CPU-only.


rule train:
    input:
        unpack(get_train_inputs),
    output:
        best=f"{NODE_DIR}/best.pt",
        last=f"{NODE_DIR}/last.pt",
        history=f"{NODE_DIR}/history.csv",
        pred=f"{NODE_DIR}/pred.npz",
    log:
        f"{R}/logs/train/{{run}}/{{modality}}/loop{{loop}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{run}}/{{modality}}/loop{{loop}}.tsv"
    threads: 1
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/train.py"


rule margins:
    input:
        pred=f"{NODE_DIR}/pred.npz",
        manifest=f"{R}/data/manifest.csv",
    output:
        f"{NODE_DIR}/margins_k{{kernel}}_{{filter}}.npz",
    params:
        step="margins",
        threshold=config["mmg"]["threshold"],
    log:
        f"{R}/logs/margins/{{run}}/{{modality}}/loop{{loop}}_k{{kernel}}_{{filter}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    localrule: True
    conda:
        ENV
    script:
        "../scripts/step.py"
