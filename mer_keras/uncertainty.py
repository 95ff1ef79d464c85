"""Uncertainty of pooled scores: subject-level bootstrap intervals, paired run comparisons, seed spread.

Clips of one subject are not independent (same face, same fold model), and MER datasets have only
16-68 subjects, so every resampling here treats the *subject* as the unit: a bootstrap resample draws
subjects with replacement and keeps all their clips, and the permutation test swaps two runs'
predictions for whole subjects. Scores are those of ``metrics.clip_metrics`` (MEGC2019 accuracy, UF1,
UAR pooled over all clips), computed from summed per-subject confusion matrices so that thousands of
resamples take milliseconds; the tests check them against ``clip_metrics`` on materialised resamples.

A prediction table is a DataFrame with one row per clip and columns ``clip``, ``subject``, ``true``,
``predicted`` (others, e.g. ``p_<class>`` and ``fold``, are ignored). Labels are matched to
``classes`` by their string form, as the predictions CSV stores them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mer_keras import metrics
from mer_keras.metrics import SCORES

_COLUMNS = ("clip", "subject", "true", "predicted")
_TIE = 1e-12  # permuted differences this close to the observed one count as "as extreme" (float noise)
_CHUNK = 8192  # rows of draws/swaps handled at once: bounds memory for large resample counts


def _check_table(predictions, name: str) -> pd.DataFrame:
    if not isinstance(predictions, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame of predictions. Received: {type(predictions)}")
    missing = [c for c in _COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}. Received: columns {list(predictions.columns)}")
    if predictions.empty:
        raise ValueError(f"{name} needs at least one clip. Received: 0 rows")
    empty = [c for c in _COLUMNS if predictions[c].isna().any()]
    if empty:
        raise ValueError(
            f"{name} has empty cells in columns {empty}. Received: "
            f"{int(predictions[empty].isna().any(axis=1).sum())} rows with empty cells"
        )
    clips = predictions["clip"].astype(str)
    repeated = sorted(set(clips[clips.duplicated()]))
    if repeated:
        raise ValueError(f"{name} must hold each clip once. Received: repeated clips {_some(repeated)}")
    return predictions


def _encode(values: pd.Series, classes: list, name: str) -> np.ndarray:
    index = {str(c): i for i, c in enumerate(classes)}
    text = values.astype(str)
    unknown = list(dict.fromkeys(v for v in text if v not in index))
    if unknown:
        raise ValueError(f"{name} holds labels not in classes {classes!r}. Received: {unknown!r}")
    return text.map(index).to_numpy(dtype=np.intp)


def _some(items: Sequence, limit: int = 5) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:limit]) + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def _plain(value):
    """numpy scalars as Python ones, so the result dicts stay JSON-able."""
    return value.item() if isinstance(value, np.generic) else value


def _check_options(resamples: int, level: float, name: str = "resamples") -> None:
    """A positive integer count of resamples (or permutations) and a level strictly inside (0, 1)."""
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {resamples!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95). Received: {level!r}")


class _Table:
    """A validated prediction table as integer codes: true, predicted and subject index per clip."""

    def __init__(self, predictions, classes, name: str = "predictions"):
        predictions = _check_table(predictions, name)
        self.classes = metrics._check_classes(classes)
        self.clips = predictions["clip"].astype(str).to_numpy()
        self.true = _encode(predictions["true"], self.classes, f"{name} column 'true'")
        self.predicted = _encode(predictions["predicted"], self.classes, f"{name} column 'predicted'")
        subjects = predictions["subject"].astype(str)
        self.subjects = sorted(set(subjects))  # sorted: results do not depend on the row order
        self.subject = subjects.map({s: i for i, s in enumerate(self.subjects)}).to_numpy(dtype=np.intp)

    def confusions(self, predicted=None) -> np.ndarray:
        """(subjects, classes, classes) counts: rows true, columns predicted, one matrix per subject."""
        predicted = self.predicted if predicted is None else predicted
        k, s = len(self.classes), len(self.subjects)
        flat = (self.subject * k + self.true) * k + predicted
        return np.bincount(flat, minlength=s * k * k).reshape(s, k, k)

    def clip_metrics(self, predicted=None) -> dict:
        predicted = self.predicted if predicted is None else predicted
        return metrics.clip_metrics(
            [self.classes[i] for i in self.true], [self.classes[i] for i in predicted], self.classes
        )


def subject_confusions(predictions: pd.DataFrame, classes) -> tuple[list, np.ndarray]:
    """The subjects (sorted by name) and one confusion matrix per subject, shaped (S, K, K).

    Rows are true classes and columns predicted ones, in ``classes`` order; summing the matrices of
    drawn subjects gives the pooled confusion of a resample. Subject i of the draws is ``subjects[i]``.
    """
    table = _Table(predictions, classes)
    return table.subjects, table.confusions()


def confusion_scores(confusion) -> dict:
    """Accuracy, UF1 and UAR of pooled confusion matrices shaped (..., K, K), as ``clip_metrics``.

    Per-class F1 = 2TP / (2TP + FP + FN) and recall = TP / (TP + FN); a class whose denominator is
    zero (absent and never predicted; absent, for recall) is undefined and left out of the macro mean.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    true_count, predicted_count = confusion.sum(axis=-1), confusion.sum(axis=-2)
    f1_denominator = true_count + predicted_count  # = 2TP + FP + FN
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(f1_denominator > 0, 2 * tp / f1_denominator, np.nan)
        recall = np.where(true_count > 0, tp / true_count, np.nan)
    return {
        "accuracy": tp.sum(axis=-1) / true_count.sum(axis=-1),
        "uf1": np.nanmean(f1, axis=-1),  # never all-NaN: a confusion with clips has a present class
        "uar": np.nanmean(recall, axis=-1),
    }


