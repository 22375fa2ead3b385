# Shared helpers: wildcard constraints and the input/params functions of every rule. Each
# rule gets exactly the slice of the (already resolved, see the Snakefile) config it uses,
# through a named function here, so Snakemake's own rerun triggers (params, input) decide
# what a config change re-runs. Logic (names, routing, paths) lives in src/iman.
# The config is fixed once the Snakefile has resolved it, so what an input function derives
# from the config alone is computed once per process (functools.cache): a job's input
# function costs the same whatever the size of the sweep (docs/performance.md).
import functools
import os

from iman.experiments import (
    MarginSource,
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
    table_comparisons,
    table_specs,
    used_models,
)
from iman.config import ConfigError
from iman.data.protocol import check_fit_once
from iman.data.protocol import protocol_settings
from iman.names import (
    MODALITIES,
    TABLES,
    WILDCARD_CONSTRAINTS,
    node_key,
    per_case_key,
    pred_key,
    summary_key,
)
from iman.paths import Paths
from iman.rehearsal import data_plan, rehearsal_jobs
from iman.training.kinds import node_kind
from iman.training.node import node_protocol
from iman.training.resources import JobResources, job_resources, read_resources
from iman.training.weights import WeightsError, check_weights_once

R = config["results"]
P = Paths(R)
# wildcard patterns of the path grammar (iman.paths) for the rules' output declarations
NODE = Node("{run}", "{modality}", "{loop}")
NODE_FILES = P.node(NODE)
ENV = "../envs/iman.yaml"
FIGURES = ["fig3_qualitative", "margins_pathway", "table4_heatmap", "ablation_table2",
           "ablation_table5", "training_curves_table2", "training_curves_table5",
           "dsc_distribution", "forest_dsc"]


# the name grammar and enums of iman.names, one constraint per wildcard of the path grammar
wildcard_constraints:
    **WILDCARD_CONSTRAINTS,


def wc_node(wildcards) -> Node:
    """The node named by a job's wildcards."""
    return Node(wildcards.run, wildcards.modality, int(wildcards.loop))


# ---- data ----------------------------------------------------------------------------------


def get_ingest_inputs(wildcards) -> dict[str, str]:
    """The case sheet to ingest when it is a file the DAG knows (phantom or sheet)."""
    src = config["dataset"]["source"]
    if src == "phantom":
        return {"root": P.phantom_sheet}
    if src == "sheet":
        return {"root": config["dataset"]["root"]}
    return {}


def ingest_layout() -> str:
    """Reader of the dataset: the phantom is written as a case sheet."""
    src = config["dataset"]["source"]
    return "sheet" if src in ("sheet", "phantom") else src


def get_protocol_settings() -> dict:
    """The config slice the protocol check reads (iman.data.protocol)."""
    return protocol_settings(config)


def all_frame_files() -> list[str]:
    """Frame files every configured table needs."""
    fr = config["frames"]
    Ts = sorted({fr["T"], *config["tables"]["table3"]["frames"]})
    return [P.frames(T, fr["step"], fr["strategy"]) for T in Ts]


# ---- training and evaluation -----------------------------------------------------------------


def get_train_inputs(wildcards) -> dict[str, str]:
    """Data files, warm-start weights and margins for loops >= 1.

    The pretrained weight file is not an input (the node is keyed on its content digest,
    a param): the first untrained node checks every file the run needs, once, so targets
    without training never need weights and a run that does stops before its first job.
    """
    node = wc_node(wildcards)
    untrained = not os.path.exists(P.node(node).provenance)
    if untrained:
        check_weights()
    inputs = {"manifest": P.manifest, "cache": P.cache_dir, "splits": P.splits,
              "split_counts": checkpoints.split_counts.get().output[0]}
    check_fit(announce=untrained)
    return {**inputs, **node_reads(node)}


@functools.cache
def node_reads(node: Node) -> dict[str, str]:
    """The frames, warm-start weights and margins ``node`` trains on, once per node (a job's
    input function runs again when the checkpoint updates the DAG). Read-only."""
    spec = parse_name(node.run)
    files = {}
    if spec.T is not None:
        files["frames"] = P.frames(spec.T, spec.step, spec.strategy)
    if node.loop >= 1:
        files["init"] = P.node(parent_node(node)).best
    source = node_margin_source(node)
    if source is not None:
        files["margins"] = P.margins_of(source)
    return files


