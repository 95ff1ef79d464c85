"""Figures of a run: the confusion matrix (the paper's Figure 3) and training curves.

Figures are built as plain ``matplotlib.figure.Figure`` objects (Agg rendering, no pyplot
state, nothing left open); ``reports`` saves them atomically.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100


def _count(value) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def confusion_figure(confusion, classes, title: str = "") -> Figure:
    """Counts and row-normalised percentages per cell; colour = row share (per-class recall)."""
    counts = np.asarray(confusion)
    classes = [str(c) for c in classes]
    k = len(classes)
    if counts.shape != (k, k):
        raise ValueError(
            f"confusion must be ({k}, {k}) for classes {classes}. Received: shape {counts.shape}"
        )
    if k == 0 or not np.all(np.isfinite(counts)) or counts.min() < 0:
        raise ValueError(f"confusion must hold counts >= 0. Received: {counts.tolist()}")
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)

    side = 1.1 * k + 2.2
    fig = Figure(figsize=(side + 1.0, side), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(share * 100, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, label="% of true class")
    for i in range(k):
        for j in range(k):
            pct = f"{share[i, j] * 100:.1f} %" if rows[i, 0] else "–"
            ax.text(
                j,
                i,
                f"{_count(counts[i, j])}\n{pct}",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(k), classes, rotation=30, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(title or f"Confusion matrix (n={_count(counts.sum())})")
    return fig


def _series(history, fold, key) -> np.ndarray | None:
    if key not in history:
        return None
    try:
        values = np.asarray(history[key], dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"History {fold!r}[{key!r}] must be numbers. Received: {history[key]!r}") from None
    if values.ndim != 1:
        raise ValueError(
            f"History {fold!r}[{key!r}] must be a list per epoch. Received: shape {values.shape}"
        )
    return values


def curves_figure(histories: Mapping) -> Figure:
    """Loss and accuracy per epoch: one colour per fold, solid = train, dashed = validation.

    ``histories`` maps a fold name to a Keras ``History.history``-like dict (or a History);
    any of ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` may be missing.
    """
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError(f"histories must be a non-empty dict of fold -> history. Received: {histories!r}")
    fig = Figure(figsize=(11, 4.5), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(histories))]
    for ax, metric in zip(axes, ("loss", "accuracy")):
        drawn = False
        for colour, (fold, history) in zip(colours, histories.items()):
            history = getattr(history, "history", history)
            if not isinstance(history, Mapping):
                raise ValueError(f"History {fold!r} must be a dict of lists. Received: {history!r}")
            for key, style in ((metric, "-"), (f"val_{metric}", "--")):
                values = _series(history, fold, key)
                if values is not None and values.size:
                    ax.plot(np.arange(1, values.size + 1), values, style, color=colour, label=str(fold))
                    drawn = True
        if not drawn:
            ax.text(0.5, 0.5, f"no {metric} recorded", ha="center", va="center", transform=ax.transAxes)
        elif len(histories) <= 10:
            handles, labels = ax.get_legend_handles_labels()
            unique = {}
            for label, handle in zip(labels, handles):
                unique.setdefault(label, handle)  # one entry per fold, not per line
            ax.legend(unique.values(), unique.keys(), fontsize=8)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{metric} (solid: train, dashed: validation)")
    return fig
