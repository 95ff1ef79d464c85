"""--only-folds / --only-seeds and experiments.collect: a run trained in pieces equals one full run; fold locks."""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys

import pytest
from tiny_runs import assert_refused_in_one_line, tiny_run

from experiments.collect import main as collect_main

ONE_EPOCH = ("--no-final", "--epochs", "1")
POOLED = ("predictions.csv", "results.json", "results.md", "confusion.png")


@pytest.fixture(scope="module")
def fold0_run(tiny_smic, tmp_path_factory):
    """A 2-fold run folder in which only fold 0 was trained (--only-folds 0)."""
    out = tmp_path_factory.mktemp("split") / "run"
    summary = tiny_run("exp2", tiny_smic, out, *ONE_EPOCH, "--only-folds", "0")
    assert summary == {"complete": False, "finished": [0], "missing": [1]}
    assert (out / "fold_0" / "metrics.json").exists() and not (out / "fold_1").exists()
    assert not any((out / name).exists() for name in POOLED)  # nothing pooled while a fold is missing
    assert not (out / "fold_0" / "train.lock").exists()  # released once the fold is done
    return out


def _lock(folder, pid, host=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.lock").write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid}))


def test_halves_with_locks_then_collect_equal_one_full_run(tiny_smic, fold0_run, tmp_path, caplog):
    full = tiny_run("exp2", tiny_smic, tmp_path / "full", *ONE_EPOCH)
    out = tmp_path / "split"
    shutil.copytree(fold0_run, out)

    # a fold locked by a live process (this one) is skipped and stays missing
    _lock(out / "fold_1", os.getpid())
    with caplog.at_level(logging.WARNING, logger="mer_keras"):
        summary = tiny_run("exp2", tiny_smic, out, *ONE_EPOCH, "--resume")
    assert summary == {"complete": False, "finished": [0], "missing": [1]}
    assert f"fold 1 is being trained by pid {os.getpid()} on host {socket.gethostname()}" in caplog.text
    assert (out / "fold_1" / "train.lock").exists() and not (out / "fold_1" / "metrics.json").exists()
    assert not any((out / name).exists() for name in POOLED)

    # a lock of a pid that has ended on this host is stale: removed, and the fold trained
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    _lock(out / "fold_1", ended.pid)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mer_keras"):
        second = tiny_run("exp2", tiny_smic, out, *ONE_EPOCH, "--only-folds", "1", "--resume")
    assert f"stale lock of pid {ended.pid}" in caplog.text
    assert not (out / "fold_1" / "train.lock").exists()
    assert second["n_folds"] == 2  # the invocation that completes the run pools it

    # collect writes the pooled results again from the folds alone, as one full run did
    for name in POOLED:
        (out / name).unlink()
    assert collect_main([str(out)]) == 0
    assert (out / "predictions.csv").read_bytes() == (tmp_path / "full" / "predictions.csv").read_bytes()
    collected = json.loads((out / "results.json").read_text())
    assert collected["accuracy"] == full["accuracy"] and collected["uf1"] == full["uf1"]
    assert not (out / "final").exists()  # --final not given

    lines = [json.loads(line) for line in (out / "invocations.jsonl").read_text().splitlines()]
    assert [(i["command"], i.get("trained"), i.get("skipped")) for i in lines] == [
        ("train", [0], []),
        ("train", [], [1]),
        ("train", [1], []),
        ("collect", None, None),
    ]
    assert lines[0]["only_folds"] == [0] and lines[1]["only_folds"] is None


def test_collect_refuses_an_incomplete_run_naming_the_missing_folds(fold0_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(fold0_run, out)
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")}
    assert collect_main([str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: {out}: fold 1 of 2 is not finished" in err and "--only-folds 1 --resume" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing written


def test_collect_refuses_a_seeds_folder_and_a_folder_without_a_run(tmp_path, capsys):
    (tmp_path / "seeds" / "seed_0").mkdir(parents=True)
    (tmp_path / "seeds" / "seed_0" / "config.json").write_text("{}")
    assert collect_main([str(tmp_path / "seeds")]) == 2
    assert "collect one seed_K folder at a time" in capsys.readouterr().err
    assert collect_main([str(tmp_path)]) == 2
    assert f"{tmp_path / 'config.json'}: no config.json (not a run folder)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--folds", "2", "--only-folds", "9"], "--only-folds 9: this run has 2 folds (0-1)"),
        (["--only-folds", "1,7", "--folds", "5"], "--only-folds 7: this run has 5 folds (0-4)"),
        (["--only-folds", "x"], "argument --only-folds: expected comma-separated fold indices"),
        (["--only-folds", "1,1"], "argument --only-folds: fold indices must be distinct"),
        (["--seeds", "1", "2", "--only-seeds", "5"], "--only-seeds must be some of --seeds (1 2)"),
        (["--only-seeds", "1"], "--only-seeds must be some of --seeds (none given)"),
    ],
)
def test_bad_subsets_are_refused_by_name_in_one_line(tmp_path, capsys, argv, message):
    assert_refused_in_one_line(tmp_path, capsys, argv, message)


