"""Figures of the reproduction, drawn only from saved files (restyling never retrains).

Every public drawing function writes the ``png`` (Agg, :data:`DPI` dots per inch) and the
``pdf`` it is given and returns both paths. Figures are built on :class:`matplotlib.figure.Figure`
objects (no pyplot state, no global backend switch) with a fixed size in inches and no tight
bounding box, so a PNG is exactly ``round(width_in * DPI) × round(height_in * DPI)`` pixels;
PDF metadata carry no creation date, so repeated runs give identical files.

Contours: the ground truth in :data:`GT_COLOUR` (green), the prediction — the probability map
thresholded at 0.5 — in :data:`PRED_COLOUR` (magenta).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, ParamSpec, TypeVar

import cv2
import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import ConnectionPatch, Patch, Rectangle

from iman.evaluation.metrics import REPORTED_METRICS, THRESHOLD
from iman.evaluation.paper_tables import PAPER_BESIDE
from iman.experiments import Node, node_for, parse_name
from iman.names import FILTERS, MODALITIES, node_key, per_case_key, pred_key, summary_key
from iman.paths import case_file

__all__ = [
    "DPI",
    "GT_COLOUR",
    "LEGEND_IN",
    "PANEL_IN",
    "PRED_COLOUR",
    "THRESHOLD",
    "ablation_bars",
    "dsc_distribution",
    "margin_pathway",
    "pick_cases",
    "qualitative_grid",
    "table4_heatmap",
    "training_curves",
]

DPI: Final = 150
PANEL_IN: Final = 1.6
"""Side of one image panel in inches (240 px at :data:`DPI`)."""
LEGEND_IN: Final = 0.4
"""Height in inches added below image grids for the legend."""
GT_COLOUR: Final = "#00ff00"
PRED_COLOUR: Final = "#ff00ff"
_MOD_LABEL: Final = {"us": "US", "ceus": "CEUS"}
_MISSING: Final = "—"
_STYLE: Final = {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7,
                 "legend.fontsize": 7, "xtick.labelsize": 6, "ytick.labelsize": 6,
                 "pdf.fonttype": 42}
_DSC_COLUMNS: Final = ("std_dsc", "dsc", "paper_soft_dsc")
_VIOLIN_COLOUR: Final = "#cfe2f3"

_P = ParamSpec("_P")
_R = TypeVar("_R")

ArraySource = Path | str | Mapping[str, Any] | np.ndarray | None
"""An ``.npz`` path (keyed by case id), an already loaded mapping, an array, or nothing."""


def _styled(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a drawing function under the module's matplotlib style."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with mpl.rc_context(_STYLE):
            return func(*args, **kwargs)

    return wrapper


def _new_figure(width_in: float, height_in: float) -> Figure:
    """A constrained-layout figure of the exact size, independent of pyplot."""
    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def _save(fig: Figure, png: Path | str, pdf: Path | str) -> tuple[Path, Path]:
    """Write the figure to ``png`` and ``pdf`` deterministically."""
    png, pdf = Path(png), Path(pdf)
    for path in (png, pdf):
        path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=DPI, metadata={"Software": None})
    fig.savefig(pdf, dpi=DPI, metadata={"CreationDate": None, "Creator": None,
                                        "Producer": None})
    return png, pdf


def _case_arrays(source: Path | str | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The cache arrays of one case (``us``, ``ceus``, ``us_mask``, ``ceus_mask``)."""
    if isinstance(source, Mapping):
        return {k: np.asarray(v) for k, v in source.items()}
    with np.load(source) as z:
        return {k: z[k] for k in ("us", "ceus", "us_mask", "ceus_mask") if k in z.files}


