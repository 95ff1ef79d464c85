"""Sliding windows over a recording: window probabilities, clip prediction, top segments, outputs."""

import json

import cv2
import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mer_keras.predict import (
    THUMBNAIL_CANDIDATES,
    SegmentTracker,
    predict_recording,
    timeline_figure,
    window_count,
)
from mer_keras.recordings import RecordingError, resampled_length

from video_fixtures import moving_frames, read_video, write_folder, write_video

CLASSES = ["negative", "positive", "surprise", "non_micro"]
N, SIZE = 13, 32


def mean_colour_model(n=N, size=SIZE, seed=0):
    """Deterministic: mean RGB of each frame (0-1) -> Dense softmax over the 4 classes."""
    frames = keras.Input((n, size, size, 3))
    colour = keras.layers.Lambda(lambda x: keras.ops.mean(x, axis=(2, 3)) / 255.0)(frames)
    logits = keras.layers.Dense(
        len(CLASSES), kernel_initializer=keras.initializers.RandomNormal(0, 3, seed=seed)
    )(keras.layers.Flatten()(colour))
    return keras.Model(frames, keras.layers.Softmax()(logits))


@pytest.fixture(scope="module")
def model():
    return mean_colour_model()


def _keras_fn(model):
    return lambda batch: model.predict_on_batch(batch)


def _run(model_fn, source, out_dir, **kwargs):
    options = {
        "n": N,
        "image_size": SIZE,
        "classes": CLASSES,
        "train_fps": 100,
        "out_dir": out_dir,
        "progress": False,
    }
    return predict_recording(model_fn, source, **(options | kwargs))


def _probs(out_dir):
    return pd.read_csv(out_dir / "windows.csv")[[f"p_{c}" for c in CLASSES]].to_numpy()


def test_window_count():
    assert window_count(117, 13) == 105
    assert window_count(117, 13, 4) == 27  # starts 0, 4, ..., 104
    assert (window_count(13, 13), window_count(12, 13), window_count(0, 13)) == (1, 0, 0)
    with pytest.raises(ValueError, match="stride"):
        window_count(20, 13, 0)


def test_a_lossless_video_and_its_frame_folder_give_the_same_windows(tmp_path, model):
    frames = moving_frames(40, size=48)
    video = write_video(tmp_path / "rec.avi", frames, 100)  # FFV1: decodes to the very same pixels
    folder = write_folder(tmp_path / "clip", frames)
    from_video = _run(_keras_fn(model), video, tmp_path / "out_video", batch_size=7)
    from_folder = _run(_keras_fn(model), folder, tmp_path / "out_folder", fps=100, batch_size=5)
    assert from_video["windows"] == from_folder["windows"] == 40 - N + 1
    assert np.abs(_probs(tmp_path / "out_video") - _probs(tmp_path / "out_folder")).max() <= 1e-4
    assert (
        from_video["resampling"]["fps_from"] == "file" and from_folder["resampling"]["fps_from"] == "argument"
    )
    # and the same as the model on windows cut by hand from the frames, resized by the dataset rule
    small = np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames]).astype(
        "float32"
    )
    by_hand = model.predict_on_batch(np.stack([small[s : s + N] for s in range(40 - N + 1)]))
    assert np.abs(_probs(tmp_path / "out_video") - by_hand).max() <= 1e-5


def test_a_lossy_mp4_differs_from_the_folder_by_the_codec_error_only(tmp_path, model):
    frames = moving_frames(30, size=48)
    video = write_video(tmp_path / "rec.mp4", frames, 100, "mp4v")
    decoded = read_video(video)
    pixel_error = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(frames, decoded))
    colour_shift = max(
        float(np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))).max()) for a, b in zip(frames, decoded)
    )
    _run(_keras_fn(model), video, tmp_path / "mp4")
    _run(_keras_fn(model), write_folder(tmp_path / "clip", frames), tmp_path / "folder", fps=100)
    difference = np.abs(_probs(tmp_path / "mp4") - _probs(tmp_path / "folder")).max()
    # mp4v (MPEG-4 part 2 at OpenCV's default bit rate, 4:2:0 chroma) moves single pixels by tens of
    # levels and per-frame mean colours by about a level; the model reads mean colours, so its
    # probabilities move by about 1e-2. All of that is the codec: on the frames OpenCV decodes, the
    # pipeline answers exactly what the model answers.
    assert pixel_error > 5 and colour_shift > 0.1 and difference > 1e-4, (
        pixel_error,
        colour_shift,
        difference,
    )
    small = np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in decoded]).astype(
        "float32"
    )
    by_hand = model.predict_on_batch(np.stack([small[s : s + N] for s in range(30 - N + 1)]))
    assert np.abs(_probs(tmp_path / "mp4") - by_hand).max() <= 1e-5


