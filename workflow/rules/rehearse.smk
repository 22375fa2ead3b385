# Rehearsal (docs/paper-protocol.md, docs/slurm.md): one representative of every kind of
# training job runs a few steps at the configured geometry; results/rehearsal/resources.csv
# records time and memory per kind, and the train rule's resources come from it.


rule rehearse:
    output:
        resources=P.rehearsal_resources,
        summary=P.rehearsal_summary,
    params:
        jobs=get_rehearsal_jobs,
        data=get_rehearsal_data,
    log:
        P.log("rehearse"),
    # the kinds run side by side; Snakemake caps a rule's threads at --cores locally, and on a
    # cluster (no --cores) this is what the rehearsal job asks for
    threads: 8
    resources:
        mem_mb=16000,
        runtime=120,
    conda:
        ENV
    script:
        "../scripts/rehearse.py"