def _image(case: Mapping[str, np.ndarray], modality: str) -> tuple[np.ndarray, np.ndarray]:
    """(grey image, 0/1 mask) of a modality; CEUS shows its middle frame."""
    img = np.asarray(case[modality])
    if modality == "ceus" and img.ndim == 3:
        img = img[img.shape[0] // 2]
    return img, np.asarray(case[f"{modality}_mask"]) > 0


def _lookup(source: ArraySource, case_id: str) -> np.ndarray | None:
    """The array stored for ``case_id`` in ``source`` (None when absent)."""
    if source is None:
        return None
    if isinstance(source, np.ndarray):
        return source.astype(np.float32)
    if isinstance(source, Mapping):
        return None if case_id not in source else np.asarray(source[case_id], np.float32)
    path = Path(source)
    if not path.is_file():
        return None
    with np.load(path) as z:
        return z[case_id].astype(np.float32) if case_id in z.files else None


def _fit(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize a 2-D float map to ``shape`` (bilinear) when the sizes differ."""
    arr = np.asarray(arr, np.float32).squeeze()
    if arr.shape != shape[:2]:
        arr = cv2.resize(arr, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return arr


def _dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two binary masks (1 when both are empty)."""
    total = int(pred.sum()) + int(gt.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(pred, gt).sum()) / total


def _contour(ax: Axes, mask: np.ndarray, colour: str, width: float = 1.2) -> None:
    """Draw the outline of a binary mask (nothing for an empty or full mask)."""
    m = np.asarray(mask, dtype=bool)
    if 0 < int(m.sum()) < m.size:
        ax.contour(m.astype(np.float32), levels=[0.5], colors=[colour], linewidths=width)


def _blank(ax: Axes, text: str = _MISSING, size: float = 14, square: bool = True) -> None:
    """A grey panel carrying a short text instead of an image (square like the images)."""
    ax.set_facecolor("#e6e6e6")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    if square:
        ax.set_aspect("equal")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=size, color="#555555",
            transform=ax.transAxes, wrap=True)


def _bare(ax: Axes) -> None:
    """Hide ticks but keep the frame and the axis labels."""
    ax.set_xticks([])
    ax.set_yticks([])


def _show(ax: Axes, img: np.ndarray) -> None:
    """Show a grey uint8 image."""
    ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")


def _draw_prediction(ax: Axes, img: np.ndarray, gt: np.ndarray, prob: np.ndarray | None,
                     threshold: float) -> None:
    """Image, ground-truth contour and thresholded-prediction contour with its Dice."""
    if prob is None:
        _blank(ax)
        return
    _show(ax, img)
    pred = _fit(prob, img.shape) >= threshold
    _contour(ax, gt, GT_COLOUR)
    _contour(ax, pred, PRED_COLOUR)
    ax.text(0.03, 0.97, f"{_dice(pred, gt):.2f}", ha="left", va="top", fontsize=6,
            color="white", transform=ax.transAxes,
            bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "linewidth": 0})