@functools.cache
def node_margin_source(node: Node) -> MarginSource | None:
    """margin_source, once per node (read by the inputs and the params of its job)."""
    return margin_source(node)


@functools.cache
def run_models() -> frozenset[tuple[str, str]]:
    """(method, variant) of every network the configured tables train."""
    return frozenset(used_models(config))


@functools.cache
def check_weights() -> None:
    """Every weight file the run needs (iman.training.weights.check_weights_once), checked
    once per process; a fault is not cached, so every untrained node reports it."""
    try:
        check_weights_once(config["model"], run_models())
    except WeightsError as err:
        raise WorkflowError(str(err)) from None


@functools.cache
def check_fit(announce: bool) -> None:
    """The config against the data (fingerprint, split counts): an error stops the run
    before any training job (not cached: every node raises it); the warning list is printed
    once by the main process when ``announce`` (an untrained node)."""
    try:
        check_fit_once(get_protocol_settings(), P.fingerprint, P.split_counts,
                       announce=announce and workflow.is_main_process)
    except ConfigError as err:
        raise WorkflowError(str(err)) from None


def get_train_protocol(wildcards) -> dict:
    """The node's full training protocol (a change retrains it and its downstream)."""
    return train_protocol(wc_node(wildcards))


@functools.cache
def train_protocol(node: Node) -> dict:
    """node_protocol, once per node (the weight file's digest is read once). Read-only."""
    return node_protocol(config, node)


def get_node_fold(wildcards) -> int:
    """The split fold a node trains and is evaluated on (0: the hold-out split)."""
    return parse_name(wildcards.run).fold or 0


def get_mismatch_seed(wildcards) -> int:
    """Seed of the mismatched-pairs derangement: the source node's run seed."""
    return parse_name(wildcards.run).seed


def get_margins_threshold(wildcards) -> float | None:
    """MMG threshold of the margins the node reads (recorded in its provenance)."""
    return config["mmg"]["threshold"] if node_margin_source(wc_node(wildcards)) else None


def get_summary_inputs(wildcards) -> dict[str, str]:
    """metrics.csv and provenance.json of every node the experiment chooses among."""
    files = {}
    for n in experiment_nodes(parse_name(wildcards.exp)):
        files[node_key(n, "metrics")] = P.node(n).metrics
        files[node_key(n, "provenance")] = P.node(n).provenance
    return files


# ---- tables and cost -------------------------------------------------------------------------


def get_table_rows(wildcards) -> list:
    """[labels, [experiment name per seed]] of every row of one table."""
    return [[labels, [experiment_name(s) for s in specs]]
            for labels, specs in table_specs(config, wildcards.table)]


def get_table_inputs(wildcards) -> dict[str, str]:
    """Summary and per-case rows of every row and run of a table (by experiment name) and the
    table's paired comparisons."""
    files = {"stats": P.table_stats(wildcards.table)}
    for _, exps in get_table_rows(wildcards):
        for exp in exps:
            files[summary_key(exp)] = P.summary(exp)
            files[per_case_key(exp)] = P.per_case(exp)
    return files


def get_stats_comparisons(wildcards) -> list:
    """[table, row, reference, row experiments, reference experiments] of one table."""
    t = wildcards.table
    return [[t, row, ref, a, b] for row, ref, a, b in table_comparisons(config, t)]


def get_stats_inputs(wildcards) -> dict[str, str]:
    """per_case.csv of every experiment a comparison of the table reads."""
    return {per_case_key(e): P.per_case(e)
            for *_, a, b in get_stats_comparisons(wildcards) for e in (*a, *b)}


def get_cost_histories(wildcards) -> list[str]:
    """history.csv of every training node."""
    return [P.node(n).history for n in all_table_nodes(config)]


def get_cost_provenances(wildcards) -> list[str]:
    """provenance.json (the device it trained on) of every training node."""
    return [P.node(n).provenance for n in all_table_nodes(config)]


def get_cost_benchmarks(wildcards) -> list[str]:
    """Benchmark TSV of every training node (written beside the job, not a rule output)."""
    return [P.benchmark(n) for n in all_table_nodes(config)]


