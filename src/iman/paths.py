"""The one path grammar of the workflow's results (results, logs and benchmarks mirror it).

The rules, ``iman predict``, the diagnostics and the workflow tests build file names here;
nothing else in ``src/`` or ``workflow/`` spells a results path or a node's file name. A rule
passes every file it declares to the function that writes it, so the library never derives
one output's name from another's. Methods take plain values, so the rules can pass wildcard
patterns (``"{run}"``) where a job's values go.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from iman.experiments import MarginSource, Node

__all__ = ["NodeFiles", "Paths", "case_file", "parse_node"]


def case_file(cache_dir: str | Path, case_id: str) -> Path:
    """One case's cached arrays inside a cache folder (the workflow's or a predict run's)."""
    return Path(cache_dir) / f"{case_id}.npz"


@dataclass(frozen=True)
class NodeFiles:
    """The files of one training node, inside its folder (:meth:`Paths.node`).

    The train rule writes ``best``, ``last``, ``history``, ``pred`` and ``provenance``;
    ``resume`` is the trainer's resumable state, deliberately not a rule output (Snakemake
    deletes a failed job's outputs, and a preempted job must find it); the evaluate rule
    writes ``metrics``.
    """

    folder: str

    BEST: ClassVar[str] = "best.pt"
    LAST: ClassVar[str] = "last.pt"
    RESUME: ClassVar[str] = "resume.pt"
    HISTORY: ClassVar[str] = "history.csv"
    PRED: ClassVar[str] = "pred.npz"
    PROVENANCE: ClassVar[str] = "provenance.json"
    METRICS: ClassVar[str] = "metrics.csv"

    def _file(self, name: str) -> str:
        return f"{self.folder}/{name}"

    @property
    def best(self) -> str:
        """Weights of the epoch with the lowest validation loss."""
        return self._file(self.BEST)

    @property
    def last(self) -> str:
        """Weights of the last epoch."""
        return self._file(self.LAST)

    @property
    def resume(self) -> str:
        """Resumable training state (not a rule output)."""
        return self._file(self.RESUME)

    @property
    def history(self) -> str:
        """One row per epoch: losses, validation DSC, learning rate, seconds."""
        return self._file(self.HISTORY)

    @property
    def pred(self) -> str:
        """Probabilities of every case, predicted with the best weights."""
        return self._file(self.PRED)

    @property
    def provenance(self) -> str:
        """Protocol, device, training summary and environment of the node."""
        return self._file(self.PROVENANCE)

    @property
    def metrics(self) -> str:
        """Per-case metrics of the node's val and test cases."""
        return self._file(self.METRICS)


