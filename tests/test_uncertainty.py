import itertools
import json
import time

import numpy as np
import pandas as pd
import pytest

from mer_keras.metrics import clip_metrics
from mer_keras.uncertainty import (
    bootstrap_ci,
    confusion_scores,
    paired_comparison,
    resample_scores,
    seed_summary,
    subject_confusions,
)

ABC = ["a", "b", "c"]
SCORES = ("accuracy", "uf1", "uar")

# subject -> [(true, predicted)], one pair per clip
SMALL = {
    "s1": [("a", "a"), ("b", "a")],
    "s2": [("a", "a"), ("c", "c"), ("b", "b")],
    "s3": [("c", "b")],
}


def table(spec, extra=True):
    """A prediction table (clip, subject, true, predicted, p_*, fold) from {subject: [(true, pred)]}."""
    rows = [
        {"clip": f"{s}_{i}", "subject": s, "true": t, "predicted": p}
        for s, pairs in spec.items()
        for i, (t, p) in enumerate(pairs)
    ]
    frame = pd.DataFrame(rows)
    if extra:
        for c in ABC:
            frame[f"p_{c}"] = (frame["predicted"] == c).astype(float)
        frame["fold"] = 0
    return frame


def materialised(spec, draw):
    """The clips of the drawn subjects (a subject drawn twice counts twice), as clip_metrics sees them."""
    subjects = sorted(spec)
    pairs = [pair for i in draw for pair in spec[subjects[i]]]
    return clip_metrics([t for t, _ in pairs], [p for _, p in pairs], ABC)


def uniform_spec(n_subjects, clips, wrong_subjects=(), seed=None):
    """n subjects of ``clips`` clips each; all right except the subjects listed (or random, if seed)."""
    rng = np.random.default_rng(seed)
    spec = {}
    for s in range(n_subjects):
        true = [ABC[(s + i) % 3] for i in range(clips)]
        if seed is not None:
            pred = [t if rng.random() < 0.6 else ABC[rng.integers(3)] for t in true]
        else:
            pred = [ABC[(ABC.index(t) + 1) % 3] if s in wrong_subjects else t for t in true]
        spec[f"sub{s:02d}"] = list(zip(true, pred))
    return spec


# ---- scores of given subject draws, against hand computation and clip_metrics ----


@pytest.mark.parametrize(
    "draw, expected",
    [
        # s1,s2,s3 = the table itself. Confusion rows a [2 0 0], b [1 1 0], c [0 1 1]:
        # F1 a,b,c = 4/5, 2/4, 2/3 -> UF1 59/90; recall 1, 1/2, 1/2 -> UAR 2/3; accuracy 4/6.
        ((0, 1, 2), {"accuracy": 4 / 6, "uf1": 59 / 90, "uar": 2 / 3}),
        # s1 three times: a->a x3, b->a x3. F1 a = 6/9, b = 0, c undefined (left out) -> UF1 1/3;
        # recall a 1, b 0, c undefined -> UAR 1/2.
        ((0, 0, 0), {"accuracy": 0.5, "uf1": 1 / 3, "uar": 0.5}),
        # s3 three times: c->b x3. F1 b = 0 (predicted, absent), c = 0; recall c 0, b and a undefined.
        ((2, 2, 2), {"accuracy": 0.0, "uf1": 0.0, "uar": 0.0}),
        # s2,s2,s3: rows a [2 0 0], b [0 2 0], c [0 1 2]. F1 1, 4/5, 4/5 -> 13/15; recall 1, 1, 2/3.
        ((1, 1, 2), {"accuracy": 6 / 7, "uf1": 13 / 15, "uar": 8 / 9}),
        # order within a draw does not matter
        ((2, 1, 1), {"accuracy": 6 / 7, "uf1": 13 / 15, "uar": 8 / 9}),
    ],
)
def test_resample_scores_hand_computed(draw, expected):
    subjects, confusions = subject_confusions(table(SMALL), ABC)
    assert subjects == ["s1", "s2", "s3"]
    scores = resample_scores(confusions, np.array([draw]))
    for key, value in expected.items():
        assert scores[key][0] == pytest.approx(value, abs=1e-12), key


