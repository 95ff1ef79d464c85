"""Resuming runs: killed runs finish without redoing folds, changed options or data are refused, caches on disk give the same run."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from tiny_runs import HEADS, TINY, tiny_config, tiny_run

from mer_keras.cli import parse_config
from mer_keras.experiment import prepare_run, run_experiment
from mer_keras.training import CheckpointError


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
        tiny_run("exp2", tiny_smic, out, "--no-final", callbacks=[_KillAt(out)])
    assert (out / "fold_0" / "metrics.json").exists() and not (out / "fold_1" / "metrics.json").exists()
    assert (out / "fold_1" / "backup").exists()  # BackupAndRestore state of the killed fold
    fold0 = (out / "fold_0" / "metrics.json").stat().st_mtime_ns

    with pytest.raises(FileExistsError, match="pass --resume"):
        tiny_run("exp2", tiny_smic, out, "--no-final")
    # a backup cut short by the kill stops the resume naming the file, and nothing is lost
    for name, cut in (("latest.weights.h5", 0.5), ("training_metadata.json", 0.3)):
        backup = out / "fold_1" / "backup" / name
        whole = backup.read_bytes()
        backup.write_bytes(whole[: int(len(whole) * cut)])
        with pytest.raises(
            CheckpointError, match=rf"{backup}: cannot be read .* Delete the folder .*fold_1 "
        ):
            tiny_run("exp2", tiny_smic, out, "--no-final", "--resume")
        backup.write_bytes(whole)
        assert (out / "fold_0" / "metrics.json").stat().st_mtime_ns == fold0
    summary = tiny_run("exp2", tiny_smic, out, "--no-final", "--resume")
    assert (out / "fold_0" / "metrics.json").stat().st_mtime_ns == fold0  # not redone
    history = pd.read_csv(out / "fold_1" / "history.csv")
    assert history["epoch"].tolist() == [0, 1]  # epoch 0 kept from before the kill, epoch 1 after
    assert summary["n_folds"] == 2 and (out / "results.json").exists()


def test_resume_refuses_an_option_left_to_another_default(tiny_smic, tmp_path):
    from mer_keras.config import ConfigError

    tiny_run("exp1", tiny_smic, tmp_path / "run", "--no-final", "--epochs", "1")
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
    tiny_run("exp1", tiny_smic, tmp_path / "run", "--no-final", "--epochs", "1")
    with pytest.raises(ValueError, match="protocol.seed 0 -> 5"):
        tiny_run("exp1", tiny_smic, tmp_path / "run", "--no-final", "--resume", "--seed", "5")
    with pytest.raises(ValueError, match=r"training.epochs 1 -> 2; training.lr 0.0001 -> 0.01"):
        tiny_run("exp1", tiny_smic, tmp_path / "run", "--no-final", "--resume", "--lr", "0.01")


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
        tiny_run("exp2", tiny_smic, out, "--resume", "--no-final")


def test_resume_on_changed_data_is_refused_naming_what_changed(tiny_smic, tmp_path):
    import shutil

    from mer_keras.config import ConfigError

    data = tmp_path / "data"
    shutil.copytree(tiny_smic, data)
    tiny_run("exp1", data, tmp_path / "run", "--no-final", "--epochs", "1")
    clip = next(p for p in (data / "SMIC_all_raw" / "HS").glob("s*/micro/*/*") if p.is_dir())
    shutil.copytree(clip, clip.with_name(clip.name + "_copy"))
    with pytest.raises(
        ConfigError, match=r"changed since the run began: clips differ \(0 gone or changed.*1 new"
    ):
        tiny_run("exp1", data, tmp_path / "run", "--no-final", "--epochs", "1", "--resume")
    shutil.rmtree(clip.with_name(clip.name + "_copy"))
    frame = sorted(clip.glob("*.bmp"))[0]
    frame.write_bytes(frame.read_bytes())  # same bytes, new modification time
    with pytest.raises(ConfigError, match="frame files changed"):
        tiny_run("exp1", data, tmp_path / "run", "--no-final", "--epochs", "1", "--resume")


@pytest.mark.parametrize("retrain_from", ["none", "conv5_1_1x1_reduce"])
def test_features_read_from_the_disk_cache_give_the_same_run(tiny_smic, tmp_path, retrain_from, monkeypatch):
    import mer_keras.pipeline.frame_cache as frame_cache
    from mer_keras.pipeline.feature_store import DiskFeatures

    settings = ["--retrain-from", retrain_from, "--folds", "2", "--no-final", "--epochs", "1"]
    on_disk = ["--cache-dir", str(tmp_path / "cache")]
    tiny_run("exp2", tiny_smic, tmp_path / "memory", *settings)
    reads, read = [], DiskFeatures.read
    monkeypatch.setattr(DiskFeatures, "read", lambda self, v, r: reads.append(r.size) or read(self, v, r))
    tiny_run("exp2", tiny_smic, tmp_path / "disk", *settings, *on_disk)  # computed into the cache
    assert reads, "training did not read the features from disk"
    runs = [pd.read_csv(tmp_path / name / "predictions.csv") for name in ("memory", "disk")]
    probs = [c for c in runs[0].columns if c.startswith("p_")]
    assert list(runs[0]["clip"]) == list(runs[1]["clip"])
    np.testing.assert_allclose(runs[0][probs].to_numpy(), runs[1][probs].to_numpy(), atol=1e-5)

    # another run on the same frames opens the existing file instead of computing the features again
    def refuse(*args, **kwargs):
        raise AssertionError("features computed again")

    monkeypatch.setattr(frame_cache, "_compute", refuse)
    again = prepare_run(tiny_config("exp2", tiny_smic, tmp_path / "again", *settings, *on_disk))
    assert isinstance(again.trainer.cache.features, DiskFeatures)
    assert len(list((tmp_path / "cache").glob("features-*.npy"))) == 1


_KILLER = """
import os, signal, sys
import keras
from mer_keras.cli import parse_config
from mer_keras.experiment import prepare_run, run_experiment
from mer_keras.training import CheckpointError
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


