# Tables I-V: cheap rules made only from experiment summaries (restyling never retrains).


rule table:
    input:
        get_table_inputs,
    output:
        csv=report(
            f"{R}/tables/{{table}}.csv",
            caption="../report/{table}.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md=f"{R}/tables/{{table}}.md",
        tex=f"{R}/tables/{{table}}.tex",
    log:
        f"{R}/logs/tables/{{table}}.log",
    localrule: True
    script:
        "../scripts/table.py"


rule tables:
    input:
        expand(f"{R}/tables/{{table}}.{{ext}}", table=TABLES, ext=["csv", "md", "tex"]),
