"""Predicting on a recording: sliding N-frame windows, a clip-level answer and the moments to look at.

``predict_recording`` streams a recording (``recordings``) at the model's training frame rate and
slides windows of N frames over it, keeping only a rolling buffer of N frames, one batch of
windows and the thumbnails of the current best segments: memory does not grow with length. Any
``model_fn(float32 (B, N, H, W, 3), RGB 0-255) -> (B, classes)`` probabilities will do (a
SavedModel's ``serving_default``, a Keras model's ``predict_on_batch``), however it was loaded.

Outputs: ``windows.csv`` (one row per window), ``summary.json`` (clip-level prediction = mean of
the windows' probabilities, as evaluation does; resampling report; top segments) and
``timeline.png``. A *segment* is a run of consecutive windows whose most probable class is the
same non-neutral class (any class but ``non_micro``); segments are ranked by that class's peak
(default) or mean probability over their windows.

``predict_with_run`` does it with a finished run's own SavedModel, reading N, image size, classes,
training frame rate and face preprocessing from the run's ``config.json`` (``experiments.predict``).
"""

from __future__ import annotations

import heapq
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import ConnectionPatch

from mer_keras.config import RunConfig
from mer_keras.datasets.frames import resize_frame
from mer_keras.faces import DEFAULT_MARGIN, DETECT_FRAMES, apply_face, check_face_mode, clip_face_transform
from mer_keras.files import read_json, write_bytes, write_json, write_text
from mer_keras.final_model import EXPORT
from mer_keras.recordings import SHORT_POLICIES, first_frames, open_recording, stream_recording

NEUTRAL_CLASSES = ("non_micro",)
RANK_BY = ("peak", "mean")
THUMBNAIL_CANDIDATES = 64  # frames kept per open segment (thinned by halves when it grows longer)


def window_count(frames: int, n: int, stride: int = 1) -> int:
    """Windows of ``n`` frames starting every ``stride`` frames within ``frames`` frames."""
    for name, value in (("n", n), ("stride", stride)):
        if int(value) != value or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    if frames < 0:
        raise ValueError(f"`frames` must be >= 0. Received: frames={frames!r}")
    return 0 if frames < n else (int(frames) - int(n)) // int(stride) + 1


def _probabilities(model_fn, batch: np.ndarray, classes) -> np.ndarray:
    """``model_fn(batch)`` as float64 ``(B, classes)``, checked (a dict of one output is unwrapped)."""
    out = model_fn(batch)
    if isinstance(out, Mapping):
        if len(out) != 1:
            raise ValueError(
                f"model_fn returned several outputs; pass a function returning one. "
                f"Received: keys {sorted(out)}"
            )
        out = next(iter(out.values()))
    probs = np.asarray(out, dtype=np.float64)
    if probs.shape != (len(batch), len(classes)):
        raise ValueError(
            f"model_fn must return ({len(batch)}, {len(classes)}) probabilities for classes "
            f"{list(classes)}. Received: shape {probs.shape}"
        )
    if not np.all(np.isfinite(probs)) or probs.min() < -1e-6 or probs.max() > 1 + 1e-6:
        raise ValueError(
            "model_fn must return probabilities in [0, 1] (softmax outputs, not logits). "
            f"Received: values in [{np.nanmin(probs):.4g}, {np.nanmax(probs):.4g}]"
        )
    return probs


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


