"""Tiny end-to-end runs of the three experiments (tiny images, tiny backbone, few epochs)."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from mer_keras.cli import parse_config
from mer_keras.experiment import prepare_run, run_experiment

TINY = [  # the oracle scoring is tested in test_trust.py; here it would only add a prediction per epoch
    "--no-oracle",
    "--backbone",
    "tiny",
    "--image-size",
    "32",
    "--folds",
    "3",
    "--epochs",
    "2",
    "--batch-size",
    "16",
    "--verbose",
    "0",
]
HEADS = {
    "exp1": ["--fc-units", "16,8"],
    "exp2": ["--lstm-units", "16,8,8", "--n", "5"],
    "exp3": ["--bilstm-units", "8", "--n", "5"],
}


@pytest.fixture(scope="module")
def tiny_smic(tmp_path_factory):
    from mer_keras.datasets.synthetic import make_synthetic_smic

    return make_synthetic_smic(
        tmp_path_factory.mktemp("synthetic"), subjects=6, seed=1, size=32, clips_scale=0.4, progress=False
    )


def _config(experiment, data, out, *extra):
    return parse_config(
        experiment, ["--data", str(data), "--out", str(out), *TINY, *HEADS[experiment], *extra]
    )[0]


def _run(experiment, data, out, *extra, callbacks=()):
    return run_experiment(_config(experiment, data, out, *extra), callbacks=callbacks)


@pytest.mark.parametrize("experiment", ["exp1", "exp2", "exp3"])
def test_tiny_run_writes_every_result(tiny_smic, tmp_path, experiment):
    summary = _run(experiment, tiny_smic, tmp_path / "run")
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


@pytest.mark.parametrize(
    "clip_features, frame_cache", [("motion", [2, 2, 128]), ("relative", [128]), ("raw", [128])]
)
def test_clip_features_from_maps_or_pooled_features_export_the_trained_answers(
    tiny_smic, tmp_path, clip_features, frame_cache
):
    # 64 px: the tiny backbone's stage-5 maps are 2 x 2, so motion is averaged over places
    summary = _run(
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
    trainer = prepare_run(_config("exp2", tiny_smic, tmp_path / "r", "--image-size", "64")).trainer
    windows = trainer.windows(
        prepare_run(_config("exp2", tiny_smic, tmp_path / "r2", "--image-size", "64")).folds[0].train
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
        summary = _run(
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
    run = prepare_run(_config("exp2", tiny_smic, tmp_path / "r"))
    for fold in run.folds:
        test_frames = {f for c in fold.test for f in c.frames}
        for part in (fold.train, fold.validation):
            windows = run.trainer.windows(part)
            used = {run.trainer.cache.table.frames[r][i] for r in windows.rows.ravel() for i in (0, 1)}
            assert not used & test_frames
            assert {part[i].subject for i in windows.clip_index}.isdisjoint(fold.subjects("test"))
        assert set(fold.subjects("train")).isdisjoint(fold.subjects("validation"))


class _KillAt(keras.callbacks.Callback):
    """Simulates a run killed during epoch 2 of fold 1."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1 and (self.folder / "fold_1" / "history.csv").exists():
            raise KeyboardInterrupt("killed")


