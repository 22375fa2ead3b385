# Shared helpers: config validation at the door, wildcard constraints and the input
# functions of every rule. Logic (names, routing, paths) lives in src/iman; these functions
# only map wildcards to file names.
import os

from iman.config import validate_config
from iman.experiments import (
    TABLES,
    Node,
    all_table_nodes,
    curve_specs,
    experiment_name,
    experiment_nodes,
    iman_spec,
    margin_source,
    node_for,
    parent_node,
    parse_name,
    table_specs,
)
from iman.paths import Paths

config.update(validate_config(config))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

R = config["results"]
P = Paths(R)
NODE_DIR = f"{R}/runs/{{run}}/{{modality}}/loop{{loop}}"
FIG = f"{R}/figures"
ENV = "../envs/iman.yaml"
FIGURES = ["fig3_qualitative", "margins_pathway", "table4_heatmap", "ablation_table2",
           "ablation_table5", "training_curves_table2", "training_curves_table5",
           "dsc_distribution"]


wildcard_constraints:
    run=r"[a-z0-9]+\.[a-z0-9_]+__[a-z]+__[^/]+__seed\d+",
    exp=r"[a-z0-9]+\.[a-z0-9_]+__[^/]+__L\d+__seed\d+",
    modality="us|ceus",
    loop=r"\d+",
    kernel=r"\d+",
    filter="none|mean|gaussian",
    table="|".join(TABLES),
    strategy="middle|keyframes",


def wc_node(wildcards) -> Node:
    """The node named by a job's wildcards."""
    return Node(wildcards.run, wildcards.modality, int(wildcards.loop))


# ---- data ----------------------------------------------------------------------------------


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
    return [P.frames(T, fr["step"], fr["strategy"]) for T in Ts]


# ---- training and evaluation -----------------------------------------------------------------


def get_train_inputs(wildcards) -> dict[str, object]:
    """Data files, plus warm-start weights and margins for loops >= 1."""
    node = wc_node(wildcards)
    spec = parse_name(node.run)
    inputs = {
        "manifest": P.manifest,
        "splits": P.splits,
        "frames": [P.frames(spec.T, spec.step, spec.strategy)] if spec.T is not None else [],
    }
    if node.loop >= 1:
        inputs["init"] = P.node_file(parent_node(node), "best.pt")
    source = margin_source(node)
    if source is not None:
        src, (k, f) = source
        inputs["margins"] = P.node_file(src, P.margins_name(k, f))
    return inputs


def get_summary_inputs(wildcards) -> list[str]:
    """Per-case metrics of every node the experiment chooses among."""
    return [P.node_file(n, "metrics.csv") for n in experiment_nodes(parse_name(wildcards.exp))]


def get_summary_nodes(wildcards) -> list[list]:
    """(run, modality, loop) of each node, aligned with get_summary_inputs."""
    return [[n.run, n.modality, n.loop] for n in experiment_nodes(parse_name(wildcards.exp))]


# ---- tables and cost -------------------------------------------------------------------------


def get_table_inputs(wildcards) -> list[str]:
    """Summaries of every row and seed of a table."""
    return [P.summary(experiment_name(s))
            for _, specs in table_specs(config, wildcards.table) for s in specs]


def get_cost_histories(wildcards) -> list[str]:
    """history.csv of every training node."""
    return [P.node_file(n, "history.csv") for n in all_table_nodes(config)]


def get_cost_benchmarks(wildcards) -> list[str]:
    """Benchmark TSV of every training node (written beside the job, not a rule output)."""
    return [P.benchmark(n) for n in all_table_nodes(config)]


# ---- figures ---------------------------------------------------------------------------------


def table1_rows() -> list:
    """(method, spec) of every Table I row, first seed."""
    return [(labels["method"], specs[0]) for labels, specs in table_specs(config, "table1")]


def table1_methods() -> list[str]:
    """Method names of the Table I rows."""
    return [m for m, _ in table1_rows()]


def get_qualitative_inputs(wildcards) -> dict[str, list[str]]:
    """Summaries and every candidate-loop prediction of the Table I rows."""
    rows = table1_rows()
    return {
        "summaries": [P.summary(experiment_name(s)) for _, s in rows],
        "preds": [P.node_file(n, "pred.npz") for _, s in rows for n in experiment_nodes(s)],
        "manifest": P.manifest,
    }


def get_distribution_inputs(wildcards) -> list[str]:
    """Per-case test rows of every Table I row."""
    return [P.per_case(experiment_name(s)) for _, s in table1_rows()]


def get_pathway_inputs(wildcards) -> dict[str, list[str]]:
    """Predictions of loops 0..L of both IMAN branches and the margins each received."""
    spec = iman_spec(config)
    preds, margins = [], []
    for loop in range(spec.loops + 1):
        for m in ("us", "ceus"):
            node = node_for(spec, m, loop)
            preds.append(P.node_file(node, "pred.npz"))
            source = margin_source(node)
            if source is not None:
                src, (k, f) = source
                margins.append(P.node_file(src, P.margins_name(k, f)))
    return {"preds": preds, "margins": margins, "per_case": P.per_case(experiment_name(spec)),
            "manifest": P.manifest}


def get_curve_params(wildcards) -> dict[str, list[str]]:
    """Panel label -> ordered history files (loops concatenated)."""
    return {f"{label} / {m.upper()}": [P.node_file(node_for(s, m, loop), "history.csv")
                                       for loop in range(s.loops + 1)]
            for label, s in curve_specs(config, wildcards.table) for m in ("us", "ceus")}


def get_curve_inputs(wildcards) -> list[str]:
    """history.csv of loops 0..L of each branch of the table's looped rows."""
    return [f for files in get_curve_params(wildcards).values() for f in files]


def get_iman_loops(wildcards) -> int:
    """Number of loops of the IMAN experiment."""
    return iman_spec(config).loops