# ---- figures ---------------------------------------------------------------------------------


def table1_rows() -> list:
    """(method, spec) of every Table I row, first seed (IMAN's row is named 'iman')."""
    return [(labels["method"], specs[0]) for labels, specs in table_specs(config, "table1")]


def table1_methods() -> list[str]:
    """Method names of the Table I rows."""
    return [m for m, _ in table1_rows()]


def get_qualitative_inputs(wildcards) -> dict[str, str]:
    """Summary and per-case rows of each Table I row, every candidate-loop prediction, and
    the cached cases (manifest)."""
    files = {"manifest": P.manifest, "cache": P.cache_dir}
    for method, spec in table1_rows():
        name = experiment_name(spec)
        files[summary_key(method)] = P.summary(name)
        files[per_case_key(method)] = P.per_case(name)
        for n in experiment_nodes(spec):
            files[pred_key(method, n)] = P.node(n).pred
    return files


def get_distribution_inputs(wildcards) -> dict[str, str]:
    """Per-case test rows of every Table I row."""
    return {per_case_key(m): P.per_case(experiment_name(s)) for m, s in table1_rows()}


def get_pathway_inputs(wildcards) -> dict[str, str]:
    """Predictions of loops 0..L of both IMAN branches, the margins each received, the
    IMAN per-case rows (to pick the case) and the manifest."""
    spec = iman_spec(config)
    name = experiment_name(spec)
    files = {per_case_key(name): P.per_case(name), "manifest": P.manifest, "cache": P.cache_dir}
    for loop in range(spec.loops + 1):
        for m in MODALITIES:
            node = node_for(spec, m, loop)
            files[node_key(node, "pred")] = P.node(node).pred
            source = margin_source(node)
            if source is not None:
                files[node_key(node, "margin")] = P.margins_of(source)
    return files


def get_curve_params(wildcards) -> dict[str, list[str]]:
    """Panel label -> ordered history files (loops concatenated)."""
    return {f"{label} / {m.upper()}": [P.node(node_for(s, m, loop)).history
                                       for loop in range(s.loops + 1)]
            for label, s in curve_specs(config, wildcards.table) for m in MODALITIES}


def get_curve_inputs(wildcards) -> list[str]:
    """history.csv of loops 0..L of each branch of the table's looped rows."""
    return [f for files in get_curve_params(wildcards).values() for f in files]


# ---- rehearsal and the train rule's resources (docs/slurm.md) --------------------------------


def rehearsal_file() -> str:
    """The resources file the train rule reads (rehearsal.resources, else the default)."""
    return config["rehearsal"]["resources"] or P.rehearsal_resources


def get_rehearsal_jobs(wildcards) -> list:
    """One job per kind: its representative node, protocol, frames and margins."""
    return rehearsal_jobs(config, all_table_nodes(config))


def get_rehearsal_data(wildcards):
    """Where the rehearsal's cases come from (prepared data or a phantom) and the case
    count that sizes the planned jobs' epochs."""
    return data_plan(config, P, config["rehearsal"]["cases"])


def _train_resources(wildcards, attempt: int) -> JobResources:
    """The job's resources from its kind's rehearsal row (fallbacks without one), at the
    node's own batch size and epoch budget as its protocol records them (a warm-started
    loop's ``loop_max_epochs``). Not cached: a rehearsal that finishes during the run is
    read (``read_resources`` is cached per file version)."""
    node = wc_node(wildcards)
    row = read_resources(rehearsal_file()).get(node_kind(config["model"], node).key)
    protocol = train_protocol(node)
    return job_resources(row, protocol["batch_size"], protocol["max_epochs"], attempt,
                         cluster=workflow.non_local_exec)


def get_train_mem_mb(wildcards, attempt) -> int:
    """Host memory of a training job (MB): rehearsal peak RSS with headroom."""
    return _train_resources(wildcards, attempt).mem_mb


def get_train_runtime(wildcards, attempt) -> int:
    """Wall-time limit of a training job (minutes): predicted time at max_epochs."""
    return _train_resources(wildcards, attempt).runtime


def get_train_gpu_mem_mb(wildcards, attempt) -> int:
    """GPU memory a training job needs (MB; 0 without a CUDA rehearsal)."""
    return _train_resources(wildcards, attempt).gpu_mem_mb
