"""Wall time of one k-fold Exp-II run with ``--executor local`` and with ``--executor ray`` on this machine.

    python -m benchmarks.ray_folds [--backbone tiny] [--image-size 112] [--n 13] [--epochs 10]
                                   [--folds 5] [--cpus-per-fold 1] [--ray-address ADDR] [--json]

The defaults are ``make demo``'s settings (synthetic data). The frozen features are computed once
first, into a shared ``--cache-dir``, so both timed runs read the same on-disk cache and the figures
compare the training of the folds (plus, for Ray, starting it). Each run is its own
``python -m experiments.exp2 --no-final`` process, timed from start to exit. Last line: one JSON
object with both wall times, the speed-up and whether the pooled predictions are byte-identical.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def exp2_options(args, cache_dir) -> list:
    """The exp2 options shared by both runs (and by the caching step)."""
    return [
        "--data",
        args.data,
        "--backbone",
        args.backbone,
        "--image-size",
        str(args.image_size),
        "--n",
        str(args.n),
        "--epochs",
        str(args.epochs),
        "--folds",
        str(args.folds),
        "--cache-dir",
        str(cache_dir),
        "--no-final",
        "--verbose",
        "0",
    ]


def warm_cache(argv) -> None:
    """The run's frame cache computed into its ``--cache-dir`` (what ``prepare_run`` does), no training."""
    from mer_keras.cli import parse_config
    from mer_keras.experiment import prepare_run

    prepare_run(parse_config("exp2", argv)[0])


def timed_run(argv) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "experiments.exp2", *argv], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="ray_folds_") as tmp:
        tmp = Path(tmp)
        common = exp2_options(args, tmp / "cache")
        started = time.perf_counter()
        warm = [sys.executable, "-m", "benchmarks.ray_folds", "--warm-cache", "--", *common]
        subprocess.run([*warm, "--out", str(tmp / "warm")], check=True, stdout=subprocess.DEVNULL)
        caching = time.perf_counter() - started
        ray = ["--executor", "ray", "--cpus-per-fold", str(args.cpus_per_fold)]
        if args.ray_address:
            ray += ["--ray-address", args.ray_address]
        local_s = timed_run([*common, "--out", str(tmp / "local")])
        ray_s = timed_run([*common, "--out", str(tmp / "ray"), *ray])
        same = (tmp / "local" / "predictions.csv").read_bytes() == (
            tmp / "ray" / "predictions.csv"
        ).read_bytes()
        execution = json.loads((tmp / "ray" / "config.json").read_text())["record"]["execution"]
    return {
        "local_s": round(local_s, 1),
        "ray_s": round(ray_s, 1),
        "speedup": round(local_s / ray_s, 2),
        "same_predictions": same,
        "caching_s": round(caching, 1),
        "ray": {k: execution[k] for k in ("nodes", "cluster_cpus", "cpus_per_fold", "folds_at_once")},
        "machine_cpus": os.cpu_count(),
        "settings": {
            k: getattr(args, k)
            for k in (
                "data",
                "backbone",
                "image_size",
                "n",
                "epochs",
                "folds",
                "cpus_per_fold",
                "ray_address",
            )
        },
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["--warm-cache", "--"]:
        warm_cache(argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="synthetic", help="dataset folder or 'synthetic'")
    parser.add_argument("--backbone", choices=("resnet50", "tiny"), default="tiny")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--n", type=int, default=13, help="window length")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cpus-per-fold", type=int, default=1)
    parser.add_argument("--ray-address", default=None, help="a Ray cluster (default: a local Ray)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    for name in ("image_size", "n", "epochs", "cpus_per_fold"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1. Received: {getattr(args, name)}")
    if args.folds < 2:
        parser.error(f"--folds must be >= 2. Received: {args.folds}")
    result = run(args)
    if not args.json:
        print(
            f"{args.folds} folds: local {result['local_s']:.0f} s, ray {result['ray_s']:.0f} s "
            f"(x{result['speedup']:.2f}; {result['ray']['folds_at_once']} folds at once), "
            f"same predictions: {result['same_predictions']}"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
