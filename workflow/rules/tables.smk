# Tables I-V and the cost table: cheap rules made only from summaries (never retrain).


rule table:
    input:
        get_table_inputs,
    output:
        csv=report(
            f"{R}/tables/{{table}}.csv",
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md=f"{R}/tables/{{table}}.md",
        tex=f"{R}/tables/{{table}}.tex",
        html=report(
            f"{R}/tables/{{table}}.html",
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{table} (rendered)"},
        ),
    log:
        f"{R}/logs/tables/{{table}}.log",
    params:
        step="table",
        config=config,
    localrule: True
    conda:
        ENV
    script:
        "../scripts/step.py"


rule tables:
    input:
        expand(f"{R}/tables/{{table}}.{{ext}}", table=TABLES, ext=["csv", "md", "tex", "html"]),


rule cost:
    input:
        get_cost_histories,
    output:
        f"{R}/tables/cost.csv",
    params:
        step="cost",
        benchmarks=get_cost_benchmarks,
    log:
        f"{R}/logs/tables/cost.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/step.py"
