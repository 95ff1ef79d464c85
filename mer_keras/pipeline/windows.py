"""Windows of N consecutive frames slid over clips (the paper's AugII), as indices into a frame table.

Every distinct frame (a real frame, or one interpolated between two real frames for a clip
shorter than N) gets one row in the frame table; a window is N row numbers. Frames are
therefore decoded, and their frozen features computed, once however many windows hold them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class FrameTable:
    """Distinct frames of a set of clips and, per clip key, the rows of its frames in order.

    A frame is ``(path_a, path_b, t)``: the image ``(1 - t) * a + t * b`` (``t == 0``: just ``a``).
    ``faces`` holds each row's face transform (``--face crop|align``), or is empty for whole frames.
    """

    frames: tuple
    clip_rows: dict
    faces: tuple = ()

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def interpolated(self) -> int:
        return sum(1 for _, _, t in self.frames if t)

    def face(self, row):
        """The face transform of frame ``row`` (None: the whole frame)."""
        return self.faces[row] if self.faces else None


def build_frame_table(planned_clips, faces=None) -> FrameTable:
    """Index the frames of ``(clip, plan)`` pairs, where a plan comes from ``short_clips.timeline``.

    ``faces`` maps a clip key to the face transform its frames get (none: whole frames).
    """
    rows, frames, clip_rows, transforms = {}, [], {}, []
    for clip, plan in planned_clips:
        ids = []
        for a, b, t in plan:
            key = (clip.frames[a], clip.frames[b], float(t)) if t else (clip.frames[a], clip.frames[a], 0.0)
            if key not in rows:
                rows[key] = len(frames)
                frames.append(key)
                if faces:
                    transforms.append(faces[clip.key])
            ids.append(rows[key])
        clip_rows[clip.key] = np.asarray(ids, dtype=np.int32)
    return FrameTable(tuple(frames), clip_rows, tuple(transforms))


def sliding_windows(rows: np.ndarray, n: int) -> np.ndarray:
    """All ``len(rows) - n + 1`` windows of ``n`` consecutive entries, shape ``(W, n)``."""
    rows = np.asarray(rows)
    if n < 1:
        raise ValueError(f"`n` must be >= 1. Received: n={n}")
    if len(rows) < n:
        raise ValueError(
            f"A clip of {len(rows)} frames has no window of n={n} frames; apply a short-clip "
            f"policy first. Received: {len(rows)} frames"
        )
    return np.ascontiguousarray(sliding_window_view(rows, n))


@dataclass(frozen=True)
class WindowSet:
    """Windows of a list of clips: frame-table rows, the clip each came from, and its label."""

    rows: np.ndarray  # (W, n) int32
    clip_index: np.ndarray  # (W,) index into `clips`
    labels: np.ndarray  # (W,) class index
    clips: tuple

    def __len__(self) -> int:
        return len(self.rows)

    def counts(self, class_names) -> dict:
        return {name: int(np.sum(self.labels == i)) for i, name in enumerate(class_names)}


def window_set(clips, table: FrameTable, n: int, class_names) -> WindowSet:
    """Every window of every clip (``n=1``: every frame, for the frame-level Exp-I)."""
    classes = {name: i for i, name in enumerate(class_names)}
    rows, clip_index, labels = [], [], []
    for i, clip in enumerate(clips):
        if clip.label not in classes:
            raise ValueError(f"{clip.key}: label {clip.label!r} is not one of {list(class_names)}.")
        windows = sliding_windows(table.clip_rows[clip.key], n)
        rows.append(windows)
        clip_index.append(np.full(len(windows), i, np.int32))
        labels.append(np.full(len(windows), classes[clip.label], np.int32))
    if not rows:
        raise ValueError("No clips given: cannot build windows from an empty list.")
    return WindowSet(
        np.concatenate(rows).astype(np.int32),
        np.concatenate(clip_index),
        np.concatenate(labels),
        tuple(clips),
    )


def balanced_indices(
    labels: np.ndarray,
    num_classes: int,
    rng: np.random.Generator,
    target: int | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """Indices giving every present class about ``target`` samples (default: ``scale`` x the largest class).

    Each class keeps all its samples once per multiple, topped up by a random draw without
    repetition, like the paper's per-class multipliers (Table 1: with ``scale`` 3 every class of
    SMIC-HS gets about 15,000 frames, as AugI).
    """
    present = [c for c in range(num_classes) if np.any(labels == c)]
    target = target or int(round(scale * max(int(np.sum(labels == c)) for c in present)))
    picked = []
    for c in present:
        members = np.flatnonzero(labels == c)
        whole, rest = divmod(target, len(members))
        picked.append(np.tile(members, whole))
        picked.append(rng.choice(members, size=rest, replace=False))
    return np.concatenate(picked)
