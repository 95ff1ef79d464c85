"""How well the apex rules find the true apex, and what TV-L1 costs per clip, on the synthetic dataset.

    python -m benchmarks.apex [--root DIR] [--tolerance 3] [--size 28] [--limit N] [--json]

Clips come from ``load_dataset(root, "smic")`` (default root: the built-in synthetic dataset,
generated on first use); the true apex of each from ``SMIC_all_raw/synthetic_manifest.json``,
matched by subject and clip id. Non-micro clips show no expression, so they have no apex: they
are left out (and counted). Reported: the share of clips whose estimate is within ``--tolerance``
frames of the true apex for ``estimate="flow"`` (the default search), the same search scored by
the mean instead of the 95th percentile, and the middle-frame rule; the search time per clip;
and the TV-L1 onset-to-apex flow time per clip (u, v, strain at ``--size``, from the frames as
read). The last line printed is JSON.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def run(root=None, tolerance=3, size=28, limit=None, progress=False) -> dict:
    import cv2
    import numpy as np

    import mer_keras
    from mer_keras.datasets import load_dataset
    from mer_keras.datasets.synthetic import ensure_synthetic_smic
    from mer_keras.flow import ApexSearch, TVL1Params, estimate_apex, flow_images_of_files, middle_frame

    root = Path(root) if root is not None else ensure_synthetic_smic(progress=progress)
    manifest = json.loads((root / "SMIC_all_raw" / "synthetic_manifest.json").read_text())
    truth = {(c["subject"], c["clip_id"]): c["apex"] for c in manifest["clips"]}
    clips = load_dataset(root, "smic")
    micro = [c for c in clips if c.label != "non_micro"]
    left_out = len(clips) - len(micro)
    missing = [c.key for c in micro if (c.subject, c.clip_id) not in truth]
    if missing:
        raise ValueError(f"{root}: clips without an apex in the manifest. Received: {missing[:5]}")
    if limit is not None:
        micro = micro[:limit]
    rules = {"flow": ApexSearch(), "flow_mean": ApexSearch(percentile=None)}
    errors = {name: [] for name in (*rules, "middle")}
    search_s, tvl1_s = [], []
    solver = TVL1Params().create()
    for clip in micro:
        apex = truth[(clip.subject, clip.clip_id)]
        for name, search in rules.items():
            start = time.perf_counter()
            estimate = estimate_apex(clip, 0, search)
            if name == "flow":
                search_s.append(time.perf_counter() - start)
                found = estimate
            errors[name].append(abs(estimate - apex))
        errors["middle"].append(abs(middle_frame(0, len(clip)) - apex))
        start = time.perf_counter()
        flow_images_of_files(clip.frames[0], clip.frames[found], size, solver=solver)
        tvl1_s.append(time.perf_counter() - start)
    frame_shape = list(cv2.imread(micro[0].frames[0]).shape[:2])
    result = {
        "clips": len(micro),
        "non_micro_left_out": left_out,
        "tolerance_frames": tolerance,
        **{
            f"{name}_within_tolerance": round(float(np.mean(np.array(e) <= tolerance)), 4)
            for name, e in errors.items()
        },
        **{f"{name}_mean_abs_error_frames": round(float(np.mean(e)), 3) for name, e in errors.items()},
        "search_ms_per_clip": round(1000 * statistics.median(search_s), 1),
        "tvl1_ms_per_clip": round(1000 * statistics.median(tvl1_s), 1),
        "tvl1_ms_per_clip_mean": round(1000 * statistics.mean(tvl1_s), 1),
        "settings": {
            "root": str(root),
            "frame_shape": frame_shape,
            "output_size": size,
            "mean_clip_frames": round(float(np.mean([len(c) for c in micro])), 1),
            "search": ApexSearch().as_dict(),
            "tvl1": TVL1Params().as_dict(),
            "opencv_threads": cv2.getNumThreads(),
        },
        "versions": {"mer_keras": mer_keras.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
        "machine": {"cpus": os.cpu_count()},
    }
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="a synthetic dataset folder (default: the built-in one, generated if absent)",
    )
    parser.add_argument("--tolerance", type=int, default=3, help="frames either side of the true apex")
    parser.add_argument("--size", type=int, default=28, help="flow image side for the TV-L1 timing")
    parser.add_argument("--limit", type=int, default=None, help="only the first N micro clips")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    if args.tolerance < 0 or args.size < 1 or (args.limit is not None and args.limit < 1):
        parser.error(
            f"need --tolerance >= 0, --size >= 1, --limit >= 1. Received: "
            f"--tolerance {args.tolerance}, --size {args.size}, --limit {args.limit}"
        )
    result = run(args.root, args.tolerance, args.size, args.limit, progress=not args.json)
    if not args.json:
        print(
            f"{result['clips']} micro clips ({result['non_micro_left_out']} non-micro left out), "
            f"estimate within +-{args.tolerance} frames of the true apex:"
        )
        for name in ("flow", "flow_mean", "middle"):
            print(
                f"  {name:10s} {result[f'{name}_within_tolerance']:.3f}  "
                f"(mean |error| {result[f'{name}_mean_abs_error_frames']:.2f} frames)"
            )
        print(
            f"search {result['search_ms_per_clip']:.0f} ms/clip, "
            f"TV-L1 {result['tvl1_ms_per_clip']:.0f} ms/clip"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