class SegmentTracker:
    """Merges windows into segments as their probabilities arrive; keeps the ``top_k`` best.

    While a segment is open it keeps the centre frame of every ``step``-th window (at most
    ``THUMBNAIL_CANDIDATES``, halved and ``step`` doubled when full); when it closes, the kept frame
    nearest its middle window is its thumbnail. Closed segments go to a min-heap of size ``top_k``.
    """

    def __init__(self, classes, top_k, rank_by, n, stride):
        self.classes = list(classes)
        self.candidates = {i for i, c in enumerate(self.classes) if c not in NEUTRAL_CLASSES}
        self.top_k, self.rank_by, self.n, self.stride = top_k, rank_by, n, stride
        self.heap, self.open, self.total, self.per_class = [], None, 0, dict.fromkeys(self.classes, 0)

    def add(self, window: int, probs: np.ndarray, centre_frame) -> None:
        best = int(np.argmax(probs))
        if self.open is not None and (best != self.open["c"] or window != self.open["last"] + 1):
            self._close()
        if best not in self.candidates:
            return
        if self.open is None:
            self.open = {
                "c": best,
                "first": window,
                "last": window,
                "peak": -1.0,
                "peak_window": window,
                "sum": 0.0,
                "kept": [],
                "step": 1,
            }
        seg = self.open
        seg["last"] = window
        p = float(probs[best])
        seg["sum"] += p
        if p > seg["peak"]:
            seg["peak"], seg["peak_window"] = p, window
        if self.top_k and (window - seg["first"]) % seg["step"] == 0:
            seg["kept"].append((window, _thumbnail(centre_frame())))
            if len(seg["kept"]) > THUMBNAIL_CANDIDATES:
                seg["kept"], seg["step"] = seg["kept"][::2], seg["step"] * 2

    def _close(self) -> None:
        seg, self.open = self.open, None
        self.total += 1
        self.per_class[self.classes[seg["c"]]] += 1
        if not self.top_k:
            return
        windows = seg["last"] - seg["first"] + 1
        score = seg["peak"] if self.rank_by == "peak" else seg["sum"] / windows
        key = (score, -seg["first"])  # ties: the earlier segment ranks higher
        if len(self.heap) == self.top_k and key <= self.heap[0][0]:
            return
        middle = (seg["first"] + seg["last"]) // 2
        window, frame = min(seg["kept"], key=lambda kept: abs(kept[0] - middle))
        record = {
            "class": self.classes[seg["c"]],
            "first_window": seg["first"],
            "last_window": seg["last"],
            "windows": windows,
            "peak": seg["peak"],
            "mean": seg["sum"] / windows,
            "peak_window": seg["peak_window"],
            "thumbnail_frame": window * self.stride + (self.n - 1) // 2,
        }
        entry = (key, record, frame)
        if len(self.heap) == self.top_k:
            heapq.heapreplace(self.heap, entry)
        else:
            heapq.heappush(self.heap, entry)

    def finish(self):
        """``(segments best first, their thumbnails)`` once every window has been added."""
        if self.open is not None:
            self._close()
        ranked = sorted(self.heap, key=lambda entry: entry[0], reverse=True)
        return [record for _, record, _ in ranked], [frame for _, _, frame in ranked]


def _check_options(n, image_size, classes, train_fps, stride, batch_size, top_k, rank_by, short_policy):
    for name, value, low in (
        ("n", n, 1),
        ("image_size", image_size, 1),
        ("stride", stride, 1),
        ("batch_size", batch_size, 1),
        ("top_k", top_k, 0),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
    classes = [str(c) for c in classes]
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"`classes` must be distinct class names, at least one. Received: {classes}")
    if rank_by not in RANK_BY:
        raise ValueError(f"`rank_by` must be one of {RANK_BY}. Received: rank_by={rank_by!r}")
    if short_policy not in SHORT_POLICIES:
        raise ValueError(f"`short_policy` must be one of {SHORT_POLICIES}. Received: {short_policy!r}")
    if not isinstance(train_fps, (int, float, np.number)) or not train_fps > 0:
        raise ValueError(
            f"`train_fps` must be the model's training frame rate (> 0). Received: {train_fps!r}"
        )
    return classes


