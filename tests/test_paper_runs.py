"""Tiny end-to-end runs of --preset paper: online augmentation, Grad-CAM l_s, the record, the export."""

import json

import keras
from tiny_runs import tiny_run

from mer_keras.presets import option_name, preset_options

PAPER = ["--preset", "paper", "--epochs", "1"]  # tiny_run's --image-size 32, --n 5 override the preset's


def _record(out):
    return json.loads((out / "config.json").read_text())


def _layer_types(model):
    return {type(layer).__name__ for layer in model._flatten_layers()}


def test_exp2_paper_runs_online_and_exports_a_model_without_the_augmentation(tiny_smic, tmp_path):
    out = tmp_path / "run"
    summary = tiny_run("exp2", tiny_smic, out, *PAPER)
    written = _record(out)
    config, record = written["config"], written["record"]
    assert config["preset"] == "paper"
    preset = record["preset"]
    assert preset["name"] == "paper"
    assert set(preset["set"]) | set(preset["overridden"]) == {
        option_name(k) for k in preset_options("paper", "exp2")
    }
    assert sorted(preset["overridden"]) == ["--image-size", "--n"]  # tiny_runs gives both
    assert preset["set"]["--augment"] == "online" and preset["set"]["--clip-features"] == "raw"
    assert record["frame_cache"]["dtype"] == "uint8" and record["frame_cache"]["feature_shape"] == [32, 32, 3]
    assert record["backbone_split"]["auto"]["retrain_from"] == record["backbone_split"]["retrain_from"]
    assert any("drawn at random in training" in d for d in record["deviations_from_paper"])
    assert summary["export"]["max_abs_difference"] <= 1e-4
    assert summary["export"]["trained_vs_exported"] <= 1e-4  # the deduplicated online model's answers
    final = keras.saving.load_model(out / "final" / "model.keras")
    assert not _layer_types(final) & {"WindowAugmentation", "ClipAugmentation"}


def test_exp1_paper_balances_frames_to_three_times_the_largest_class(tiny_smic, tmp_path):
    out = tmp_path / "run"  # one fold of two trained: the frame path; pooling is every run's code
    assert tiny_run("exp1", tiny_smic, out, *PAPER, "--only-folds", "0")["complete"] is False
    record = _record(out)["record"]
    assert record["preset"]["set"]["--balance-scale"] == 3.0
    assert set(record["preset"]["set"]) | set(record["preset"]["overridden"]) == {
        option_name(k) for k in preset_options("paper", "exp1")
    }
    train = record["folds"][0]["train"]
    largest = max(train["windows"].values())
    assert set(train["windows_after_balancing"].values()) == {3 * largest}
    done = json.loads((out / "fold_0" / "metrics.json").read_text())
    assert done["training_samples_per_epoch"] == 3 * largest * len(train["windows"])
