"""Tiny end-to-end runs for the experiment tests: tiny images, tiny backbone, few epochs."""

import pytest

from mer_keras.cli import parse_config
from mer_keras.experiment import run_experiment

TINY = [  # the oracle scoring is tested in test_trust.py; here it would only add a prediction per epoch
    "--no-oracle",
    "--backbone",
    "tiny",
    "--image-size",
    "32",
    "--folds",
    "2",
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


def tiny_config(experiment, data, out, *extra):
    """The run config of a tiny ``experiment`` on ``data`` into ``out``; ``extra`` options override."""
    return parse_config(
        experiment, ["--data", str(data), "--out", str(out), *TINY, *HEADS[experiment], *extra]
    )[0]


def tiny_run(experiment, data, out, *extra, callbacks=()):
    """Runs a tiny ``experiment``; returns its results summary."""
    return run_experiment(tiny_config(experiment, data, out, *extra), callbacks=callbacks)


def assert_refused_in_one_line(tmp_path, capsys, argv, message):
    """``exp2 argv`` exits 2 with ``message`` on one error line, no traceback, and writes no run folder."""
    from experiments.exp2 import main

    with pytest.raises(SystemExit) as stopped:
        main(["--out", str(tmp_path / "run"), *argv])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
