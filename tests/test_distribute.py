"""--strategy: a fold trained on 2 replicas matches one device; two worker processes train one fold together.

TensorFlow fixes its logical devices when it first uses them, so the strategy checks run in fresh
processes that configure two logical CPU devices first.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from tiny_runs import HEADS, TINY, assert_refused_in_one_line

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra) -> dict:
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


MIRRORED = """
import dataclasses, json, sys
from mer_keras.distribute import make_strategy, split_cpu
split_cpu(2)
from mer_keras.experiment import prepare_run
from tiny_runs import tiny_config
data, out = sys.argv[1:]
run = prepare_run(tiny_config("exp2", data, out, "--epochs", "1", "--dropout", "0"))
fold = run.folds[0]
losses = {}
for name in ("none", "mirrored"):
    trainer = dataclasses.replace(run.trainer, strategy=make_strategy(name))
    history = trainer.train(fold.train, fold.validation, f"{out}/{name}", seed=0)[2]
    losses[name] = {k: float(history[k].iloc[0]) for k in ("loss", "val_loss")}
print(json.dumps({"replicas": make_strategy("mirrored").num_replicas_in_sync, "losses": losses}))
"""


@pytest.mark.slow  # about 30 s on 2 idle cores (two fits and TensorFlow's start in a fresh process)
def test_mirrored_fold_matches_one_device(tiny_smic, tmp_path):
    """Same batches, same initial weights: only the order of float sums differs (measured: 9e-8 relative).

    Without dropout: Keras gives every replica the same dropout masks, so with dropout the runs differ.
    """
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(tiny_smic), str(tmp_path / "run")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    one, two = result["losses"]["none"], result["losses"]["mirrored"]
    for key in ("loss", "val_loss"):  # rtol: 100 float32 epsilons over a 16-step epoch
        assert two[key] == pytest.approx(one[key], rel=1e-5, abs=0), key


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow  # about 40 s on 2 idle cores, 150 s on loaded ones
def test_two_workers_train_one_fold_and_only_the_chief_writes(tiny_smic, tmp_path):
    out = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    argv = [*TINY, *HEADS["exp2"], "--epochs", "1", "--no-final", "--only-folds", "0"]
    argv += ["--data", str(tiny_smic), "--out", str(out), "--strategy", "multiworker"]
    workers = []
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "experiments.exp2", *argv],
                    cwd=ROOT,
                    env=_env(TF_CONFIG=tf_config, TMPDIR=str(tmp_path)),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        logs = [w.communicate(timeout=300)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
            w.wait()
    assert [w.returncode for w in workers] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    record = json.loads((out / "config.json").read_text())["record"]["distribute"]
    assert (record["strategy"], record["replicas"], record["per_replica_batch"]) == ("multiworker", 2, 8)
    assert record["chief"] and not record["learning_rate_scaled_with_replicas"]
    assert len((out / "invocations.jsonl").read_text().splitlines()) == 1  # the worker wrote elsewhere
    (copy,) = (tmp_path / "mer_keras_workers").glob("worker1-*")
    chief, worker = (pd.read_csv(f / "fold_0" / "history.csv") for f in (out, copy))
    pd.testing.assert_frame_equal(chief, worker)  # one model trained together, all-reduced


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (["--strategy", "ring"], {}, "--strategy: invalid choice: 'ring'"),
        (["--strategy", "multiworker"], {}, "Received: TF_CONFIG unset"),
        (["--strategy", "multiworker"], {"TF_CONFIG": "{worker"}, "Received: TF_CONFIG='{worker'"),
        (
            ["--strategy", "multiworker"],
            {"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}'},
            "this process's task among them",
        ),
        (["--strategy", "mirrored", "--retrain-from", "auto"], {}, "add --no-deduplicate"),
    ],
)
def test_refused_strategy_options(tmp_path, capsys, monkeypatch, argv, env, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert_refused_in_one_line(tmp_path, capsys, argv, message)