def test_resample_scores_equal_clip_metrics_on_all_27_draws():
    _, confusions = subject_confusions(table(SMALL), ABC)
    draws = np.array(list(itertools.product(range(3), repeat=3)))
    scores = resample_scores(confusions, draws)
    for r, draw in enumerate(draws):
        reference = materialised(SMALL, draw)
        for key in SCORES:
            assert scores[key][r] == pytest.approx(reference[key], abs=1e-12), (draw, key)


def test_confusion_scores_equal_clip_metrics_on_random_tables():
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        true, pred = rng.choice(ABC, n).tolist(), rng.choice(ABC, n).tolist()
        reference = clip_metrics(true, pred, ABC)
        scores = confusion_scores(reference["confusion"])
        for key in SCORES:
            assert scores[key] == pytest.approx(reference[key], abs=1e-12)


# ---- the bootstrap ----


def test_bootstrap_quantiles_match_the_exact_distribution_of_27_draws():
    # With 3 subjects the 27 ordered draws are equally likely: that is the exact bootstrap distribution.
    # Where a quantile falls well inside one atom (CDF 0.015 or more away from a step), 40000 resamples
    # give exactly that atom (the sampled frequency's sd is under 0.0025).
    draws = list(itertools.product(range(3), repeat=3))
    exact = {key: np.array([materialised(SMALL, d)[key] for d in draws]) for key in SCORES}
    checked = 0
    for level in (0.2, 0.3, 0.5, 0.6, 0.8, 0.9, 0.95):
        ci = bootstrap_ci(table(SMALL), ABC, resamples=40000, seed=3, level=level)
        for key in SCORES:
            values = np.round(exact[key], 12)
            atoms = np.unique(values)
            cdf = np.array([np.mean(values <= v) for v in atoms])
            for q, side in (((1 - level) / 2, "low"), ((1 + level) / 2, "high")):
                if np.min(np.abs(cdf - q)) < 0.015:
                    continue  # at a step the sample quantile may land on either atom
                expected = atoms[np.argmax(cdf >= q)]
                assert ci[key][side] == pytest.approx(expected, abs=1e-9), (level, key, side)
                checked += 1
    assert checked >= 20


def test_bootstrap_estimate_is_clip_metrics_of_the_table():
    ci = bootstrap_ci(table(SMALL), ABC, resamples=200)
    reference = clip_metrics(*zip(*[p for pairs in SMALL.values() for p in pairs]), ABC)
    for key in SCORES:
        assert ci[key]["estimate"] == reference[key]
        assert ci[key]["low"] <= ci[key]["high"]


def test_bootstrap_resamples_whole_subjects():
    # 10 subjects of 10 clips; all clips of sub00 are wrong, every other clip right. Resampling subjects,
    # accuracy = 1 - k/10 with k ~ Binomial(10, 0.1) drawn copies of sub00: P(k <= 2) = 0.930,
    # P(k <= 3) = 0.987 -> 95 % interval [0.7, 1.0]. Resampling clips (each clip its own "subject")
    # gives 1 - Binomial(100, 0.1)/100: about [0.84, 0.96], less than half as wide.
    spec = uniform_spec(10, 10, wrong_subjects=(0,))
    by_subject = bootstrap_ci(table(spec), ABC, resamples=20000, seed=0)
    by_clip_table = table(spec).assign(subject=lambda t: t["clip"])
    by_clip = bootstrap_ci(by_clip_table, ABC, resamples=20000, seed=0)
    assert by_subject["n_subjects"] == 10 and by_clip["n_subjects"] == 100
    assert (by_subject["accuracy"]["low"], by_subject["accuracy"]["high"]) == pytest.approx((0.7, 1.0))
    subject_width = by_subject["accuracy"]["high"] - by_subject["accuracy"]["low"]
    clip_width = by_clip["accuracy"]["high"] - by_clip["accuracy"]["low"]
    assert subject_width > 2 * clip_width
    assert by_clip["accuracy"]["low"] == pytest.approx(0.84, abs=0.015)


