"""Forward speed of our VGGFace2 ResNet-50 port vs `keras.applications.ResNet50`, same batch, size, process.

    python -m benchmarks.backbone [--size 224] [--batch 16] [--repeats 10] [--json]

Both are random-weight, no-top, average-pooled, called through one `tf.function` each; the two are
timed alternately (so load from other processes hits both alike) after a warm-up, and the medians
compared. The last line printed is a JSON object; `ratio_vs_keras_applications` = ours / theirs time.
(keras-vggface's stem max-pools without padding: 55x55 maps in stage 2 vs 56x56, ~3% fewer FLOPs.)
"""

import argparse
import json
import statistics
import sys
import time


def _timed_calls(models, x, repeats, warmup):
    import tensorflow as tf

    fns = {name: tf.function(lambda t, m=m: m(t, training=False)) for name, m in models.items()}
    for fn in fns.values():
        for _ in range(warmup):
            fn(x).numpy()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(x).numpy()
            times[name].append(time.perf_counter() - start)
    return times


def run(size=224, batch=16, repeats=10, warmup=2, dtype_policy="float32"):
    import keras
    import numpy as np
    import tensorflow as tf

    from mer_keras.backbone import VGGFaceResNet50

    keras.config.set_dtype_policy(dtype_policy)
    shape = (size, size, 3)
    models = {
        "ours": VGGFaceResNet50(input_shape=shape, pooling="avg"),
        "keras_applications": keras.applications.ResNet50(
            weights=None, include_top=False, pooling="avg", input_shape=shape
        ),
    }
    x = tf.constant(np.random.default_rng(0).normal(0, 50, (batch,) + shape).astype("float32"))
    times = _timed_calls(models, x, repeats, warmup)
    median = {name: statistics.median(t) for name, t in times.items()}
    return {
        "ratio_vs_keras_applications": median["ours"] / median["keras_applications"],
        "ours_images_per_s": batch / median["ours"],
        "keras_applications_images_per_s": batch / median["keras_applications"],
        "ours_median_s": median["ours"],
        "keras_applications_median_s": median["keras_applications"],
        "ours_params": models["ours"].count_params(),
        "keras_applications_params": models["keras_applications"].count_params(),
        "batch": batch,
        "size": size,
        "repeats": repeats,
        "warmup": warmup,
        "dtype_policy": dtype_policy,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per model (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dtype-policy", default="float32", help='e.g. "mixed_bfloat16"')
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    for name in ("size", "batch", "repeats"):
        if getattr(args, name) < (32 if name == "size" else 1):
            parser.error(f"--{name} too small. Received: {getattr(args, name)}")
    result = run(args.size, args.batch, args.repeats, args.warmup, args.dtype_policy)
    if not args.json:
        print(f"ours:               {result['ours_images_per_s']:.1f} images/s")
        print(f"keras.applications: {result['keras_applications_images_per_s']:.1f} images/s")
        print(f"ratio (ours/theirs time): {result['ratio_vs_keras_applications']:.3f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
