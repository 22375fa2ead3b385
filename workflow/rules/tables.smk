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


def all_table_nodes() -> list:
    """Every training node any configured table reports from (and their earlier loops)."""
    nodes = {}
    for table in TABLES:
        for _, specs in table_specs(config, table):
            for spec in specs:
                for n in experiment_nodes(spec):
                    for loop in range(n.loop + 1):
                        node = node_for(spec, n.modality, loop)
                        nodes[node] = None
    return list(nodes)


def get_cost_histories(wildcards) -> list[str]:
    """history.csv of every training node."""
    return [node_dir(n) + "/history.csv" for n in all_table_nodes()]


def get_cost_benchmarks(wildcards) -> list[str]:
    """benchmark TSV of every training node (written beside the job, not a rule output)."""
    return [f"{R}/benchmarks/train/{n.run}/{n.modality}/loop{n.loop}.tsv"
            for n in all_table_nodes()]


rule cost:
    input:
        get_cost_histories,
    output:
        f"{R}/tables/cost.csv",
    params:
        benchmarks=get_cost_benchmarks,
    log:
        f"{R}/logs/tables/cost.log",
    localrule: True
    script:
        "../scripts/cost.py"
