"""--executor ray: one Ray task per fold gives the local run's bytes; a killed driver resumes; bad input refused."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_runs import HEADS, TINY, assert_refused_in_one_line, tiny_run

ray = pytest.importorskip("ray")  # requirements.txt pins it: these run in CI

ROOT = Path(__file__).resolve().parent.parent
FOLDS = ["--folds", "4", "--epochs", "1", "--no-final"]


def _refused_at_run_time(tmp_path, capsys, argv, message):
    """``exp2 argv`` returns 2 with ``message`` on one error line, before any run folder is made."""
    from mer_keras.cli import run_main

    assert run_main("exp2", ["--out", str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ray-address", "auto"], "--ray-address needs --executor ray. Received: --ray-address auto"),
        (
            ["--executor", "ray", "--ray-address", "nohost"],
            "--ray-address must be auto or HOST:PORT (e.g. 10.0.0.1:6379). Received: --ray-address 'nohost'",
        ),
        (["--executor", "ray", "--cpus-per-fold", "0"], "--cpus-per-fold must be >= 1"),
        (["--executor", "ray", "--strategy", "mirrored"], "not with --strategy mirrored"),
        (["--executor", "ray", "--augment", "online", "--flip"], "or --augment online. Received"),
    ],
)
def test_bad_executor_options_are_refused_in_one_line(tmp_path, capsys, argv, message):
    assert_refused_in_one_line(tmp_path, capsys, argv, message)


# before the module's Ray starts: a Ray already running in the process is used as it is
def test_an_unreachable_ray_address_is_named(tmp_path, capsys):
    assert not ray.is_initialized()
    _refused_at_run_time(
        tmp_path,
        capsys,
        ["--executor", "ray", "--ray-address", "127.0.0.1:9"],
        "error: --ray-address 127.0.0.1:9: no Ray cluster reachable there (Connection refused)",
    )


def test_executor_ray_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    _refused_at_run_time(
        tmp_path,
        capsys,
        ["--executor", "ray"],
        "error: --executor ray needs Ray, which is not installed: pip install mer_keras[cluster]",
    )


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs for the module (starting one takes about 10 s)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_ray_folds_give_the_bytes_of_local_folds(tiny_smic, tmp_path, local_ray):
    tiny_run("exp2", tiny_smic, tmp_path / "local", *FOLDS)  # features in memory: via the object store
    tiny_run("exp2", tiny_smic, tmp_path / "ray", *FOLDS, "--executor", "ray")
    for name in ["predictions.csv", *(f"fold_{k}/predictions.csv" for k in range(4))]:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    record = json.loads((tmp_path / "ray" / "config.json").read_text())
    assert record["record"]["execution"]["executor"] == "ray"
    assert record["record"]["execution"]["folds_at_once"] == 2
    assert record["config"]["executor"] == "ray"
    local = json.loads((tmp_path / "local" / "config.json").read_text())
    assert local["record"]["execution"] == {"executor": "local"}
    assert not list((tmp_path / "ray").glob("fold_*/train.lock"))  # the driver released every lock


def _fold_files(out, folds):
    return {
        path: (path.stat().st_mtime_ns, path.read_bytes())
        for k in folds
        for path in sorted((out / f"fold_{k}").rglob("*"))
        if path.is_file()
    }


@pytest.mark.slow
def test_a_killed_driver_resumes_without_retraining_finished_folds(tiny_smic, tmp_path, local_ray):
    # features read from disk by the workers; a trainable suffix, rebuilt in the workers from the
    # driver's starting weights
    options = [*FOLDS, "--cache-dir", str(tmp_path / "cache"), "--retrain-from", "conv5_1_1x1_reduce"]
    out = tmp_path / "killed"
    argv = ["--data", str(tiny_smic), "--out", str(out), *TINY, *HEADS["exp2"], *options]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen(
        [sys.executable, "-m", "experiments.exp2", *argv, "--executor", "ray", "--ray-address", local_ray],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 600
        while len(list(out.glob("fold_*/metrics.json"))) < 2:
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    finished = sorted(int(p.parent.name.split("_")[1]) for p in out.glob("fold_*/metrics.json"))
    assert 2 <= len(finished) < 4 and not (out / "results.json").exists()
    before = _fold_files(out, finished)
    deadline = time.monotonic() + 60  # Ray ends the dead driver's tasks: their CPUs come back
    while ray.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.5)

    tiny_run("exp2", tiny_smic, out, *options, "--resume", "--executor", "ray")
    assert _fold_files(out, finished) == before  # kept as they were: not retrained
    last = json.loads((out / "invocations.jsonl").read_text().splitlines()[-1])
    assert last["trained"] == [k for k in range(4) if k not in finished] and last["missing"] == []
    tiny_run("exp2", tiny_smic, tmp_path / "local", *options)
    assert (out / "predictions.csv").read_bytes() == (tmp_path / "local" / "predictions.csv").read_bytes()