@dataclass(frozen=True)
class Paths:
    """File names under one results root (``config['results']``)."""

    root: str = "results"

    # ---- data ------------------------------------------------------------------------
    @property
    def data_dir(self) -> str:
        """Manifest, cache, splits and frame picks."""
        return f"{self.root}/data"

    @property
    def manifest(self) -> str:
        """The dataset manifest."""
        return f"{self.data_dir}/manifest.csv"

    @property
    def cache_dir(self) -> str:
        """One validated ``.npz`` per case at the working resolution."""
        return f"{self.data_dir}/cache"

    @property
    def splits(self) -> str:
        """The persisted split."""
        return f"{self.data_dir}/splits.json"

    @property
    def fingerprint(self) -> str:
        """What the ingested data look like (iman.data.fingerprint)."""
        return f"{self.data_dir}/fingerprint.json"

    @property
    def split_counts(self) -> str:
        """Cases and patients per split subset of every fold (checkpoint ``split_counts``)."""
        return f"{self.data_dir}/split_counts.json"

    @property
    def protocol_check(self) -> str:
        """The config checked against the fingerprint: the warnings (iman.data.protocol)."""
        return f"{self.data_dir}/protocol_check.json"

    def fingerprint_report(self, ext: str) -> str:
        """The fingerprint's report table (``html``) or figure (``png``)."""
        return f"{self.root}/figures/data_fingerprint.{ext}"

    def frames(self, T: int | str, step: int | str, strategy: str) -> str:
        """Per-case CEUS frame indices for one (T, step, strategy)."""
        return f"{self.data_dir}/frames/T{T}_s{step}_{strategy}.json"

    @property
    def phantom_sheet(self) -> str:
        """Case sheet of the synthetic dataset."""
        return f"{self.root}/phantom/cases.csv"

    # ---- training nodes --------------------------------------------------------------
    def node_dir(self, node: Node) -> str:
        """Folder of one trained node (checkpoints, predictions, margins, metrics)."""
        return f"{self.root}/runs/{node.run}/{node.modality}/loop{node.loop}"

    def node(self, node: Node) -> NodeFiles:
        """The files of one trained node."""
        return NodeFiles(self.node_dir(node))

    @staticmethod
    def margins_name(kernel: int | str, filt: str) -> str:
        """File name of the margins made with one MMG setting."""
        return f"margins_k{kernel}_{filt}.npz"

    def margins(self, node: Node, kernel: int | str, filt: str) -> str:
        """Margins made from ``node``'s predictions with one MMG setting."""
        return f"{self.node_dir(node)}/{self.margins_name(kernel, filt)}"

    def mismatched_margins(self, node: Node, kernel: int | str, filt: str) -> str:
        """``node``'s margins with each case given another patient's (mismatched control)."""
        return f"{self.node_dir(node)}/mismatched_k{kernel}_{filt}.npz"

    def mismatch_donors(self, node: Node, kernel: int | str, filt: str) -> str:
        """Case → donor case map of :meth:`mismatched_margins`."""
        return f"{self.node_dir(node)}/mismatched_k{kernel}_{filt}_donors.json"

    def oracle_margins(self, modality: str, kernel: int | str, filt: str) -> str:
        """Margins made from the ground-truth ``modality`` masks (oracle control)."""
        return f"{self.data_dir}/oracle_margins/{modality}_k{kernel}_{filt}.npz"

    def margins_of(self, source: MarginSource) -> str:
        """The margins file a node reads (:func:`iman.experiments.margin_source`)."""
        k, f = source.setting
        if source.kind == "oracle":
            return self.oracle_margins(source.modality, k, f)
        assert source.node is not None
        if source.kind == "mismatch":
            return self.mismatched_margins(source.node, k, f)
        return self.margins(source.node, k, f)

    # ---- experiments, tables, figures ------------------------------------------------
    def experiment_dir(self, experiment: str) -> str:
        """Folder of one experiment's summary and per-case rows."""
        return f"{self.root}/experiments/{experiment}"

    def summary(self, experiment: str) -> str:
        """Summary of one experiment."""
        return f"{self.experiment_dir(experiment)}/summary.json"

    def per_case(self, experiment: str) -> str:
        """Test rows of the selected loops of one experiment."""
        return f"{self.experiment_dir(experiment)}/per_case.csv"

    def table(self, table: str, ext: str) -> str:
        """One paper table (``csv``, ``md``, ``tex``, ``html``)."""
        return f"{self.root}/tables/{table}.{ext}"

    @property
    def stats(self) -> str:
        """Paired comparisons of every table (docs/statistics.md)."""
        return f"{self.root}/tables/stats.csv"

    def table_marks(self, table: str) -> str:
        """What a table's rendering marks beyond its numbers: best vs runner-up per column,
        each row's initialisation (JSON, rule ``table_data``)."""
        return f"{self.root}/tables/{table}_marks.json"

    def table_stats(self, table: str) -> str:
        """Paired comparisons of one table (read by that table's rule)."""
        return f"{self.root}/tables/{table}_stats.csv"

    @property
    def cost(self) -> str:
        """Wall time, device and epochs of every training job."""
        return f"{self.root}/tables/cost.csv"

    @property
    def rehearsal_resources(self) -> str:
        """Time and memory per kind of training job (``iman rehearse``, rule ``rehearse``)."""
        return f"{self.root}/rehearsal/resources.csv"

    @property
    def rehearsal_summary(self) -> str:
        """The rehearsal's human summary."""
        return f"{self.root}/rehearsal/summary.txt"

    def figure(self, name: str, ext: str) -> str:
        """One figure (``png`` or ``pdf``)."""
        return f"{self.root}/figures/{name}.{ext}"

    @property
    def resolved_config(self) -> str:
        """The resolved config of the run (what ``iman config`` prints)."""
        return f"{self.root}/config.resolved.yaml"

    @property
    def provenance(self) -> str:
        """Code version, package versions and host of the run."""
        return f"{self.root}/provenance.json"

    # ---- logs and benchmarks ---------------------------------------------------------
    def log(self, *parts: str) -> str:
        """A job's log file, ``logs/<parts...>.log``."""
        return f"{self.root}/logs/{'/'.join(parts)}.log"

    def benchmark(self, node: Node) -> str:
        """Snakemake benchmark TSV of a training node."""
        return f"{self.root}/benchmarks/train/{node.run}/{node.modality}/loop{node.loop}.tsv"


def parse_node(path: str | Path) -> Node:
    """The node of a benchmark TSV or a node's history path: the inverse of
    :meth:`Paths.benchmark` and :attr:`NodeFiles.history`.

    Benchmarks: ``.../benchmarks/train/{run}/{modality}/loop{l}.tsv``; histories:
    ``.../runs/{run}/{modality}/loop{l}/history.csv``. The workflow's run names never hold
    ``/`` (:data:`iman.names.RUN_RE`); for paths of other origin the nearest anchor wins.
    """
    parts = list(Path(path).parts)
    if parts[-1] == NodeFiles.HISTORY:
        anchor: tuple[str, ...] = ("runs",)
        parts = parts[:-1]
    else:
        anchor = ("benchmarks", "train")
        parts[-1] = Path(parts[-1]).stem
    loop_part, modality = parts[-1], parts[-2] if len(parts) > 1 else ""
    if not loop_part.startswith("loop") or not loop_part[4:].isdigit():
        raise ValueError(f"no loop<N> in {path}")
    n = len(anchor)
    # the anchor nearest to the end that still leaves >= 1 run component before modality
    for end in range(len(parts) - 4, n - 2, -1):
        if tuple(parts[end - n + 1 : end + 1]) == anchor:
            return Node("/".join(parts[end + 1 : -2]), modality, int(loop_part[4:]))
    raise ValueError(f"no '{'/'.join(anchor)}/<run>/<modality>/loop<N>' in {path}")