def predict_recording(
    model_fn,
    source,
    *,
    n,
    image_size,
    classes,
    train_fps,
    stride=1,
    out_dir,
    batch_size=16,
    fps=None,
    top_k=3,
    rank_by="peak",
    short_policy="interpolate",
    progress=True,
    frame_fn=None,
    extra=None,
) -> dict:
    """Slide ``n``-frame windows over ``source`` at ``train_fps`` and write what a user looks at.

    ``source``: a video file or a folder of frames (``fps`` overrides a video's rate, required for a
    folder). Writes ``windows.csv``, ``timeline.png`` and, last, ``summary.json`` into ``out_dir``,
    only once every window has been predicted (a bad input or a failing model writes nothing), and
    returns what ``summary.json`` holds. ``frame_fn``: each decoded frame -> the frame the model
    sees (default: resized by the dataset rule; see ``recordings.decoded_frames``). ``extra``: more
    entries for ``summary.json`` (e.g. which model answered).
    """
    classes = _check_options(
        n, image_size, classes, train_fps, stride, batch_size, top_k, rank_by, short_policy
    )
    stream = stream_recording(
        source,
        size=image_size,
        target_fps=train_fps,
        n=n,
        fps=fps,
        chunk=max(batch_size, 32),
        short_policy=short_policy,
        progress=progress,
        frame_fn=frame_fn,
    )
    ring = np.empty((n, image_size, image_size, 3), np.float32)  # frame i at i % n
    batch = np.empty((batch_size, n, image_size, image_size, 3), np.float32)
    segments = SegmentTracker(classes, top_k, rank_by, n, stride)
    probs_parts, pending, done, frame_index, centre = [], 0, 0, 0, (n - 1) // 2

    def flush(count, first):
        probs = _probabilities(model_fn, batch[:count], classes).astype(
            np.float32
        )  # as windows.csv keeps them
        for j in range(count):
            segments.add(first + j, probs[j], lambda j=j: batch[j, centre])
        probs_parts.append(probs)

    for chunk in stream:
        for frame in chunk:
            ring[frame_index % n] = frame
            start = frame_index - n + 1
            if start >= 0 and start % stride == 0:
                np.take(ring, np.arange(start, start + n) % n, axis=0, out=batch[pending])
                pending += 1
                if pending == batch_size:
                    flush(pending, done)
                    done, pending = done + pending, 0
            frame_index += 1
    if pending:
        flush(pending, done)

    report = stream.report
    probs = np.concatenate(probs_parts)
    expected = window_count(report["output_frames"], n, stride)
    if len(probs) != expected:  # the windowing above and window_count must agree
        raise RuntimeError(
            f"{len(probs)} windows predicted, {expected} expected from {report['output_frames']} "
            f"frames, n={n}, stride={stride}."
        )
    period = report["frame_period_s"]
    starts = np.arange(len(probs)) * stride
    table = pd.DataFrame(
        {
            "window": np.arange(len(probs)),
            "start_frame": starts,
            "end_frame": starts + n - 1,
            "start_s": starts * period,
            "end_s": (starts + n - 1) * period,
            "predicted": [classes[i] for i in probs.argmax(axis=1)],
        }
    )
    for i, name in enumerate(classes):
        table[f"p_{name}"] = probs[:, i]

    clip_probs = probs.astype(np.float64).mean(axis=0)
    top, thumbnails = segments.finish()
    for rank, seg in enumerate(top, 1):
        first, last = seg["first_window"], seg["last_window"]
        seg.update(
            rank=rank,
            start_frame=first * stride,
            end_frame=last * stride + n - 1,
            start_s=first * stride * period,
            end_s=(last * stride + n - 1) * period,
            peak_time_s=(seg["peak_window"] * stride + (n - 1) / 2) * period,
            thumbnail_time_s=seg["thumbnail_frame"] * period,
        )
    out_dir = Path(out_dir)
    summary = {
        "source": report["source"],
        "classes": classes,
        "n": n,
        "stride": stride,
        "image_size": image_size,
        "train_fps": float(train_fps),
        "clip": {
            "predicted": classes[int(np.argmax(clip_probs))],
            "probabilities": dict(zip(classes, clip_probs.tolist())),
            "rule": "mean over windows of the window probabilities (as in evaluation)",
        },
        "resampling": report,
        "windows": len(probs),
        "segments": {
            "rule": "consecutive windows whose most probable class is the same non-neutral class; "
            f"ranked by that class's {rank_by} probability over the segment's windows; "
            "thumbnail: centre frame of the window nearest the segment's middle",
            "neutral_classes": [c for c in classes if c in NEUTRAL_CLASSES],
            "rank_by": rank_by,
            "total": segments.total,
            "per_class": segments.per_class,
            "top": top,
        },
        "files": {name: str(out_dir / name) for name in ("windows.csv", "timeline.png", "summary.json")},
        **(extra or {}),
    }
    csv_text = _csv(table)  # everything rendered before the first file is written
    png = io.BytesIO()
    timeline_figure(table, classes, top, thumbnails, title=_title(summary)).savefig(png, format="png")
    write_text(out_dir / "windows.csv", csv_text)
    write_bytes(out_dir / "timeline.png", png.getvalue())
    write_json(out_dir / "summary.json", summary)  # last: its presence means the outputs are complete
    return summary


def _csv(table: pd.DataFrame) -> str:
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, float_format="%.8g")
    return buffer.getvalue()


def _title(summary) -> str:
    clip = summary["clip"]
    return (
        f"{Path(summary['source']).name}: {clip['predicted']} "
        f"(p={clip['probabilities'][clip['predicted']]:.2f}, mean of {summary['windows']} windows)"
    )