def test_a_25_fps_video_is_resampled_to_the_training_rate(tmp_path, model):
    video = write_video(tmp_path / "slow.avi", moving_frames(30, size=32), 25)
    summary = _run(_keras_fn(model), video, tmp_path / "out")
    report = summary["resampling"]
    frames = 4 * (30 - 1) + 1  # outputs at k/100 s from 0 to the last frame's 29/25 s
    assert frames == resampled_length(30, 25, 100) == report["output_frames"]
    assert (report["source_fps"], report["target_fps"], report["source_frames"]) == (25, 100, 30)
    assert report["method"].startswith("linear")
    assert summary["windows"] == frames - N + 1 == 105
    table = pd.read_csv(tmp_path / "out" / "windows.csv")
    assert len(table) == 105 and table["end_s"].iloc[-1] == pytest.approx(1.16)  # 29 / 25 s
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["resampling"] == report and written["windows"] == 105


def test_stride_keeps_every_stride_th_window(tmp_path, model):
    video = write_video(tmp_path / "rec.avi", moving_frames(45, size=32), 100)
    _run(_keras_fn(model), video, tmp_path / "s1")
    summary = _run(_keras_fn(model), video, tmp_path / "s4", stride=4, batch_size=3)
    assert summary["windows"] == window_count(45, N, 4) == 9 and summary["stride"] == 4
    every, strided = (
        pd.read_csv(tmp_path / "s1" / "windows.csv"),
        pd.read_csv(tmp_path / "s4" / "windows.csv"),
    )
    assert strided["start_frame"].tolist() == list(range(0, 33, 4))
    np.testing.assert_allclose(_probs(tmp_path / "s4"), _probs(tmp_path / "s1")[::4], atol=1e-6)
    assert every["start_frame"].tolist() == list(range(33))


def test_windows_csv_columns_and_times(tmp_path, model):
    video = write_video(tmp_path / "rec.avi", moving_frames(20, size=32), 100)
    summary = _run(_keras_fn(model), video, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "windows.csv")
    assert list(table.columns) == [
        "window",
        "start_frame",
        "end_frame",
        "start_s",
        "end_s",
        "predicted",
        "p_negative",
        "p_positive",
        "p_surprise",
        "p_non_micro",
    ]
    assert (table["end_frame"] - table["start_frame"] == N - 1).all()
    np.testing.assert_allclose(table["start_s"], table["start_frame"] / 100)
    np.testing.assert_allclose(table["end_s"], table["end_frame"] / 100)
    probs = _probs(tmp_path / "out")
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert table["predicted"].tolist() == [CLASSES[i] for i in probs.argmax(axis=1)]
    clip = summary["clip"]  # the mean over windows, as evaluation aggregates a clip
    np.testing.assert_allclose([clip["probabilities"][c] for c in CLASSES], probs.mean(axis=0), atol=1e-6)
    assert clip["predicted"] == CLASSES[int(probs.mean(axis=0).argmax())]
    assert (tmp_path / "out" / "timeline.png").stat().st_size > 1000


def planted_fn(batch):
    """Reads the planted tint: surprise from red frames, positive from green, non_micro otherwise."""
    colour = batch.mean(axis=(2, 3))  # (B, N, 3)
    red = (colour[..., 0] - colour[..., 1] > 60).mean(axis=1)  # share of red frames in the window
    green = (colour[..., 1] - colour[..., 0] > 60).mean(axis=1)
    logits = np.stack([np.zeros_like(red), 3 * green, 4 * red, np.full_like(red, 1.5)], axis=1)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _segments_from_csv(table, rank_by):
    """Top segments recomputed from windows.csv by the documented rule, best first."""
    segments, start = [], 0
    predicted = table["predicted"].tolist()
    for i in range(1, len(predicted) + 1):
        if i == len(predicted) or predicted[i] != predicted[start]:
            if predicted[start] != "non_micro":
                p = table[f"p_{predicted[start]}"].iloc[start:i]
                segments.append(
                    (p.max() if rank_by == "peak" else p.mean(), -start, predicted[start], start, i - 1)
                )
            start = i
    return [(cls, first, last) for _, _, cls, first, last in sorted(segments, reverse=True)]