def _draw_counts(draws, n_subjects: int) -> np.ndarray:
    """How often each subject is drawn in each resample: (R, S) counts from an (R, S) index matrix."""
    draws = np.asarray(draws)
    if draws.ndim != 2 or not np.issubdtype(draws.dtype, np.integer):
        raise ValueError(
            f"draws must be a 2-D integer matrix (resamples, draws). Received: "
            f"shape {draws.shape}, dtype {draws.dtype}"
        )
    if draws.size and (draws.min() < 0 or draws.max() >= n_subjects):
        raise ValueError(
            f"draws must index the {n_subjects} subjects (0 to {n_subjects - 1}). "
            f"Received: values in [{draws.min()}, {draws.max()}]"
        )
    offsets = np.arange(draws.shape[0])[:, None] * n_subjects
    return np.bincount((draws + offsets).ravel(), minlength=draws.shape[0] * n_subjects).reshape(
        draws.shape[0], n_subjects
    )


def resample_scores(confusions, draws) -> dict:
    """Scores of each resample given by a row of subject indices (a subject drawn twice counts twice).

    ``confusions`` is the (S, K, K) array of ``subject_confusions`` and ``draws`` an (R, D) integer
    matrix; returns {"accuracy", "uf1", "uar"} arrays of length R.
    """
    confusions = np.asarray(confusions)
    if confusions.ndim != 3 or confusions.shape[1] != confusions.shape[2]:
        raise ValueError(
            f"confusions must be shaped (subjects, classes, classes). Received: {confusions.shape}"
        )
    return confusion_scores(_pooled(_draw_counts(draws, confusions.shape[0]), confusions))


def _bootstrap_counts(rng: np.random.Generator, n_subjects: int, resamples: int):
    """Chunks of (rows, S) draw counts: each row draws S subjects uniformly with replacement."""
    for start in range(0, resamples, _CHUNK):
        rows = min(_CHUNK, resamples - start)
        yield _draw_counts(rng.integers(0, n_subjects, size=(rows, n_subjects)), n_subjects)


def _pooled(counts: np.ndarray, confusions: np.ndarray) -> np.ndarray:
    s, k = confusions.shape[:2]
    return (counts.astype(np.float64) @ confusions.reshape(s, k * k)).reshape(-1, k, k)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])  # numpy "linear" method
    return float(low), float(high)


BOOTSTRAP_METHOD = (
    "percentile bootstrap over subjects (clusters): each resample draws as many subjects as there are, "
    "uniformly with replacement, and takes all clips of each drawn subject (a subject drawn twice counts "
    "twice); accuracy/UF1/UAR are pooled over the resample as in metrics.clip_metrics, a class undefined "
    "in a resample (no true clip, or neither true nor predicted) is left out of UF1/UAR; interval = "
    "numpy linear quantiles at (1 - level)/2 and (1 + level)/2 of the resampled scores"
)


