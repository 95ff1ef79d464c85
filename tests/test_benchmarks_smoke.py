"""Both speed benchmarks run on tiny settings and end with the JSON line the report reads."""

import json

import pytest

from benchmarks import pipeline, ray_folds, train_throughput


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_throughput_reports_the_four_settings_and_their_ratios(capsys):
    assert (
        train_throughput.main(
            ["--tiny", "--size", "32", "--n", "4", "--batch", "6", "--steps", "2", "--rounds", "2", "--json"]
        )
        == 0
    )
    result = _last_json(capsys)
    for name in ("naive", "frozen", "stage5_naive", "stage5_dedup"):
        assert result[f"{name}_clips_per_s"] == pytest.approx(6 / result[f"{name}_step_s"])
    assert result["speedup_frozen"] == pytest.approx(
        result["frozen_clips_per_s"] / result["naive_clips_per_s"]
    )
    assert result["speedup_stage5"] == pytest.approx(
        result["stage5_dedup_clips_per_s"] / result["stage5_naive_clips_per_s"]
    )
    settings = result["settings"]
    assert (settings["size"], settings["n"], settings["batch"], settings["backbone"]) == (32, 4, 6, "tiny")
    # motion (the default) caches the tiny backbone's stage-5 maps: 1 x 1 x 128 at 32 px
    assert settings["stage4_maps"] == [2, 2, 64] and settings["frozen_features"] == [1, 1, 128]
    assert settings["clip_features"] == "motion"
    assert 4 <= settings["distinct_frames_per_batch"] < 6 * 4  # windows of one batch share frames
    assert result["machine"]["cpus"] >= 1 and result["versions"]["keras"].startswith("3.")


def test_pipeline_reports_headroom_as_delivered_over_consumed(capsys):
    assert (
        pipeline.main(
            [
                "--frames",
                "300",
                "--dim",
                "16",
                "--map-size",
                "2",
                "--n",
                "5",
                "--batch",
                "8",
                "--batches",
                "5",
                "--train-batches",
                "2",
                "--repeats",
                "1",
                "--lstm-units",
                "8,4",
                "--json",
            ]
        )
        == 0
    )
    result = _last_json(capsys)
    assert result["headroom"] == pytest.approx(
        result["delivered_windows_per_s"] / result["consumed_windows_per_s"]
    )
    settings = result["settings"]
    assert settings["frames"] == 300 and settings["frame_shape"] == [2, 2, 16] and settings["clips"] >= 8
    assert 0 < settings["windows"] <= 300 - 4 * settings["clips"]  # each clip of L frames: L - 4 windows
    assert settings["samples_per_epoch"] >= settings["windows"]  # classes balanced up to the largest


@pytest.mark.parametrize(
    "bench, args",
    [
        (train_throughput, ["--size", "16"]),
        (train_throughput, ["--batch", "0"]),
        (pipeline, ["--frames", "9", "--n", "5"]),
        (pipeline, ["--repeats", "0"]),
        (pipeline, ["--map-size", "-1"]),
        (ray_folds, ["--folds", "1"]),
        (ray_folds, ["--epochs", "0"]),
    ],
)
def test_benchmarks_reject_bad_options(bench, args):
    with pytest.raises(SystemExit):
        bench.main(args)


@pytest.mark.slow
def test_paper_preset_reports_the_pipeline_and_the_training_step_with_and_without_xla(capsys):
    from benchmarks import paper_preset

    argv = ["--image-size", "32", "--backbone", "tiny", "--batch", "4", "--n", "4", "--frames", "120"]
    argv += ["--pipeline-batches", "3", "--steps", "1", "--rounds", "1", "--precisions", "float32", "--json"]
    assert paper_preset.main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert out[0] == f"device: {result['device']}" and result["device"].startswith("CPU only")
    (row,) = result["results"]
    assert (row["image_size"], row["backbone"]) == (32, "tiny")
    assert row["pipeline_window_frames_per_s"] > 0 and 4 <= row["distinct_frames_per_batch"] < 16
    step = row["training_step"]["float32"]
    from tensorflow.python.framework.config import is_op_determinism_enabled  # on: Keras compiles no XLA

    assert step["clips_per_s"] > 0 and step["xla_clips_per_s"] > 0
    assert step["xla_kept"] is not is_op_determinism_enabled()
