"""The sweep over N (Table 3): one run per experiment and N, one frame cache for all, resume, bad input."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from tiny_runs import TINY

from experiments.sweep import main
from mer_keras.backbone import with_preprocessing
from mer_keras.backbone.build import build_backbone
from mer_keras.cli import _forwarded, parse_sweep
from mer_keras.config import DataConfig
from mer_keras.crossval import Trainer
from mer_keras.dataset_plan import load_clips, plan_dataset
from mer_keras.datasets.short_clips import timeline
from mer_keras.pipeline import frame_cache
from mer_keras.pipeline.shared_frames import SharedFrames, SharedFrameView
from mer_keras.pipeline.windows import build_frame_table
from mer_keras.reports import PAPER_TABLE3
from mer_keras.sweep import run_sweep

SWEEP = ["--experiments", "exp2", "--n", "5", "14"]
TINY_CLIP = [*TINY, "--epochs", "1", "--lstm-units", "8", "--no-final"]  # one layer: less to trace


@pytest.fixture
def computed(monkeypatch):
    """The number of frames of every call of the real ``compute_features`` (what runs the encoder)."""
    frames, real = [], frame_cache.compute_features

    def counted(encoder, table, *args, **kwargs):
        frames.append(len(table))
        return real(encoder, table, *args, **kwargs)

    monkeypatch.setattr(frame_cache, "compute_features", counted)
    return frames


def _expected(clips, ns):
    """(union of the frames of every N, windows per N), counted from the clips and short-clip plans."""
    blended = {(c.key, a, b, t) for n in ns for c in clips for a, b, t in timeline(len(c), n) if t}
    windows = {n: sum(max(len(c), n) - n + 1 for c in clips) for n in ns}
    return sum(len(c) for c in clips) + len(blended), windows


def test_sweep_writes_table3_on_one_frame_cache_and_resumes_without_training(
    tiny_smic, tmp_path, computed, monkeypatch, capsys
):
    out = tmp_path / "sweep"
    argv = [*SWEEP, "--out", str(out), "--data", str(tiny_smic), *TINY_CLIP]
    assert main(argv) == 0
    clips, _ = load_clips(DataConfig(path=str(tiny_smic)))
    assert min(len(c) for c in clips) < 14  # N=14 blends frames that N=5 does not have
    union, windows = _expected(clips, (5, 14))
    assert computed == [union]  # once for both runs: every real frame and N=14's blended ones

    table = json.loads((out / "table3.json").read_text())
    assert [(r["pattern"], r["n"], r["data_number"]) for r in table["rows"]] == [
        ("3-Layer-LSTM", 5, windows[5]),
        ("3-Layer-LSTM", 14, windows[14]),
    ]
    for row in table["rows"]:
        results = json.loads((out / f"exp2-n{row['n']}" / "results.json").read_text())
        for key in ("accuracy", "uf1", "uar"):
            score = row[key]
            assert score["value"] == results[key]
            assert score["ci_low"] <= score["value"] <= score["ci_high"]
        record = json.loads((out / f"exp2-n{row['n']}" / "config.json").read_text())["record"]
        assert record["frame_cache"]["shared"]["union_frames"] == union
        assert record["frame_cache"]["shared"]["computed_by_this_run"] == (row["n"] == 5)
    assert [(p["pattern"], p["n"], p["data_number"], p["accuracy"]) for p in table["paper"]] == [
        tuple(row) for row in PAPER_TABLE3
    ]
    markdown = (out / "table3.md").read_text()
    accuracy = 100 * table["rows"][1]["accuracy"]["value"]
    assert f"| 3-Layer-LSTM | 14 | {windows[14]} | {accuracy:.2f} % [" in markdown
    assert "| Bi-LSTM | 13 | 11276 | 60.60 % | — | — | paper, Table 3 |" in markdown

    assert main(argv) == 2  # a second sweep into the same folder without --resume
    assert "pass --resume" in capsys.readouterr().err
    folds = {p: p.stat().st_mtime_ns for p in out.glob("*/fold_*/metrics.json")}
    assert len(folds) == 4

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed sweep of finished runs trained")

    monkeypatch.setattr(Trainer, "train", no_training)
    assert main([*argv, "--resume"]) == 0
    assert computed == [union]  # nothing computed again
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/fold_*/metrics.json")} == folds
    assert json.loads((out / "table3.json").read_text())["rows"] == table["rows"]
    # a finished run is kept only with the options it was made with
    assert main([*argv, "--resume", "--lr", "0.01"]) == 2
    assert "--resume with options that change the run: training.lr 0.001 -> 0.01" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--experiments", "exp2", "--n", "1", "5"], "Received: --n 1 5"),
        (["--experiments", "exp2", "--n", "5", "5"], "Received: --n 5 5"),
        (["--experiments", "exp1", "--n", "5"], "Received: --experiments exp1"),
        (["--experiments", "exp2", "ststnet", "--n", "5"], "Received: --experiments exp2 ststnet"),
        (
            ["--experiments", "exp2", "--n", "5", "--only-folds", "0"],
            "--only-folds: a sweep trains whole runs",
        ),
        (["--experiments", "exp2", "--n", "5", "--folds", "1"], "Received: --folds 1"),
        (
            ["--experiments", "exp2", "--n", "5", "--no-such-option"],
            "unrecognized arguments: --no-such-option",
        ),
    ],
)
def test_sweep_refuses_bad_input_in_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--out", str(tmp_path / "sweep")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    assert not (tmp_path / "sweep").exists()


def test_sweep_gives_each_experiment_its_options(tmp_path):
    argv = ["--lstm-units", "16,8", "--epochs", "1", "--lr", "-1e-3", "--bilstm-units", "8"]
    assert _forwarded("exp3", argv, ("exp2", "exp3")) == [
        "--epochs",
        "1",
        "--lr",
        "-1e-3",
        "--bilstm-units",
        "8",
    ]
    assert _forwarded("exp2", argv, ("exp2",)) == argv  # --bilstm-units: exp2's parser refuses it
    runs, extras = parse_sweep(
        ["--experiments", "exp3", "exp2", "--n", "13", "11", "--out", str(tmp_path), "--seeds", "0", "1"]
        + ["--lstm-units", "16,8", "--bilstm-units", "8", "--epochs", "1", "--data", "synthetic"]
    )
    assert [(r.experiment, r.n, r.config.out) for r in runs] == [
        (e, n, str(tmp_path / f"{e}-n{n}")) for e in ("exp3", "exp2") for n in (11, 13)
    ]
    assert {r.config.model.head.units for r in runs} == {(8,), (16, 8)}
    assert all(r.config.training.epochs == 1 and r.config.n == r.n for r in runs)
    assert extras["seeds"] == [0, 1]


def test_shared_frames_give_each_run_the_features_of_its_own_cache(tiny_smic, caplog):
    data = DataConfig(path=str(tiny_smic), image_size=32)
    tables = {n: build_frame_table(plan_dataset(data, n).planned) for n in (5, 14, 60)}
    keras.utils.set_random_seed(0)
    backbone, weights = build_backbone("tiny", "none", 32, True, pooling=None)
    encoder = with_preprocessing(backbone, 32)
    shared = SharedFrames([tables[5], tables[14]])
    views = {
        n: shared(tables[n], encoder, 32, ("identity",), weights=weights, progress=False) for n in (5, 14)
    }
    assert len(shared.computed) == 1 and all(isinstance(v, SharedFrameView) for v in views.values())
    own = frame_cache.build_frame_cache(tables[14], encoder, 32, ("identity",), progress=False)
    for clip, rows in tables[14].clip_rows.items():
        np.testing.assert_allclose(
            views[14].frames(views[14].table.clip_rows[clip]), own.frames(rows), rtol=1e-5, atol=1e-6
        )
    assert views[14].record()["distinct_frames"] == len(tables[14])
    # frames outside the union (N=60 blends others): that run gets a cache of its own
    alone = shared(tables[60], encoder, 32, ("identity",), weights=weights, progress=False)
    assert not isinstance(alone, SharedFrameView) and len(alone.table) == len(tables[60])
    assert "not all in the sweep's shared frame cache" in caplog.text


class _KillIn(keras.callbacks.Callback):
    """Simulates a sweep killed during the first epoch of a run's second fold."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_epoch_begin(self, epoch, logs=None):
        if (self.folder / "fold_0" / "metrics.json").exists():
            raise KeyboardInterrupt("killed")