def bootstrap_ci(
    predictions: pd.DataFrame, classes, *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict:
    """Percentile confidence intervals of pooled accuracy, UF1 and UAR by resampling subjects.

    ``estimate`` is the score on the table itself (``clip_metrics``), not the bootstrap mean. With few
    subjects (SMIC-HS has 16) percentile intervals tend to be somewhat too narrow: read them as a floor.
    """
    _check_options(resamples, level)
    table = _Table(predictions, classes)
    confusions = table.confusions()
    rng = np.random.default_rng(seed)
    values = {score: [] for score in SCORES}
    missing_class = 0
    for counts in _bootstrap_counts(rng, len(table.subjects), resamples):
        pooled = _pooled(counts, confusions)
        missing_class += int((pooled.sum(axis=-1) == 0).any(axis=-1).sum())
        for score, array in confusion_scores(pooled).items():
            values[score].append(array)
    estimate = table.clip_metrics()
    result = {}
    for score in SCORES:
        low, high = _interval(np.concatenate(values[score]), level)
        result[score] = {"estimate": estimate[score], "low": low, "high": high}
    return {
        **result,
        "method": BOOTSTRAP_METHOD,
        "resamples": int(resamples),
        "resamples_missing_a_class": missing_class,
        "seed": _plain(seed),
        "level": float(level),
        "n_subjects": len(table.subjects),
        "n_clips": len(table.clips),
    }


def _paired_tables(a, b, classes) -> tuple[_Table, np.ndarray]:
    """Run A's table and run B's predictions in A's clip order, after checking both cover the same clips."""
    first, second = _Table(a, classes, "run A"), _Table(b, classes, "run B")
    only_a = sorted(set(first.clips) - set(second.clips))
    only_b = sorted(set(second.clips) - set(first.clips))
    if only_a or only_b:
        raise ValueError(
            f"Both runs must predict the same clips; runs differ in clips: {len(only_a)} only in A"
            f"{f' ({_some(only_a)})' if only_a else ''}, {len(only_b)} only in B"
            f"{f' ({_some(only_b)})' if only_b else ''}. "
            f"Received: {len(first.clips)} clips in A, {len(second.clips)} in B"
        )
    order = pd.Series(np.arange(len(second.clips)), index=second.clips)[first.clips].to_numpy()
    subjects_b = np.asarray(second.subjects, dtype=object)[second.subject[order]]
    subjects_a = np.asarray(first.subjects, dtype=object)[first.subject]
    for what, in_a, in_b, show in [
        ("true label", first.true, second.true[order], lambda i: first.classes[i]),
        ("subject", subjects_a, subjects_b, str),
    ]:
        differ = np.flatnonzero(in_a != in_b)
        if differ.size:
            cases = [f"{first.clips[i]}: {show(in_a[i])!r} in A, {show(in_b[i])!r} in B" for i in differ]
            raise ValueError(
                f"Both runs must be on the same clips; runs disagree on the {what} of "
                f"{differ.size} clips. Received: {_some(cases, 3)}"
            )
    return first, second.predicted[order]


def _exact(n_subjects: int, permutations: int) -> bool:
    """Whether all 2**S subject swaps fit in the requested count, so they are enumerated instead."""
    return n_subjects < 63 and 2**n_subjects <= permutations


def _swap_masks(rng: np.random.Generator, n_subjects: int, permutations: int):
    """Chunks of (rows, S) 0/1 masks, 1 = swap that subject's predictions between the runs.

    When ``_exact`` every mask is enumerated once (an exact test), else they are drawn uniformly.
    """
    if _exact(n_subjects, permutations):
        total = 2**n_subjects
        for start in range(0, total, _CHUNK):
            codes = np.arange(start, min(start + _CHUNK, total), dtype=np.int64)
            yield (codes[:, None] >> np.arange(n_subjects)) & 1
        return
    for start in range(0, permutations, _CHUNK):
        yield rng.integers(0, 2, size=(min(_CHUNK, permutations - start), n_subjects))


PERMUTATION_SCHEME = (
    "paired permutation over subjects: under the null hypothesis that the runs are exchangeable, each "
    "subject's predictions from A and B are swapped as a block with probability 1/2 (all clips of a "
    "subject together, keeping the within-subject correlation that a per-clip swap would ignore); "
    "two-sided p = share of swaps with |B - A| >= |observed B - A|; exact over all 2**subjects swaps "
    "when that is at most the requested count, else (1 + hits) / (1 + permutations) over random swaps"
)


def paired_comparison(
    a: pd.DataFrame,
    b: pd.DataFrame,
    classes,
    *,
    resamples: int = 2000,
    permutations: int = 10000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Difference B - A of pooled accuracy, UF1 and UAR of two runs on the same clips, with CI and p.

    The interval is a paired subject bootstrap (a drawn subject brings both runs' predictions of its
    clips); the p-value is a two-sided paired permutation test that swaps whole subjects between runs.
    Bootstrap and permutations use independent streams spawned from ``seed``.
    """
    _check_options(resamples, level)
    _check_options(permutations, level, "permutations")
    table, predicted_b = _paired_tables(a, b, classes)
    conf_a, conf_b = table.confusions(), table.confusions(predicted_b)
    s, k = conf_a.shape[:2]
    boot_rng, perm_rng = (np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(2))

    diffs = {score: [] for score in SCORES}
    for counts in _bootstrap_counts(boot_rng, s, resamples):
        scores_a = confusion_scores(_pooled(counts, conf_a))
        scores_b = confusion_scores(_pooled(counts, conf_b))
        for score in SCORES:
            diffs[score].append(scores_b[score] - scores_a[score])

    observed_a, observed_b = table.clip_metrics(), table.clip_metrics(predicted_b)
    observed = {score: observed_b[score] - observed_a[score] for score in SCORES}
    total_a, total_b = conf_a.sum(axis=0).astype(np.float64), conf_b.sum(axis=0).astype(np.float64)
    change = (conf_b - conf_a).reshape(s, k * k).astype(np.float64)  # what swapping subject i moves A by
    hits, count, exact = dict.fromkeys(SCORES, 0), 0, _exact(s, permutations)
    for masks in _swap_masks(perm_rng, s, permutations):
        moved = (masks.astype(np.float64) @ change).reshape(-1, k, k)
        swapped_a, swapped_b = confusion_scores(total_a + moved), confusion_scores(total_b - moved)
        for score in SCORES:
            extreme = np.abs(swapped_b[score] - swapped_a[score]) >= abs(observed[score]) - _TIE
            hits[score] += int(extreme.sum())
        count += masks.shape[0]

    result = {}
    for score in SCORES:
        low, high = _interval(np.concatenate(diffs[score]), level)
        p = hits[score] / count if exact else (1 + hits[score]) / (1 + count)
        result[score] = {
            "a": observed_a[score],
            "b": observed_b[score],
            "difference": observed[score],
            "low": low,
            "high": high,
            "p_value": float(p),
        }
    return {
        **result,
        "difference": "B - A (positive: run B scores higher)",
        "method": "paired " + BOOTSTRAP_METHOD + "; both runs' clips of a drawn subject enter together",
        "permutation_scheme": PERMUTATION_SCHEME,
        "resamples": int(resamples),
        "permutations": count,
        "exact_permutation": exact,
        "seed": _plain(seed),
        "level": float(level),
        "n_subjects": s,
        "n_clips": len(table.clips),
    }


def seed_summary(results: Sequence[Mapping], *, seeds: Sequence | None = None) -> dict:
    """Mean and sample std (``ddof=1``) over seeds of pooled accuracy, UF1 and UAR, values listed.

    ddof=1 because the seeds are a sample of the possible seeds (unlike folds, which are the whole
    dataset); with a single result the std is undefined and given as None. ``seeds`` labels the runs
    (default: each result's ``seed`` key, or None).
    """
    results = list(results)
    if not results:
        raise ValueError("seed_summary needs at least one run's results. Received: []")
    for i, scores in enumerate(results):
        if not isinstance(scores, Mapping):
            raise TypeError(f"Each result must be a results dict. Received: {type(scores)} at position {i}")
        missing = [key for key in SCORES if key not in scores]
        if missing:
            raise ValueError(f"Result {i} lacks {missing}. Received keys: {sorted(map(str, scores))}")
        bad = {
            key: scores[key]
            for key in SCORES
            if isinstance(scores[key], bool)
            or not isinstance(scores[key], (int, float, np.number))
            or not np.isfinite(scores[key])
        }
        if bad:
            raise ValueError(f"Result {i} must hold finite numbers for {list(bad)}. Received: {bad!r}")
    seeds = [r.get("seed") for r in results] if seeds is None else list(seeds)
    seeds = [_plain(v) for v in seeds]
    if len(seeds) != len(results):
        raise ValueError(
            f"One seed label per result is needed. Received: {len(seeds)} seeds, {len(results)} results"
        )
    summary = {"n_seeds": len(results), "std_ddof": 1, "seeds": seeds}
    for key in SCORES:
        values = np.array([float(r[key]) for r in results])
        summary[key] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "values": values.tolist(),
        }
    return summary
