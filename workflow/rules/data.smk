# Data stage: phantom (embedded default) or a user's dataset -> manifest + cache -> split, frames.


rule phantom:
    output:
        sheet=P.phantom_sheet,
    params:
        phantom=config["dataset"]["phantom"],
    log:
        P.log("phantom"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/phantom.py"


rule ingest:
    input:
        unpack(get_ingest_inputs),
    output:
        manifest=P.manifest,
        cache=directory(P.cache_dir),
    params:
        layout=ingest_layout(),
        root=config["dataset"]["root"],
        size=config["data"]["size"],
        min_frames=config["dataset"]["min_frames"],
    log:
        P.log("ingest"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/ingest.py"


rule split:
    input:
        manifest=P.manifest,
    output:
        P.splits,
    params:
        ratios=config["split"]["ratios"],
        sizes=config["split"]["sizes"],
        seed=config["split"]["seed"],
        folds=config["split"]["folds"],
        use_source_split=config["split"]["use_source_split"],
    log:
        P.log("split"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/split.py"


rule frames:
    input:
        manifest=P.manifest,
        cache=P.cache_dir,
    output:
        P.frames("{T}", "{step}", "{strategy}"),
    log:
        P.log("frames", "T{T}_s{step}_{strategy}"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/frames.py"


rule record_run:
    output:
        config=report(P.resolved_config, caption="../report/record_run.rst",
                      category="Provenance", labels={"file": "resolved config"}),
        provenance=report(P.provenance, caption="../report/record_run.rst",
                          category="Provenance", labels={"file": "code and environment"}),
    params:
        # the one rule whose output is the whole resolved config (nothing reads it back)
        config=config,
    log:
        P.log("record_run"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/record_run.py"


rule data:
    input:
        P.manifest,
        P.splits,
        all_frame_files(),
