"""Grad-CAM figures as matplotlib ``Figure`` objects (Agg): sweep grids and before/after (Figure 4).

Each heat map is scaled to its own maximum and laid over its frame; the white outline is the
region the focus score counts. Clip models show the centre frame of each window and its map.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

PANEL = 1.35  # inches per frame
DPI = 100


def frame_and_map(sample, maps, index):
    """The frame shown for ``sample`` and its map (the centre frame of a window for clip models)."""
    image, cam = sample.image, np.asarray(maps[index])
    if image.ndim == 4:
        middle = image.shape[0] // 2
        image, cam = image[middle], cam[middle]
    return image, cam


def overlay(ax, image, cam=None, mask=None):
    """Frame, heat map (scaled to its maximum) and region outline on ``ax``."""
    ax.imshow(np.clip(image, 0, 255).astype(np.uint8))
    if cam is not None and float(cam.max()) > 0:
        ax.imshow(cam / float(cam.max()), cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
    elif cam is not None:  # ReLU left nothing: no positive evidence at this layer
        ax.text(0.5, 0.04, "all-zero map", transform=ax.transAxes, ha="center", fontsize=6, color="white")
    if mask is not None and mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def _title(fig, text):
    fig.suptitle(text, fontsize=8, y=1 - 0.06 / fig.get_figheight(), va="top")


def _grid(rows, cols, top=0.95, left=0.9):
    """A figure of ``rows`` x ``cols`` frame panels with fixed margins in inches (fast to lay out)."""
    width, height = PANEL * cols + left + 0.1, PANEL * rows + top + 0.1
    fig = Figure(figsize=(width, height), dpi=DPI)
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.subplots_adjust(
        left=left / width,
        right=1 - 0.1 / width,
        top=1 - top / height,
        bottom=0.1 / height,
        wspace=0.06,
        hspace=0.06,
    )
    return fig, axes


def _label(sample, classes):
    return f"{classes[sample.label]}\n{sample.clip.subject}/{sample.clip.clip_id}"


def _score(value):
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def sweep_figure(samples, sweep, classes, title) -> Figure:
    """Frames (rows) x layers (columns), each column titled with its layer and focus score."""
    layers = list(sweep)
    fig, axes = _grid(len(samples), len(layers))
    for i, sample in enumerate(samples):
        for j, layer in enumerate(layers):
            image, cam = frame_and_map(sample, sweep[layer]["maps"], i)
            overlay(axes[i, j], image, cam, sample.mask)
            if i == 0:
                axes[i, j].set_title(f"{layer}\nfocus {_score(sweep[layer]['score'])}", fontsize=7)
        axes[i, 0].set_ylabel(_label(sample, classes), fontsize=7)
    _title(fig, title)
    return fig


def before_after_figure(samples, before, after, layer, classes, title="") -> Figure:
    """The paper's Figure 4: per sample, the frame and the maps of the untrained and trained model.

    The figure is three frames wide: keep ``title`` short or break it with newlines.
    """
    fig, axes = _grid(len(samples), 3)
    heads = [
        "frame (outline: scored region)",
        f"before training\nmean focus {_score(before[layer]['score'])}",
        f"after training\nmean focus {_score(after[layer]['score'])}",
    ]
    for i, sample in enumerate(samples):
        image, cam_before = frame_and_map(sample, before[layer]["maps"], i)
        _, cam_after = frame_and_map(sample, after[layer]["maps"], i)
        for j, cam in enumerate((None, cam_before, cam_after)):
            overlay(axes[i, j], image, cam, sample.mask)
            if i == 0:
                axes[i, j].set_title(heads[j], fontsize=8)
        axes[i, 0].set_ylabel(_label(sample, classes), fontsize=7)
    _title(fig, title or f"Grad-CAM at {layer}")
    return fig
