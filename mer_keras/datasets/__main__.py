"""``python -m mer_keras.datasets describe ROOT [--check NAME]``: clips per subject x class, frames.

With ``--check`` the copy is also compared with the official MEGC2019 list; the exit code is 1 when
it differs, 0 when every count and clip is equal, 2 when the folder cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd

from mer_keras.datasets.check import CHECKS, check_copy, format_check
from mer_keras.datasets.clip import DatasetError
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


def _print_text(summary: dict, table: pd.DataFrame) -> None:
    print(f"datasets: {', '.join(summary['datasets'])}   clips: {summary['clips']}   "
          f"subjects: {summary['subjects']}   fps: {summary['fps']}")
    print(table.to_string())
    f = summary["frames"]
    print(f"frames per clip: min {f['min']}, median {f['median']:g}, mean {f['mean']}, "
          f"max {f['max']}, total {f['total']}")
    for label, c in summary["classes"].items():
        print(f"  {label:>12}: {c['clips']} clips, {c['frames']} frames")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mer_keras.datasets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("describe", help="count clips per subject x class, frame statistics")
    sub.add_argument("root", help="dataset folder")
    sub.add_argument("--dataset", default="auto", choices=["auto", *LOADERS],
                     help="which loader reads ROOT (default: recognised from the layout)")
    sub.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    sub.add_argument("--check", choices=list(CHECKS),
                     help="compare ROOT with the official MEGC2019 list (the composite, or one source's "
                          "part of it): counts per class and subject, clip by clip; exit code 1 if it "
                          "differs")
    args = parser.parse_args(argv)
    if args.check and args.dataset not in ("auto", CHECKS[args.check][1]):
        print(f"error: --check {args.check} reads ROOT as {CHECKS[args.check][1]}; --dataset must be auto or "
              f"{CHECKS[args.check][1]}. Received: --dataset {args.dataset}", file=sys.stderr)
        return 2
    try:
        if args.check:
            clips, result = check_copy(args.root, args.check)
        else:
            clips, result = load_dataset(args.root, args.dataset), None
        summary = describe(clips)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result is not None:
        summary["check"] = result
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        table = pd.DataFrame(summary["per_subject"]).T.fillna(0).astype(int)
        table.loc["total"] = table.sum()
        _print_text(summary, table)
        if result is not None:
            print(format_check(result))
    return 0 if result is None or result["equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
