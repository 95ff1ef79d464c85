"""Run a trained model on a video or frame folder: python -m experiments.predict --model RUN/final INPUT.

Writes windows.csv (one row per window of N frames), timeline.png and summary.json into --out
(default: predictions/<input name> under the current folder) and prints the clip-level
prediction and the top segments.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}. Received: {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.predict",
        description="Slide a trained run's model over a recording (resampled to the run's training frame "
        "rate): window probabilities, a clip-level prediction and the segments to look at.",
    )
    p.add_argument("input", help="a video file OpenCV reads, or a folder of numbered frames (needs --fps)")
    p.add_argument("--model", required=True, help="a finished run's final/ folder (or the run folder)")
    p.add_argument("--out", default=None, help="output folder (default: predictions/<input name>)")
    p.add_argument(
        "--stride",
        type=_positive(int),
        default=1,
        help="frames between window starts, at the training rate (default: %(default)s)",
    )
    p.add_argument(
        "--fps",
        type=_positive(float),
        default=None,
        help="the input's frame rate: required for a frame folder, overrides a video's own",
    )
    p.add_argument(
        "--n",
        type=_positive(int),
        default=None,
        help="window length; must equal the model's N (default: the model's)",
    )
    p.add_argument(
        "--train-fps",
        type=_positive(float),
        default=None,
        help="rate to resample to when the run's clips had several (e.g. 100 or 200 for MEGC2019)",
    )
    p.add_argument(
        "--batch-size", type=_positive(int), default=16, help="windows per model call (default: %(default)s)"
    )
    p.add_argument("--top", type=int, default=3, help="segments shown and listed (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar; print only the prediction line")
    return p


def default_out(source) -> Path:
    """``predictions/<input name>`` under the current folder (outside the input's own folder)."""
    path = Path(source)
    return Path("predictions") / (path.name if path.is_dir() else path.stem)


def report_text(summary: dict) -> str:
    """What the command prints: resampling, face, clip-level prediction, top segments, files."""
    r, clip = summary["resampling"], summary["clip"]
    lines, source = [], f"{r['source_frames']} frames at {r['source_fps']:g} fps"
    if r["source_fps"] == r["target_fps"]:
        lines.append(f"frames: {source}, the model's rate: not resampled")
    else:
        lines.append(
            f"resampled: {source} ({r['fps_from']}) -> {r['output_frames']} at "
            f"{r['target_fps']:g} fps (linear interpolation)"
        )
    if r.get("short"):
        lines.append(
            f"short: {r['short']['frames_at_target_fps']} frames stretched to N={summary['n']} "
            "(one window covers the whole recording)"
        )
    face = summary.get("face") or {}
    if face.get("mode", "none") != "none":
        found = "whole frames (no face found)" if face["fell_back"] else "one transform from the first frames"
        lines.append(f"face: --face {face['mode']}, {found}")
    probs = ", ".join(f"{name} {p:.2f}" for name, p in clip["probabilities"].items())
    lines.append(
        f"clip: {clip['predicted']} (mean of {summary['windows']} windows of N={summary['n']}: {probs})"
    )
    segments = summary["segments"]
    if segments["top"]:
        lines.append(
            f"top segments ({segments['total']} in all, ranked by {segments['rank_by']} probability):"
        )
        for seg in segments["top"]:
            windows = f"{seg['windows']} window{'s' if seg['windows'] != 1 else ''}"
            lines.append(
                f"  #{seg['rank']} {seg['class']:<10} {seg['start_s']:8.2f}-{seg['end_s']:.2f} s  "
                f"peak {seg['peak']:.2f} at {seg['peak_time_s']:.2f} s  ({windows})"
            )
    else:
        lines.append("segments: none (no window's most probable class is a micro-expression class)")
    lines.append(f"wrote: {', '.join(summary['files'].values())}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out) if args.out else default_out(args.input)
    from mer_keras.predict import predict_with_run

    try:
        summary = predict_with_run(
            args.model,
            args.input,
            out_dir=out,
            stride=args.stride,
            fps=args.fps,
            n=args.n,
            train_fps=args.train_fps,
            batch_size=args.batch_size,
            top_k=max(args.top, 0),
            progress=not args.quiet,
        )
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.quiet:
        clip = summary["clip"]
        print(f"{clip['predicted']} (p={clip['probabilities'][clip['predicted']]:.2f}); wrote {out}")
    else:
        print(report_text(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
