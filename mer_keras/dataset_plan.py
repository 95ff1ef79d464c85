"""The run's clips: loaded from ``--data``, stretched or dropped by the short-clip policy, classes ordered,
and (``--face crop|align``) one face transform per clip."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from mer_keras.config import SYNTHETIC, DataConfig
from mer_keras.datasets import load_dataset
from mer_keras.datasets.short_clips import apply_policy, timeline
from mer_keras.datasets.synthetic import ensure_synthetic_smic
from mer_keras.faces import FaceNotFoundWarning, FaceTransform, clip_face_transform
from mer_keras.files import read_json, write_json

log = logging.getLogger("mer_keras")

CLASS_ORDER = ("negative", "positive", "surprise", "non_micro")


@dataclass(frozen=True)
class DatasetPlan:
    """Clips kept, each with its frame plan (``short_clips.timeline``), the classes, what the policy did."""

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
    options = {} if data.sheet is None else {"sheet": data.sheet}
    return load_dataset(data.path, data.dataset, **options), data.path


def plan_dataset(data: DataConfig, n: int) -> DatasetPlan:
    """The clips of ``data`` with their frame plans for windows of ``n`` frames (``n=1``: single frames)."""
    clips, root = load_clips(data)
    classes = class_names(clips)
    if n > 1:
        planned, report = apply_policy(clips, n, data.short_clips)
        if report["shorter_than_n"] > len(clips) / 2:
            log.warning(
                "--n %d is longer than %d of the %d clips: they are %s (stretched up to x%.1f)",
                n,
                report["shorter_than_n"],
                len(clips),
                report["action"],
                report["largest_stretch"],
            )
    else:
        planned = [(c, timeline(len(c), 1)) for c in clips]
        report = {"policy": "not applicable (frame level)", "shorter_than_n": 0}
    return DatasetPlan(tuple(planned), classes, root, report)


FACES = "faces.json"  # the run's face transform per clip, found once and reused on --resume


def find_faces(plan: DatasetPlan, data: DataConfig, out) -> tuple[dict | None, dict]:
    """``(faces, record)``: each clip's face transform for ``--face crop|align`` (None for ``none``).

    MTCNN runs on each clip's first frames once per run; ``out/faces.json`` keeps the transforms,
    so a resumed run reuses them. A clip without a detected face keeps its whole frames (counted).
    """
    if data.face == "none":
        return None, {"face": "none"}
    path = Path(out) / FACES
    stored = read_json(path) if path.is_file() else {}
    faces = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FaceNotFoundWarning)
        for clip in tqdm(plan.clips, desc=f"--face {data.face}", unit="clip", disable=len(plan.clips) < 20):
            if clip.key in stored:
                faces[clip.key] = FaceTransform.from_json(stored[clip.key])
            else:
                faces[clip.key] = clip_face_transform(
                    clip.frames, data.face, margin=data.face_margin, name=clip.key
                )
    for warning in caught:
        log.warning("%s", warning.message)
    write_json(path, {key: face.to_json() for key, face in faces.items()})
    fell_back = sorted(key for key, face in faces.items() if not face.found)
    return faces, {
        "face": data.face,
        "margin": data.face_margin,
        "detector": "MTCNN (mtcnn 1.0.0)",
        "clips": len(faces),
        "found": len(faces) - len(fell_back),
        "whole_frame_fallback": fell_back,
        "transforms": str(path),
    }
