"""Retraining inside the backbone, folds without validation subjects, and the exported model in a fresh process."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from tiny_runs import tiny_run


@pytest.mark.parametrize("experiment", ["exp1", "exp2"])
def test_retraining_from_inside_the_backbone_exports_the_trained_suffix(tiny_smic, tmp_path, experiment):
    summary = tiny_run(
        experiment, tiny_smic, tmp_path / "run", "--retrain-from", "conv5_1_1x1_reduce", "--folds", "2"
    )
    record = json.loads((tmp_path / "run" / "config.json").read_text())["record"]
    assert record["frame_cache"]["feature_shape"] == [2, 2, 64]  # stage-4 maps of the tiny backbone at 32x32
    assert not any("whole backbone frozen" in d for d in record["deviations_from_paper"])
    assert summary["export"]["max_abs_difference"] <= 1e-4
    assert summary["export"]["trained_vs_exported"] <= 1e-4  # exp2: the deduplicated model's answers
    final = keras.saving.load_model(tmp_path / "run" / "final" / "model.keras")
    # the exported backbone carries the retrained stage 5 and the untouched frozen stages
    keras.utils.set_random_seed(0)  # the seed the run started from: the same initial weights
    from mer_keras.backbone import vggface_resnet50

    initial = vggface_resnet50(weights=None, input_shape=(32, 32, 3), blocks=(1, 1, 1, 1), width=1 / 16)
    for name, changed in (("conv5_1_3x3", True), ("conv2_1_3x3", False)):
        same = np.allclose(
            _find_layer(final, name).get_weights()[0], initial.get_layer(name).get_weights()[0]
        )
        assert same is not changed, name


def test_retrain_from_auto_uses_the_best_focused_block_and_records_it(tiny_smic, tmp_path, monkeypatch):
    from mer_keras.gradcam.sweep import choose_layer

    auto = ["--retrain-from", "auto", "--no-final", "--epochs", "1"]
    tiny_run("exp2", tiny_smic, tmp_path / "run", *auto)
    record = json.loads((tmp_path / "run" / "config.json").read_text())["record"]
    split = record["backbone_split"]
    scores = split["auto"]["focus_before_training"]
    assert len(scores) == 4 and split["auto"]["chosen_layer"] == choose_layer(scores)  # one per stage of tiny
    best = max(scores.values())
    assert scores[split["auto"]["chosen_layer"]] == best
    assert split["retrain_from"] == split["auto"]["chosen_layer"].replace("_out", "_1x1_reduce")
    assert "moving-region masks" in split["auto"]["regions"]["kind"]
    # the cache holds the input of the chosen block: 16 px maps after stage 1, halved per later stage
    stage = int(split["retrain_from"][4])
    assert record["frame_cache"]["feature_shape"][0] == {2: 8, 3: 8, 4: 4, 5: 2}[stage]

    # a resumed run keeps the recorded choice instead of sweeping again
    def refuse(*args, **kwargs):
        raise AssertionError("swept again on resume")

    monkeypatch.setattr("mer_keras.gradcam.sweep.choose_retrain_layer", refuse)
    tiny_run("exp2", tiny_smic, tmp_path / "run", *auto, "--resume")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["record"]["backbone_split"] == split


def _find_layer(model, name):
    for layer in model.layers:
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            try:
                return _find_layer(layer, name)
            except ValueError:
                pass
        inner = getattr(layer, "layer", None)
        if isinstance(inner, keras.Model):
            try:
                return _find_layer(inner, name)
            except ValueError:
                pass
    raise ValueError(name)


def test_a_fold_with_one_training_subject_trains_the_fixed_budget(tmp_path):
    from mer_keras.datasets.synthetic import make_synthetic_smic

    data = make_synthetic_smic(tmp_path / "two", subjects=2, seed=3, size=32, clips_scale=0.4, progress=False)
    summary = tiny_run("exp2", data, tmp_path / "run", "--folds", "2", "--epochs", "2", "--no-final")
    for fold in (0, 1):
        done = json.loads((tmp_path / "run" / f"fold_{fold}" / "metrics.json").read_text())
        assert done["epochs_run"] == 2 and done["selected_epoch"] == 2
        assert done["selected_by"].startswith("no validation subjects")
        # Keras writes the validation columns as NA when there is no validation data
        history = pd.read_csv(tmp_path / "run" / f"fold_{fold}" / "history.csv")
        assert history.get("val_loss", pd.Series([np.nan])).isna().all() and len(history) == 2
    assert summary["n_folds"] == 2


def test_the_exported_model_loads_in_a_fresh_process_after_import_mer_keras(tiny_smic, tmp_path):
    import subprocess
    import sys

    tiny_run("exp2", tiny_smic, tmp_path / "run", "--folds", "2", "--epochs", "1")
    script = (
        "import mer_keras, keras, numpy as np, tensorflow as tf, sys\n"
        f"m = keras.saving.load_model({str(tmp_path / 'run' / 'final' / 'model.keras')!r})\n"
        f"s = tf.saved_model.load({str(tmp_path / 'run' / 'final' / 'saved_model')!r}).signatures['serving_default']\n"
        "x = np.random.default_rng(0).uniform(0, 255, (2, 5, 32, 32, 3)).astype('float32')\n"
        "d = np.abs(m.predict(x, verbose=0) - list(s(tf.constant(x)).values())[0].numpy()).max()\n"
        "print('difference', d)\n"
        "for bad in (np.zeros((1, 6, 32, 32, 3), 'float32'), np.full((1, 5, 32, 32, 3), np.nan, 'float32')):\n"
        "    try:\n"
        "        s(tf.constant(bad)); print('accepted')\n"
        "    except Exception as e:\n"
        "        print('refused', 'expected clips of shape (batch, 5, 32, 32, 3)' in str(e) or 'NaN' in str(e))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300).stdout
    lines = out.strip().splitlines()
    assert float(lines[0].split()[1]) <= 1e-4, out
    assert lines[1:] == ["refused True", "refused True"], out
