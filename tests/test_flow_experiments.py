"""The optical-flow baselines in the same harness: tiny STSTNet and OFF-ApexNet runs end to end."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import mer_keras  # noqa: F401  (registers the layers of final/model.keras)
from mer_keras.cli import parse_config
from mer_keras.compare import compare_runs
from mer_keras.experiment import run_experiment

TINY = ["--folds", "2", "--epochs", "2", "--batch-size", "8", "--verbose", "0", "--flow-size", "16"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from mer_keras.datasets.synthetic import make_synthetic_smic

    return make_synthetic_smic(
        tmp_path_factory.mktemp("synthetic"), subjects=4, seed=1, size=32, clips_scale=0.4, progress=False
    )


def _run(experiment, data, out, *extra):
    return run_experiment(
        parse_config(experiment, ["--data", str(data), "--out", str(out), *TINY, *extra])[0]
    )


@pytest.mark.parametrize("experiment, layer", [("ststnet", "stream3_conv"), ("offapexnet", "v_conv2")])
def test_flow_baseline_runs_and_exports_a_flow_model(data, tmp_path, experiment, layer):
    summary = _run(experiment, data, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "config.json").read_text())["record"]
    assert record["frame_cache"]["feature_shape"] == [16, 16, 3] and record["weights"]["source"] == "none"
    assert record["flow"]["apex_sources"] == {"flow": record["data"]["clips"]}
    assert any("published code keeps, per test subject" in d for d in record["deviations_from_paper"])
    assert summary["export"]["input_shape"] == [None, 16, 16, 3]
    assert (
        summary["export"]["max_abs_difference"] <= 1e-4 and summary["export"]["trained_vs_exported"] <= 1e-4
    )
    model = keras.saving.load_model(tmp_path / "run" / "final" / "model.keras")
    model.get_layer(f"{experiment}_head").get_layer(layer)
    serving = tf.saved_model.load(str(tmp_path / "run" / "final" / "saved_model")).signatures[
        "serving_default"
    ]
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"expected frames of shape \(batch, 16, 16, 3\)"
    ):
        serving(tf.constant(np.zeros((1, 8, 8, 3), np.float32)))
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert len(predictions) == record["data"]["clips"] and summary["ci"]["n_subjects"] == 4
    assert summary["oracle"]["gap"]["accuracy"] >= 0


@pytest.mark.slow
def test_flow_baseline_compares_with_an_lstm_run_on_the_same_clips(data, tmp_path):
    _run("ststnet", data, tmp_path / "flow", "--no-final")
    run_experiment(
        parse_config(
            "exp2",
            [
                "--data",
                str(data),
                "--out",
                str(tmp_path / "lstm"),
                "--backbone",
                "tiny",
                "--image-size",
                "32",
                "--folds",
                "2",
                "--epochs",
                "1",
                "--n",
                "5",
                "--lstm-units",
                "8,8,8",
                "--verbose",
                "0",
                "--no-final",
            ],
        )[0]
    )
    result = compare_runs(tmp_path / "lstm", tmp_path / "flow")
    assert result["experiments"] == {"a": "exp2", "b": "ststnet"} and 0 < result["accuracy"]["p_value"] <= 1


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["ststnet", "offapexnet"])
def test_flow_baseline_runs_leave_one_subject_out_on_a_fabricated_composite(tmp_path, experiment):
    from conftest import build_smic
    from sheet_fixtures import build_casme2, build_samm

    root = tmp_path / "megc"
    build_smic(root), build_casme2(root), build_samm(root)
    options = ["--dataset", "megc2019-mapping", "--protocol", "loso", "--no-final", "--epochs", "1"]
    summary = _run(experiment, root, tmp_path / "run", *options)
    record = json.loads((tmp_path / "run" / "config.json").read_text())["record"]
    assert summary["n_folds"] == 9  # 3 subjects from each of SMIC, CASME II and SAMM
    assert set(summary["per_dataset"]) == {"smic", "casme2", "samm"}
    # CASME II and SAMM code most apexes; SMIC codes none and a few sheet rows leave it out ("/", empty)
    sources = record["flow"]["apex_sources"]
    assert set(sources) == {"coded", "flow"} and sum(sources.values()) == record["data"]["clips"]
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert len(predictions) == record["data"]["clips"]
    assert {clip.split("/")[0] for clip in predictions["clip"]} == {"smic", "casme2", "samm"}


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--face", "crop"], "unrecognized arguments: --face"),
        (["--flow-size", "4"], "--flow-size must be between 8 and 256"),
    ],
)
def test_flow_options_are_checked(data, tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit):
        parse_config("ststnet", ["--data", str(data), "--out", str(tmp_path), *argv])
    assert match in capsys.readouterr().err