def test_bootstrap_result_structure_is_json_and_reproducible():
    spec = uniform_spec(8, 5, seed=2)
    first = bootstrap_ci(table(spec), ABC, resamples=300, seed=7, level=0.9)
    assert first == bootstrap_ci(table(spec), ABC, resamples=300, seed=7, level=0.9)
    assert first != bootstrap_ci(table(spec), ABC, resamples=300, seed=8, level=0.9)
    assert json.loads(json.dumps(first)) == first
    assert set(first) == {
        *SCORES,
        "method",
        "resamples",
        "resamples_missing_a_class",
        "seed",
        "level",
        "n_subjects",
        "n_clips",
    }
    assert set(first["uf1"]) == {"estimate", "low", "high"}
    assert (first["resamples"], first["seed"], first["level"], first["n_subjects"], first["n_clips"]) == (
        300,
        7,
        0.9,
        8,
        40,
    )
    assert "subjects" in first["method"]
    shuffled = table(spec).sample(frac=1, random_state=0)  # row order does not matter
    assert bootstrap_ci(shuffled, ABC, resamples=300, seed=7, level=0.9) == first


def test_bootstrap_counts_resamples_with_an_absent_class():
    # true c clips are in s2 and s3, a and b in s1 and s2: only the draws s1,s1,s1 (no c) and
    # s3,s3,s3 (no a, no b) lack a class, 2 of the 27 equally likely draws.
    ci = bootstrap_ci(table(SMALL), ABC, resamples=27000, seed=0)
    assert ci["resamples_missing_a_class"] / 27000 == pytest.approx(2 / 27, abs=0.005)


def test_labels_are_matched_by_their_string_form():
    # pandas reads numeric labels back from the predictions CSV as integers
    frame = table(SMALL, extra=False)
    numeric = frame.assign(
        true=frame["true"].map({"a": 0, "b": 1, "c": 2}),
        predicted=frame["predicted"].map({"a": 0, "b": 1, "c": 2}),
    )
    assert bootstrap_ci(numeric, ["0", "1", "2"], resamples=100) == bootstrap_ci(
        numeric, [0, 1, 2], resamples=100
    )
    assert bootstrap_ci(numeric, [0, 1, 2], resamples=100)["uf1"]["estimate"] == pytest.approx(59 / 90)


def test_speed_on_a_composite_sized_table():
    # MEGC2019 composite size: 442 clips, 68 subjects (6 or 7 clips each)
    rng = np.random.default_rng(0)
    subject = np.sort(rng.integers(0, 68, 442))
    subject[:68] = np.arange(68)
    true = rng.choice(ABC, 442)
    frame_a = pd.DataFrame(
        {
            "clip": np.arange(442),
            "subject": subject,
            "true": true,
            "predicted": np.where(rng.random(442) < 0.6, true, rng.choice(ABC, 442)),
        }
    )
    frame_b = frame_a.assign(predicted=np.where(rng.random(442) < 0.7, true, rng.choice(ABC, 442)))
    started = time.perf_counter()
    bootstrap_ci(frame_a, ABC, resamples=2000)
    paired_comparison(frame_a, frame_b, ABC, resamples=2000, permutations=10000)
    assert time.perf_counter() - started < 3.0  # measured about 0.05 s for both together


# ---- paired comparison ----


@pytest.mark.parametrize(
    "spec, permutations, exact",
    [
        (SMALL, 10000, True),  # 2**3 swaps enumerated
        (uniform_spec(12, 4, seed=5), 500, False),  # 4096 > 500: random swaps
    ],
)
def test_a_run_against_itself(spec, permutations, exact):
    result = paired_comparison(table(spec), table(spec), ABC, resamples=500, permutations=permutations)
    assert result["exact_permutation"] is exact
    for key in SCORES:
        assert result[key]["difference"] == 0.0
        assert (result[key]["low"], result[key]["high"]) == (0.0, 0.0)
        assert result[key]["p_value"] == 1.0
        assert result[key]["a"] == result[key]["b"]


