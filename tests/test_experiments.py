"""Tiny end-to-end runs of the three experiments: what a run writes, its features, heads and options."""

import dataclasses
import json
import types

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score
from tiny_runs import TINY, assert_refused_in_one_line, tiny_config, tiny_run

from mer_keras.crossval import run_fold
from mer_keras.experiment import prepare_run
from mer_keras.final_model import final_epochs


@pytest.mark.parametrize("experiment", ["exp1", "exp2", "exp3"])
def test_tiny_run_writes_every_result(tiny_smic, tmp_path, experiment):
    summary = tiny_run(experiment, tiny_smic, tmp_path / "run")
    out = tmp_path / "run"
    for name in (
        "config.json",
        "results.json",
        "results.md",
        "predictions.csv",
        "confusion.png",
        "curves.png",
        "final/model.keras",
        "final/saved_model/saved_model.pb",
    ):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    record = config["record"]
    assert record["weights"]["source"] == "random" and config["config"]["experiment"] == experiment
    assert record["versions"]["keras"] == keras.__version__ and config["config"]["config_version"] == 1
    assert any("synthetic" in d for d in record["deviations_from_paper"])
    # the SavedModel answers like model.keras on the same raw frames, and both like the model trained
    # on cached features
    assert summary["export"]["max_abs_difference"] <= 1e-4
    assert summary["export"]["trained_vs_exported"] <= 1e-4
    expected_input = [None, 32, 32, 3] if experiment == "exp1" else [None, 5, 32, 32, 3]
    assert summary["export"]["input_shape"] == expected_input
    # frame models cache pooled features; clip models (motion by default) the unpooled stage-5 maps
    assert record["frame_cache"]["feature_shape"] == ([128] if experiment == "exp1" else [1, 1, 128])
    assert any("--clip-features motion" in d for d in record["deviations_from_paper"]) is (
        experiment != "exp1"
    )
    # pooled metrics equal scikit-learn's on the same predictions
    predictions = pd.read_csv(out / "predictions.csv")
    y_true, y_pred = predictions["true"], predictions["predicted"]
    classes = record["data"]["classes"]
    assert summary["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert summary["uf1"] == pytest.approx(f1_score(y_true, y_pred, labels=classes, average="macro"))
    assert summary["uar"] == pytest.approx(recall_score(y_true, y_pred, labels=classes, average="macro"))
    assert len(predictions) == record["data"]["clips"]
    # the final model: every subject, none held out, for the median of the epochs the folds kept
    kept = [json.loads((out / f"fold_{k}" / "metrics.json").read_text())["selected_epoch"] for k in (0, 1)]
    training = summary["export"]["training"]
    assert training == {
        "trained_on": "all subjects",
        "epochs": int(np.ceil(np.median(kept))),
        "selected_in_folds": kept,
    }
    history = pd.read_csv(out / "final" / "history.csv")
    assert len(history) == training["epochs"]
    assert "val_loss" not in history or history["val_loss"].isna().all()  # no validation subjects


@pytest.mark.parametrize(
    ("selected", "epochs"),
    [([1, 1, 1, 1, 1], 1), ([1, 2], 2), ([3, 7, 5, 9, 4], 5), ([None, 4], 4), ([2, 3, 3, 10], 3)],
)
def test_the_final_model_trains_for_the_median_epoch_the_folds_kept(selected, epochs):
    folds = [types.SimpleNamespace(selected_epoch=e) for e in selected]
    assert final_epochs(folds) == {"epochs": epochs, "selected_in_folds": [e for e in selected if e]}


@pytest.mark.parametrize("selected", [[], [None, None]])
def test_no_trained_epoch_in_the_folds_gives_the_final_model_no_budget(selected):
    with pytest.raises(ValueError, match="No fold trained an epoch"):
        final_epochs([types.SimpleNamespace(selected_epoch=e) for e in selected])


@pytest.mark.parametrize(
    "clip_features, frame_cache", [("motion", [2, 2, 128]), ("relative", [128]), ("raw", [128])]
)
def test_clip_features_from_maps_or_pooled_features_export_the_trained_answers(
    tiny_smic, tmp_path, clip_features, frame_cache
):
    # 64 px: the tiny backbone's stage-5 maps are 2 x 2, so motion is averaged over places
    summary = tiny_run(
        "exp2",
        tiny_smic,
        tmp_path / "run",
        "--image-size",
        "64",
        "--folds",
        "2",
        "--epochs",
        "1",
        "--clip-features",
        clip_features,
    )
    record = json.loads((tmp_path / "run" / "config.json").read_text())["record"]
    assert (
        record["frame_cache"]["feature_shape"] == frame_cache and record["frame_cache"]["storage"] == "memory"
    )
    assert (
        summary["export"]["trained_vs_exported"] <= 1e-4 and summary["export"]["max_abs_difference"] <= 1e-4
    )
    assert any(f"--clip-features {clip_features}" in d for d in record["deviations_from_paper"]) is (
        clip_features != "raw"
    )


def test_motion_standardization_uses_the_statistics_of_the_training_windows(tiny_smic, tmp_path):
    trainer = prepare_run(tiny_config("exp2", tiny_smic, tmp_path / "r", "--image-size", "64")).trainer
    windows = trainer.windows(
        prepare_run(tiny_config("exp2", tiny_smic, tmp_path / "r2", "--image-size", "64")).folds[0].train
    )
    maps = np.asarray(trainer.cache.features)[0][windows.rows]  # (windows, n, 2, 2, channels)
    motion = np.abs(maps - maps[:, :1]).mean(axis=(2, 3)).reshape(-1, maps.shape[-1])
    _, head = trainer.new_model(windows)
    layer = head.get_layer("feature_standardization")
    variance = np.maximum(motion.var(0), 1e-3 * motion.var(0).mean())  # the floor the head applies
    np.testing.assert_allclose(np.ravel(layer.mean), motion.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.ravel(layer.variance), variance, rtol=1e-3, atol=1e-7)


def test_mixed_precision_run_keeps_statistics_and_probabilities_in_float32(tiny_smic, tmp_path):
    try:
        summary = tiny_run(
            "exp2",
            tiny_smic,
            tmp_path / "run",
            "--precision",
            "mixed_bfloat16",
            "--folds",
            "2",
            "--epochs",
            "1",
            "--no-final",
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["config"]["training"]["precision"] == "mixed_bfloat16"
    assert "precision mixed_bfloat16" in config["record"]["deviations_from_paper"]
    probs = pd.read_csv(tmp_path / "run" / "predictions.csv").filter(like="p_").to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert summary["n_folds"] == 2


def test_no_test_subject_feeds_training_or_validation(tiny_smic, tmp_path):
    run = prepare_run(tiny_config("exp2", tiny_smic, tmp_path / "r"))
    for fold in run.folds:
        test_frames = {f for c in fold.test for f in c.frames}
        for part in (fold.train, fold.validation):
            windows = run.trainer.windows(part)
            used = {run.trainer.cache.table.frames[r][i] for r in windows.rows.ravel() for i in (0, 1)}
            assert not used & test_frames
            assert {part[i].subject for i in windows.clip_index}.isdisjoint(fold.subjects("test"))
        assert set(fold.subjects("train")).isdisjoint(fold.subjects("validation"))


def test_gru_head_trains_end_to_end_and_exports(tiny_smic, tmp_path):
    summary = tiny_run("exp2", tiny_smic, tmp_path / "run", "--rnn", "gru", "--folds", "2", "--epochs", "1")
    final = keras.saving.load_model(tmp_path / "run" / "final" / "model.keras")
    head = final.get_layer("exp2_head")
    assert [type(head.get_layer(f"gru{i}")).__name__ for i in (1, 2, 3)] == ["GRU"] * 3
    assert (
        summary["export"]["max_abs_difference"] <= 1e-4 and summary["export"]["trained_vs_exported"] <= 1e-4
    )
    record = json.loads((tmp_path / "run" / "config.json").read_text())["record"]
    assert any("--rnn gru" in d for d in record["deviations_from_paper"])
    assert "3-Layer-GRU" in (tmp_path / "run" / "results.md").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "--epochs must be >= 1. Received: --epochs 0"),
        (["--lr", "-1"], "--lr must be > 0. Received: --lr -1.0"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--dropout", "1"], "--dropout must be in [0, 1). Received: dropout=1.0"),
        (["--validation-fraction", "1.5"], "--validation-fraction must be in (0, 1)"),
        (["--image-size", "10000"], "--image-size must be between 32 and 1024"),
        (["--rotation", "1000"], "--rotation must be between 0 and 45 degrees"),
        (["--early-stopping", "-1"], "--early-stopping must be >= 0"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--synthetic-subjects", "1"], "--synthetic-subjects must be >= 2"),
        (["--n", "1"], "--n must be >= 2 with --clip-features motion"),
        (["--folds", "1"], "--folds must be >= 2"),
    ],
)
def test_bad_options_are_refused_by_name_in_one_line(tmp_path, capsys, argv, message):
    assert_refused_in_one_line(tmp_path, capsys, argv, message)


def test_folds_beyond_the_subjects_are_one_error_line(tiny_smic, tmp_path, capsys):
    from experiments.exp2 import main

    assert main(["--data", str(tiny_smic), "--out", str(tmp_path / "run"), *TINY, "--folds", "9"]) == 2
    err = capsys.readouterr().err
    assert "error: --folds must be at most the number of subjects (6). Received: --folds 9" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_loso_on_a_fabricated_composite_reports_each_source(tmp_path):
    from conftest import build_smic
    from sheet_fixtures import build_casme2, build_samm

    root = tmp_path / "megc"
    build_smic(root), build_casme2(root), build_samm(root)
    out = tmp_path / "run"
    summary = tiny_run(
        "exp2",
        root,
        out,
        "--dataset",
        "megc2019-mapping",
        "--protocol",
        "loso",
        "--no-final",
        "--epochs",
        "1",
    )
    assert summary["n_folds"] == 9  # 3 subjects from each of SMIC, CASME II and SAMM
    assert set(summary["per_dataset"]) == {"smic", "casme2", "samm"}
    predictions = pd.read_csv(out / "predictions.csv")
    for name, scores in summary["per_dataset"].items():
        part = predictions[predictions["clip"].str.startswith(name + "/")]
        assert scores["n"] == len(part) > 0
        assert scores["uf1"] == pytest.approx(
            f1_score(
                part["true"], part["predicted"], labels=["negative", "positive", "surprise"], average="macro"
            )
        )
    assert "## Per source dataset" in (out / "results.md").read_text()


def test_later_folds_reuse_the_compiled_model_and_train_as_a_fresh_one(tiny_smic, tmp_path):
    # standardized motion features: the fold's statistics must reach the function traced for fold 0
    run = prepare_run(tiny_config("exp2", tiny_smic, tmp_path / "r"))
    trainer, folds = run.trainer, run.folds
    run_fold(trainer, folds[0], run.out)
    traced = trainer.compiled["model"].train_function
    reused = run_fold(trainer, folds[1], run.out)
    assert trainer.compiled["model"].train_function is traced  # not traced again for fold 1
    alone = run_fold(dataclasses.replace(trainer, compiled={}), folds[1], tmp_path / "fresh")
    pd.testing.assert_frame_equal(reused.predictions, alone.predictions, check_exact=True)
    pd.testing.assert_frame_equal(reused.history, alone.history, check_exact=True)