def timeline_figure(windows: pd.DataFrame, classes, segments=(), thumbnails=(), title: str = "") -> Figure:
    """Class probabilities over time (window centres, seconds), top segments shaded and numbered,
    their thumbnails in a row above the plot, each linked to its segment."""
    classes = [str(c) for c in classes]
    k = len(segments)
    fig = Figure(figsize=(max(8.0, 2.0 * k), 5.2 if k else 3.6), dpi=100, layout="constrained")
    grid = fig.add_gridspec(2 if k else 1, max(k, 1), height_ratios=[1.0, 1.9] if k else [1.0])
    ax = fig.add_subplot(grid[-1, :])
    times = (windows["start_s"].to_numpy() + windows["end_s"].to_numpy()) / 2
    for i, name in enumerate(classes):
        style = ":" if name in NEUTRAL_CLASSES else "-"
        ax.plot(times, windows[f"p_{name}"].to_numpy(), style, color=f"C{i % 10}", label=name, lw=1.2)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(times.min() - 1e-3, times.max() + 1e-3)
    ax.set_xlabel("time (s, window centre)")
    ax.set_ylabel("probability")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title or "class probabilities over time", fontsize=10)
    by_time = sorted(range(k), key=lambda i: segments[i]["start_s"])
    for column, i in enumerate(by_time):
        seg = segments[i]
        colour = f"C{classes.index(seg['class']) % 10}"
        ax.axvspan(seg["start_s"], seg["end_s"], color=colour, alpha=0.15, lw=0)
        ax.text(
            (seg["start_s"] + seg["end_s"]) / 2, 1.0, f"#{seg['rank']}", ha="center", va="top", fontsize=8
        )
        thumb = fig.add_subplot(grid[0, column])
        thumb.imshow(thumbnails[i])
        thumb.set_xticks([])
        thumb.set_yticks([])
        thumb.set_title(
            f"#{seg['rank']} {seg['class']} {seg['peak']:.2f}\n{seg['start_s']:.2f}–{seg['end_s']:.2f} s",
            fontsize=8,
        )
        for side in thumb.spines.values():
            side.set_edgecolor(colour)
        fig.add_artist(
            ConnectionPatch(
                xyA=(0.5, 0.0),
                coordsA=thumb.transAxes,
                xyB=(seg["thumbnail_time_s"], 1.02),
                coordsB=ax.transData,
                color=colour,
                lw=0.8,
                alpha=0.7,
            )
        )
    return fig


# ---------------------------------------------------------------------------------------------
# A run's own final model on a recording


class RunFolderError(ValueError):
    """A model folder that cannot answer as given (no record, unfinished export); names the folder."""


@dataclass(frozen=True)
class TrainedModel:
    """A run's exported model and what its ``config.json`` says it takes: N, image size, classes, fps."""

    run: Path  # the run folder (config.json)
    final: Path  # its final/ folder (saved_model/, model.keras, export.json)
    config: RunConfig
    classes: tuple
    fps: tuple  # frame rates of the clips the run trained on

    @property
    def saved_model(self) -> Path:
        return self.final / "saved_model"


def trained_model(model_dir) -> TrainedModel:
    """The run of ``model_dir`` (``RUN/final`` or ``RUN`` itself), checked to hold a finished export."""
    given = Path(model_dir)
    if not given.is_dir():
        raise RunFolderError(
            f"{given}: no such model folder (pass a run's final/ folder or the run folder). "
            f"Received: --model {str(model_dir)!r}"
        )
    if (given / "config.json").is_file():
        run, final = given, given / "final"
    elif (given.parent / "config.json").is_file() and (given / "saved_model").exists():
        run, final = given.parent, given
    else:
        raise RunFolderError(
            f"{given}: no config.json here or next to it, so the model's record (N, "
            "image size, classes, training fps) is unknown; pass RUN/final of a run made "
            f"by mer_keras, config.json beside final/. Received: --model {str(model_dir)!r}"
        )
    if not (final / "saved_model").is_dir() or not (final / EXPORT).is_file():
        found = sorted(p.name for p in final.iterdir()) if final.is_dir() else "no final/ folder"
        raise RunFolderError(
            f"{final}: no finished final model (saved_model/ and {EXPORT}); the run was "
            f"made with --no-final or stopped before the export. Received: {found}"
        )
    config = RunConfig.from_json(run)
    data = read_json(run / "config.json").get("record", {}).get("data", {})
    if not data.get("classes"):
        raise RunFolderError(
            f"{run / 'config.json'}: the record names no classes (record.data.classes). "
            f"Received: record.data keys {sorted(data)}"
        )
    if not data.get("fps"):
        raise RunFolderError(
            f"{run / 'config.json'}: the record has no training frame rate "
            "(record.data.fps, written by newer mer_keras runs); rerun the experiment to "
            "predict with it. "
            f"Received: record.data keys {sorted(data)}"
        )
    return TrainedModel(run, final, config, tuple(data["classes"]), tuple(float(f) for f in data["fps"]))