def test_clearly_different_runs_give_a_small_p_and_a_positive_difference():
    # A wrong on every clip, B right on every clip: B - A = +1 accuracy. Of the 2**12 subject swaps only
    # "none" and "all" reach |difference| = 1, so the exact p = 2 / 4096.
    spec = uniform_spec(12, 4)
    wrong = uniform_spec(12, 4, wrong_subjects=range(12))
    result = paired_comparison(table(wrong), table(spec), ABC, resamples=1000, permutations=5000)
    assert result["exact_permutation"] and result["permutations"] == 4096
    assert result["accuracy"]["difference"] == 1.0 and result["accuracy"]["p_value"] == 2 / 4096
    assert result["uf1"]["difference"] > 0.9 and result["uar"]["p_value"] == 2 / 4096
    random_swaps = paired_comparison(table(wrong), table(spec), ABC, resamples=1000, permutations=1000)
    assert not random_swaps["exact_permutation"] and random_swaps["accuracy"]["p_value"] < 0.01
    assert random_swaps["accuracy"]["low"] == 1.0  # every resample: B right everywhere, A wrong
    assert result["difference"].startswith("B - A")


def test_exact_p_value_equals_brute_force_enumeration_of_subject_swaps():
    spec_a = uniform_spec(5, 4, seed=11)
    spec_b = uniform_spec(5, 4, seed=12)
    result = paired_comparison(table(spec_a), table(spec_b), ABC, resamples=200, permutations=32)
    assert result["exact_permutation"] and result["permutations"] == 32
    subjects = sorted(spec_a)
    true = [t for s in subjects for t, _ in spec_a[s]]

    def scores(predicted):
        return clip_metrics(true, predicted, ABC)

    observed = {
        k: scores([p for s in subjects for _, p in spec_b[s]])[k]
        - scores([p for s in subjects for _, p in spec_a[s]])[k]
        for k in SCORES
    }
    hits = dict.fromkeys(SCORES, 0)
    for swap in itertools.product((False, True), repeat=5):
        run_a = [p for s, w in zip(subjects, swap) for _, p in (spec_b if w else spec_a)[s]]
        run_b = [p for s, w in zip(subjects, swap) for _, p in (spec_a if w else spec_b)[s]]
        swapped_a, swapped_b = scores(run_a), scores(run_b)
        for k in SCORES:
            hits[k] += abs(swapped_b[k] - swapped_a[k]) >= abs(observed[k]) - 1e-12
    for k in SCORES:
        assert result[k]["difference"] == pytest.approx(observed[k], abs=1e-12)
        assert result[k]["p_value"] == hits[k] / 32


def test_paired_bootstrap_draws_both_runs_subjects_together():
    # B differs from A on sub00 only (A wrong there, B right): every resample's difference is
    # (copies of sub00) * 10 / 100 clips, so each bound is a multiple of 0.1, and the interval is
    # [0, 0.3] as for the single-run case above.
    right = uniform_spec(10, 10)
    wrong = uniform_spec(10, 10, wrong_subjects=(0,))
    result = paired_comparison(table(wrong), table(right), ABC, resamples=20000, permutations=1024)
    assert result["accuracy"]["difference"] == pytest.approx(0.1)
    assert (result["accuracy"]["low"], result["accuracy"]["high"]) == pytest.approx((0.0, 0.3))
    assert result["accuracy"]["p_value"] == 1.0  # swapping sub00 alone gives -0.1: as extreme


