"""A user's own recording (a video file or a folder of frames), streamed at the model's frame rate.

Frames are decoded one at a time, resized by the dataset rule (``frames.resize_frame``) and
resampled in time: output frame k sits at ``k / target_fps`` seconds and is linearly interpolated
between the two neighbouring source frames, the ``(a, b, t)`` plans of ``short_clips``; at equal
rates frames pass through unchanged. Two source frames and one chunk are held at a time, so a
10-minute recording needs no more memory than a 10-second one.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from mer_keras.datasets.clip import DatasetError
from mer_keras.datasets.frames import is_image, list_frames, read_frame, resize_frame
from mer_keras.datasets.short_clips import blend, timeline

SHORT_POLICIES = ("interpolate", "refuse")
_EPS = 1e-6  # in source frames: a position this close to a frame is that frame (t = 0)


class RecordingError(DatasetError):
    """A recording cannot be read as given; the message names the file or folder."""


@dataclass(frozen=True)
class Recording:
    """A recording checked to be readable: where it is, its frame rate and what it holds.

    ``frame_count`` is exact for a folder and what the container declares for a video (the
    frames decoded are counted again while streaming). ``frame_size`` is the first frame's.
    """

    path: str
    kind: str  # "video" or "frames"
    fps: float
    fps_from: str  # "file" (the video's own rate) or "argument" (fps= given)
    frame_count: int | None
    frame_size: tuple  # (height, width)
    frames: tuple = ()  # a folder's frame files in order


def _check_fps(fps, name="fps"):
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number of frames per second. Received: {name}={fps!r}")
    return value


def open_recording(source, fps=None) -> Recording:
    """Check that ``source`` (a video file OpenCV reads, or a folder of frames) can be streamed.

    ``fps`` overrides a video's own rate and is required for a folder (a folder has no rate).
    Every problem found here raises :class:`RecordingError` naming the file, before anything runs.
    """
    fps = None if fps is None else _check_fps(fps)
    path = Path(source)
    if not path.exists():
        raise RecordingError(f"{path}: no such video file or frame folder. Received: source={str(source)!r}")
    if path.is_dir():
        return _open_folder(path, fps)
    if is_image(path):
        raise RecordingError(
            f"{path}: a single image is not a recording; pass the folder of frames it belongs to "
            f"(with fps=). Received: source={str(source)!r}"
        )
    return _open_video(path, fps)


def _open_folder(path: Path, fps) -> Recording:
    try:
        frames = list_frames(path)
    except DatasetError as err:
        entries = sorted(p.name for p in path.iterdir())
        if any(is_image(name) for name in entries):  # images, but unnumbered or duplicated
            raise RecordingError(str(err)) from None
        raise RecordingError(
            f"{path}: the frame folder holds no image files (.bmp, .jpg, .png, .tif). "
            f"Received: {len(entries)} other entries {entries[:5]}"
        ) from None
    if fps is None:
        raise RecordingError(
            f"{path}: a folder of frames carries no frame rate; pass fps= (e.g. fps=100 for SMIC-HS, "
            f"200 for CASME II and SAMM). Received: fps=None"
        )
    first = read_frame(frames[0])
    return Recording(str(path), "frames", fps, "argument", len(frames), first.shape[:2], frames)


def _open_video(path: Path, fps) -> Recording:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise RecordingError(
                f"{path}: OpenCV cannot open this file as a video (not a video, damaged, or a codec "
                f"this OpenCV build lacks). Received: a {path.stat().st_size}-byte file"
            )
        ok, frame = capture.read()
        if not ok or frame is None or frame.size == 0:
            raise RecordingError(f"{path}: the video holds no frames. Received: 0 decodable frames")
        file_fps = capture.get(cv2.CAP_PROP_FPS)
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if fps is None:
        if not (math.isfinite(file_fps) and file_fps > 0):
            raise RecordingError(
                f"{path}: the video declares no frame rate; pass fps=. Received: {file_fps!r}"
            )
        fps, fps_from = float(file_fps), "file"
    else:
        fps_from = "argument"
    return Recording(str(path), "video", fps, fps_from, declared if declared > 0 else None, frame.shape[:2])


def decoded_frames(recording: Recording, size=None, progress=True, notes=None, frame_fn=None):
    """Every source frame in order, RGB uint8, resized to ``size`` (int or ``(h, w)``).

    ``frame_fn(frame)``, if given, replaces the resize: it gets each decoded frame (RGB uint8, its
    own size) and returns the frame at ``size`` (e.g. a face crop, ``faces.apply_face``).

    A folder whose frames differ in size gets them all resized and one warning naming it; a
    video that decodes fewer frames than it declares gets a warning (truncated?). What was
    found is added to the dict ``notes`` if given.
    """
    notes = {} if notes is None else notes
    bar = tqdm(
        total=recording.frame_count,
        unit="frame",
        desc=Path(recording.path).name,
        disable=not progress,
        leave=False,
    )
    first_size, count = tuple(recording.frame_size), 0
    try:
        for image in _raw_frames(recording):
            if image.shape[:2] != first_size and not notes.get("mixed_frame_sizes"):
                notes["mixed_frame_sizes"] = True
                warnings.warn(
                    f"{recording.path}: frames differ in size (first {first_size[0]}x{first_size[1]}, "
                    f"frame {count} {image.shape[0]}x{image.shape[1]}); all are resized to {size}.",
                    stacklevel=2,
                )
            count += 1
            bar.update()
            yield resize_frame(image, size) if frame_fn is None else frame_fn(image)
    finally:
        bar.close()
    notes.setdefault("mixed_frame_sizes", False)
    notes["decoded_frames"] = count
    declared = recording.frame_count
    if recording.kind == "video" and declared and count < declared - max(1, declared // 100):
        notes["truncated"] = True
        warnings.warn(
            f"{recording.path}: decoded {count} of the {declared} frames the file declares "
            "(truncated or damaged?); using the frames decoded.",
            stacklevel=2,
        )


def first_frames(recording: Recording, count: int) -> list:
    """The first ``count`` frames (fewer if it is shorter) as decoded, RGB uint8 at their own size."""
    frames = _raw_frames(recording)
    try:
        return list(itertools.islice(frames, count))
    finally:
        frames.close()  # releases the video


def _raw_frames(recording: Recording):
    if recording.kind == "frames":
        for path in recording.frames:
            yield read_frame(path)
        return
    capture = cv2.VideoCapture(recording.path)
    try:
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def _position(k: int, source_fps: float, target_fps: float):
    """Output frame ``k`` (at ``k / target_fps`` s) as ``(a, t)``: ``(1 - t) * src[a] + t * src[a + 1]``."""
    p = k * source_fps / target_fps
    a = math.floor(p + _EPS)
    t = p - a
    return a, (t if t > _EPS else 0.0)


def resampled_length(source_frames: int, source_fps: float, target_fps: float) -> int:
    """How many output frames ``k / target_fps`` fall within the source's first..last frame."""
    if source_frames < 1:
        raise ValueError(f"`source_frames` must be >= 1. Received: source_frames={source_frames}")
    last = source_frames - 1
    k = math.floor(last * target_fps / source_fps) + 1
    while k > 0 and not _inside(k, last, source_fps, target_fps):
        k -= 1
    while _inside(k + 1, last, source_fps, target_fps):
        k += 1
    return k + 1


