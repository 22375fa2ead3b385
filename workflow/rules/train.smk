# Training nodes (run, modality, loop) and the margins made from their predictions.
# Loop l >= 1 warm-starts from loop l-1 of its branch and reads the margins its source
# branch made in loop l-1 (self: itself; cross: the other modality).


rule train:
    input:
        unpack(get_train_inputs),
    output:
        best=NODE_DIR + "/best.pt",
        last=NODE_DIR + "/last.pt",
        history=NODE_DIR + "/history.csv",
        pred=NODE_DIR + "/pred.npz",
    log:
        R + "/logs/train/{run}/{modality}/loop{loop}.log",
    benchmark:
        R + "/benchmarks/train/{run}/{modality}/loop{loop}.tsv"
    threads: 1
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/train.py"


rule margins:
    input:
        pred=NODE_DIR + "/pred.npz",
        manifest=f"{R}/data/manifest.csv",
    output:
        NODE_DIR + "/margins_k{kernel}_{filter}.npz",
    params:
        threshold=config["mmg"]["threshold"],
    log:
        R + "/logs/margins/{run}/{modality}/loop{loop}_k{kernel}_{filter}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    localrule: True
    script:
        "../scripts/margins.py"