def load_serving(model: TrainedModel):
    """``model_fn(float32 (B, N, H, W, 3)) -> (B, classes)`` from the SavedModel's ``serving_default``.

    Its input shape is checked against the run's N and image size; a frame model (N = 1) gets the
    windows' single frames, ``(B, H, W, 3)``.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model.saved_model))
    signature = loaded.signatures["serving_default"]
    specs = list(signature.structured_input_signature[1].values())
    size, frame = model.config.data.image_size, model.config.kind == "frame"
    expected = (size, size, 3) if frame else (model.config.n, size, size, 3)
    if len(specs) != 1 or tuple(specs[0].shape[1:]) != expected:
        raise RunFolderError(
            f"{model.saved_model}: serving_default does not take what config.json describes "
            f"(batch, {', '.join(map(str, expected))}). Received: "
            f"{[tuple(s.shape) for s in specs]}"
        )

    def model_fn(batch):
        out = signature(tf.constant(batch[:, 0] if frame else batch))
        return next(iter(out.values())).numpy()

    model_fn.loaded = loaded  # the signature needs its SavedModel (and variables) alive
    return model_fn


def face_frame_fn(source, mode, *, size, margin=DEFAULT_MARGIN, fps=None):
    """``(frame_fn, transform)`` for ``--face mode`` on a recording: one transform from its first frames.

    As for a dataset clip, MTCNN looks at the first ``DETECT_FRAMES`` frames and one crop or
    alignment serves every frame; no face found gives a ``FaceNotFoundWarning`` naming the file and
    whole frames. ``mode="none"``: ``(None, None)`` (frames resized by the dataset rule).
    """
    mode = check_face_mode(mode)
    if mode == "none":
        return None, None
    recording = open_recording(source, fps)
    transform = clip_face_transform(
        first_frames(recording, DETECT_FRAMES), mode, margin=margin, name=recording.path
    )
    frame_size = tuple(transform.frame_size)

    def frame_fn(image):
        if tuple(image.shape[:2]) != frame_size:  # a folder of mixed sizes: to the first frame's size
            image = resize_frame(image, frame_size)
        return apply_face(image, transform, size)

    return frame_fn, transform


def predict_with_run(
    model_dir,
    source,
    *,
    out_dir,
    stride=1,
    fps=None,
    n=None,
    train_fps=None,
    batch_size=16,
    top_k=3,
    progress=True,
) -> dict:
    """Predict on a recording with a run's own exported model, as the run saw its clips.

    ``model_dir``: ``RUN/final`` or ``RUN``; its ``config.json`` gives N, image size, classes, face
    preprocessing and the training frame rate the recording is resampled to (``train_fps`` chooses
    when the run's clips had several rates). ``n``, if given, must be the model's N. Writes what
    ``predict_recording`` writes; ``summary.json`` also names the model and the face transform.
    """
    model = trained_model(model_dir)
    config = model.config
    if n is not None and n != config.n:
        raise ValueError(
            f"--n {n} differs from the model's N={config.n} ({model.run / 'config.json'}): a "
            f"model takes windows of the length it was trained on. Received: --n {n}"
        )
    target = _training_fps(model, train_fps)
    open_recording(source, fps)  # a bad input fails here, before the model loads
    model_fn = load_serving(model)
    frame_fn, transform = face_frame_fn(
        source, config.data.face, size=config.data.image_size, margin=config.data.face_margin, fps=fps
    )
    extra = {
        "model": {
            "run": str(model.run),
            "saved_model": str(model.saved_model),
            "experiment": config.experiment,
            "kind": config.kind,
            "pattern": config.pattern,
            "training_fps": list(model.fps),
        },
        "face": {
            "mode": config.data.face,
            "margin": config.data.face_margin,
            "transform": None if transform is None else transform.to_json(),
            "fell_back": bool(transform is not None and transform.fell_back),
        },
    }
    return predict_recording(
        model_fn,
        source,
        n=config.n,
        image_size=config.data.image_size,
        classes=model.classes,
        train_fps=target,
        stride=stride,
        out_dir=out_dir,
        batch_size=batch_size,
        fps=fps,
        top_k=top_k,
        progress=progress,
        frame_fn=frame_fn,
        extra=extra,
    )


def _training_fps(model: TrainedModel, train_fps):
    rates = ", ".join(f"{f:g}" for f in model.fps)
    if train_fps is None:
        if len(model.fps) > 1:
            raise ValueError(
                f"{model.run / 'config.json'}: the run trained on clips of several frame rates "
                f"({rates} fps); pass --train-fps, one of them. Received: --train-fps None"
            )
        return model.fps[0]
    if float(train_fps) not in model.fps:
        raise ValueError(
            f"--train-fps must be a frame rate the run trained on ({rates} fps, "
            f"{model.run / 'config.json'}). Received: --train-fps {train_fps!r}"
        )
    return float(train_fps)