@pytest.mark.slow
def test_sweep_of_two_experiments_and_seeds_shares_features_per_seed_and_resumes_after_a_kill(
    tiny_smic, tmp_path, computed
):
    from tiny_runs import tiny_run

    out = tmp_path / "sweep"
    argv = ["--experiments", "exp2", "exp3", "--n", "5", "14", "--seeds", "0", "1", "--out", str(out)]
    argv += ["--data", str(tiny_smic), *TINY_CLIP, "--bilstm-units", "8"]
    runs, extras = parse_sweep(argv)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(runs, out, extras["seeds"], callbacks=[_KillIn(out / "exp3-n5" / "seed_1")])
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*/seed_*/fold_*/metrics.json")}
    assert len(finished) == 2 * 2 * 2 + 2 + 1  # exp2 (2 N x 2 seeds), exp3-n5 seed 0, seed 1's fold 0
    # the tiny backbone's weights come from the seed: one computation per seed, shared by every run
    clips, _ = load_clips(DataConfig(path=str(tiny_smic)))
    union, windows = _expected(clips, (5, 14))
    assert computed == [union, union]

    runs, extras = parse_sweep([*argv, "--resume"])
    table = run_sweep(runs, out, extras["seeds"])
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # finished folds kept
    assert computed == [union] * 4  # the resumed invocation: once per seed again
    rows = table["rows"]
    assert [(r["pattern"], r["n"], r["data_number"]) for r in rows] == [
        (p, n, windows[n]) for p in ("3-Layer-LSTM", "Bi-LSTM") for n in (5, 14)
    ]
    for row in rows:
        accuracies = [s["accuracy"]["value"] for s in row["seeds"]]
        assert row["over_seeds"]["accuracy"]["values"] == accuracies
        assert row["over_seeds"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    markdown = (out / "table3.md").read_text()
    assert "| Bi-LSTM | 14 |" in markdown and "exp3-n14, mean ± std over seeds |" in markdown
    # a sweep's run is the run the experiment makes alone
    tiny_run("exp3", tiny_smic, tmp_path / "alone", "--epochs", "1", "--no-final", "--n", "14", "--seed", "1")
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "exp3-n14" / "seed_1" / "predictions.csv"),
        pd.read_csv(tmp_path / "alone" / "predictions.csv"),
    )