def test_a_fold_lock_is_released_when_training_fails(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from mer_keras import crossval

    def fails(trainer, fold, folder, callbacks):
        assert (folder / "train.lock").exists()  # held while training
        raise RuntimeError("out of memory")

    monkeypatch.setattr(crossval, "train_fold", fails)
    with pytest.raises(RuntimeError, match="out of memory"):
        crossval.run_fold(None, SimpleNamespace(index=3), tmp_path)
    assert not (tmp_path / "fold_3" / "train.lock").exists()


def test_locks_of_another_host_or_unreadable_count_as_held(tmp_path, caplog):
    from mer_keras.fold_lock import acquire

    _lock(tmp_path / "fold_0", 1, host="other-node")
    (tmp_path / "fold_1").mkdir()
    (tmp_path / "fold_1" / "train.lock").write_text("")  # a lock its owner has not written yet
    with caplog.at_level(logging.WARNING, logger="mer_keras"):
        assert acquire(tmp_path / "fold_0", "fold 0") is None
        assert acquire(tmp_path / "fold_1", "fold 1") is None
    assert "fold 0 is being trained by pid 1 on host other-node (fold_0/train.lock); skipped" in caplog.text
    assert "fold 1 is being trained by another process (lock unreadable)" in caplog.text
    lock = acquire(tmp_path / "fold_2", "fold 2")
    assert json.loads(lock.read_text())["pid"] == os.getpid()


@pytest.mark.slow
def test_only_seeds_pools_the_seeds_once_all_are_there(tiny_smic, tmp_path):
    from tiny_runs import HEADS, TINY

    from mer_keras.cli import run_main

    out = tmp_path / "seeds"
    argv = [
        "--data",
        str(tiny_smic),
        "--out",
        str(out),
        *TINY,
        *HEADS["exp2"],
        *ONE_EPOCH,
        "--seeds",
        "0",
        "1",
    ]
    assert run_main("exp2", [*argv, "--only-seeds", "1"]) == 0
    assert (out / "seed_1" / "results.json").exists() and not (out / "seed_0").exists()
    assert not (out / "seeds.json").exists()
    assert run_main("exp2", [*argv, "--only-seeds", "0", "--resume"]) == 0  # seed 0 not begun: starts
    summary = json.loads((out / "seeds.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["accuracy"]["values"]) == 2


def test_only_folds_beyond_the_loso_folds_is_one_error_line(tiny_smic, tmp_path, capsys):
    from tiny_runs import HEADS, TINY

    from mer_keras.cli import run_main

    argv = ["--data", str(tiny_smic), "--out", str(tmp_path / "run"), *TINY, *HEADS["exp2"], "--protocol"]
    assert run_main("exp2", [*argv, "loso", "--only-folds", "2,6"]) == 2  # 6 subjects: folds 0-5
    err = capsys.readouterr().err
    assert "error: --only-folds 6: this run has 6 folds (0-5). Received: --only-folds 2,6" in err
    assert not (tmp_path / "run" / "fold_2").exists()
