"""Reading a user's recording: videos and frame folders, time resampling, streaming, bad inputs."""

import warnings

import cv2
import numpy as np
import pytest

from mer_keras.datasets.frames import read_frame, resize_frame
from mer_keras.datasets.short_clips import blend, timeline
from mer_keras.recordings import (
    RecordingError,
    open_recording,
    resample,
    resample_plan,
    resampled_length,
    stream_recording,
)

from video_fixtures import moving_frames, read_video, write_folder, write_video


def _blend(frames, plan):
    """A whole ``(a, b, t)`` plan applied to decoded frames, as the dataset pipeline does frame by frame."""
    return np.stack([blend(frames[a], frames[b], t) for a, b, t in plan])


def _all(stream):
    chunks = list(stream)
    return np.concatenate(chunks), [len(c) for c in chunks]


@pytest.mark.parametrize(
    "ext, fourcc, lossless",
    [
        ("avi", "FFV1", True),
        ("mkv", "FFV1", True),
        ("avi", "HFYU", True),
        ("avi", "png ", True),
        ("avi", "RGBA", True),
        ("mp4", "mp4v", False),
        ("avi", "MJPG", False),
    ],
)
def test_codecs_this_opencv_writes_and_reads_back(tmp_path, ext, fourcc, lossless):
    frames = moving_frames(6, size=32)
    path = write_video(tmp_path / f"v.{ext}", frames, 100, fourcc)
    decoded = read_video(path)
    assert len(decoded) == 6
    error = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(frames, decoded))
    assert (error == 0) is lossless, error


def test_a_video_opens_with_its_own_rate_and_frame_count(tmp_path):
    path = write_video(tmp_path / "v.avi", moving_frames(7, size=40), 25)
    rec = open_recording(path)
    assert (rec.kind, rec.fps, rec.fps_from, rec.frame_count, rec.frame_size) == (
        "video",
        25.0,
        "file",
        7,
        (40, 40),
    )
    overridden = open_recording(path, fps=50)
    assert (overridden.fps, overridden.fps_from) == (50.0, "argument")


def test_a_folder_is_ordered_numerically_and_needs_a_rate(tmp_path):
    frames = moving_frames(12, size=32)
    folder = write_folder(tmp_path / "clip", frames, first=995)  # img995 ... img1006: lexical order is wrong
    (folder / "Thumbs.db").write_bytes(b"junk")
    with pytest.raises(RecordingError, match=f"{folder}.*fps=.*Received: fps=None"):
        open_recording(folder)
    rec = open_recording(folder, fps=100)
    assert rec.kind == "frames" and rec.frame_count == 12 and rec.frames[0].endswith("img995.png")
    out, _ = _all(stream_recording(folder, size=32, target_fps=100, fps=100, progress=False))
    np.testing.assert_array_equal(out, np.stack(frames).astype(np.float32))


def test_equal_rates_pass_frames_through_unchanged(tmp_path):
    frames = moving_frames(9, size=48)
    folder = write_folder(tmp_path / "clip", frames)
    stream = stream_recording(folder, size=32, target_fps=100, fps=100, chunk=4, progress=False)
    out, sizes = _all(stream)
    expected = np.stack([read_frame(p, 32) for p in open_recording(folder, fps=100).frames]).astype(
        np.float32
    )
    assert out.dtype == np.float32 and out.shape == (9, 32, 32, 3)
    assert np.array_equal(out, expected)  # bit-identical to the dataset reader at the same size
    assert sizes == [4, 4, 1]
    report = stream.report
    assert (report["source_frames"], report["output_frames"]) == (9, 9)
    assert report["method"].startswith("none") and report["complete"] and report["short"] is None


def test_video_frames_are_resized_by_the_dataset_rule(tmp_path):
    frames = moving_frames(3, size=48)
    path = write_video(tmp_path / "v.avi", frames, 100)
    for size in (32, 64):  # shrink: INTER_AREA, enlarge: INTER_LINEAR (frames.resize_frame)
        out, _ = _all(stream_recording(path, size=size, progress=False))
        expected = np.stack([resize_frame(f, size) for f in frames]).astype(np.float32)
        np.testing.assert_array_equal(out, expected)
    shrunk = cv2.resize(frames[0], (32, 32), interpolation=cv2.INTER_AREA)
    assert np.array_equal(resize_frame(frames[0], 32), shrunk)


def test_doubling_the_rate_puts_the_mean_of_neighbours_between_frames(tmp_path):
    frames = moving_frames(6, size=32)
    folder = write_folder(tmp_path / "clip", frames)
    stream = stream_recording(folder, size=32, target_fps=100, fps=50, progress=False)
    out, _ = _all(stream)
    source = np.stack(frames).astype(np.float32)
    assert len(out) == 2 * 6 - 1 == stream.report["output_frames"]
    np.testing.assert_array_equal(out[0::2], source)
    np.testing.assert_array_equal(out[1::2], (source[:-1] + source[1:]) / 2)
    assert stream.report["source_fps"] == 50 and stream.report["target_fps"] == 100
    assert stream.report["method"].startswith("linear")


