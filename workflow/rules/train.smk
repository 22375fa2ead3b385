# Training nodes (run, modality, loop) and the margins made from their predictions.
# Loop l >= 1 warm-starts from loop l-1 of its branch and reads the margins its source
# branch made in loop l-1 (self: itself; cross: the other modality; none, the epoch-matched
# control: no margins). Two diagnostic routings (Table II controls, never methods): oracle
# reads margins made from the other modality's ground truth, mismatch the other modality's
# margins of a different patient. Inference over every case happens at the end of the training job
# (pred.npz), so the margin rule is CPU-only. The node's whole training protocol is a param
# (iman.training.node.node_protocol, generated from the TrainConfig fields): changing any of
# it retrains the node and its downstream. A pretrained weight file is no input: the protocol
# holds its name and SHA-256 digest, checked at DAG time, so a new file's content retrains.


rule train:
    input:
        unpack(get_train_inputs),
    output:
        best=NODE_FILES.best,
        last=NODE_FILES.last,
        history=NODE_FILES.history,
        pred=NODE_FILES.pred,
        provenance=NODE_FILES.provenance,
    params:
        # the resumable state: not an output (Snakemake deletes a failed job's outputs)
        resume=NODE_FILES.resume,
        protocol=get_train_protocol,
        fold=get_node_fold,
        margins_threshold=get_margins_threshold,
    log:
        P.log("train", "{run}", "{modality}", "loop{loop}"),
    benchmark:
        P.benchmark(NODE)
    threads: 1
    resources:
        # per kind of job from the rehearsal (results/rehearsal/resources.csv), with
        # headroom; without it 4000 MB / 60 min (iman.training.resources, docs/slurm.md)
        gpu=0,
        mem_mb=get_train_mem_mb,
        runtime=get_train_runtime,
        gpu_mem_mb=get_train_gpu_mem_mb,
    conda:
        ENV
    script:
        "../scripts/train.py"


rule margins:
    input:
        pred=NODE_FILES.pred,
        manifest=P.manifest,
    output:
        P.margins(NODE, "{kernel}", "{filter}"),
    params:
        threshold=config["mmg"]["threshold"],
    log:
        P.log("margins", "{run}", "{modality}", "loop{loop}_k{kernel}_{filter}"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    localrule: True
    conda:
        ENV
    script:
        "../scripts/margins.py"


rule mismatched_margins:
    input:
        margins=P.margins(NODE, "{kernel}", "{filter}"),
        manifest=P.manifest,
        splits=P.splits,
    output:
        margins=P.mismatched_margins(NODE, "{kernel}", "{filter}"),
        donors=P.mismatch_donors(NODE, "{kernel}", "{filter}"),
    params:
        fold=get_node_fold,
        seed=get_mismatch_seed,
    log:
        P.log("margins", "{run}", "{modality}", "loop{loop}_k{kernel}_{filter}_mismatched"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    localrule: True
    conda:
        ENV
    script:
        "../scripts/mismatched_margins.py"


rule oracle_margins:
    input:
        manifest=P.manifest,
        cache=P.cache_dir,
    output:
        P.oracle_margins("{modality}", "{kernel}", "{filter}"),
    params:
        threshold=config["mmg"]["threshold"],
    log:
        P.log("margins", "oracle", "{modality}_k{kernel}_{filter}"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    localrule: True
    conda:
        ENV
    script:
        "../scripts/oracle_margins.py"
