"""python -m experiments.predict: a run's own exported model on a frame folder or a video, and bad inputs."""

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import mer_keras  # noqa: F401  (registers the custom layers, so model.keras loads)
from experiments.predict import default_out, main
from mer_keras.cli import parse_config
from mer_keras.datasets.frames import list_frames, read_frame, resize_frame
from mer_keras.experiment import run_experiment
from mer_keras.faces import FaceNotFoundWarning, apply_face
from mer_keras.files import write_json
from mer_keras.predict import face_frame_fn, predict_recording, predict_with_run, window_count
from mer_keras.recordings import resampled_length

from video_fixtures import moving_frames, read_video, write_video

N, SIZE = 5, 32
TINY = [
    "--backbone",
    "tiny",
    "--image-size",
    str(SIZE),
    "--folds",
    "2",
    "--epochs",
    "1",
    "--n",
    str(N),
    "--lstm-units",
    "8,8,8",
    "--batch-size",
    "16",
    "--verbose",
    "0",
]


@pytest.fixture(scope="module")
def tiny_smic(tmp_path_factory):
    from mer_keras.datasets.synthetic import make_synthetic_smic

    return make_synthetic_smic(
        tmp_path_factory.mktemp("synthetic"), subjects=4, seed=1, size=SIZE, clips_scale=0.4, progress=False
    )


