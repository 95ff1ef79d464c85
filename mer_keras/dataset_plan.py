"""The run's clips: loaded from ``--data``, stretched or dropped by the short-clip policy, classes ordered."""

from __future__ import annotations

from dataclasses import dataclass

from mer_keras.config import SYNTHETIC, DataConfig
from mer_keras.datasets import load_dataset
from mer_keras.datasets.short_clips import apply_policy, timeline
from mer_keras.datasets.synthetic import ensure_synthetic_smic

CLASS_ORDER = ("negative", "positive", "surprise", "non_micro")


@dataclass(frozen=True)
class DatasetPlan:
    """Clips kept, each with its frame plan (``short_clips.timeline``), the classes and what the policy did."""

    planned: tuple  # (clip, plan) pairs
    classes: tuple
    root: str
    short_report: dict

    @property
    def clips(self) -> list:
        return [clip for clip, _ in self.planned]


def class_names(clips) -> tuple:
    """Labels in the paper's order where known, any others after them alphabetically."""
    labels = {c.label for c in clips}
    return tuple([c for c in CLASS_ORDER if c in labels] + sorted(labels - set(CLASS_ORDER)))


def load_clips(data: DataConfig):
    """``(clips, root)`` of ``data.path``; the built-in synthetic dataset is generated on first use."""
    if data.path == SYNTHETIC:
        root = ensure_synthetic_smic(seed=0, subjects=data.synthetic_subjects)
        return load_dataset(root, "smic"), str(root)
    return load_dataset(data.path, data.dataset), data.path


def plan_dataset(data: DataConfig, n: int) -> DatasetPlan:
    """The clips of ``data`` with their frame plans for windows of ``n`` frames (``n=1``: single frames)."""
    clips, root = load_clips(data)
    classes = class_names(clips)
    if n > 1:
        planned, report = apply_policy(clips, n, data.short_clips)
    else:
        planned = [(c, timeline(len(c), 1)) for c in clips]
        report = {"policy": "not applicable (frame level)", "shorter_than_n": 0}
    return DatasetPlan(tuple(planned), classes, root, report)
