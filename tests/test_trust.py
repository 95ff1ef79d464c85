"""Numbers a reviewer can check: reruns agree byte for byte, CIs in every result, oracle beside honest,
seeds repeated, runs compared on the same clips."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from experiments.compare import main as compare_main
from mer_keras.cli import parse_config, run_main
from mer_keras.compare import compare_runs
from mer_keras.experiment import run_experiment
from mer_keras.oracle import oracle_epoch

TINY = [
    "--backbone",
    "tiny",
    "--image-size",
    "32",
    "--folds",
    "2",
    "--epochs",
    "3",
    "--batch-size",
    "16",
    "--verbose",
    "0",
    "--lstm-units",
    "8,8,8",
    "--n",
    "5",
    "--no-final",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from mer_keras.datasets.synthetic import make_synthetic_smic

    return make_synthetic_smic(
        tmp_path_factory.mktemp("synthetic"), subjects=6, seed=1, size=32, clips_scale=0.4, progress=False
    )


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """Seeds 0 and 1 by --seeds, seed 0 again in its own folder, and seed 0 without the oracle scoring."""
    root = tmp_path_factory.mktemp("runs")
    assert (
        run_main("exp2", ["--data", str(data), "--out", str(root / "seeds"), "--seeds", "0", "1", *TINY]) == 0
    )
    for name, extra in (("again", []), ("no_oracle", ["--no-oracle"])):
        run_experiment(
            parse_config("exp2", ["--data", str(data), "--out", str(root / name), *TINY, *extra])[0]
        )
    return root


def test_two_runs_with_the_same_seed_give_the_same_bytes(runs):
    first = (runs / "seeds" / "seed_0" / "predictions.csv").read_bytes()
    assert first == (runs / "again" / "predictions.csv").read_bytes()
    assert first != (runs / "seeds" / "seed_1" / "predictions.csv").read_bytes()


def test_config_names_the_code_and_the_machine(runs):
    record = json.loads((runs / "again" / "config.json").read_text())["record"]
    assert set(record["code"]) >= {"commit", "dirty"} and record["machine"]["cpus"] >= 1
    assert isinstance(record["machine"]["cpu_flags"], list) and record["machine"]["cpu"]
    assert record["machine"]["onednn"].startswith(("on", "off"))
    config = json.loads((runs / "again" / "config.json").read_text())["config"]
    assert config["training"]["deterministic"] is True


def test_results_carry_subject_bootstrap_intervals(runs):
    results = json.loads((runs / "again" / "results.json").read_text())
    for key in ("accuracy", "uf1", "uar"):
        ci = results["ci"][key]
        assert ci["low"] <= results[key] <= ci["high"] and ci["estimate"] == pytest.approx(results[key])
    assert results["ci"]["resamples"] == 2000 and results["ci"]["n_subjects"] == 6
    md = (runs / "again" / "results.md").read_text()
    low, high = (100 * results["ci"]["accuracy"][k] for k in ("low", "high"))
    assert (
        f"{100 * results['accuracy']:.2f} % [{low:.1f}, {high:.1f}]" in md and "bootstrap over subjects" in md
    )


def test_oracle_is_chosen_on_the_test_scores_and_changes_nothing_honest(runs):
    with_oracle, without = runs / "again", runs / "no_oracle"
    assert (with_oracle / "predictions.csv").read_bytes() == (without / "predictions.csv").read_bytes()
    for fold in (0, 1):
        with (
            h5py.File(with_oracle / f"fold_{fold}" / "best.weights.h5") as a,
            h5py.File(without / f"fold_{fold}" / "best.weights.h5") as b,
        ):
            names = _datasets(a)
            assert names and names == _datasets(b) and all(np.array_equal(a[n][()], b[n][()]) for n in names)
        assert not (without / f"fold_{fold}" / "epoch_predictions.csv").exists()
    results = json.loads((with_oracle / "results.json").read_text())
    assert json.loads((without / "results.json").read_text())["oracle"] is None
    oracle, classes = results["oracle"], results["classes"]
    for entry in oracle["folds"]:
        epochs = pd.read_csv(with_oracle / f"fold_{entry['fold']}" / "epoch_predictions.csv")
        assert sorted(epochs["epoch"].unique()) == [1, 2, 3]
        accuracy = {e: (t["true"] == t["predicted"]).mean() for e, t in epochs.groupby("epoch")}
        assert entry["oracle_accuracy"] == pytest.approx(max(accuracy.values()))
        assert oracle_epoch(epochs, classes)[0] == entry["oracle_epoch"]
        assert entry["oracle_accuracy"] >= entry["honest_accuracy"]
        # the honest predictions are those of the selected epoch
        honest = pd.read_csv(with_oracle / f"fold_{entry['fold']}" / "predictions.csv")
        at_selected = epochs[epochs["epoch"] == entry["honest_epoch"]]
        assert honest["predicted"].tolist() == at_selected["predicted"].tolist()
    assert all(
        oracle["gap"][k] == pytest.approx(oracle["oracle"][k] - oracle["honest"][k]) for k in oracle["gap"]
    )
    assert (
        oracle["gap"]["accuracy"] >= 0 and "## Honest and oracle" in (with_oracle / "results.md").read_text()
    )


def _datasets(h5):
    names = []
    h5.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def test_seeds_write_the_spread_over_seeds(runs):
    summary = json.loads((runs / "seeds" / "seeds.json").read_text())
    accuracies = [
        json.loads((runs / "seeds" / f"seed_{s}" / "results.json").read_text())["accuracy"] for s in (0, 1)
    ]
    assert summary["seeds"] == [0, 1] and summary["accuracy"]["values"] == pytest.approx(accuracies)
    assert summary["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert summary["accuracy"]["std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert "| mean ± std |" in (runs / "seeds" / "seeds.md").read_text()


def test_compare_gives_difference_ci_and_p(runs, capsys):
    result = compare_runs(runs / "seeds" / "seed_0", runs / "seeds" / "seed_1")
    a = json.loads((runs / "seeds" / "seed_0" / "results.json").read_text())
    b = json.loads((runs / "seeds" / "seed_1" / "results.json").read_text())
    for key in ("accuracy", "uf1", "uar"):
        assert result[key]["difference"] == pytest.approx(b[key] - a[key])
        assert result[key]["low"] <= result[key]["difference"] <= result[key]["high"]
        assert 0 < result[key]["p_value"] <= 1
    same = compare_runs(runs / "again", runs / "seeds" / "seed_0")
    for key in ("accuracy", "uf1", "uar"):
        assert same[key]["difference"] == 0 and same[key]["p_value"] == 1
        assert same[key]["low"] == same[key]["high"] == 0
    assert compare_main([str(runs / "again"), str(runs / "seeds" / "seed_1")]) == 0
    assert "difference" in capsys.readouterr().out


def test_compare_refuses_runs_on_other_clips(runs, data, tmp_path, capsys):
    from mer_keras.datasets.synthetic import make_synthetic_smic

    other = make_synthetic_smic(
        tmp_path / "other", subjects=4, seed=2, size=32, clips_scale=0.4, progress=False
    )
    run_experiment(
        parse_config("exp2", ["--data", str(other), "--out", str(tmp_path / "run"), *TINY, "--epochs", "1"])[
            0
        ]
    )
    with pytest.raises(ValueError, match="not comparable: dataset"):
        compare_runs(runs / "again", tmp_path / "run")
    assert compare_main([str(runs / "again"), str(tmp_path / "run")]) == 2
    assert "error: " in capsys.readouterr().err
    # the same dataset folder but clips missing from one run's predictions: refused naming them
    pooled = pd.read_csv(runs / "again" / "predictions.csv")
    (tmp_path / "cut").mkdir()
    for name in ("config.json",):
        (tmp_path / "cut" / name).write_bytes((runs / "again" / name).read_bytes())
    pooled.iloc[1:].to_csv(tmp_path / "cut" / "predictions.csv", index=False)
    with pytest.raises(ValueError, match="runs differ in clips: 1 only in A"):
        compare_runs(runs / "again", tmp_path / "cut")