@pytest.mark.parametrize(
    "source_fps, target_fps, frames, expected",
    [
        (25, 100, 10, 37),
        (50, 100, 6, 11),
        (100, 100, 8, 8),
        (200, 100, 10, 5),
        (200, 100, 11, 6),
        (30, 100, 4, 11),
        (30000 / 1001, 100, 5, 14),
        (120, 100, 7, 6),
        (100, 100, 1, 1),
    ],
)
def test_resampled_length_counts_outputs_within_first_to_last_frame(source_fps, target_fps, frames, expected):
    assert resampled_length(frames, source_fps, target_fps) == expected
    plan = resample_plan(frames, source_fps, target_fps)
    assert len(plan) == expected
    for k, (a, b, t) in enumerate(plan):  # output k is at k / target_fps seconds
        assert (a + t) / source_fps == pytest.approx(k / target_fps, abs=1e-9)
        assert 0 <= a <= b <= frames - 1 and 0 <= t < 1


@pytest.mark.parametrize("source_fps, target_fps", [(25, 100), (30000 / 1001, 100), (120, 100), (200, 100)])
def test_streamed_resampling_is_the_plan_applied(source_fps, target_fps):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (17, 4, 5, 3), dtype=np.uint8)
    streamed = np.stack(list(resample(iter(frames), source_fps, target_fps)))
    planned = _blend(frames, resample_plan(17, source_fps, target_fps))
    assert streamed.shape == planned.shape
    np.testing.assert_allclose(streamed, planned, atol=1e-3)


def test_mixed_frame_sizes_are_resized_with_one_warning_naming_the_folder(tmp_path):
    folder = write_folder(tmp_path / "mixed", moving_frames(4, size=48))
    write_folder(folder, moving_frames(3, size=40), first=5)
    stream = stream_recording(folder, size=32, fps=100, progress=False)
    with pytest.warns(UserWarning) as caught:
        out, _ = _all(stream)
    messages = [str(w.message) for w in caught if "differ in size" in str(w.message)]
    assert len(messages) == 1 and str(folder) in messages[0]
    assert out.shape == (7, 32, 32, 3) and stream.report["mixed_frame_sizes"] is True
    with pytest.warns(UserWarning, match="differ in size"):
        own, _ = _all(stream_recording(folder, size=None, fps=100, progress=False))
    assert own.shape == (7, 48, 48, 3)  # no size given: the first frame's


def test_a_recording_shorter_than_n_is_interpolated_up_to_n_and_says_so(tmp_path):
    frames = moving_frames(4, size=32)
    path = write_video(tmp_path / "short.avi", frames, 100)
    stream = stream_recording(path, size=32, target_fps=100, n=7, progress=False)
    with pytest.warns(UserWarning, match=f"{path}.*4 frames.*interpolated up to 7"):
        out, _ = _all(stream)
    expected = _blend(np.stack(frames), timeline(4, 7, "interpolate"))
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert stream.report["short"] == {"policy": "interpolate", "frames_at_target_fps": 4, "frames_after": 7}
    assert stream.report["output_frames"] == 7
    assert stream.report["frame_period_s"] == pytest.approx(3 / 6 / 100)  # 7 frames over the 30 ms recorded
    refuse = stream_recording(path, size=32, target_fps=100, n=7, short_policy="refuse", progress=False)
    with pytest.raises(RecordingError, match=f"{path}.*refused"):
        list(refuse)


def test_a_truncated_video_warns_that_frames_are_missing(tmp_path):
    path = write_video(tmp_path / "v.avi", moving_frames(40, size=32), 100, "MJPG")
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    stream = stream_recording(cut, size=32, progress=False)
    with pytest.warns(UserWarning, match=f"{cut}: decoded .* of the 40 frames"):
        out, _ = _all(stream)
    assert 0 < len(out) < 40 and stream.report["truncated"] is True


def _zero_frame_video(path):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 25.0, (32, 32))
    writer.release()
    return path


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: d / "missing.mp4", "no such video file"),
        (
            lambda d: (d / "notes.mp4").write_text("not a video\n" * 20) and d / "notes.mp4",
            "OpenCV cannot open",
        ),
        (lambda d: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4", "OpenCV cannot open"),
        (lambda d: _zero_frame_video(d / "zero.avi"), "holds no frames"),
        (
            lambda d: (
                (d / "nothing").mkdir() or (d / "nothing" / "Thumbs.db").write_bytes(b"x") and d / "nothing"
            ),
            "holds no image files",
        ),
        (lambda d: write_folder(d / "one", moving_frames(1, size=16)) / "img1.png", "single image"),
    ],
)
def test_bad_inputs_raise_errors_naming_the_file(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(RecordingError, match=match) as err:
        open_recording(path, fps=100)
    assert str(path) in str(err.value)


def test_a_corrupt_frame_in_a_folder_is_named(tmp_path):
    folder = write_folder(tmp_path / "clip", moving_frames(3, size=16))
    (folder / "img2.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="img2.png"):
        list(stream_recording(folder, size=16, fps=100, progress=False))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fps": 0}, "fps"),
        ({"fps": "fast"}, "fps"),
        ({"target_fps": -1}, "target_fps"),
        ({"n": 0}, "n"),
        ({"chunk": 0}, "chunk"),
        ({"short_policy": "drop"}, "short_policy"),
    ],
)
def test_bad_options_are_named(tmp_path, kwargs, match):
    path = write_video(tmp_path / "v.avi", moving_frames(2, size=16), 25)
    with pytest.raises(ValueError, match=match):
        stream_recording(path, size=16, **kwargs)


def test_streaming_holds_one_chunk_not_the_recording(tmp_path):
    path = write_video(tmp_path / "v.avi", moving_frames(50, size=32), 25)
    stream = stream_recording(path, size=32, target_fps=100, chunk=16, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about here
        sizes = [len(chunk) for chunk in stream]
    assert max(sizes) == 16 and sum(sizes) == 4 * 49 + 1 == stream.report["output_frames"]
