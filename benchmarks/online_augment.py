"""Cost of `WindowAugmentation` in training mode: windows per second on this machine.

    python -m benchmarks.online_augment [--batch 8] [--n 13] [--size 112] [--repeats 20] [--json]

One `tf.function` calls the layer (default settings, seed 0) with ``training=True`` on a batch of
``--batch`` windows of ``--n`` frames of ``--size`` x ``--size`` x 3 raw pixels; after a warm-up the
median of ``--repeats`` timed calls is reported (the median resists load from other processes).
The last line printed is JSON.
"""

import argparse
import json
import statistics
import sys
import time


def run(batch=8, n=13, size=112, repeats=20, warmup=3, dtype_policy="float32") -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from mer_keras.machine import library_versions, machine
    from mer_keras.pipeline.online_augment import WindowAugmentation

    keras.config.set_dtype_policy(dtype_policy)
    try:
        layer = WindowAugmentation(seed=0)
        x = tf.constant(
            np.random.default_rng(0).uniform(0, 255, (batch, n, size, size, 3)), layer.compute_dtype
        )
        step = tf.function(lambda t: layer(t, training=True))
        for _ in range(warmup):
            step(x).numpy()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step(x).numpy()
            times.append(time.perf_counter() - start)
    finally:
        keras.config.set_dtype_policy("float32")
    median = statistics.median(times)
    return {
        "windows_per_s": batch / median,
        "frames_per_s": batch * n / median,
        "median_s": median,
        "min_s": min(times),
        "settings": {
            "batch": batch,
            "n": n,
            "size": size,
            "repeats": repeats,
            "warmup": warmup,
            "dtype_policy": dtype_policy,
            "layer": layer.get_config(),
        },
        "machine": machine(),
        "versions": library_versions(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="windows per call (default 8)")
    parser.add_argument("--n", type=int, default=13, help="frames per window (default 13)")
    parser.add_argument("--size", type=int, default=112, help="frame height and width (default 112)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dtype-policy", default="float32", help='e.g. "mixed_bfloat16"')
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    for name in ("batch", "n", "size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1. Received: {getattr(args, name)}")
    result = run(args.batch, args.n, args.size, args.repeats, args.warmup, args.dtype_policy)
    if not args.json:
        print(f"{result['windows_per_s']:.1f} windows/s ({result['frames_per_s']:.0f} frames/s)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