def test_killed_run_resumes_without_redoing_finished_folds(tiny_smic, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _run("exp2", tiny_smic, out, "--no-final", callbacks=[_KillAt(out)])
    assert (out / "fold_0" / "metrics.json").exists() and not (out / "fold_1" / "metrics.json").exists()
    assert (out / "fold_1" / "backup").exists()  # BackupAndRestore state of the killed fold
    fold0 = (out / "fold_0" / "metrics.json").stat().st_mtime_ns

    with pytest.raises(FileExistsError, match="pass --resume"):
        _run("exp2", tiny_smic, out, "--no-final")
    summary = _run("exp2", tiny_smic, out, "--no-final", "--resume")
    assert (out / "fold_0" / "metrics.json").stat().st_mtime_ns == fold0  # not redone
    history = pd.read_csv(out / "fold_1" / "history.csv")
    assert history["epoch"].tolist() == [0, 1]  # epoch 0 kept from before the kill, epoch 1 after
    assert summary["n_folds"] == 3 and (out / "results.json").exists()


def test_resume_refuses_an_option_left_to_another_default(tiny_smic, tmp_path):
    from mer_keras.config import ConfigError

    _run("exp1", tiny_smic, tmp_path / "run", "--no-final", "--epochs", "1")
    without_size = [a for a in TINY if a not in ("--image-size", "32")]
    config = parse_config(
        "exp1",
        [
            "--data",
            str(tiny_smic),
            "--out",
            str(tmp_path / "run"),
            "--resume",
            *without_size,
            *HEADS["exp1"],
            "--no-final",
            "--epochs",
            "1",
        ],
    )[0]
    assert config.data.image_size == 112  # the synthetic data's default, resolved when the config is made
    with pytest.raises(ConfigError, match="data.image_size 32 -> 112"):
        run_experiment(config)


def test_resume_refuses_changed_options(tiny_smic, tmp_path):
    _run("exp1", tiny_smic, tmp_path / "run", "--no-final", "--epochs", "1")
    with pytest.raises(ValueError, match="protocol.seed 0 -> 5"):
        _run("exp1", tiny_smic, tmp_path / "run", "--no-final", "--resume", "--seed", "5")
    with pytest.raises(ValueError, match=r"training.epochs 1 -> 2; training.lr 0.0001 -> 0.01"):
        _run("exp1", tiny_smic, tmp_path / "run", "--no-final", "--resume", "--lr", "0.01")


@pytest.mark.parametrize("experiment", ["exp1", "exp2"])
def test_retraining_from_inside_the_backbone_exports_the_trained_suffix(tiny_smic, tmp_path, experiment):
    summary = _run(
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


@pytest.mark.parametrize("retrain_from", ["none", "conv5_1_1x1_reduce"])
def test_features_read_from_the_disk_cache_give_the_same_run(tiny_smic, tmp_path, retrain_from, monkeypatch):
    from mer_keras.pipeline.feature_store import DiskFeatures

    settings = ["--retrain-from", retrain_from, "--folds", "2", "--no-final", "--epochs", "1"]
    _run("exp2", tiny_smic, tmp_path / "memory", *settings)
    reads, read = [], DiskFeatures.read
    monkeypatch.setattr(DiskFeatures, "read", lambda self, v, r: reads.append(r.size) or read(self, v, r))
    for name in ("disk", "disk_again"):  # computed into the cache, then read from the existing file
        _run("exp2", tiny_smic, tmp_path / name, *settings, "--cache-dir", str(tmp_path / "cache"))
        assert reads, "training did not read the features from disk"
        reads.clear()
    assert len(list((tmp_path / "cache").glob("features-*.npy"))) == 1
    runs = [pd.read_csv(tmp_path / name / "predictions.csv") for name in ("memory", "disk", "disk_again")]
    probs = [c for c in runs[0].columns if c.startswith("p_")]
    for other in runs[1:]:
        assert list(runs[0]["clip"]) == list(other["clip"])
        np.testing.assert_allclose(runs[0][probs].to_numpy(), other[probs].to_numpy(), atol=1e-5)


def test_retrain_from_auto_uses_the_best_focused_block_and_records_it(tiny_smic, tmp_path, monkeypatch):
    from mer_keras.gradcam.sweep import choose_layer

    _run(
        "exp2",
        tiny_smic,
        tmp_path / "run",
        "--retrain-from",
        "auto",
        "--folds",
        "2",
        "--no-final",
        "--epochs",
        "1",
    )
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
    _run(
        "exp2",
        tiny_smic,
        tmp_path / "run",
        "--retrain-from",
        "auto",
        "--folds",
        "2",
        "--no-final",
        "--epochs",
        "1",
        "--resume",
    )
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


@pytest.mark.slow
def test_loso_on_a_fabricated_composite_reports_each_source(tmp_path):
    from conftest import build_smic
    from sheet_fixtures import build_casme2, build_samm

    root = tmp_path / "megc"
    build_smic(root), build_casme2(root), build_samm(root)
    out = tmp_path / "run"
    summary = _run(
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


def test_a_run_folder_of_another_config_version_is_refused_in_one_line(tiny_smic, tmp_path):
    from mer_keras.config import ConfigError

    out = tmp_path / "old"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"options": {"experiment": "exp2", "relative": True}}))
    with pytest.raises(
        ConfigError,
        match=r"config.json: written by another version of mer_keras \(config_version "
        r"None, this one reads 1\); start a new run folder",
    ):
        _run("exp2", tiny_smic, out, "--resume", "--no-final")


def test_gru_head_trains_end_to_end_and_exports(tiny_smic, tmp_path):
    summary = _run("exp2", tiny_smic, tmp_path / "run", "--rnn", "gru", "--folds", "2", "--epochs", "1")
    final = keras.saving.load_model(tmp_path / "run" / "final" / "model.keras")
    head = final.get_layer("exp2_head")
    assert [type(head.get_layer(f"gru{i}")).__name__ for i in (1, 2, 3)] == ["GRU"] * 3
    assert (
        summary["export"]["max_abs_difference"] <= 1e-4 and summary["export"]["trained_vs_exported"] <= 1e-4
    )
    record = json.loads((tmp_path / "run" / "config.json").read_text())["record"]
    assert any("--rnn gru" in d for d in record["deviations_from_paper"])
    assert "3-Layer-GRU" in (tmp_path / "run" / "results.md").read_text()