@pytest.mark.parametrize("rank_by", ["peak", "mean"])
def test_top_segments_find_the_planted_expressions(tmp_path, rank_by):
    planted = {(100, 139): (250, 40, 40), (200, 219): (40, 250, 40), (260, 264): (250, 40, 40)}
    video = write_video(tmp_path / "rec.avi", moving_frames(300, size=32, planted=planted), 100)
    summary = _run(planted_fn, video, tmp_path / "out", top_k=2, rank_by=rank_by, batch_size=8)
    segments = summary["segments"]
    assert segments["total"] == 3 and segments["per_class"] == {
        "negative": 0,
        "positive": 1,
        "surprise": 2,
        "non_micro": 0,
    }
    top = segments["top"]
    assert [s["rank"] for s in top] == [1, 2]
    table = pd.read_csv(tmp_path / "out" / "windows.csv")
    assert [(s["class"], s["first_window"], s["last_window"]) for s in top] == _segments_from_csv(
        table, rank_by
    )[:2]
    surprise = next(s for s in top if s["class"] == "surprise")
    # surprise wins a window once >= 5 of its 13 frames are red (4 * 5/13 > 1.5): starts 92 ... 135
    assert (surprise["first_window"], surprise["last_window"]) == (92, 135)
    assert (surprise["start_frame"], surprise["end_frame"]) == (92, 147)
    assert (surprise["start_s"], surprise["end_s"]) == (pytest.approx(0.92), pytest.approx(1.47))
    assert surprise["peak"] == pytest.approx(np.exp(4) / (np.exp(4) + 2 + np.exp(1.5)))
    assert 100 <= surprise["thumbnail_frame"] <= 139 and surprise["thumbnail_frame"] == (92 + 135) // 2 + 6
    assert surprise["thumbnail_time_s"] == pytest.approx(surprise["thumbnail_frame"] / 100)
    positive = next(s for s in top if s["class"] == "positive")
    assert (positive["first_window"], positive["last_window"]) == (194, 213)  # >= 7 of 13 frames green
    if rank_by == "peak":
        assert [s["class"] for s in top] == ["surprise", "positive"]
    image = cv2.imread(str(tmp_path / "out" / "timeline.png"))
    assert image is not None and image.shape[0] > 300