def _inside(k, last, source_fps, target_fps):
    a, t = _position(k, source_fps, target_fps)
    return a < last or (a == last and t == 0.0)


def resample_plan(source_frames: int, source_fps: float, target_fps: float) -> list:
    """The ``(a, b, t)`` plan (as in ``short_clips``) of the resampled recording, one per output frame."""
    source_fps, target_fps = _check_fps(source_fps, "source_fps"), _check_fps(target_fps, "target_fps")
    plan = []
    for k in range(resampled_length(source_frames, source_fps, target_fps)):
        a, t = _position(k, source_fps, target_fps)
        plan.append((a, a + 1, t) if t else (a, a, 0.0))
    return plan


def resample(frames, source_fps: float, target_fps: float):
    """Stream ``resample_plan``: float32 frames at ``target_fps`` from frames at ``source_fps``.

    Holds two source frames. An output on a source frame (t = 0, all of them at equal rates) is
    that frame unchanged; others are ``(1 - t) * a + t * b`` as the dataset pipeline blends.
    """
    source_fps, target_fps = _check_fps(source_fps, "source_fps"), _check_fps(target_fps, "target_fps")
    k, previous = 0, None
    for j, frame in enumerate(frames):
        current = np.asarray(frame, dtype=np.float32)
        while True:
            a, t = _position(k, source_fps, target_fps)
            if t == 0.0 and a == j:
                yield current
            elif t > 0.0 and a == j - 1:
                yield blend(previous, current, t)
            else:
                break
            k += 1
        previous = current


