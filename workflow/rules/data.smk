# Data stage: phantom (embedded default) or a user's dataset -> manifest + cache -> split, frames.


rule phantom:
    output:
        sheet=f"{R}/phantom/cases.csv",
    params:
        phantom=config["dataset"]["phantom"],
    log:
        f"{R}/logs/phantom.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/phantom.py"


rule ingest:
    input:
        get_ingest_root,
    output:
        manifest=f"{R}/data/manifest.csv",
        cache=directory(f"{R}/data/cache"),
    params:
        source=config["dataset"]["source"],
        root=config["dataset"]["root"],
        size=config["data"]["size"],
        min_frames=config["dataset"]["min_frames"],
    log:
        f"{R}/logs/ingest.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/ingest.py"


rule split:
    input:
        manifest=f"{R}/data/manifest.csv",
    output:
        f"{R}/data/splits.json",
    params:
        step="split",
        split=config["split"],
    log:
        f"{R}/logs/split.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/step.py"


rule frames:
    input:
        manifest=f"{R}/data/manifest.csv",
        cache=f"{R}/data/cache",
    output:
        f"{R}/data/frames/T{{T}}_s{{step}}_{{strategy}}.json",
    params:
        step="frames",
    log:
        f"{R}/logs/frames/T{{T}}_s{{step}}_{{strategy}}.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/step.py"


rule data:
    input:
        f"{R}/data/manifest.csv",
        f"{R}/data/splits.json",
        all_frame_files(),
