"""What ``--deterministic`` (TensorFlow op determinism) costs a training step of the default Exp-II head.

    python -m benchmarks.determinism [--batch 32] [--n 13] [--maps 4,4,2048] [--repeats 3] [--json]

Op determinism cannot be switched off again in a process, so each setting runs in its own child
process, alternately (on, off, on, off, ...), so both see the same machine load. A child times
``train_on_batch`` of the LSTM head on stage-5 motion maps (what the frozen default trains on; 4x4x2048
at 112 px) and prints clips/s. Last line: one JSON object with the medians and the ratio.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time


def child(deterministic: bool, batch: int, n: int, maps, steps: int) -> dict:
    """Clips/s of one setting, measured in this process."""
    import keras
    import numpy as np
    import tensorflow as tf

    from mer_keras.models import HeadSpec, build_head
    from mer_keras.training import compile_model

    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    head = build_head(HeadSpec("lstm", clip_features="motion"), 4, tuple(maps), n)
    model = compile_model(head, 1e-4)
    x = np.maximum(rng.normal(size=(batch, n, *maps)), 0).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 4, batch), 4)
    model.train_on_batch(x, y)  # trace and warm up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return {"deterministic": deterministic, "step_s": statistics.median(times), "jit": model.jit_compile}


def run(batch=32, n=13, maps=(4, 4, 2048), repeats=3, steps=10) -> dict:
    runs = {True: [], False: []}
    for _ in range(repeats):
        for deterministic in (True, False):
            setting = "on" if deterministic else "off"
            argv = [sys.executable, "-m", "benchmarks.determinism", "--child", setting]
            argv += ["--batch", str(batch), "--n", str(n), "--maps", ",".join(map(str, maps))]
            out = subprocess.run(argv + ["--steps", str(steps)], capture_output=True, text=True, check=True)
            runs[deterministic].append(json.loads(out.stdout.strip().splitlines()[-1]))
    step = {k: statistics.median(r["step_s"] for r in v) for k, v in runs.items()}
    return {
        "deterministic_clips_per_s": batch / step[True],
        "nondeterministic_clips_per_s": batch / step[False],
        "slowdown": step[True] / step[False],
        # Keras's jit_compile="auto" turns XLA off under op determinism
        "xla": {str(k): v[0]["jit"] for k, v in runs.items()},
        "settings": {"batch": batch, "n": n, "maps": list(maps), "repeats": repeats, "steps": steps},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--n", type=int, default=13)
    parser.add_argument("--maps", default="4,4,2048", help="stage-5 map shape per frame (default: 112 px)")
    parser.add_argument("--repeats", type=int, default=3, help="child processes per setting")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per child")
    parser.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    maps = tuple(int(m) for m in args.maps.split(","))
    if args.child:
        print(json.dumps(child(args.child == "on", args.batch, args.n, maps, args.steps)))
        return 0
    result = run(args.batch, args.n, maps, args.repeats, args.steps)
    if not args.json:
        print(
            f"deterministic {result['deterministic_clips_per_s']:.1f} clips/s, "
            f"non-deterministic {result['nondeterministic_clips_per_s']:.1f} clips/s "
            f"(slowdown x{result['slowdown']:.2f})"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
