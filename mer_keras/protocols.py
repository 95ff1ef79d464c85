"""Subject-wise evaluation protocols: folds never share a subject between train, validation, test.

Validation (for checkpoint selection) is carved from each fold's training subjects, never from
the test subjects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedGroupKFold


@dataclass(frozen=True)
class Fold:
    """One fold: clips for training, validation (from training subjects) and testing."""

    index: int
    train: tuple
    validation: tuple
    test: tuple

    def subjects(self, part: str) -> list:
        return sorted({c.subject for c in getattr(self, part)})

    def __repr__(self) -> str:
        return (
            f"Fold({self.index}: train {len(self.train)} clips/{len(self.subjects('train'))} subj, "
            f"validation {len(self.validation)}/{len(self.subjects('validation'))}, "
            f"test {len(self.test)}/{len(self.subjects('test'))})"
        )


def _labels_groups(clips):
    return np.array([c.label for c in clips]), np.array([c.subject for c in clips])


def carve_validation(clips, fraction=0.2, seed=0):
    """Split clips by subject into ``(train, validation)``, about ``fraction`` of subjects held out.

    Stratified by class as far as subjects allow. With fewer than two subjects there is nothing to
    hold out and validation is empty.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"`fraction` must be in (0, 1). Received: fraction={fraction}")
    clips = list(clips)
    labels, groups = _labels_groups(clips)
    n_subjects = len(set(groups))
    if n_subjects < 2:
        return tuple(clips), ()
    n_splits = min(max(2, round(1.0 / fraction)), n_subjects)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    if max(np.unique(labels, return_counts=True)[1]) < n_splits:  # too few clips to stratify at all
        splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(len(clips)), labels, groups))
    return tuple(clips[i] for i in train_idx), tuple(clips[i] for i in val_idx)


def _folds(clips, splits, validation_fraction, seed):
    folds = []
    for index, (train_idx, test_idx) in enumerate(splits):
        train, validation = carve_validation([clips[i] for i in train_idx], validation_fraction, seed + index)
        folds.append(Fold(index, train, validation, tuple(clips[i] for i in test_idx)))
    return folds


def subject_kfold(clips, k=5, seed=0, validation_fraction=0.2) -> list:
    """``k`` folds by subject, classes stratified as far as subjects allow (StratifiedGroupKFold)."""
    clips = list(clips)
    labels, groups = _labels_groups(clips)
    n_subjects = len(set(groups))
    if not 2 <= k <= n_subjects:
        raise ValueError(f"`k` must be between 2 and the number of subjects ({n_subjects}). Received: k={k}")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    splits = splitter.split(np.zeros(len(clips)), labels, groups)
    return _folds(clips, splits, validation_fraction, seed)


def loso(clips, seed=0, validation_fraction=0.2) -> list:
    """Leave-one-subject-out: one fold per subject, in sorted subject order."""
    clips = list(clips)
    labels, groups = _labels_groups(clips)
    if len(set(groups)) < 2:
        raise ValueError(f"LOSO needs at least 2 subjects. Received: {sorted(set(groups))}")
    splits = LeaveOneGroupOut().split(np.zeros(len(clips)), labels, groups)
    return _folds(clips, splits, validation_fraction, seed)


def make_folds(clips, protocol) -> list:
    """The folds of a ``ProtocolConfig``: subject-wise k-fold or leave-one-subject-out."""
    if protocol.protocol == "loso":
        return loso(clips, seed=protocol.seed, validation_fraction=protocol.validation_fraction)
    n_subjects = len({c.subject for c in clips})
    if protocol.folds > n_subjects:
        raise ValueError(
            f"--folds must be at most the number of subjects ({n_subjects}). "
            f"Received: --folds {protocol.folds}"
        )
    return subject_kfold(
        clips, k=protocol.folds, seed=protocol.seed, validation_fraction=protocol.validation_fraction
    )
