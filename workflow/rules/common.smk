# Shared helpers: config validation at the door, the path grammar, input functions.
# Logic lives in src/iman; these functions only map wildcards to file names.
import os

from iman.config import validate_config
from iman.experiments import (
    Node,
    experiment_name,
    experiment_nodes,
    margin_source,
    node_for,
    parent_node,
    parse_name,
    table_specs,
)

config.update(validate_config(config))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

R = config["results"]
TABLES = ["table1", "table2", "table3", "table4", "table5"]
NODE_DIR = R + "/runs/{run}/{modality}/loop{loop}"


wildcard_constraints:
    run=r"[a-z0-9]+\.[a-z0-9_]+__[a-z]+__[^/]+__seed\d+",
    exp=r"[a-z0-9]+\.[a-z0-9_]+__[^/]+__L\d+__seed\d+",
    modality="us|ceus",
    loop=r"\d+",
    kernel=r"\d+",
    filter="none|mean|gaussian",
    table="|".join(TABLES),
    strategy="middle|keyframes",


def node_dir(node: Node) -> str:
    """Folder of one trained node."""
    return f"{R}/runs/{node.run}/{node.modality}/loop{node.loop}"


def wc_node(wildcards) -> Node:
    """The node named by a job's wildcards."""
    return Node(wildcards.run, wildcards.modality, int(wildcards.loop))


def frames_file(T: int, step: int, strategy: str) -> str:
    """Per-case frame indices for one (T, step, strategy)."""
    return f"{R}/data/frames/T{T}_s{step}_{strategy}.json"


def get_node_frames(wildcards) -> list[str]:
    """Frame file of a node's run, when the run carries a frames field."""
    spec = parse_name(wildcards.run)
    return [frames_file(spec.T, spec.step, spec.strategy)] if spec.T is not None else []


def get_train_inputs(wildcards) -> dict[str, object]:
    """Data files, plus warm-start weights and margins for loops >= 1."""
    node = wc_node(wildcards)
    inputs = {
        "manifest": f"{R}/data/manifest.csv",
        "splits": f"{R}/data/splits.json",
        "frames": get_node_frames(wildcards),
    }
    if node.loop >= 1:
        src, (k, f) = margin_source(node)
        inputs["init"] = node_dir(parent_node(node)) + "/best.pt"
        inputs["margins"] = node_dir(src) + f"/margins_k{k}_{f}.npz"
    return inputs


def get_summary_inputs(wildcards) -> list[str]:
    """Per-case metrics of every node the experiment chooses among."""
    spec = parse_name(wildcards.exp)
    return [node_dir(n) + "/metrics.csv" for n in experiment_nodes(spec)]


def get_summary_nodes(wildcards) -> list[list]:
    """(run, modality, loop) of each node, aligned with get_summary_inputs."""
    return [[n.run, n.modality, n.loop] for n in experiment_nodes(parse_name(wildcards.exp))]


def table_experiments(table: str) -> list[str]:
    """Experiment names of every row and seed of a table."""
    return [experiment_name(s) for _, specs in table_specs(config, table) for s in specs]


def get_table_inputs(wildcards) -> list[str]:
    """Summaries of a table's experiments."""
    return [f"{R}/experiments/{e}/summary.json" for e in table_experiments(wildcards.table)]