class RecordingStream:
    """A recording's frames at ``target_fps`` and ``size``, in float32 chunks ``(c, h, w, 3)``, 0-255.

    ``size``: an int (square) or ``(h, w)``; None: the first frame's size (later ones resized to it).
    ``frame_fn``: see ``decoded_frames`` (it must return frames of ``size``).

    ``report`` says what was done (source and target rate, source and output frames, resizing,
    short-recording policy); it is complete once the stream has been iterated to the end.
    A recording shorter than ``n`` frames at ``target_fps`` is interpolated up to ``n`` frames as
    ``short_clips`` does for short dataset clips (a warning says so), or refused with
    ``short_policy="refuse"``.
    """

    def __init__(
        self,
        recording: Recording,
        *,
        size,
        target_fps=None,
        n=1,
        chunk=64,
        short_policy="interpolate",
        progress=True,
        frame_fn=None,
    ):
        if short_policy not in SHORT_POLICIES:
            raise ValueError(f"`short_policy` must be one of {SHORT_POLICIES}. Received: {short_policy!r}")
        for name, value in (("n", n), ("chunk", chunk)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
        self.recording = recording
        self.size = tuple(recording.frame_size) if size is None else size  # one size for every chunk
        self.target_fps = recording.fps if target_fps is None else _check_fps(target_fps, "target_fps")
        self.n, self.chunk, self.short_policy, self.progress = int(n), int(chunk), short_policy, progress
        self.frame_fn = frame_fn
        self.report = {}

    def __iter__(self):
        rec = self.recording
        notes = {}
        self.report = {
            "source": rec.path,
            "kind": rec.kind,
            "source_fps": rec.fps,
            "fps_from": rec.fps_from,
            "target_fps": self.target_fps,
            "method": "none (equal rates: frames unchanged)"
            if rec.fps == self.target_fps
            else "linear: output frame k at k / target_fps s, between the two neighbouring source frames",
            "source_frames": None,
            "output_frames": None,
            "declared_frames": rec.frame_count,
            "frame_size": list(rec.frame_size),
            "image_size": self.size,
            "mixed_frame_sizes": None,
            "short": None,
            "frame_period_s": 1.0 / self.target_fps,
            "complete": False,
        }
        frames = resample(
            decoded_frames(rec, self.size, self.progress, notes, self.frame_fn), rec.fps, self.target_fps
        )
        head = []
        for frame in frames:  # hold back the first n frames: a shorter recording is stretched to n
            head.append(frame)
            if len(head) == self.n:
                break
        if len(head) < self.n:
            head = self._stretch(head, notes)
        count, chunk = 0, []
        for frame in _chain(head, frames):
            chunk.append(frame)
            if len(chunk) == self.chunk:
                count += len(chunk)
                yield np.stack(chunk)
                chunk = []
        if chunk:
            count += len(chunk)
            yield np.stack(chunk)
        self.report.update(
            source_frames=notes["decoded_frames"],
            output_frames=count,
            mixed_frame_sizes=notes["mixed_frame_sizes"],
            complete=True,
        )
        if notes.get("truncated"):
            self.report["truncated"] = True

    def _stretch(self, head, notes):
        rec, m = self.recording, len(head)
        what = (
            f"{rec.path}: {notes['decoded_frames']} frames at {rec.fps:g} fps give {m} frames at "
            f"{self.target_fps:g} fps, fewer than the N={self.n} frames of one window"
        )
        if self.short_policy == "refuse" or m == 0:
            raise RecordingError(f"{what}; refused. Received: short_policy={self.short_policy!r}")
        warnings.warn(
            f"{what}; interpolated up to {self.n} frames as for short dataset clips "
            "(one window covers the whole recording).",
            stacklevel=3,
        )
        self.report["short"] = {"policy": "interpolate", "frames_at_target_fps": m, "frames_after": self.n}
        self.report["frame_period_s"] = (m - 1) / (self.n - 1) / self.target_fps if self.n > 1 else 0.0
        return [blend(head[a], head[b], t) for a, b, t in timeline(m, self.n, "interpolate")]


def _chain(head, rest):
    yield from head
    yield from rest


def stream_recording(
    source,
    *,
    size,
    target_fps=None,
    n=1,
    fps=None,
    chunk=64,
    short_policy="interpolate",
    progress=True,
    frame_fn=None,
) -> RecordingStream:
    """Open (and check) ``source`` and stream it at ``target_fps`` (None: its own rate), ``size``².

    ``frame_fn``: see ``decoded_frames``.
    """
    return RecordingStream(
        open_recording(source, fps),
        size=size,
        target_fps=target_fps,
        n=n,
        chunk=chunk,
        short_policy=short_policy,
        progress=progress,
        frame_fn=frame_fn,
    )