def test_resume_on_changed_data_is_refused_naming_what_changed(tiny_smic, tmp_path):
    import shutil

    from mer_keras.config import ConfigError

    data = tmp_path / "data"
    shutil.copytree(tiny_smic, data)
    _run("exp1", data, tmp_path / "run", "--no-final", "--epochs", "1")
    clip = next(p for p in (data / "SMIC_all_raw" / "HS").glob("s*/micro/*/*") if p.is_dir())
    shutil.copytree(clip, clip.with_name(clip.name + "_copy"))
    with pytest.raises(
        ConfigError, match=r"changed since the run began: clips differ \(0 gone or changed.*1 new"
    ):
        _run("exp1", data, tmp_path / "run", "--no-final", "--epochs", "1", "--resume")
    shutil.rmtree(clip.with_name(clip.name + "_copy"))
    frame = sorted(clip.glob("*.bmp"))[0]
    frame.write_bytes(frame.read_bytes())  # same bytes, new modification time
    with pytest.raises(ConfigError, match="frame files changed"):
        _run("exp1", data, tmp_path / "run", "--no-final", "--epochs", "1", "--resume")


def test_a_fold_with_one_training_subject_trains_the_fixed_budget(tmp_path):
    from mer_keras.datasets.synthetic import make_synthetic_smic

    data = make_synthetic_smic(tmp_path / "two", subjects=2, seed=3, size=32, clips_scale=0.4, progress=False)
    summary = _run("exp2", data, tmp_path / "run", "--folds", "2", "--epochs", "2", "--no-final")
    for fold in (0, 1):
        done = json.loads((tmp_path / "run" / f"fold_{fold}" / "metrics.json").read_text())
        assert done["epochs_run"] == 2 and done["selected_epoch"] == 2
        assert done["selected_by"].startswith("no validation subjects")
        # Keras writes the validation columns as NA when there is no validation data
        history = pd.read_csv(tmp_path / "run" / f"fold_{fold}" / "history.csv")
        assert history.get("val_loss", pd.Series([np.nan])).isna().all() and len(history) == 2
    assert summary["n_folds"] == 2


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
    from experiments.exp2 import main

    with pytest.raises(SystemExit) as stopped:
        main(["--out", str(tmp_path / "run"), *argv])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_folds_beyond_the_subjects_are_one_error_line(tiny_smic, tmp_path, capsys):
    from experiments.exp2 import main

    assert main(["--data", str(tiny_smic), "--out", str(tmp_path / "run"), *TINY, "--folds", "9"]) == 2
    err = capsys.readouterr().err
    assert "error: --folds must be at most the number of subjects (6). Received: --folds 9" in err
    assert "Traceback" not in err


def test_the_exported_model_loads_in_a_fresh_process_after_import_mer_keras(tiny_smic, tmp_path):
    import subprocess
    import sys

    _run("exp2", tiny_smic, tmp_path / "run", "--folds", "2", "--epochs", "1")
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


_KILLER = """
import os, signal, sys
import keras
from mer_keras.cli import parse_config
from mer_keras.experiment import run_experiment
import mer_keras.pipeline.frame_cache as frame_cache

where, argv = sys.argv[1], sys.argv[2:]


class Kill(keras.callbacks.Callback):
    # SIGKILL in the middle of fold 1's second epoch (fold 0 finished)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        fold_0_done = os.path.exists(os.path.join(argv[argv.index("--out") + 1], "fold_0", "metrics.json"))
        if fold_0_done and self.epoch == 1 and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)


if where == "caching":
    compute = frame_cache._compute

    def killed(encoder, table, size, variants, batch_size, progress, allocate):
        def allocate_and_die(shape):
            array = allocate(shape)
            os.kill(os.getpid(), signal.SIGKILL)
            return array
        return compute(encoder, table, size, variants, batch_size, progress, allocate_and_die)

    frame_cache._compute = killed
run_experiment(parse_config("exp2", argv)[0], callbacks=[Kill()] if where == "fold" else ())
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["fold", "caching"])
def test_sigkill_and_resume_give_the_uninterrupted_run(tiny_smic, tmp_path, where):
    import subprocess
    import sys

    extra = ["--folds", "2", "--epochs", "3", "--no-final"]
    _run("exp2", tiny_smic, tmp_path / "whole", *extra, "--cache-dir", str(tmp_path / "cache_whole"))
    extra += ["--cache-dir", str(tmp_path / "cache")]  # its own: the killed run computes the features itself
    argv = ["--data", str(tiny_smic), *TINY, *HEADS["exp2"], *extra, "--out", str(tmp_path / "killed")]
    killed = subprocess.run(
        [sys.executable, "-c", _KILLER, where, *argv], capture_output=True, text=True, timeout=600
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "killed" / "config.json").exists()
    if where == "fold":
        assert (tmp_path / "killed" / "fold_0" / "metrics.json").exists()
        assert not (tmp_path / "killed" / "fold_1" / "metrics.json").exists()
    _run("exp2", tiny_smic, tmp_path / "killed", *extra, "--resume")
    assert not list((tmp_path / "cache").glob(".*tmp*"))  # the killed writer's temporary file is gone
    assert (tmp_path / "killed" / "predictions.csv").read_bytes() == (
        tmp_path / "whole" / "predictions.csv"
    ).read_bytes()
    for fold in (0, 1):
        histories = [
            pd.read_csv(tmp_path / run / f"fold_{fold}" / "history.csv") for run in ("whole", "killed")
        ]
        pd.testing.assert_frame_equal(*histories)