KILLED_RUN = ["--folds", "2", "--epochs", "3", "--no-final"]


@pytest.fixture(scope="module")
def whole(tiny_smic, tmp_path_factory):
    """The uninterrupted run that a killed and resumed one must reproduce."""
    root = tmp_path_factory.mktemp("whole")
    tiny_run("exp2", tiny_smic, root / "run", *KILLED_RUN, "--cache-dir", str(root / "cache"))
    return root / "run"


@pytest.mark.slow
@pytest.mark.parametrize("where", ["fold", "caching"])
def test_sigkill_and_resume_give_the_uninterrupted_run(tiny_smic, whole, tmp_path, where):
    import subprocess
    import sys

    # its own cache: the killed run computes the features itself
    extra = [*KILLED_RUN, "--cache-dir", str(tmp_path / "cache")]
    argv = ["--data", str(tiny_smic), *TINY, *HEADS["exp2"], *extra, "--out", str(tmp_path / "killed")]
    killed = subprocess.run(
        [sys.executable, "-c", _KILLER, where, *argv], capture_output=True, text=True, timeout=600
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "killed" / "config.json").exists()
    if where == "fold":
        assert (tmp_path / "killed" / "fold_0" / "metrics.json").exists()
        assert not (tmp_path / "killed" / "fold_1" / "metrics.json").exists()
    tiny_run("exp2", tiny_smic, tmp_path / "killed", *extra, "--resume")
    assert not list((tmp_path / "cache").glob(".*tmp*"))  # the killed writer's temporary file is gone
    assert (tmp_path / "killed" / "predictions.csv").read_bytes() == (whole / "predictions.csv").read_bytes()
    for fold in (0, 1):
        histories = [
            pd.read_csv(run / f"fold_{fold}" / "history.csv") for run in (whole, tmp_path / "killed")
        ]
        pd.testing.assert_frame_equal(*histories)


def test_a_fit_killed_in_its_first_epoch_leaves_a_history_resume_reads(tmp_path):
    from mer_keras.training import _best_logged, read_history

    (tmp_path / "history.csv").write_text("")  # CSVLogger opened it, no epoch ended
    assert read_history(tmp_path / "history.csv").empty
    assert _best_logged(tmp_path / "history.csv", "val_loss") is None
    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,1.5,1.25\n1,1.0,NA\n")
    assert _best_logged(tmp_path / "history.csv", "val_loss") == 1.25
