# Figures: cheap rules made from saved predictions, histories and tables (never retrain).
# Touching one plotting input re-runs only that figure.
FIG = R + "/figures"


def iman_spec():
    """The IMAN experiment of Table I (first seed)."""
    return table_specs(config, "table1")[-1][1][0]


def table1_first_seed() -> list:
    """(method, spec) of every Table I row, first seed."""
    return [(labels["method"], specs[0]) for labels, specs in table_specs(config, "table1")]


def get_qualitative_inputs(wildcards) -> dict[str, list[str]]:
    """Summaries and every candidate-loop prediction of the Table I rows."""
    rows = table1_first_seed()
    return {
        "summaries": [f"{R}/experiments/{experiment_name(s)}/summary.json" for _, s in rows],
        "preds": [node_dir(n) + "/pred.npz" for _, s in rows for n in experiment_nodes(s)],
        "manifest": f"{R}/data/manifest.csv",
    }


def get_pathway_inputs(wildcards) -> dict[str, list[str]]:
    """Predictions of loops 0..L of both IMAN branches and the margins each received."""
    spec = iman_spec()
    preds, margins = [], []
    for loop in range(spec.loops + 1):
        for m in ("us", "ceus"):
            node = node_for(spec, m, loop)
            preds.append(node_dir(node) + "/pred.npz")
            if loop >= 1:
                src, (k, f) = margin_source(node)
                margins.append(node_dir(src) + f"/margins_k{k}_{f}.npz")
    return {"preds": preds, "margins": margins,
            "per_case": f"{R}/experiments/{experiment_name(spec)}/per_case.csv",
            "manifest": f"{R}/data/manifest.csv"}


def curve_specs(table: str) -> list:
    """(label, spec) of the ablation rows of Table II or V that train loops (first seed)."""
    out = []
    for labels, specs in table_specs(config, table):
        spec = specs[0]
        if spec.loops:
            tag = "MMG" if spec.loops == 1 else ("IMAN" if spec.routing == "cross" else "MMG+ITP")
            out.append((f"{labels.get('backbone', spec.method)} {tag}", spec))
    return out


def get_curve_inputs(wildcards) -> list[str]:
    """history.csv of loops 0..L of each branch of the table's looped rows."""
    return [node_dir(node_for(s, m, loop)) + "/history.csv"
            for _, s in curve_specs(wildcards.table)
            for m in ("us", "ceus") for loop in range(s.loops + 1)]


def get_curve_params(wildcards) -> dict[str, list[str]]:
    """Panel label -> ordered history files (loops concatenated)."""
    panels = {}
    for label, s in curve_specs(wildcards.table):
        for m in ("us", "ceus"):
            panels[f"{label} / {m.upper()}"] = [
                node_dir(node_for(s, m, loop)) + "/history.csv" for loop in range(s.loops + 1)]
    return panels


rule fig_qualitative:
    input:
        unpack(get_qualitative_inputs),
    output:
        png=report(f"{FIG}/fig3_qualitative.png", caption="../report/fig3_qualitative.rst",
                   category="Figures", labels={"figure": "Fig. 3 qualitative"}),
        pdf=f"{FIG}/fig3_qualitative.pdf",
    params:
        methods=[m for m, _ in table1_first_seed()],
        n_cases=config["figures"]["n_cases"],
    log:
        f"{R}/logs/figures/fig3_qualitative.log",
    localrule: True
    script:
        "../scripts/fig_qualitative.py"


rule fig_margins:
    input:
        unpack(get_pathway_inputs),
    output:
        png=report(f"{FIG}/margins_pathway.png", caption="../report/margins_pathway.rst",
                   category="Figures", labels={"figure": "X pathway: margins per loop"}),
        pdf=f"{FIG}/margins_pathway.pdf",
    params:
        loops=iman_spec().loops,
    log:
        f"{R}/logs/figures/margins_pathway.log",
    localrule: True
    script:
        "../scripts/fig_margins.py"


rule fig_curves:
    input:
        get_curve_inputs,
    output:
        png=report(f"{FIG}/training_curves_{{table}}.png",
                   caption="../report/training_curves.rst", category="Figures",
                   labels={"figure": "training curves {table}"}),
        pdf=f"{FIG}/training_curves_{{table}}.pdf",
    params:
        panels=get_curve_params,
    log:
        f"{R}/logs/figures/training_curves_{{table}}.log",
    localrule: True
    script:
        "../scripts/fig_curves.py"


rule fig_table4:
    input:
        f"{R}/tables/table4.csv",
    output:
        png=report(f"{FIG}/table4_heatmap.png", caption="../report/table4_heatmap.rst",
                   category="Figures", labels={"figure": "Table IV heatmap"}),
        pdf=f"{FIG}/table4_heatmap.pdf",
    log:
        f"{R}/logs/figures/table4_heatmap.log",
    localrule: True
    script:
        "../scripts/fig_table4.py"


rule fig_ablation:
    input:
        f"{R}/tables/{{table}}.csv",
    output:
        png=report(f"{FIG}/ablation_{{table}}.png", caption="../report/ablation_bars.rst",
                   category="Figures", labels={"figure": "ablation bars {table}"}),
        pdf=f"{FIG}/ablation_{{table}}.pdf",
    log:
        f"{R}/logs/figures/ablation_{{table}}.log",
    localrule: True
    script:
        "../scripts/fig_ablation.py"


rule fig_distribution:
    input:
        [f"{R}/experiments/{experiment_name(s)}/per_case.csv" for _, s in table1_first_seed()],
    output:
        png=report(f"{FIG}/dsc_distribution.png", caption="../report/dsc_distribution.rst",
                   category="Figures", labels={"figure": "DSC distribution"}),
        pdf=f"{FIG}/dsc_distribution.pdf",
    params:
        methods=[m for m, _ in table1_first_seed()],
    log:
        f"{R}/logs/figures/dsc_distribution.log",
    localrule: True
    script:
        "../scripts/fig_distribution.py"


rule figures:
    input:
        expand(f"{FIG}/{{name}}.{{ext}}", ext=["png", "pdf"],
               name=["fig3_qualitative", "margins_pathway", "table4_heatmap",
                     "ablation_table2", "ablation_table5", "training_curves_table2",
                     "training_curves_table5", "dsc_distribution"]),
