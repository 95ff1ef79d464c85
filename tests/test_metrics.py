import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from mer_keras.crossval import clip_probabilities
from mer_keras.metrics import clip_metrics, summarize, summarize_folds

ABC = ["a", "b", "c"]


def summarize_predictions(folds, classes):
    """``summarize`` of folds given as ``(y_true, y_pred)`` pairs (what a FoldResult holds of them)."""
    from types import SimpleNamespace

    import pandas as pd

    results = [
        SimpleNamespace(
            predictions=pd.DataFrame(
                {"clip": [f"{i}/{j}" for j in range(len(t))], "true": t, "predicted": p}
            ),
            metrics=clip_metrics(t, p, classes),
        )
        for i, (t, p) in enumerate(folds)
    ]
    return summarize(results, classes)


def test_hand_computed_three_class_case():
    # confusion (rows true a,b,c): [2 1 0], [0 1 1], [0 0 1]
    # TP a,b,c = 2,1,1; FP = 0,1,1; FN = 1,1,0; F1 = 2TP/(2TP+FP+FN) = 4/5, 2/4, 2/3
    # UF1 = (4/5 + 1/2 + 2/3) / 3 = 59/90; recall = 2/3, 1/2, 1 -> UAR = 13/18; accuracy 4/6
    m = clip_metrics(list("aaabbc"), list("aabbcc"), ABC)
    assert m["uf1"] == pytest.approx(59 / 90)
    assert m["uar"] == pytest.approx(13 / 18)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["n"] == 6
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["per_class"]["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["c"]["precision"] == pytest.approx(0.5)


def test_pooled_metrics_equal_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    classes = ["negative", "positive", "surprise", "non_micro"]
    y_true = rng.choice(classes, 200).tolist()
    y_pred = [t if rng.random() < 0.4 else rng.choice(classes).item() for t in y_true]
    folds = [(y_true[i : i + 40], y_pred[i : i + 40]) for i in range(0, 200, 40)]
    summary = summarize_predictions(folds, classes)
    assert summary["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert summary["uf1"] == pytest.approx(f1_score(y_true, y_pred, labels=classes, average="macro"))
    assert summary["uar"] == pytest.approx(recall_score(y_true, y_pred, labels=classes, average="macro"))
    assert summary["confusion"] == confusion_matrix(y_true, y_pred, labels=classes).tolist()
    fold_uf1 = [f1_score(t, p, labels=classes, average="macro") for t, p in folds]
    assert summary["fold_mean"]["uf1"] == pytest.approx(np.mean(fold_uf1))
    assert summary["fold_std"]["uf1"] == pytest.approx(np.std(fold_uf1))  # population std


def test_pooled_uf1_differs_from_mean_of_fold_uf1():
    # fold 1: F1 a = 4/5, b = 0 -> 0.4; fold 2 symmetric -> 0.4.
    # pooled: a and b each TP 2, FP 1, FN 1 -> F1 = 2/3 each -> UF1 2/3.
    summary = summarize_predictions([(list("aab"), list("aaa")), (list("bba"), list("bbb"))], ["a", "b"])
    assert summary["fold_mean"]["uf1"] == pytest.approx(0.4)
    assert summary["fold_std"]["uf1"] == pytest.approx(0.0)
    assert summary["uf1"] == pytest.approx(2 / 3)
    assert summary["n_folds"] == 2 and summary["fold_std_ddof"] == 0
    assert [f["n"] for f in summary["folds"]] == [3, 3]


def test_absent_class_is_undefined_not_zero():
    # a: TP 1, FN 1 -> F1 2/3, recall 1/2; b absent but predicted -> F1 0, recall undefined;
    # c absent and never predicted -> everything undefined (None), left out of the means.
    m = clip_metrics(["a", "a"], ["a", "b"], ABC)
    assert m["per_class"]["c"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0}
    assert m["uf1"] == pytest.approx(1 / 3)
    assert m["uar"] == pytest.approx(0.5)
    assert m["uf1"] == pytest.approx(
        f1_score(["a", "a"], ["a", "b"], labels=ABC, average="macro", zero_division=np.nan)
    )


def test_integer_and_numpy_labels():
    m = clip_metrics(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]), np.arange(3))
    assert m["classes"] == [0, 1, 2] and type(m["classes"][0]) is int
    assert list(m["per_class"]) == ["0", "1", "2"]
    assert m["accuracy"] == 0.75