def test_the_segment_tracker_keeps_a_middle_thumbnail_in_bounded_memory():
    tracker = SegmentTracker(["a", "non_micro"], top_k=2, rank_by="peak", n=5, stride=1)
    most_kept = 0
    for w in range(1000):  # one segment of 1000 windows, each centre frame encoding its window
        tracker.add(
            w, np.array([0.9, 0.1]), lambda w=w: np.full((2, 2, 3), [w // 256, w % 256, 0], np.float32)
        )
        most_kept = max(most_kept, len(tracker.open["kept"]))
    for w in range(1000, 1400):  # then 100 short segments, separated by neutral windows
        probs = np.array([0.5 + (w % 7) / 100, 0.4]) if w % 4 else np.array([0.1, 0.9])
        tracker.add(w, probs, lambda: np.zeros((2, 2, 3), np.float32))
    segments, thumbnails = tracker.finish()
    assert most_kept <= THUMBNAIL_CANDIDATES + 1 and len(tracker.heap) == 2 and tracker.total == 101
    assert segments[0]["first_window"] == 0 and segments[0]["windows"] == 1000
    kept_window = int(thumbnails[0][0, 0, 0]) * 256 + int(thumbnails[0][0, 0, 1])
    assert abs(kept_window - 499) <= 1000 // THUMBNAIL_CANDIDATES
    assert segments[0]["thumbnail_frame"] == kept_window + 2
    assert segments[1]["peak"] == pytest.approx(0.56)  # best short one; ties go to the earlier segment
    first_peak = min(w for w in range(1000, 1400) if w % 4 and w % 7 == 6)  # 1007: in segment 1005..1007
    assert segments[1]["first_window"] == first_peak // 4 * 4 + 1 == 1005


def test_a_recording_shorter_than_n_gives_one_interpolated_window(tmp_path, model):
    video = write_video(tmp_path / "short.avi", moving_frames(5, size=32), 100)
    with pytest.warns(UserWarning, match="interpolated up to 13"):
        summary = _run(_keras_fn(model), video, tmp_path / "out")
    assert summary["windows"] == 1 and summary["resampling"]["short"]["frames_at_target_fps"] == 5
    table = pd.read_csv(tmp_path / "out" / "windows.csv")
    assert (table["start_s"].iloc[0], table["end_s"].iloc[0]) == (0, pytest.approx(0.04))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: (d / "notes.mp4").write_text("text\n" * 50) and d / "notes.mp4", "OpenCV cannot open"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no image files"),
    ],
)
def test_bad_inputs_write_nothing(tmp_path, model, make, match):
    source = make(tmp_path)
    with pytest.raises(RecordingError, match=match) as err:
        _run(_keras_fn(model), source, tmp_path / "out", fps=100)
    assert str(source) in str(err.value) and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "model_fn, match",
    [
        (lambda b: np.full((len(b), 4), 3.0), "probabilities in \\[0, 1\\]"),
        (lambda b: np.full((len(b), 3), 1 / 3), "Received: shape"),
        (lambda b: {"a": np.zeros((len(b), 4)), "b": np.zeros((len(b), 4))}, "several outputs"),
    ],
)
def test_a_bad_model_fn_is_explained_and_writes_nothing(tmp_path, model_fn, match):
    video = write_video(tmp_path / "rec.avi", moving_frames(20, size=32), 100)
    with pytest.raises(ValueError, match=match):
        _run(model_fn, video, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "option, value",
    [
        ("n", 0),
        ("stride", 0),
        ("batch_size", 0),
        ("image_size", 1.5),
        ("classes", ["a", "a"]),
        ("train_fps", 0),
        ("rank_by", "max"),
        ("top_k", -1),
        ("short_policy", "drop"),
    ],
)
def test_bad_options_are_named(tmp_path, option, value):
    with pytest.raises(ValueError, match=option if option != "classes" else "classes"):
        _run(planted_fn, tmp_path / "missing.avi", tmp_path / "out", **{option: value})


def test_a_savedmodel_signature_works_as_model_fn(tmp_path, model):
    model.export(str(tmp_path / "saved_model"), verbose=False)
    serving = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    video = write_video(tmp_path / "rec.avi", moving_frames(20, size=32), 100)
    _run(lambda batch: serving(tf.constant(batch)), video, tmp_path / "sig")  # returns {name: tensor}
    _run(_keras_fn(model), video, tmp_path / "keras")
    assert np.abs(_probs(tmp_path / "sig") - _probs(tmp_path / "keras")).max() <= 1e-5


def test_timeline_figure_has_one_thumbnail_per_segment(tmp_path):
    table = pd.DataFrame(
        {
            "start_s": [0.0, 0.01, 0.02],
            "end_s": [0.12, 0.13, 0.14],
            "p_a": [0.2, 0.9, 0.3],
            "p_non_micro": [0.8, 0.1, 0.7],
        }
    )
    segment = {"class": "a", "rank": 1, "peak": 0.9, "start_s": 0.01, "end_s": 0.13, "thumbnail_time_s": 0.07}
    fig = timeline_figure(table, ["a", "non_micro"], [segment], [np.zeros((8, 8, 3), np.uint8)])
    assert len(fig.axes) == 2
    assert len(timeline_figure(table, ["a", "non_micro"]).axes) == 1


def test_the_benchmark_runs_on_tiny_settings(capsys):
    from benchmarks import predict_stream

    assert predict_stream.main(["--seconds", "1", "--size", "32", "--n", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = result["runs"][0]
    assert run["frames"] == 100 and run["windows"] == 96
    assert run["frames_per_s"] > 0 and run["peak_rss_mb"] > 0