def _contour_legend(fig: Figure, extra: Sequence[Any] = ()) -> None:
    """Figure legend for the ground-truth and prediction outlines, below the panels."""
    handles = [Line2D([], [], color=GT_COLOUR, lw=2, label="ground truth"),
               Line2D([], [], color=PRED_COLOUR, lw=2,
                      label=f"prediction (p ≥ {THRESHOLD:g}); number = DSC"), *extra]
    ncols = max(1, min(len(handles), int(fig.get_figwidth() // 2.6)))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)


def pick_cases(per_case_df: pd.DataFrame, n: int = 4, *, metric: str | None = None,
               split: str = "test") -> list[str]:
    """Choose ``n`` cases spread over the DSC range of a reference method, deterministically.

    Rows of ``split`` (when a ``split`` column exists) are averaged per ``case_id`` over
    modalities; cases sorted by (DSC, case id) are taken at the quantiles ``(i + 0.5) / n``.
    Returns case ids from the highest to the lowest DSC (all cases when there are ≤ n).
    """
    df = per_case_df
    if "split" in df.columns:
        df = df[df["split"].astype(str) == split]
    col = metric or next((c for c in _DSC_COLUMNS if c in df.columns), None)
    if col is None or col not in df.columns:
        raise KeyError(f"no DSC column among {_DSC_COLUMNS} (or {metric!r}) in per-case table")
    scores = (df.assign(case_id=df["case_id"].astype(str))
              .groupby("case_id")[col].mean().dropna().reset_index()
              .sort_values([col, "case_id"], kind="mergesort").reset_index(drop=True))
    if scores.empty:
        raise ValueError(f"no {split!r} rows with a {col} value")
    total = len(scores)
    if total <= n:
        picked = list(range(total))
    else:
        picked = [math.floor((i + 0.5) * total / n) for i in range(n)]
    return [str(scores.loc[i, "case_id"]) for i in reversed(picked)]


@_styled
def qualitative_grid(cases: Mapping[str, Path | str | Mapping[str, Any]] | Sequence[Path | str],
                     methods: Mapping[str, Mapping[str, ArraySource]],
                     png: Path | str, pdf: Path | str, *, threshold: float = THRESHOLD
                     ) -> tuple[Path, Path]:
    """Fig. 3: one column per method, US rows for every case, then CEUS rows (middle frame).

    ``cases`` maps case id → cache npz (a sequence of npz paths uses the file stems as ids);
    ``methods`` maps a method name → ``{"us": pred.npz, "ceus": pred.npz}``; a modality the
    method lacks (absent or None, or a case missing from its file) shows "—". The first
    column is the input with its ground truth. Size: ``PANEL_IN × (1 + methods)`` by
    ``PANEL_IN × 2·cases + LEGEND_IN`` inches.
    """
    items = (dict(cases) if isinstance(cases, Mapping)
             else {Path(p).stem: p for p in cases})
    data = {cid: _case_arrays(src) for cid, src in items.items()}
    names = list(methods)
    nrows, ncols = len(MODALITIES) * len(data), 1 + len(names)
    fig = _new_figure(PANEL_IN * ncols, PANEL_IN * nrows + LEGEND_IN)
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    for m_i, modality in enumerate(MODALITIES):
        for c_i, (cid, case) in enumerate(data.items()):
            r = m_i * len(data) + c_i
            img, gt = _image(case, modality)
            _show(axes[r, 0], img)
            _contour(axes[r, 0], gt, GT_COLOUR)
            axes[r, 0].set_ylabel(f"{_MOD_LABEL[modality]}\n{cid}")
            for k, name in enumerate(names, start=1):
                prob = _lookup(methods[name].get(modality), cid)
                _draw_prediction(axes[r, k], img, gt, prob, threshold)
    for ax in axes.flat:
        _bare(ax)
    for k, title in enumerate(["input + GT", *names]):
        axes[0, k].set_title(title)
        if len(data) and nrows > len(data):
            axes[len(data), k].set_title(title)
    _contour_legend(fig)
    return _save(fig, png, pdf)


@_styled
def margin_pathway(case_id: str, cache_npz: Path | str | Mapping[str, Any],
                   loops: list[dict[str, ArraySource]], png: Path | str, pdf: Path | str, *,
                   threshold: float = THRESHOLD) -> tuple[Path, Path]:
    """The 'X' pathway of one case: columns are loops 0..L, rows the four stages.

    Each ``loops[l]`` may hold ``us_margin`` / ``ceus_margin`` (the soft margin that branch
    *received* in loop ``l``, i.e. the MMG of the other modality's loop ``l-1`` prediction:
    ``margins_k{k}_{filter}.npz`` or an array) and ``us_pred`` / ``ceus_pred``
    (``pred.npz`` or an array). A missing margin is drawn as "none (all ones)"; a missing
    prediction as "—". Arrows mark which prediction feeds which margin of the next loop.
    Size: ``PANEL_IN × (L+1) + 0.6`` by ``PANEL_IN × 4 + LEGEND_IN`` inches.
    """
    case = _case_arrays(cache_npz)
    ncols = max(1, len(loops))
    fig = _new_figure(PANEL_IN * ncols + 0.6, PANEL_IN * 4 + LEGEND_IN)
    fig.get_layout_engine().set(wspace=0.12)
    axes = fig.subplots(4, ncols, squeeze=False)
    margin_image = None
    for col, loop in enumerate(loops):
        for m_i, modality in enumerate(MODALITIES):
            img, gt = _image(case, modality)
            ax_m, ax_p = axes[2 * m_i, col], axes[2 * m_i + 1, col]
            margin = _lookup(loop.get(f"{modality}_margin"), case_id)
            if margin is None:
                _blank(ax_m, "none\n(all ones)", size=8)
            else:
                margin_image = ax_m.imshow(_fit(margin, img.shape), cmap="magma", vmin=0,
                                           vmax=1, interpolation="nearest")
                _contour(ax_m, gt, GT_COLOUR, width=0.8)
            prob = _lookup(loop.get(f"{modality}_pred"), case_id)
            _draw_prediction(ax_p, img, gt, prob, threshold)
            if col == 0:
                ax_m.set_ylabel(f"{_MOD_LABEL[modality]} margin\nreceived")
                ax_p.set_ylabel(f"{_MOD_LABEL[modality]}\nprediction")
        axes[0, col].set_title(str(loop.get("label", f"loop {col}")))
    for ax in axes.flat:
        _bare(ax)
    for col in range(ncols - 1):
        for src_row, dst_row in ((3, 0), (1, 2)):
            fig.add_artist(ConnectionPatch(
                xyA=(1.0, 0.5), coordsA=axes[src_row, col].transAxes,
                xyB=(0.0, 0.5), coordsB=axes[dst_row, col + 1].transAxes,
                arrowstyle="-|>", color="#1f77b4", lw=1.0, mutation_scale=8))
    if margin_image is not None:
        fig.colorbar(margin_image, ax=axes[[0, 2], :].ravel().tolist(), fraction=0.04,
                     label="margin weight")
    fig.suptitle(f"case {case_id}: margins exchanged between branches (X pathway)")
    arrow = Line2D([], [], color="#1f77b4", lw=1, marker=">", markersize=4,
                   label="prediction → MMG → margin of the other branch")
    _contour_legend(fig, [arrow])
    return _save(fig, png, pdf)


def _history(paths: Sequence[Path | str]) -> list[pd.DataFrame]:
    """Read each loop's history.csv (missing or empty files give empty frames)."""
    frames = []
    for p in paths:
        path = Path(p)
        df = pd.read_csv(path) if path.is_file() and path.stat().st_size > 0 else pd.DataFrame()
        if "epoch" in df.columns:
            df = df.drop_duplicates("epoch", keep="last").sort_values("epoch")
        frames.append(df.reset_index(drop=True))
    return frames


@_styled
def training_curves(histories: Mapping[str, Sequence[Path | str]], png: Path | str,
                    pdf: Path | str, *,
                    figsize: tuple[float, float] | None = None) -> tuple[Path, Path]:
    """Training/validation loss and validation DSC per epoch, loops concatenated.

    One panel per key of ``histories`` (e.g. ``"iman/us"``) whose value lists the
    ``history.csv`` of loops 0..L in order; loop boundaries are dotted vertical lines.
    Loss is on the left axis, validation DSC on the right (0..1). Default size:
    ``4.2 × cols`` by ``2.6 × rows + LEGEND_IN`` inches with up to 3 columns.
    """
    names = list(histories)
    ncols = max(1, min(3, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = _new_figure(*(figsize or (4.2 * ncols, 2.6 * nrows + LEGEND_IN)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    styles = {"train_loss": ("#1f77b4", "-", "train loss"),
              "val_loss": ("#ff7f0e", "-", "val loss"),
              "val_dice": ("#2ca02c", "--", "val DSC")}
    for ax, name in zip(axes.flat, names):
        frames = _history(histories[name])
        ax.set_title(name)
        if all(df.empty for df in frames):
            _blank(ax, "no history", square=False)
            _bare(ax)
            continue
        twin = ax.twinx()
        offset = 0
        for loop, df in enumerate(frames):
            x = offset + np.arange(1, len(df) + 1)
            for col, (colour, ls, _) in styles.items():
                if col in df.columns:
                    target = twin if col == "val_dice" else ax
                    target.plot(x, df[col].to_numpy(float), color=colour, ls=ls, lw=1,
                                marker="." if len(df) < 15 else None, ms=3)
            if loop > 0:
                ax.axvline(offset + 0.5, color="#888888", ls=":", lw=1)
            ax.text(offset + 0.6, 1.0, f"loop {loop}", transform=ax.get_xaxis_transform(),
                    ha="left", va="top", fontsize=6, color="#555555")
            offset += len(df)
        ax.set_xlim(0.5, max(offset, 1) + 0.5)
        ax.set_xlabel("epoch (loops concatenated)")
        ax.set_ylabel("loss")
        twin.set_ylim(0, 1)
        twin.set_ylabel("val DSC")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=c, ls=ls, lw=1.5, label=lab) for c, ls, lab in styles.values()]
    handles.append(Line2D([], [], color="#888888", ls=":", lw=1, label="loop boundary"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    return _save(fig, png, pdf)


def _num(value: Any) -> float:
    """A float, or NaN for empty / non-numeric cells."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """Numeric column (all NaN when absent)."""
    if name not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[name], errors="coerce")


_METRIC_LABEL: Final = {short: m.label for short, m in REPORTED_METRICS.items()}
"""Reported metric (table name) -> its label (:data:`iman.evaluation.metrics.METRICS`)."""


def paper_column(df: pd.DataFrame, modality: str, metric: str) -> pd.Series:
    """Printed paper values comparable with ``metric`` (all NaN for the standard family)."""
    if metric not in PAPER_BESIDE:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return _col(df, f"paper_{modality}_{PAPER_BESIDE[metric]}")


def _kernel_key(value: str) -> tuple[int, float, str]:
    """Sort 'none' first, then numeric kernels, then any other label."""
    if value == "none":
        return (0, 0.0, value)
    num = _num(value)
    return (1, num, value) if not math.isnan(num) else (2, 0.0, value)


@_styled
def table4_heatmap(table4_csv: Path | str, png: Path | str, pdf: Path | str, *,
                   metric: str = "soft_dsc",
                   figsize: tuple[float, float] = (10.0, 4.8)) -> tuple[Path, Path]:
    """Table IV as kernel × filter heatmaps (one per modality) of the reproduced ``metric``.

    Drawn with :func:`seaborn.heatmap`; each cell is annotated with the reproduced mean
    (± std over seeds when ``*_std`` exists) and, below it in small type, the printed paper
    value; cells without a reproduced value are grey ("—"). The best reproduced cell of each
    modality is framed red, the best paper cell dashed white.
    """
    df = pd.read_csv(table4_csv, dtype={"kernel": str, "filter": str}, keep_default_na=False,
                     na_values=[""])
    df["kernel"] = df["kernel"].fillna("none").astype(str)
    df["filter"] = df["filter"].fillna("none").astype(str)
    kernels = sorted(df["kernel"].unique(), key=_kernel_key)
    filters = [f for f in FILTERS if f in set(df["filter"])]
    filters += sorted(set(df["filter"]) - set(filters))
    higher = metric.endswith("dsc")
    cmap = mpl.colormaps["viridis" if higher else "viridis_r"]
    fig = _new_figure(*figsize)
    axes = fig.subplots(1, len(MODALITIES), squeeze=False)[0]
    for ax, modality in zip(axes, MODALITIES):
        col = f"{modality}_{metric}"
        values = np.full((len(kernels), len(filters)), np.nan)
        stds, paper = values.copy(), values.copy()
        mean_s, std_s = _col(df, col), _col(df, f"{col}_std")
        paper_s = paper_column(df, modality, metric)
        for i, row in df.iterrows():
            r, c = kernels.index(row["kernel"]), filters.index(row["filter"])
            values[r, c], stds[r, c], paper[r, c] = mean_s[i], std_s[i], paper_s[i]
        missing = ~np.isfinite(values)
        finite = values[~missing]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if vmin == vmax:
            vmin, vmax = vmin - 0.01, vmax + 0.01
        labels = np.full(values.shape, "", dtype=object)
        for (r, c), v in np.ndenumerate(values):
            if not missing[r, c]:
                labels[r, c] = f"{v:.4f}" + ("" if math.isnan(stds[r, c])
                                             else f"\n± {stds[r, c]:.4f}")
        ax.set_facecolor("#dddddd")  # masked (not reproduced) cells stay uncoloured
        sns.heatmap(pd.DataFrame(values, index=kernels, columns=filters), ax=ax, mask=missing,
                    cmap=cmap, vmin=vmin, vmax=vmax, annot=labels, fmt="",
                    annot_kws={"fontsize": 8}, linewidths=0.6, linecolor="white",
                    cbar_kws={"label": f"reproduced {_METRIC_LABEL.get(metric, metric)}",
                              "fraction": 0.05})
        for text in list(ax.texts):  # seaborn's annotations (contrast colour chosen per cell)
            x, y = text.get_position()
            text.set_y(y - 0.08)
            p = paper[int(y), int(x)]
            if not math.isnan(p):
                ax.text(x, y + 0.3, f"paper {p:.4f}", ha="center", va="center", fontsize=6,
                        color=text.get_color())
        for r, c in zip(*np.nonzero(missing)):
            ax.text(c + 0.5, r + 0.42, _MISSING, ha="center", va="center", fontsize=8,
                    color="black")
            if not math.isnan(paper[r, c]):
                ax.text(c + 0.5, r + 0.8, f"paper {paper[r, c]:.4f}", ha="center",
                        va="center", fontsize=6, color="#333333")
        for grid, half, style in ((values, 0.46, {"ec": "red", "lw": 2.5}),
                                  (paper, 0.40, {"ec": "white", "lw": 1.5, "ls": "--"})):
            if np.isfinite(grid).any():
                best = np.nanargmax(grid) if higher else np.nanargmin(grid)
                br, bc = np.unravel_index(best, grid.shape)
                ax.add_patch(Rectangle((bc + 0.5 - half, br + 0.5 - half), 2 * half, 2 * half,
                                       fill=False, **style))
        ax.tick_params(axis="y", labelrotation=0)
        ax.set_xlabel("filter")
        ax.set_ylabel("kernel size")
        ax.set_title(f"{_MOD_LABEL[modality]} {_METRIC_LABEL.get(metric, metric)} "
                     "(reproduced; paper below)")
    fig.legend(handles=[Patch(fill=False, ec="red", lw=2.5, label="best reproduced"),
                        Patch(fill=False, ec="#555555", lw=1.5, ls="--", label="best in paper"),
                        Patch(fc="#dddddd", label="not reproduced (—)")],
               loc="outside lower center", ncols=3, frameon=False)
    return _save(fig, png, pdf)


def _setting_labels(df: pd.DataFrame) -> list[str]:
    """Readable ablation setting per row: from mmg/itp/modal_fusion flags, else ``row``."""
    flags = [("mmg", "MMG"), ("itp", "ITP"), ("modal_fusion", "fusion")]
    if all(f in df.columns for f, _ in flags):
        labels = []
        for _, row in df.iterrows():
            control = str(row["modal_fusion"])
            if control in ("oracle", "mismatched"):  # the diagnostic rows (not methods)
                labels.append("control: oracle margins" if control == "oracle"
                              else "control: mismatched pairs")
                continue
            on = [name for f, name in flags if _num(row[f]) == 1]
            if on == ["ITP"]:
                labels.append("control: loops, no margins")
            else:
                labels.append("baseline" if not on else "+" + " +".join(on))
        return labels
    if "row" in df.columns:
        return df["row"].astype(str).tolist()
    return [f"row {i}" for i in range(len(df))]


def _bar_limits(lo: float, hi: float, bounded: bool) -> tuple[float, float]:
    """y range of a bar panel: zoomed near the values for DSC (in [0, 1]), from 0 otherwise."""
    pad = max(0.02, 0.15 * (hi - lo))
    if not bounded:
        return 0.0, hi + pad
    bottom = max(0.0, lo - 3 * pad)
    return bottom, max(min(1.0, hi + pad), bottom + pad)


@_styled
def ablation_bars(table_csv: Path | str, png: Path | str, pdf: Path | str, *,
                  metrics: Sequence[str] = ("soft_dsc", "row_hd"),
                  figsize: tuple[float, float] | None = None) -> tuple[Path, Path]:
    """Table II / V ablations as grouped bars with std-over-seeds error bars.

    Panels: rows = ``metrics``, columns = modalities. Groups along x are the ``backbone``
    values (Table V) or a single group (Table II); bars are the ablation settings, built from
    the ``mmg``/``itp``/``modal_fusion`` flags (or the ``row`` column). Error bars come from
    ``*_std`` columns when present; black ticks mark the printed paper values. NaN cells
    leave a gap. Default size: ``2 × max(3.4, 0.9 + 0.22·bars)`` by ``2.4 × metrics +
    LEGEND_IN`` inches.
    """
    df = pd.read_csv(table_csv)
    settings = _setting_labels(df)
    order = list(dict.fromkeys(settings))
    groups = (list(dict.fromkeys(df["backbone"].astype(str))) if "backbone" in df.columns
              else [""])
    n_bars = len(groups) * len(order)
    width_in = 2 * max(3.4, 0.9 + 0.22 * n_bars)
    fig = _new_figure(*(figsize or (width_in, 2.4 * len(metrics) + LEGEND_IN)))
    axes = fig.subplots(len(metrics), len(MODALITIES), squeeze=False)
    colours = mpl.colormaps["tab10"].colors
    bar_w = 0.8 / max(1, len(order))
    for r, metric in enumerate(metrics):
        for c, modality in enumerate(MODALITIES):
            ax = axes[r, c]
            col = f"{modality}_{metric}"
            mean, std = _col(df, col), _col(df, f"{col}_std")
            paper = paper_column(df, modality, metric)
            shown: list[float] = []
            for i, (setting, group) in enumerate(zip(settings, df.get("backbone", [""] * len(df)))):
                g, s = groups.index(str(group)), order.index(setting)
                x = g + (s - (len(order) - 1) / 2) * bar_w
                m, e, p = mean.iloc[i], std.iloc[i], paper.iloc[i]
                if not math.isnan(m):
                    ax.bar(x, m, bar_w * 0.9, color=colours[s % len(colours)],
                           yerr=None if math.isnan(e) else e, capsize=2,
                           error_kw={"lw": 0.8})
                    shown += [m - (0 if math.isnan(e) else e), m + (0 if math.isnan(e) else e)]
                if not math.isnan(p):
                    ax.plot([x - bar_w * 0.45, x + bar_w * 0.45], [p, p], color="black", lw=1.5)
                    shown.append(p)
            ax.set_title(f"{_MOD_LABEL[modality]} {_METRIC_LABEL.get(metric, metric)}")
            ax.set_ylabel(_METRIC_LABEL.get(metric, metric))
            if shown:
                ax.set_ylim(*_bar_limits(min(shown), max(shown), metric.endswith("dsc")))
                ax.set_xticks(range(len(groups)), groups)
            else:
                _blank(ax, "no values", size=9, square=False)
                _bare(ax)
    handles = [Patch(color=colours[s % len(colours)], label=name) for s, name in enumerate(order)]
    handles.append(Line2D([], [], color="black", lw=1.5, label="paper value"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6),
               frameon=False)
    return _save(fig, png, pdf)


@_styled
def dsc_distribution(per_case: Mapping[str, pd.DataFrame], png: Path | str,
                     pdf: Path | str, *,
                     metric: str | None = None, split: str = "test",
                     figsize: tuple[float, float] | None = None) -> tuple[Path, Path]:
    """Per-case test DSC per method (seaborn violin + box + points), one panel per modality.

    ``per_case`` maps a method name → its ``per_case.csv`` frame (``case_id``, ``modality``,
    ``split`` and metric columns; without ``modality`` the rows count as one panel "all").
    A method without cases of a modality shows "n/a" at its place. Points are jittered with a
    fixed seed. Default size: ``panels × max(3.2, 1.2 + 0.55·methods)`` by 3.2 inches.
    """
    names = list(per_case)
    frames = [pd.DataFrame({"method": [], "modality": [], "value": []})]
    for name, df in per_case.items():
        d = df[df["split"].astype(str) == split] if "split" in df.columns else df
        col = metric or next((c for c in _DSC_COLUMNS if c in d.columns), None)
        if col is None or col not in d.columns:
            raise KeyError(f"{name}: no DSC column among {_DSC_COLUMNS} (or {metric!r})")
        mods = d["modality"].astype(str) if "modality" in d.columns else "all"
        frames.append(pd.DataFrame({"method": name, "modality": mods,
                                    "value": pd.to_numeric(d[col], errors="coerce")}))
    long = pd.concat(frames, ignore_index=True).dropna(subset=["value"])
    present = set(pd.concat(frames)["modality"])
    panels = [m for m in (*MODALITIES, "all") if m in present] + sorted(
        present - {*MODALITIES, "all"})
    panels = panels or ["all"]
    width = max(3.2, 1.2 + 0.55 * len(names))
    fig = _new_figure(*(figsize or (width * len(panels), 3.2)))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    rng = np.random.default_rng(0)  # own jitter: seaborn's stripplot uses the global RNG
    for ax, modality in zip(axes, panels):
        sub = long[long["modality"] == modality]
        if len(sub):
            sns.violinplot(data=sub, x="method", y="value", order=names, ax=ax,
                           color=_VIOLIN_COLOUR, saturation=1.0, cut=0, inner=None,
                           density_norm="width", width=0.8, linewidth=0.6,
                           linecolor="#5b7fa6")
        for i, name in enumerate(names):
            vals = sub.loc[sub["method"] == name, "value"].to_numpy(float)
            if vals.size == 0:
                ax.text(i, 0.5, "n/a", ha="center", va="center", fontsize=8,
                        color="#777777", transform=ax.get_xaxis_transform())
                continue
            # the box with matplotlib: seaborn 0.13's boxplot passes the deprecated ``vert``
            ax.boxplot(vals, positions=[i], widths=0.16, showfliers=False, patch_artist=True,
                       boxprops={"facecolor": "white", "linewidth": 0.8},
                       whiskerprops={"linewidth": 0.8}, capprops={"linewidth": 0.8},
                       medianprops={"color": "black", "linewidth": 1.0}, showmeans=True,
                       meanprops={"marker": "D", "markerfacecolor": "red",
                                  "markeredgecolor": "red", "markersize": 3})
            jitter = rng.uniform(-0.22, 0.22, vals.size)
            ax.scatter(i + jitter, vals, s=6, color="#1f4e79", alpha=0.6, linewidths=0,
                       zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("")
        ax.set_ylabel("per-case DSC")
        ax.set_title(f"{_MOD_LABEL.get(modality, modality)} ({split} split)")
        ax.grid(axis="y", lw=0.4, alpha=0.5)
        ax.set_axisbelow(True)
    fig.legend(handles=[Patch(fc=_VIOLIN_COLOUR, ec="#5b7fa6", label="density (violin)"),
                        Patch(fc="white", ec="black", label="quartiles (whiskers 1.5 IQR)"),
                        Line2D([], [], color="black", label="median"),
                        Line2D([], [], ls="", marker="D", color="red", ms=3, label="mean"),
                        Line2D([], [], ls="", marker="o", color="#1f4e79", ms=3,
                               label="one test case")],
               loc="outside lower center", ncols=5, frameon=False)
    return _save(fig, png, pdf)


_BETTER_COLOUR, _WORSE_COLOUR = "#1a7f37", "#d62728"
"""Forest plot: significantly better (green ▲) and worse (red ▼) rows."""


@_styled
def forest_plot(stats_csv: Path | str, png: Path | str, pdf: Path | str, *,
                metric: str = "std_dsc",
                alpha: float = 0.05) -> tuple[Path, Path]:
    """Paired differences (row − reference) with their CIs: one panel per table × modality.

    Reads ``stats.csv`` (:func:`iman.evaluation.comparisons.stats_table`); where the
    Holm-adjusted p is below ``alpha`` a filled ▲ (the row is better, in the metric's
    direction) or ▼ (worse), open circles elsewhere; each label is the comparison's human name
    (``comparison``) with its n cases. A table without comparisons (e.g. one row) gets an
    empty panel saying so.
    """
    df = pd.read_csv(stats_csv)
    df = df[df["metric"] == metric]
    panels = [(t, m) for t in dict.fromkeys(df["table"]) for m in MODALITIES
              if ((df["table"] == t) & (df["modality"] == m)).any()]
    heights = [max(1, int(((df["table"] == t) & (df["modality"] == m)).sum()))
               for t, m in panels] or [1]
    fig = _new_figure(7.5, 0.9 + 0.24 * sum(heights) + 0.35 * len(heights) + LEGEND_IN)
    axes = fig.subplots(len(heights), 1, squeeze=False,
                        gridspec_kw={"height_ratios": heights})[:, 0]
    if not panels:
        _blank(axes[0], "no comparisons", square=False)
    for ax, (table, modality) in zip(axes, panels):
        sub = df[(df["table"] == table) & (df["modality"] == modality)].iloc[::-1]
        y = np.arange(len(sub))
        sig = (sub["p_holm"] < alpha).to_numpy()
        favours_row = np.where(sub["better"] == "negative", -1.0, 1.0) * sub["mean_diff"] > 0
        better, worse = sig & favours_row.to_numpy(), sig & ~favours_row.to_numpy()
        ax.errorbar(sub["mean_diff"], y, xerr=[sub["mean_diff"] - sub["ci_low"],
                                              sub["ci_high"] - sub["mean_diff"]],
                    fmt="none", ecolor="#444444", elinewidth=1.0, capsize=2)
        ax.scatter(sub["mean_diff"][better], y[better], color=_BETTER_COLOUR, marker="^",
                   zorder=3, s=22)
        ax.scatter(sub["mean_diff"][worse], y[worse], color=_WORSE_COLOUR, marker="v",
                   zorder=3, s=22)
        ax.scatter(sub["mean_diff"][~sig], y[~sig], facecolor="white", edgecolor="#444444",
                   zorder=3, s=18)
        ax.axvline(0.0, color="#888888", lw=0.8, ls="--")
        names = (sub["comparison"] if "comparison" in sub
                 else sub["row"] + " vs " + sub["reference"])
        ax.set_yticks(y, [f"{c} (n={int(n)})" for c, n in zip(names, sub["n_cases"])],
                      fontsize=6)
        ax.set_title(f"{table} {_MOD_LABEL[modality]}", fontsize=8, loc="left")
    axes[-1].set_xlabel(f"paired difference in {metric} (row − reference), 95 % CI "
                        "(inverted sign-flip test)")
    fig.legend(handles=[Line2D([], [], marker="^", ls="", color=_BETTER_COLOUR,
                               label=f"row better, Holm p < {alpha}"),
                        Line2D([], [], marker="v", ls="", color=_WORSE_COLOUR,
                               label=f"row worse, Holm p < {alpha}"),
                        Line2D([], [], marker="o", ls="", markerfacecolor="white",
                               color="#444444", label="not significant")],
               loc="outside lower center", ncols=3, frameon=False)
    return _save(fig, png, pdf)


def qualitative_figure(methods: Sequence[str], reference: str, files: Mapping[str, str | Path],
                       cache_dir: Path, n_cases: int, png: Path, pdf: Path) -> None:
    """Fig. 3 grid: each method's selected-loop predictions on test cases spread over the
    ``reference`` method's DSC range (IMAN in the workflow).

    ``files`` holds per method its summary, per-case rows and every candidate loop's
    predictions (:func:`~iman.names.summary_key`, :func:`~iman.names.per_case_key`,
    :func:`~iman.names.pred_key`, keyed by the method's name).
    """
    from iman.models.registry import method_label

    preds = {}
    for method in methods:
        summary = json.loads(Path(files[summary_key(method)]).read_text())
        preds[method_label(method)] = {
            m: Path(files[pred_key(method, Node(b["run"], m, b["loop"]))])
            for m, b in summary["branches"].items()}
    reference_rows = pd.read_csv(files[per_case_key(reference)], dtype={"case_id": str})
    cases = pick_cases(reference_rows, n_cases)
    qualitative_grid({c: case_file(cache_dir, c) for c in cases}, preds, png, pdf)



def margin_pathway_figure(experiment: str, files: Mapping[str, str | Path], cache_dir: Path,
                          png: Path, pdf: Path) -> None:
    """The 'X' pathway of one test case across an IMAN experiment's loops.

    ``files`` holds the experiment's per-case rows (:func:`~iman.names.per_case_key`) and,
    by :func:`~iman.names.node_key`, each loop's predictions and the margins each branch
    received.
    """
    spec = parse_name(experiment)
    case = pick_cases(pd.read_csv(files[per_case_key(experiment)], dtype={"case_id": str}),
                      1)[0]
    entries = []
    for loop in range((spec.loops or 0) + 1):
        entry: dict[str, Path] = {}
        for m in MODALITIES:
            node = node_for(spec, m, loop)
            entry[f"{m}_pred"] = Path(files[node_key(node, "pred")])
            if node_key(node, "margin") in files:
                entry[f"{m}_margin"] = Path(files[node_key(node, "margin")])
        entries.append(entry)
    margin_pathway(case, case_file(cache_dir, case), entries, png, pdf)
