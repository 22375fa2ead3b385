# Data stage: phantom (embedded default) or a user's dataset -> manifest + cache -> split, frames.


def get_ingest_root(wildcards) -> list[str]:
    """The case sheet to ingest when it is a file the DAG knows (phantom or sheet)."""
    src = config["dataset"]["source"]
    if src == "phantom":
        return [f"{R}/phantom/cases.csv"]
    if src == "sheet":
        return [config["dataset"]["root"]]
    return []


def all_frame_files() -> list[str]:
    """Frame files every configured table needs."""
    fr = config["frames"]
    Ts = sorted({fr["T"], *config["tables"]["table3"]["frames"]})
    return [frames_file(T, fr["step"], fr["strategy"]) for T in Ts]


rule phantom:
    output:
        sheet=f"{R}/phantom/cases.csv",
    params:
        phantom=config["dataset"]["phantom"],
    log:
        f"{R}/logs/phantom.log",
    localrule: True
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
    script:
        "../scripts/ingest.py"


rule split:
    input:
        manifest=f"{R}/data/manifest.csv",
    output:
        f"{R}/data/splits.json",
    params:
        split=config["split"],
    log:
        f"{R}/logs/split.log",
    localrule: True
    script:
        "../scripts/split.py"


rule frames:
    input:
        manifest=f"{R}/data/manifest.csv",
        cache=f"{R}/data/cache",
    output:
        f"{R}/data/frames/T{{T}}_s{{step}}_{{strategy}}.json",
    log:
        f"{R}/logs/frames/T{{T}}_s{{step}}_{{strategy}}.log",
    localrule: True
    script:
        "../scripts/frames.py"


rule data:
    input:
        f"{R}/data/manifest.csv",
        f"{R}/data/splits.json",
        all_frame_files(),
