"""Clip-level scores with the MEGC2019 definitions: accuracy, UF1, UAR, pooled over folds.

UF1 is the mean over classes of per-class F1 and UAR the mean over classes of per-class
recall, both from TP/FP/FN counted on the predictions of *all* folds together (pooled),
so they equal scikit-learn's ``average="macro"`` scores on the concatenated predictions.
A per-class figure whose denominator is zero (recall of a class absent from ``y_true``;
F1 of a class neither present nor predicted) is undefined: it is reported as ``None`` and
left out of the mean, instead of counting as 0. Predicting an absent class still costs
F1, because that class's F1 is then a defined 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

SCORES = ("accuracy", "uf1", "uar")


def _labels(values, name: str) -> list:
    """Labels as a plain list (numpy scalars unwrapped), rejecting non-1-D input."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of labels, not one string. Received: {values!r}")
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one label per clip). Received: shape {values.shape}")
        return values.tolist()
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _check_classes(classes) -> list:
    classes = _labels(classes, "classes")
    if not classes:
        raise ValueError("classes must name at least one class. Received: []")
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ValueError(f"classes must be unique. Received: {classes!r}")
    return classes


def _check_known(values: list, classes: list, name: str) -> None:
    known = set(classes)
    unknown = [v for v in dict.fromkeys(values) if v not in known]
    if unknown:
        raise ValueError(f"{name} holds labels not in classes {classes!r}. Received: {unknown!r}")


def _defined(x) -> float | None:
    return None if np.isnan(x) else float(x)


def clip_metrics(y_true, y_pred, classes) -> dict:
    """Accuracy, UF1, UAR, per-class precision/recall/F1/support and the confusion matrix.

    ``classes`` fixes the class order (confusion rows = true, columns = predicted) and the
    classes UF1/UAR average over, so a class absent from this set of clips is still known.
    """
    classes = _check_classes(classes)
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true and y_pred must have the same length. Received: {len(y_true)} and {len(y_pred)}"
        )
    if not y_true:
        raise ValueError("clip_metrics needs at least one prediction. Received: 0 clips")
    _check_known(y_true, classes, "y_true")
    _check_known(y_pred, classes, "y_pred")
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, average=None, zero_division=np.nan
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "uf1": float(np.nanmean(f1)),  # = f1_score(..., average="macro", zero_division=np.nan)
        "uar": float(np.nanmean(recall)),
        "n": len(y_true),
        "classes": list(classes),
        "per_class": {
            str(c): {"precision": _defined(p), "recall": _defined(r), "f1": _defined(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }


def summarize_folds(per_fold: Sequence[Mapping], pooled: Mapping) -> dict:
    """The pooled scores, plus the mean and population std (numpy ``ddof=0``) over folds.

    Every fold counts in the mean and std, also one where a class is missing (its UF1/UAR
    then average over the classes defined in that fold). The per-fold dicts are kept as
    ``folds``. Pooled figures are the headline; mean ± std shows the spread across subjects.
    """
    per_fold = list(per_fold)
    if not per_fold:
        raise ValueError("summarize_folds needs at least one fold. Received: []")
    for where, scores in [("pooled", pooled)] + [(f"fold {i}", f) for i, f in enumerate(per_fold)]:
        missing = [k for k in SCORES if k not in scores]
        if missing:
            raise ValueError(f"The {where} scores lack {missing}. Received keys: {sorted(scores)}")
    if "n" in pooled and all("n" in f for f in per_fold):
        total = sum(f["n"] for f in per_fold)
        if total != pooled["n"]:
            raise ValueError(
                f"Pooled predictions must be the folds' predictions together. "
                f"Received: pooled n={pooled['n']}, folds' n sum to {total}"
            )
    table = np.array([[f[k] for k in SCORES] for f in per_fold], dtype=float)
    return {
        **pooled,
        "n_folds": len(per_fold),
        "fold_mean": dict(zip(SCORES, table.mean(axis=0).tolist())),
        "fold_std": dict(zip(SCORES, table.std(axis=0, ddof=0).tolist())),
        "fold_std_ddof": 0,
        "folds": per_fold,
    }


def summarize(fold_results, classes, source_of=None) -> dict:
    """``summarize_folds`` of cross-validation ``FoldResult``s, plus ``per_dataset`` pooled scores.

    ``source_of`` maps a clip key to its source dataset; a composite (several sources) gets the
    pooled scores of each source as MEGC2019 reports them, a single dataset ``{}``.
    """
    predictions = pd.concat([r.predictions for r in fold_results], ignore_index=True)
    pooled = clip_metrics(predictions["true"].tolist(), predictions["predicted"].tolist(), classes)
    summary = summarize_folds([r.metrics for r in fold_results], pooled)
    sources = predictions["clip"].map(source_of or {})
    summary["per_dataset"] = (
        {}
        if sources.nunique() < 2
        else {
            name: clip_metrics(part["true"].tolist(), part["predicted"].tolist(), classes)
            for name, part in predictions.groupby(sources, sort=True)
        }
    )
    return summary
