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


rule fingerprint:
    input:
        manifest=P.manifest,
        cache=P.cache_dir,
    output:
        P.fingerprint,
    log:
        P.log("fingerprint"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fingerprint.py"


# Cases per split subset. A checkpoint: the first untrained node's input function checks the
# config against the fingerprint and these counts once they exist (iman.data.protocol
# .check_fit_once), so an error stops the run before any training job. It has no params: it
# re-runs only when the data or the split change, which retrain everything anyway, and a
# changed MMG kernel or frame count re-checks without a job.
checkpoint split_counts:
    input:
        fingerprint=P.fingerprint,
        splits=P.splits,
    output:
        P.split_counts,
    log:
        P.log("split_counts"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/split_counts.py"


# The same check written down for the record and the report (no training job depends on it).
rule check_protocol:
    input:
        fingerprint=P.fingerprint,
        split_counts=P.split_counts,
    output:
        P.protocol_check,
    params:
        settings=get_protocol_settings(),
    log:
        P.log("check_protocol"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/check_protocol.py"


rule fingerprint_report:
    input:
        fingerprint=P.fingerprint,
        split_counts=P.split_counts,
        protocol_check=P.protocol_check,
    output:
        table=report(P.fingerprint_report("html"), caption="../report/fingerprint.rst",
                     category="Data", labels={"figure": "dataset fingerprint (table)"}),
        png=report(P.fingerprint_report("png"), caption="../report/fingerprint.rst",
                   category="Data", labels={"figure": "dataset fingerprint (histograms)"}),
    log:
        P.log("figures", "data_fingerprint"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fingerprint_report.py"


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
        P.fingerprint,
        P.protocol_check,
        all_frame_files(),
