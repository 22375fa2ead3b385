# Tables I-V and the cost table: cheap rules made only from summaries (never retrain).


rule table_data:
    input:
        unpack(get_table_inputs),
    output:
        csv=report(
            P.table("{table}", "csv"),
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        marks=P.table_marks("{table}"),
    log:
        P.log("tables", "{table}_data"),
    params:
        rows=get_table_rows,
    localrule: True
    conda:
        ENV
    script:
        "../scripts/table_data.py"


rule table:
    input:
        csv=P.table("{table}", "csv"),
        marks=P.table_marks("{table}"),
    output:
        md=P.table("{table}", "md"),
        tex=P.table("{table}", "tex"),
        html=report(
            P.table("{table}", "html"),
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{table} (rendered)"},
        ),
    log:
        P.log("tables", "{table}"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/table.py"


rule table_stats:
    input:
        unpack(get_stats_inputs),
    output:
        P.table_stats("{table}"),
    params:
        comparisons=get_stats_comparisons,
    log:
        P.log("tables", "{table}_stats"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/table_stats.py"


rule stats:
    input:
        expand(P.table_stats("{table}"), table=TABLES),
    output:
        report(P.stats, caption="../report/stats.rst", category="Tables",
               labels={"table": "paired comparisons"}),
    log:
        P.log("tables", "stats"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/stats.py"


rule tables:
    input:
        expand(P.table("{table}", "{ext}"), table=TABLES, ext=["csv", "md", "tex", "html"]),
        P.stats,
        P.resolved_config,
        P.provenance,


rule cost:
    input:
        histories=get_cost_histories,
        provenances=get_cost_provenances,
    output:
        P.cost,
    params:
        benchmarks=get_cost_benchmarks,
    log:
        P.log("tables", "cost"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/cost.py"
