"""Clips shorter than the window length N: interpolate (default), repeat or drop them.

A clip's timeline is a list of ``(a, b, t)`` triples, one per output frame: the frame is
``(1 - t) * frames[a] + t * frames[b]``. Interpolation is TIM-like (linear between the two
neighbouring frames); ``repeat`` resamples by nearest frame (frames duplicated evenly over time).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

POLICIES = ("interpolate", "repeat", "drop")


def timeline(length: int, n: int, policy: str = "interpolate"):
    """The ``(a, b, t)`` frame plan of a clip of ``length`` frames for windows of ``n``.

    Clips at least ``n`` long keep their frames; shorter ones are stretched to exactly ``n``
    frames, or None is returned for ``drop``.
    """
    if policy not in POLICIES:
        raise ValueError(f"`policy` must be one of {POLICIES}. Received: policy={policy!r}")
    if length < 1 or n < 1:
        raise ValueError(f"`length` and `n` must be >= 1. Received: length={length}, n={n}")
    if length >= n:
        return [(i, i, 0.0) for i in range(length)]
    if policy == "drop":
        return None
    positions = np.linspace(0.0, length - 1, n)
    if policy == "repeat":
        return [(int(i), int(i), 0.0) for i in np.rint(positions)]
    plan = []
    for p in positions:
        a = min(int(np.floor(p)), length - 1)
        b = min(a + 1, length - 1)
        t = float(p - a) if b != a else 0.0
        plan.append((a, b, round(t, 6)))
    return plan


def apply_policy(clips, n: int, policy: str = "interpolate"):
    """Frame plans for every clip plus a report of what the policy did.

    Returns ``(kept, report)``: ``kept`` is a list of ``(clip, plan)`` pairs and ``report`` says
    how many clips, and which, were shorter than ``n`` and what happened to them, per class.
    """
    kept, short, dropped = [], [], []
    for clip in clips:
        plan = timeline(len(clip), n, policy)
        if len(clip) < n:
            short.append(clip)
        if plan is None:
            dropped.append(clip)
        else:
            kept.append((clip, plan))
    if not kept:
        raise ValueError(
            f"Every clip is shorter than N={n} and policy 'drop' removes them all "
            f"(longest clip: {max(len(c) for c in clips)} frames). Lower N or use 'interpolate'."
        )
    report = {
        "policy": policy,
        "n": n,
        "clips": len(clips),
        "shorter_than_n": len(short),
        "shorter_by_class": dict(Counter(c.label for c in short)),
        "affected": [c.key for c in short],
        "action": {"interpolate": "interpolated", "repeat": "repeated", "drop": "dropped"}[policy],
        "dropped": [c.key for c in dropped],
        "largest_stretch": round(n / min(len(c) for c in short), 2) if short and policy != "drop" else 1.0,
    }
    return kept, report


def blend(frame_a: np.ndarray, frame_b: np.ndarray, t: float) -> np.ndarray:
    """The plan's frame ``(1 - t) * a + t * b`` in float32 (``t`` a Python float, as plans hold it)."""
    return (1.0 - t) * np.asarray(frame_a, np.float32) + t * np.asarray(frame_b, np.float32)
