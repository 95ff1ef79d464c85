"""``python -m mer_keras.datasets describe ROOT [--check NAME] [--check-frames]``: clips per subject x class.

With ``--check`` the copy is also compared with the official MEGC2019 list; with ``--check-frames``
every frame is decoded. The exit code is 1 when the copy differs or a frame is unreadable, 0 when
all is well, 2 when the folder cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mer_keras.datasets.check import CHECKS, check_copy, format_check
from mer_keras.datasets.clip import DatasetError
from mer_keras.datasets.frames import frame_problem
from mer_keras.datasets.registry import LOADERS, load_dataset


def describe(clips) -> dict:
    """Counts per subject and class, and frame-count statistics, of a list of clips."""
    table = pd.crosstab(
        pd.Series([c.subject for c in clips], name="subject"),
        pd.Series([c.label for c in clips], name="label"),
    )
    lengths = np.array([len(c) for c in clips])
    by_class = {
        label: {"clips": int(np.sum(mask)), "frames": int(lengths[mask].sum())}
        for label in sorted({c.label for c in clips})
        for mask in [np.array([c.label == label for c in clips])]
    }
    return {
        "datasets": sorted({c.dataset for c in clips}),
        "clips": len(clips),
        "subjects": int(table.shape[0]),
        "classes": by_class,
        "frames": {
            "total": int(lengths.sum()),
            "min": int(lengths.min()),
            "median": float(np.median(lengths)),
            "mean": round(float(lengths.mean()), 2),
            "max": int(lengths.max()),
        },
        "fps": sorted({c.fps for c in clips}),
        "per_subject": {s: {k: int(v) for k, v in row.items()} for s, row in table.iterrows()},
    }


def check_frames(clips, progress=True) -> dict:
    """Every distinct frame of ``clips`` decoded (a few threads, a progress bar on stderr).

    ``{"frames": N, "unreadable": [{"frame", "clip", "problem"}]}``: truncated, zero-byte, text or
    otherwise undecodable files, each with the first clip that uses it.
    """
    clip_of = {}
    for clip in clips:
        for frame in clip.frames:
            clip_of.setdefault(frame, clip.key)
    workers = min(4, os.cpu_count() or 1)  # OpenCV decodes without the GIL
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = list(
            tqdm(
                pool.map(frame_problem, clip_of),
                total=len(clip_of),
                unit="frame",
                desc="decoding frames",
                disable=not progress,
                file=sys.stderr,
            )
        )
    unreadable = [
        {"frame": frame, "clip": clip_of[frame], "problem": problem}
        for frame, problem in zip(clip_of, problems)
        if problem is not None
    ]
    return {"frames": len(clip_of), "unreadable": unreadable}


def format_frame_check(result: dict) -> str:
    """The frame check as text: the count, then each unreadable frame with its clip and problem."""
    lines = [f"frames decoded: {result['frames']}, unreadable: {len(result['unreadable'])}"]
    lines += [f"  {r['frame']} (clip {r['clip']}): {r['problem']}" for r in result["unreadable"]]
    return "\n".join(lines)


def _print_text(summary: dict, table: pd.DataFrame) -> None:
    print(
        f"datasets: {', '.join(summary['datasets'])}   clips: {summary['clips']}   "
        f"subjects: {summary['subjects']}   fps: {summary['fps']}"
    )
    print(table.to_string())
    f = summary["frames"]
    print(
        f"frames per clip: min {f['min']}, median {f['median']:g}, mean {f['mean']}, "
        f"max {f['max']}, total {f['total']}"
    )
    for label, c in summary["classes"].items():
        print(f"  {label:>12}: {c['clips']} clips, {c['frames']} frames")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mer_keras.datasets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("describe", help="count clips per subject x class, frame statistics")
    sub.add_argument("root", help="dataset folder")
    sub.add_argument(
        "--dataset",
        default="auto",
        choices=["auto", *LOADERS],
        help="which loader reads ROOT (default: recognised from the layout)",
    )
    sub.add_argument(
        "--sheet",
        default=None,
        metavar="PATH",
        help="coding sheet to read instead of the one found beside the data (casme2, samm; "
        "megc2019: a CASME2-coding-*.xlsx or SAMM_Micro_FACS_Codes*.xlsx by file name)",
    )
    sub.add_argument(
        "--check-frames",
        action="store_true",
        help="decode every frame of the clips and list unreadable ones (truncated, zero-byte, "
        "not an image); exit code 1 if any",
    )
    sub.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    sub.add_argument(
        "--check",
        choices=list(CHECKS),
        help="compare ROOT with the official MEGC2019 list (the composite, or one source's "
        "part of it): counts per class and subject, clip by clip; exit code 1 if it "
        "differs",
    )
    args = parser.parse_args(argv)
    if args.check and args.dataset not in ("auto", CHECKS[args.check][1]):
        print(
            f"error: --check {args.check} reads ROOT as {CHECKS[args.check][1]}; --dataset must be auto or "
            f"{CHECKS[args.check][1]}. Received: --dataset {args.dataset}",
            file=sys.stderr,
        )
        return 2
    try:
        if args.check:
            clips, result = check_copy(args.root, args.check, sheet=args.sheet)
        else:
            clips, result = load_dataset(args.root, args.dataset, sheet=args.sheet), None
        summary = describe(clips)
    except (DatasetError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    frames = check_frames(clips) if args.check_frames else None
    if result is not None:
        summary["check"] = result
    if frames is not None:
        summary["frame_check"] = frames
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        table = pd.DataFrame(summary["per_subject"]).T.fillna(0).astype(int)
        table.loc["total"] = table.sum()
        _print_text(summary, table)
        if result is not None:
            print(format_check(result))
        if frames is not None:
            print(format_frame_check(frames))
    differs = result is not None and not result["equal"]
    return 1 if differs or (frames is not None and frames["unreadable"]) else 0


if __name__ == "__main__":
    sys.exit(main())
