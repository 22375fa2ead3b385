# Figures: cheap rules made from saved predictions, histories and tables (never retrain).
# Touching one plotting input re-runs only that figure.


rule fig_qualitative:
    input:
        unpack(get_qualitative_inputs),
    output:
        png=report(f"{FIG}/fig3_qualitative.png", caption="../report/fig3_qualitative.rst",
                   category="Figures", labels={"figure": "Fig. 3 qualitative"}),
        pdf=f"{FIG}/fig3_qualitative.pdf",
    params:
        methods=table1_methods(),
        n_cases=config["figures"]["n_cases"],
    log:
        f"{R}/logs/figures/fig3_qualitative.log",
    localrule: True
    conda:
        ENV
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
        loops=get_iman_loops,
    log:
        f"{R}/logs/figures/margins_pathway.log",
    localrule: True
    conda:
        ENV
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
    conda:
        ENV
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
    conda:
        ENV
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
    conda:
        ENV
    script:
        "../scripts/fig_ablation.py"


rule fig_distribution:
    input:
        get_distribution_inputs,
    output:
        png=report(f"{FIG}/dsc_distribution.png", caption="../report/dsc_distribution.rst",
                   category="Figures", labels={"figure": "DSC distribution"}),
        pdf=f"{FIG}/dsc_distribution.pdf",
    params:
        methods=table1_methods(),
    log:
        f"{R}/logs/figures/dsc_distribution.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig_distribution.py"


rule figures:
    input:
        expand(f"{FIG}/{{name}}.{{ext}}", ext=["png", "pdf"], name=FIGURES),
