# Figures: cheap rules made from saved predictions, histories and tables (never retrain).
# Changing one plotting input re-runs only that figure.


rule fig_qualitative:
    input:
        unpack(get_qualitative_inputs),
    output:
        png=report(P.figure("fig3_qualitative", "png"), caption="../report/fig3_qualitative.rst",
                   category="Figures", labels={"figure": "Fig. 3 qualitative"}),
        pdf=P.figure("fig3_qualitative", "pdf"),
    params:
        methods=table1_methods(),
        reference="iman",
        n_cases=config["figures"]["n_cases"],
    log:
        P.log("figures", "fig3_qualitative"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig_qualitative.py"


rule fig_margins:
    input:
        unpack(get_pathway_inputs),
    output:
        png=report(P.figure("margins_pathway", "png"), caption="../report/margins_pathway.rst",
                   category="Figures", labels={"figure": "X pathway: margins per loop"}),
        pdf=P.figure("margins_pathway", "pdf"),
    params:
        experiment=experiment_name(iman_spec(config)),
    log:
        P.log("figures", "margins_pathway"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig_margins.py"


rule fig_curves:
    input:
        get_curve_inputs,
    output:
        png=report(P.figure("training_curves_{table}", "png"),
                   caption="../report/training_curves.rst", category="Figures",
                   labels={"figure": "training curves {table}"}),
        pdf=P.figure("training_curves_{table}", "pdf"),
    params:
        panels=get_curve_params,
    log:
        P.log("figures", "training_curves_{table}"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig_curves.py"


rule fig_table4:
    input:
        table=P.table("table4", "csv"),
    output:
        png=report(P.figure("table4_heatmap", "png"), caption="../report/table4_heatmap.rst",
                   category="Figures", labels={"figure": "Table IV heatmap"}),
        pdf=P.figure("table4_heatmap", "pdf"),
    log:
        P.log("figures", "table4_heatmap"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig_table4.py"


rule fig_ablation:
    input:
        table=P.table("{table}", "csv"),
    output:
        png=report(P.figure("ablation_{table}", "png"), caption="../report/ablation_bars.rst",
                   category="Figures", labels={"figure": "ablation bars {table}"}),
        pdf=P.figure("ablation_{table}", "pdf"),
    log:
        P.log("figures", "ablation_{table}"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig_ablation.py"


rule fig_distribution:
    input:
        unpack(get_distribution_inputs),
    output:
        png=report(P.figure("dsc_distribution", "png"), caption="../report/dsc_distribution.rst",
                   category="Figures", labels={"figure": "DSC distribution"}),
        pdf=P.figure("dsc_distribution", "pdf"),
    params:
        methods=table1_methods(),
    log:
        P.log("figures", "dsc_distribution"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig_distribution.py"


rule fig_forest:
    input:
        stats=P.stats,
    output:
        png=report(P.figure("forest_dsc", "png"), caption="../report/forest.rst",
                   category="Figures", labels={"figure": "paired differences (forest)"}),
        pdf=P.figure("forest_dsc", "pdf"),
    log:
        P.log("figures", "forest_dsc"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig_forest.py"


rule figures:
    input:
        expand(P.figure("{name}", "{ext}"), ext=["png", "pdf"], name=FIGURES),
        P.fingerprint_report("html"),
        P.fingerprint_report("png"),
