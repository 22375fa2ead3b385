"""The one path grammar of the workflow's results (results, logs and benchmarks mirror it).

Rules, scripts, ``iman predict`` and the tests all build file names here.
"""

from __future__ import annotations

from dataclasses import dataclass

from iman.experiments import Node

__all__ = ["Paths"]


@dataclass(frozen=True)
class Paths:
    """File names under one results root (``config['results']``)."""

    root: str = "results"

    def node_dir(self, node: Node) -> str:
        """Folder of one trained node (checkpoints, predictions, margins, metrics)."""
        return f"{self.root}/runs/{node.run}/{node.modality}/loop{node.loop}"

    def node_file(self, node: Node, name: str) -> str:
        """A file inside a node's folder."""
        return f"{self.node_dir(node)}/{name}"

    @staticmethod
    def margins_name(kernel: int, filt: str) -> str:
        """File name of the margins made with one MMG setting."""
        return f"margins_k{kernel}_{filt}.npz"

    def frames(self, T: int, step: int, strategy: str) -> str:
        """Per-case CEUS frame indices for one (T, step, strategy)."""
        return f"{self.root}/data/frames/T{T}_s{step}_{strategy}.json"

    def summary(self, experiment: str) -> str:
        """Summary of one experiment."""
        return f"{self.root}/experiments/{experiment}/summary.json"

    def per_case(self, experiment: str) -> str:
        """Test rows of the selected loops of one experiment."""
        return f"{self.root}/experiments/{experiment}/per_case.csv"

    def benchmark(self, node: Node) -> str:
        """Snakemake benchmark TSV of a training node."""
        return f"{self.root}/benchmarks/train/{node.run}/{node.modality}/loop{node.loop}.tsv"

    @property
    def manifest(self) -> str:
        """The dataset manifest."""
        return f"{self.root}/data/manifest.csv"

    @property
    def splits(self) -> str:
        """The persisted split."""
        return f"{self.root}/data/splits.json"