@pytest.fixture(scope="module")
def run(tiny_smic, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "exp2"
    run_experiment(parse_config("exp2", ["--data", str(tiny_smic), "--out", str(out), *TINY])[0])
    return out


@pytest.fixture(scope="module")
def clip_folder(tiny_smic):
    """The longest clip folder of the dataset (at least a few windows)."""
    folders = [p for p in (tiny_smic / "SMIC_all_raw" / "HS").glob("s*/*/*/*") if p.is_dir()]
    folders += [p for p in (tiny_smic / "SMIC_all_raw" / "HS").glob("s*/non_micro/*") if p.is_dir()]
    return max(sorted(folders), key=lambda p: len(list_frames(p)))


def _frames(folder):
    return [read_frame(p) for p in list_frames(folder)]


def _probs(out, classes):
    return pd.read_csv(out / "windows.csv")[[f"p_{c}" for c in classes]].to_numpy()


def _classes(run):
    return json.loads((run / "config.json").read_text())["record"]["data"]["classes"]


def _fails(argv, capsys, *needles):
    """``main(argv)`` exits 2 with one ``error: ...`` line naming every needle."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for needle in needles:
        assert str(needle) in err[0], (needle, err[0])
    return err[0]


def test_the_run_records_its_training_frame_rate(run):
    assert json.loads((run / "config.json").read_text())["record"]["data"]["fps"] == [100.0]


def test_a_clip_folder_gives_what_the_exported_model_gives_on_the_same_windows(
    run, clip_folder, tmp_path, capsys
):
    out = tmp_path / "out"
    assert (
        main(["--model", str(run / "final"), str(clip_folder), "--fps", "100", "--out", str(out), "--quiet"])
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    frames = np.stack(_frames(clip_folder)).astype(np.float32)  # already 32 px: no resize
    windows = np.stack([frames[s : s + N] for s in range(len(frames) - N + 1)])
    model = keras.saving.load_model(run / "final" / "model.keras")
    expected = model.predict(windows, verbose=0)
    classes = _classes(run)
    assert np.abs(_probs(out, classes) - expected).max() <= 1e-4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["windows"] == len(frames) - N + 1 and summary["classes"] == classes
    assert summary["resampling"]["method"].startswith("none") and summary["train_fps"] == 100
    assert summary["model"]["run"] == str(run) and summary["face"]["mode"] == "none"
    # the run folder itself is accepted too, and answers the same
    again = predict_with_run(run, clip_folder, out_dir=tmp_path / "again", fps=100, progress=False)
    assert again["clip"] == summary["clip"]


def test_a_lossless_video_at_100_fps_answers_like_the_folder(run, clip_folder, tmp_path, capsys):
    video = write_video(tmp_path / "clip.avi", _frames(clip_folder), 100)
    assert (
        main(
            [
                "--model",
                str(run / "final"),
                str(clip_folder),
                "--fps",
                "100",
                "--out",
                str(tmp_path / "folder"),
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["--model", str(run / "final"), str(video), "--out", str(tmp_path / "video")]) == 0
    printed = capsys.readouterr().out
    assert "not resampled" in printed and "clip:" in printed
    classes = _classes(run)
    assert np.abs(_probs(tmp_path / "video", classes) - _probs(tmp_path / "folder", classes)).max() <= 1e-4


def test_a_25_fps_video_is_resampled_to_the_training_rate(run, clip_folder, tmp_path, capsys):
    frames = _frames(clip_folder)
    video = write_video(tmp_path / "slow.avi", frames, 25)
    out = tmp_path / "slow"
    assert main(["--model", str(run / "final"), str(video), "--out", str(out), "--stride", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"resampled: {len(frames)} frames at 25 fps (file) -> " in printed and "at 100 fps" in printed
    summary = json.loads((out / "summary.json").read_text())
    resampled = resampled_length(len(frames), 25, 100)
    assert resampled == 4 * (len(frames) - 1) + 1
    assert summary["resampling"]["output_frames"] == resampled and summary["resampling"]["source_fps"] == 25
    assert summary["windows"] == window_count(resampled, N, 2) == len(pd.read_csv(out / "windows.csv"))


def test_a_recording_shorter_than_n_is_stretched_to_one_window(run, clip_folder, tmp_path, capsys):
    short = tmp_path / "short"
    short.mkdir()
    for path in map(Path, list_frames(clip_folder)[:3]):
        (short / path.name).write_bytes(path.read_bytes())
    with pytest.warns(UserWarning, match="interpolated up to 5 frames"):
        assert main(["--model", str(run), str(short), "--fps", "100", "--out", str(tmp_path / "out")]) == 0
    assert "short: 3 frames stretched to N=5" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["windows"] == 1


def test_the_default_output_folder_is_under_the_current_folder(tmp_path):
    assert default_out(tmp_path / "videos" / "me.mp4").as_posix() == "predictions/me"
    (tmp_path / "s1_ne_01").mkdir()
    assert default_out(tmp_path / "s1_ne_01").as_posix() == "predictions/s1_ne_01"


def test_a_model_folder_without_its_record_is_refused(run, clip_folder, tmp_path, capsys):
    lonely = tmp_path / "copied"
    lonely.mkdir()
    (lonely / "final").symlink_to(run / "final", target_is_directory=True)
    out = tmp_path / "out"
    _fails(
        ["--model", str(lonely / "final"), str(clip_folder), "--fps", "100", "--out", str(out)],
        capsys,
        lonely / "final",
        "no config.json",
    )
    assert not out.exists()


def test_a_run_recorded_without_its_frame_rate_is_refused(run, clip_folder, tmp_path, capsys):
    old = tmp_path / "old"
    old.mkdir()
    (old / "final").symlink_to(run / "final", target_is_directory=True)
    record = json.loads((run / "config.json").read_text())
    del record["record"]["data"]["fps"]
    write_json(old / "config.json", record)
    out = tmp_path / "out"
    _fails(
        ["--model", str(old / "final"), str(clip_folder), "--fps", "100", "--out", str(out)],
        capsys,
        old / "config.json",
        "record.data.fps",
    )
    assert not out.exists()


def test_a_forced_n_that_differs_from_the_model_is_refused(run, clip_folder, tmp_path, capsys):
    out = tmp_path / "out"
    _fails(
        ["--model", str(run / "final"), str(clip_folder), "--fps", "100", "--n", "7", "--out", str(out)],
        capsys,
        "--n 7",
        f"N={N}",
    )
    assert not out.exists()
    assert (
        main(
            [
                "--model",
                str(run / "final"),
                str(clip_folder),
                "--fps",
                "100",
                "--n",
                str(N),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )


def test_a_file_opencv_cannot_open_is_refused(run, tmp_path, capsys):
    bad = tmp_path / "notes.avi"
    bad.write_bytes(b"not a video at all" * 10)
    out = tmp_path / "out"
    _fails(["--model", str(run / "final"), str(bad), "--out", str(out)], capsys, bad, "OpenCV cannot open")
    assert not out.exists()


def test_a_frame_folder_without_fps_is_refused(run, clip_folder, tmp_path, capsys):
    out = tmp_path / "out"
    _fails(["--model", str(run / "final"), str(clip_folder), "--out", str(out)], capsys, clip_folder, "fps")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Frame models and faces: hand-made run folders around a deterministic model (no training)


def _mean_colour_frame_model(classes=4):
    frames = keras.Input((SIZE, SIZE, 3))
    colour = keras.layers.Lambda(lambda x: keras.ops.mean(x, axis=(1, 2)) / 255.0)(frames)
    dense = keras.layers.Dense(classes, kernel_initializer=keras.initializers.RandomNormal(0, 3, seed=0))
    return keras.Model(frames, keras.layers.Softmax()(dense(colour)))


def _frame_run(folder, data, *face):
    """A run folder of a frame model (exp1) as mer_keras writes it, around ``_mean_colour_frame_model``."""
    config = parse_config(
        "exp1",
        [
            "--data",
            str(data),
            "--out",
            str(folder),
            "--backbone",
            "tiny",
            "--image-size",
            str(SIZE),
            "--fc-units",
            "8",
            *face,
        ],
    )[0]
    classes = ["negative", "positive", "surprise", "non_micro"]
    write_json(
        folder / "config.json",
        {"config": config.to_dict(), "record": {"data": {"classes": classes, "fps": [100.0]}}},
    )
    model = _mean_colour_frame_model()
    model.export(str(folder / "final" / "saved_model"), verbose=False)
    write_json(folder / "final" / "export.json", {"signature": "serving_default"})
    return model, classes


def test_a_frame_model_slides_windows_of_one_frame(tiny_smic, clip_folder, tmp_path):
    model, classes = _frame_run(tmp_path / "exp1", tiny_smic)
    summary = predict_with_run(
        tmp_path / "exp1" / "final", clip_folder, out_dir=tmp_path / "out", fps=100, progress=False
    )
    frames = np.stack(_frames(clip_folder)).astype(np.float32)
    assert summary["n"] == 1 and summary["windows"] == len(frames)
    assert np.abs(_probs(tmp_path / "out", classes) - model.predict(frames, verbose=0)).max() <= 1e-5


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    """A 128 px synthetic face at 100 fps (MTCNN finds faces at this size, rarely at 32 px)."""
    folder = tmp_path_factory.mktemp("face")
    return write_video(folder / "face.avi", moving_frames(12, size=128), 100)


def test_the_face_hook_applies_one_transform_found_on_the_first_frames(face_video):
    frame_fn, transform = face_frame_fn(face_video, "crop", size=SIZE)
    assert transform.found and transform.frame_size == (128, 128)
    decoded = read_video(face_video)
    np.testing.assert_array_equal(frame_fn(decoded[7]), apply_face(decoded[7], transform, SIZE))
    assert face_frame_fn(face_video, "none", size=SIZE) == (None, None)


def test_no_face_falls_back_to_whole_frames_with_a_warning_naming_the_file(tmp_path):
    blank = write_video(tmp_path / "wall.avi", [np.full((96, 96, 3), 128, np.uint8)] * 6, 100)
    with pytest.warns(FaceNotFoundWarning, match="wall.avi"):
        frame_fn, transform = face_frame_fn(blank, "align", size=SIZE)
    assert transform.fell_back
    assert frame_fn(np.full((96, 96, 3), 128, np.uint8)).shape == (SIZE, SIZE, 3)


def test_a_face_run_crops_every_frame_of_the_recording(tiny_smic, face_video, tmp_path):
    model, classes = _frame_run(tmp_path / "exp1", tiny_smic, "--face", "crop")
    summary = predict_with_run(tmp_path / "exp1", face_video, out_dir=tmp_path / "out", progress=False)
    assert summary["face"]["mode"] == "crop" and summary["face"]["transform"]["found"]
    assert not summary["face"]["fell_back"]
    _, transform = face_frame_fn(face_video, "crop", size=SIZE)
    cropped = np.stack([apply_face(f, transform, SIZE) for f in read_video(face_video)]).astype(np.float32)
    assert np.abs(_probs(tmp_path / "out", classes) - model.predict(cropped, verbose=0)).max() <= 1e-5


def test_predict_recording_passes_every_frame_through_frame_fn(face_video, tmp_path):
    model = _mean_colour_frame_model()

    def negative(frame):  # the frame the model sees: resized as --face none does, then inverted
        return 255 - resize_frame(frame, SIZE)

    summary = predict_recording(
        lambda b: model.predict_on_batch(b[:, 0]),
        face_video,
        n=1,
        image_size=SIZE,
        classes=list("abcd"),
        train_fps=100,
        out_dir=tmp_path / "out",
        progress=False,
        frame_fn=negative,
        extra={"note": "inverted"},
    )
    inverted = np.stack([negative(f) for f in read_video(face_video)]).astype("float32")
    expected = model.predict(inverted, verbose=0)
    assert summary["note"] == "inverted"
    probs = pd.read_csv(tmp_path / "out" / "windows.csv")[[f"p_{c}" for c in "abcd"]].to_numpy()
    assert np.abs(probs - expected).max() <= 1e-5
