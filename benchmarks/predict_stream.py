"""Peak memory and frames/s of ``predict_recording`` streaming long videos (is memory flat in length?).

    python -m benchmarks.predict_stream [--minutes 1,10] [--seconds S] [--fps 100] [--size 112]
                                        [--write-size 112] [--n 13] [--stride 1] [--batch 16]
                                        [--codec mp4v] [--model cheap|tiny] [--json]

For each length a synthetic video (a face drifting sub-pixel, a light patch moving) is written at
``--fps`` into a temporary folder (deleted afterwards; ``write_s``), then ``predict_recording`` runs
on it at ``--fps`` in a fresh Python process, so each length's peak RSS is its own: ``peak_rss_mb``
is the process's ru_maxrss, ``rss_growth_mb`` the RSS sampled every 20 ms during the call minus the
RSS just before it. ``--model cheap`` is a numpy mean-colour softmax, so the time is reading +
resizing + resampling + windowing + outputs; ``--model tiny`` adds the tiny random-weight backbone
(1 block per stage, 1/16 width) + LSTM head in Keras, whose time is reported apart (``model_s``;
``pipeline_s`` = total - model). The last line printed is a JSON object.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CLASSES = ["negative", "positive", "surprise", "non_micro"]


def write_video(path, seconds, fps, size, codec):
    """A synthetic ``seconds``-long video at ``fps``, ``size``² pixels; returns (frames, seconds taken)."""
    import cv2
    import numpy as np

    from mer_keras.datasets.synthetic_faces import render_face, sample_identity

    started = time.perf_counter()
    face = render_face(sample_identity(np.random.default_rng(0), size))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = round(seconds * fps)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), float(fps), (size, size))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {codec!r} to {path}. Received: --codec {codec}")
    for i in range(frames):
        shift = np.float32([[1, 0, 2 * np.sin(i / 37.0)], [0, 1, 1.5 * np.cos(i / 53.0)]])
        image = cv2.warpAffine(face, shift, (size, size), borderMode=cv2.BORDER_REFLECT)
        cx, cy = size * (0.5 + 0.3 * np.sin(i / 50.0)), size * (0.5 + 0.3 * np.cos(i / 70.0))
        image += 40.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size / 8) ** 2))[..., None]
        writer.write(cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    writer.release()
    return frames, time.perf_counter() - started


def cheap_model_fn(batch):
    """Mean colour of the window (every 8th pixel) -> softmax: next to nothing beside the pipeline."""
    import numpy as np

    colour = batch[:, :, ::8, ::8].mean(axis=(1, 2, 3)) / 255.0  # (B, 3); a full-array mean costs 0.14 s
    logits = np.concatenate([colour, colour[:, :1] * 0 + 0.5], axis=1) * 4
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def tiny_model_fn(size, n):
    """The tiny random-weight backbone + a small LSTM head on raw frames, as the exported model runs."""
    import keras
    import tensorflow as tf

    from mer_keras.backbone import VGGFacePreprocess, vggface_resnet50
    from mer_keras.models import build_model
    from mer_keras.provenance import TINY

    keras.utils.set_random_seed(0)
    frames = keras.Input((size, size, 3))
    backbone = vggface_resnet50(weights=None, input_shape=(size, size, 3), pooling="avg", **TINY)
    encoder = keras.Model(frames, backbone(VGGFacePreprocess()(frames)))
    model = build_model("lstm", len(CLASSES), (size, size, 3), n, encoder, lstm_units=(64, 32, 16))
    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda batch: call(tf.constant(batch)).numpy()


class RssSampler(threading.Thread):
    """The largest RSS seen, sampled every ``interval`` seconds until stopped."""

    def __init__(self, interval=0.02):
        super().__init__(daemon=True)
        import psutil

        self.process, self.interval, self.peak = psutil.Process(), interval, 0
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.stopped.wait(self.interval)

    def stop(self):
        self.stopped.set()
        self.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.peak


def child(video, args) -> dict:
    """Run ``predict_recording`` once on ``video`` in this process and measure it."""
    import psutil

    from mer_keras.predict import predict_recording

    model_fn = cheap_model_fn if args.model == "cheap" else tiny_model_fn(args.size, args.n)
    if args.model == "tiny":  # trace once before timing
        import numpy as np

        model_fn(np.zeros((args.batch, args.n, args.size, args.size, 3), np.float32))
    model_time = [0.0]

    def timed(batch):
        start = time.perf_counter()
        out = model_fn(batch)
        model_time[0] += time.perf_counter() - start
        return out

    before = psutil.Process().memory_info().rss
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        summary = predict_recording(
            timed,
            video,
            n=args.n,
            image_size=args.size,
            classes=CLASSES,
            train_fps=args.fps,
            stride=args.stride,
            out_dir=out_dir,
            batch_size=args.batch,
            progress=False,
        )
    total = time.perf_counter() - started
    peak = sampler.stop()
    frames = summary["resampling"]["output_frames"]
    pipeline = total - model_time[0]
    return {
        "frames": frames,
        "source_frames": summary["resampling"]["source_frames"],
        "windows": summary["windows"],
        "total_s": total,
        "model_s": model_time[0],
        "pipeline_s": pipeline,
        "frames_per_s": frames / pipeline,
        "ms_per_frame": 1000 * pipeline / frames,
        "total_frames_per_s": frames / total,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": before / 2**20,
        "rss_growth_mb": (peak - before) / 2**20,
    }


def machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu": model}


def run(lengths_s, args) -> dict:
    """Every length in its own process; the parent writes the videos and gathers the JSON lines."""
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for seconds in lengths_s:
            video = (
                Path(folder) / f"synthetic_{seconds:g}s.{'avi' if args.codec in ('FFV1', 'MJPG') else 'mp4'}"
            )
            _, write_s = write_video(video, seconds, args.fps, args.write_size, args.codec)
            command = [
                sys.executable,
                "-m",
                "benchmarks.predict_stream",
                "--child",
                str(video),
                *_passed_options(args),
            ]
            done = subprocess.run(
                command, capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parents[1]
            )
            if done.returncode:
                raise SystemExit(f"The {seconds:g} s run failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs.append(
                {"seconds": seconds, "video_mb": video.stat().st_size / 2**20, "write_s": write_s, **result}
            )
            video.unlink()
    peaks = [r["peak_rss_mb"] for r in runs]
    return {
        "runs": runs,
        "peak_rss_longest_over_shortest": peaks[-1] / peaks[0],
        "settings": {
            "fps": args.fps,
            "size": args.size,
            "write_size": args.write_size,
            "n": args.n,
            "stride": args.stride,
            "batch": args.batch,
            "codec": args.codec,
            "model": args.model,
        },
        "machine": machine(),
    }


def _passed_options(args):
    return [
        "--fps",
        str(args.fps),
        "--size",
        str(args.size),
        "--n",
        str(args.n),
        "--stride",
        str(args.stride),
        "--batch",
        str(args.batch),
        "--model",
        args.model,
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--minutes", default="1,10", help="video lengths in minutes, comma-separated (default 1,10)"
    )
    parser.add_argument("--seconds", default=None, help="lengths in seconds instead (e.g. for a smoke test)")
    parser.add_argument(
        "--fps", type=float, default=100.0, help="video and training frame rate (default 100)"
    )
    parser.add_argument("--size", type=int, default=112, help="model image size (default 112)")
    parser.add_argument("--write-size", type=int, default=None, help="video frame size (default: --size)")
    parser.add_argument("--n", type=int, default=13, help="frames per window (default 13)")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16, help="windows per model call (default 16)")
    parser.add_argument("--codec", default="mp4v", help="fourcc of the videos written (default mp4v, .mp4)")
    parser.add_argument("--model", choices=("cheap", "tiny"), default="cheap")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.write_size = args.write_size or args.size
    for name in ("size", "write_size", "n", "stride", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1. Received: {getattr(args, name)}")
    if args.child:
        print(json.dumps(child(args.child, args)))
        return 0
    try:
        lengths = (
            [float(s) for s in args.seconds.split(",")]
            if args.seconds
            else [60 * float(m) for m in args.minutes.split(",")]
        )
    except ValueError:
        parser.error(
            f"--minutes/--seconds must be numbers, comma-separated. Received: {args.seconds or args.minutes}"
        )
    if not lengths or min(lengths) <= 0:
        parser.error(f"lengths must be > 0. Received: {lengths}")
    result = run(lengths, args)
    if not args.json:
        for r in result["runs"]:
            print(
                f"{r['seconds']:>6g} s: {r['frames']} frames, {r['frames_per_s']:.0f} frames/s pipeline, "
                f"model {r['model_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB "
                f"(+{r['rss_growth_mb']:.0f} MB during the call)"
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