@pytest.mark.parametrize(
    "y_true, y_pred, classes, match",
    [
        (["a", "b"], ["a"], ABC, "Received: 2 and 1"),
        (["a", "x"], ["a", "a"], ABC, r"y_true holds labels not in classes .*Received: \['x'\]"),
        (["a", "b"], ["a", "happy"], ABC, r"y_pred .*Received: \['happy'\]"),
        ([0, 1], [0, 1], ABC, r"Received: \[0, 1\]"),
        ([], [], ABC, "Received: 0 clips"),
        (["a"], ["a"], [], r"Received: \[\]"),
        (["a"], ["a"], ["a", "a"], "unique"),
        ("ab", "ab", ABC, "not one string"),
        (np.zeros((2, 3)), ["a", "b"], ABC, r"Received: shape \(2, 3\)"),
    ],
)
def test_clip_metrics_errors(y_true, y_pred, classes, match):
    with pytest.raises(ValueError, match=match):
        clip_metrics(y_true, y_pred, classes)


def test_summarize_folds_keeps_pooled_and_folds():
    folds = [clip_metrics(list("ab"), list("ab"), ABC), clip_metrics(list("abc"), list("bbc"), ABC)]
    pooled = clip_metrics(list("ababc"), list("abbbc"), ABC)
    s = summarize_folds(folds, pooled)
    assert s["accuracy"] == pooled["accuracy"] == pytest.approx(0.8)
    assert s["fold_mean"]["accuracy"] == pytest.approx((1 + 2 / 3) / 2)
    assert s["fold_std"]["accuracy"] == pytest.approx(1 / 6)  # ddof=0; ddof=1 would be 0.2357
    assert s["folds"] == folds and s["per_class"] == pooled["per_class"]


@pytest.mark.parametrize(
    "per_fold, pooled, match",
    [
        ([], {"accuracy": 1, "uf1": 1, "uar": 1}, r"Received: \[\]"),
        ([{"accuracy": 1, "uf1": 1}], {"accuracy": 1, "uf1": 1, "uar": 1}, r"fold 0 scores lack \['uar'\]"),
        ([{"accuracy": 1, "uf1": 1, "uar": 1}], {"accuracy": 1}, "pooled scores lack"),
        (
            [{"accuracy": 1, "uf1": 1, "uar": 1, "n": 3}],
            {"accuracy": 1, "uf1": 1, "uar": 1, "n": 4},
            "Received: pooled n=4, folds' n sum to 3",
        ),
    ],
)
def test_summarize_folds_errors(per_fold, pooled, match):
    with pytest.raises(ValueError, match=match):
        summarize_folds(per_fold, pooled)


def test_clip_probabilities_mean_per_clip_in_first_appearance_order():
    probs = [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.4, 0.6], [0.0, 1.0], [0.5, 0.5]]
    table = clip_probabilities(probs, ["s2/c1", "s1/c9", "s2/c1", "s1/c9", "s3/c0", "s4/c2"], ["neg", "pos"])
    assert table["clip"].tolist() == ["s2/c1", "s1/c9", "s3/c0", "s4/c2"]
    np.testing.assert_allclose(table[["p_neg", "p_pos"]], [[0.7, 0.3], [0.3, 0.7], [0.0, 1.0], [0.5, 0.5]])
    assert table["predicted"].tolist() == ["neg", "pos", "pos", "neg"]  # a tie goes to the earlier class


@pytest.mark.parametrize(
    "probs, ids, error, match",
    [
        ([[0.5, 0.5]], ["a", "b"], ValueError, r"Received: shape \(1, 2\) for 2 windows"),
        ([0.5, 0.5], ["a", "b"], ValueError, r"Received: shape \(2,\)"),
        ([[np.nan, 0.5]], ["a"], FloatingPointError, "NaN or infinite probabilities"),
    ],
)
def test_clip_probabilities_errors(probs, ids, error, match):
    with pytest.raises(error, match=match):
        clip_probabilities(probs, ids, ["neg", "pos"], where="fold 3")