def test_paired_comparison_is_reproducible_and_json():
    a, b = table(uniform_spec(20, 3, seed=1)), table(uniform_spec(20, 3, seed=2))
    first = paired_comparison(a, b, ABC, resamples=300, permutations=300, seed=4)
    assert first == paired_comparison(
        a.sample(frac=1, random_state=1), b, ABC, resamples=300, permutations=300, seed=4
    )
    assert first != paired_comparison(a, b, ABC, resamples=300, permutations=300, seed=5)
    assert json.loads(json.dumps(first)) == first
    assert set(first) == {
        *SCORES,
        "difference",
        "method",
        "permutation_scheme",
        "resamples",
        "permutations",
        "exact_permutation",
        "seed",
        "level",
        "n_subjects",
        "n_clips",
    }
    assert set(first["uar"]) == {"a", "b", "difference", "low", "high", "p_value"}
    assert first["uar"]["difference"] == pytest.approx(first["uar"]["b"] - first["uar"]["a"])
    swapped = paired_comparison(b, a, ABC, resamples=300, permutations=300, seed=4)
    for key in SCORES:  # sign flips, p (same swaps, symmetric statistic) stays
        assert swapped[key]["difference"] == -first[key]["difference"]
        assert swapped[key]["p_value"] == first[key]["p_value"]


def _edit(frame, **changes):
    frame = frame.copy()
    for (row, column), value in changes.get("cells", {}).items():
        frame.loc[row, column] = value
    if "drop" in changes:
        frame = frame.drop(index=changes["drop"])
    if "add" in changes:
        frame = pd.concat([frame, pd.DataFrame(changes["add"])], ignore_index=True)
    return frame


_EXTRA = [{"clip": "s9_0", "subject": "s9", "true": "a", "predicted": "a"}]


@pytest.mark.parametrize(
    "changes_a, changes_b, match",
    [
        (
            {},
            {"drop": [0, 5]},
            (
                r"runs differ in clips: 2 only in A \(s1_0, s3_0\), 0 only in B\. "
                r"Received: 6 clips in A, 4 in B"
            ),
        ),
        ({}, {"add": _EXTRA}, r"0 only in A, 1 only in B \(s9_0\)\. Received: 6 clips in A, 7 in B"),
        (
            {"add": _EXTRA},
            {"add": [{**_EXTRA[0], "clip": "s8_0"}]},
            r"1 only in A \(s9_0\), 1 only in B \(s8_0\)",
        ),
        (
            {},
            {"cells": {(2, "true"): "b"}},
            (
                r"disagree on the true label of 1 clips\. "
                r"Received: s2_0: 'a' in A, 'b' in B"
            ),
        ),
        (
            {},
            {"cells": {(5, "subject"): "s1"}},
            (
                r"disagree on the subject of 1 clips\. "
                r"Received: s3_0: 's3' in A, 's1' in B"
            ),
        ),
        (
            {"add": [{"clip": "s1_0", "subject": "s1", "true": "a", "predicted": "b"}]},
            {},
            r"run A must hold each clip once\. Received: repeated clips s1_0",
        ),
        (
            {},
            {"cells": {(0, "predicted"): "x"}},
            (
                r"run B column 'predicted' holds labels not in classes "
                r".*Received: \['x'\]"
            ),
        ),
    ],
)
def test_paired_comparison_errors(changes_a, changes_b, match):
    a, b = _edit(table(SMALL, extra=False), **changes_a), _edit(table(SMALL, extra=False), **changes_b)
    with pytest.raises(ValueError, match=match):
        paired_comparison(a, b, ABC, resamples=10, permutations=10)


def test_many_differing_clips_are_summarised():
    a = table(uniform_spec(4, 5))
    b = a.assign(clip=a["clip"] + "x")
    with pytest.raises(ValueError, match=r"20 only in A \(sub00_0, .*, … \(15 more\)\), 20 only in B"):
        paired_comparison(a, b, ABC)


@pytest.mark.parametrize(
    "predictions, kwargs, error, match",
    [
        ([{"clip": 1}], {}, TypeError, r"must be a pandas DataFrame.*Received: <class 'list'>"),
        (table(SMALL).drop(columns="subject"), {}, ValueError, r"lacks columns \['subject'\]"),
        (table(SMALL).iloc[:0], {}, ValueError, "Received: 0 rows"),
        (
            table(SMALL).assign(subject=[None, "s1", "s2", "s2", "s2", "s3"]),
            {},
            ValueError,
            r"empty cells in columns \['subject'\]\. Received: 1 rows",
        ),
        (table(SMALL).assign(true="z"), {}, ValueError, r"column 'true' holds labels .*Received: \['z'\]"),
        (table(SMALL), {"resamples": 0}, ValueError, "resamples must be a positive integer. Received: 0"),
        (table(SMALL), {"resamples": 2.5}, ValueError, "Received: 2.5"),
        (table(SMALL), {"level": 95}, ValueError, "strictly between 0 and 1.*Received: 95"),
    ],
)
def test_bootstrap_errors(predictions, kwargs, error, match):
    with pytest.raises(error, match=match):
        bootstrap_ci(predictions, ABC, **kwargs)


@pytest.mark.parametrize(
    "confusions, draws, match",
    [
        (
            np.zeros((3, 3, 3), int),
            np.array([[0, 3]]),
            r"index the 3 subjects .*Received: values in \[0, 3\]",
        ),
        (np.zeros((3, 3, 3), int), np.array([0, 1]), r"2-D integer matrix .*Received: shape \(2,\)"),
        (np.zeros((3, 3, 3), int), np.array([[0.0, 1.0]]), "dtype float64"),
        (np.zeros((3, 3)), np.array([[0]]), r"\(subjects, classes, classes\)\. Received: \(3, 3\)"),
    ],
)
def test_resample_scores_errors(confusions, draws, match):
    with pytest.raises(ValueError, match=match):
        resample_scores(confusions, draws)


# ---- seeds ----


@pytest.mark.parametrize(
    "results, seeds, expected",
    [
        (
            [
                {"accuracy": 0.5, "uf1": 0.4, "uar": 0.3, "seed": 1},
                {"accuracy": 0.7, "uf1": 0.4, "uar": 0.5, "seed": 2},
            ],
            None,
            {
                "accuracy": (0.6, np.sqrt(0.02), [0.5, 0.7]),
                "uf1": (0.4, 0.0, [0.4, 0.4]),
                "uar": (0.4, np.sqrt(0.02), [0.3, 0.5]),
                "seeds": [1, 2],
            },
        ),
        # sample std (ddof=1) of 0.1, 0.2, 0.6 = sqrt(0.07) ; seeds given explicitly
        (
            [{"accuracy": v, "uf1": v, "uar": v} for v in (0.1, 0.2, 0.6)],
            [np.int64(0), 1, 2],
            {"accuracy": (0.3, np.sqrt(0.07), [0.1, 0.2, 0.6]), "seeds": [0, 1, 2]},
        ),
        (
            [{"accuracy": 0.5, "uf1": 0.4, "uar": 0.3}],
            None,
            {"accuracy": (0.5, None, [0.5]), "seeds": [None]},
        ),
    ],
)
def test_seed_summary(results, seeds, expected):
    summary = seed_summary(results, seeds=seeds)
    assert summary["n_seeds"] == len(results) and summary["std_ddof"] == 1
    assert summary["seeds"] == expected.pop("seeds")
    for key, (mean, std, values) in expected.items():
        assert summary[key]["mean"] == pytest.approx(mean)
        assert summary[key]["std"] == (None if std is None else pytest.approx(std))
        assert summary[key]["values"] == pytest.approx(values)
    assert json.loads(json.dumps(summary)) == summary


@pytest.mark.parametrize(
    "results, seeds, error, match",
    [
        ([], None, ValueError, r"at least one run's results\. Received: \[\]"),
        ([{"accuracy": 0.5, "uf1": 0.4}], None, ValueError, r"Result 0 lacks \['uar'\]"),
        (
            [{"accuracy": float("nan"), "uf1": 0.4, "uar": 0.1}],
            None,
            ValueError,
            "finite numbers for.*accuracy",
        ),
        ([{"accuracy": "0.5", "uf1": 0.4, "uar": 0.1}], None, ValueError, "finite numbers"),
        ([0.5], None, TypeError, "results dict. Received: <class 'float'> at position 0"),
        ([{"accuracy": 0.5, "uf1": 0.4, "uar": 0.1}], [1, 2], ValueError, "Received: 2 seeds, 1 results"),
    ],
)
def test_seed_summary_errors(results, seeds, error, match):
    with pytest.raises(error, match=match):
        seed_summary(results, seeds=seeds)
