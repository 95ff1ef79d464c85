"""Windows/s the tf.data input pipeline delivers vs windows/s the LSTM training step consumes.

    python -m benchmarks.pipeline [--frames 4600] [--n 13] [--batch 32] [--map-size 4] [--json]

A cached feature array of SMIC size (``--frames`` frames, each a ``--map-size``² x 2048 stage-5
map as the default ``--clip-features motion`` caches at 112², or a 2048-d vector with
``--map-size 0``; ``--variants`` cached variants) is cut into clips of about 29 frames;
``make_dataset`` (balanced, shuffled, a random variant per window) is iterated for ``--batches``
batches, and the Exp-II head (motion on maps, or pooled features) trains with ``train_on_batch``
on batches it produced. ``headroom`` = delivered / consumed (> 1: the input never starves training).
Both are measured in turn on the same cores, so the ratio holds while each runs alone.
"""

import argparse
import json
import statistics
import sys
import time


def _windows(frames, n, clip_length, rng):
    """A WindowSet of consecutive clips of about ``clip_length`` frames covering at most ``frames`` rows."""
    from benchmarks import consecutive_clips

    lengths = []
    while sum(lengths) + clip_length <= frames:
        lengths.append(int(rng.integers(max(n, clip_length - 10), clip_length + 11)))
    kept, start = [], 0
    for length in lengths:
        length = min(length, frames - start)
        if length < n:
            break
        kept.append(length)
        start += length
    return consecutive_clips(kept, n)


def delivered(dataset, batches, repeats, count=lambda x: int(x.shape[0])):
    """Median items/s of iterating ``batches`` batches of ``dataset`` (a first batch untimed);
    ``count(x)``: the items in a batch's input (default: its windows)."""
    rates = []
    for _ in range(repeats):
        iterator = iter(dataset.repeat())
        next(iterator)
        items, start = 0, time.perf_counter()
        for _ in range(batches):
            x, _ = next(iterator)
            items += count(x)
        rates.append(items / (time.perf_counter() - start))
    return statistics.median(rates)


def consumed(model, batches, repeats):
    """Median windows/s of ``train_on_batch`` over ``batches`` (after one warm-up pass)."""
    for x, y in batches:
        model.train_on_batch(x, y)
    rates = []
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        for x, y in batches:
            model.train_on_batch(x, y)
            count += len(x)
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def run(
    frames=4600,
    dim=2048,
    n=13,
    batch=32,
    variants=1,
    batches=200,
    train_batches=10,
    repeats=3,
    units=(128, 64, 32),
    map_size=4,
):
    import keras
    import numpy as np

    from mer_keras.machine import library_versions, machine
    from mer_keras.models import HeadSpec, build_head
    from mer_keras.pipeline.tfdata import make_dataset
    from mer_keras.training import compile_model

    started = time.perf_counter()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    frame_shape = (map_size, map_size, dim) if map_size else (dim,)
    clip_features = "motion" if map_size else "raw"
    features = rng.standard_normal((variants, frames, *frame_shape), dtype=np.float32)
    windows = _windows(frames, n, 29, rng)
    dataset, samples = make_dataset(features, windows, 3, batch, training=True, seed=0)
    supply = delivered(dataset, batches, repeats)
    fixed = [(x.numpy(), y.numpy()) for x, y in dataset.take(train_batches)]
    model = compile_model(
        build_head(HeadSpec("lstm", units, clip_features=clip_features), 3, frame_shape, n), 1e-3
    )
    demand = consumed(model, fixed, repeats)
    return {
        "headroom": supply / demand,
        "delivered_windows_per_s": supply,
        "consumed_windows_per_s": demand,
        "settings": {
            "frames": frames,
            "feature_dim": dim,
            "frame_shape": list(frame_shape),
            "clip_features": clip_features,
            "variants": variants,
            "n": n,
            "batch": batch,
            "windows": len(windows),
            "clips": len(windows.clips),
            "samples_per_epoch": samples,
            "timed_batches": batches,
            "train_batches": train_batches,
            "repeats": repeats,
            "lstm_units": list(units),
            "precision": "float32",
        },
        "machine": machine(),
        "versions": library_versions(),
        "total_s": time.perf_counter() - started,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=4600, help="distinct cached frames (SMIC-HS: ~4,600)")
    parser.add_argument("--dim", type=int, default=2048, help="channels per frame")
    parser.add_argument(
        "--map-size",
        type=int,
        default=4,
        help="side of each frame's cached map (stage 5 at 112²: 4; 0: pooled vectors, no motion)",
    )
    parser.add_argument("--n", type=int, default=13)
    parser.add_argument("--batch", type=int, default=32, help="windows per batch (the run default)")
    parser.add_argument("--variants", type=int, default=1, help="cached variants (2 with --flip)")
    parser.add_argument("--batches", type=int, default=200, help="batches timed per delivery measurement")
    parser.add_argument("--train-batches", type=int, default=10, help="batches per training measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each (median reported)")
    parser.add_argument("--lstm-units", default="128,64,32", help="LSTM sizes (default: the exp2 default)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    for name in ("frames", "dim", "n", "batch", "variants", "batches", "train_batches", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1. Received: {getattr(args, name)}")
    if args.map_size < 0:
        parser.error(f"--map-size must be >= 0. Received: {args.map_size}")
    if args.frames < 2 * args.n:
        parser.error(f"--frames must hold at least two windows of --n {args.n}. Received: {args.frames}")
    units = tuple(int(u) for u in args.lstm_units.split(","))
    result = run(
        args.frames,
        args.dim,
        args.n,
        args.batch,
        args.variants,
        args.batches,
        args.train_batches,
        args.repeats,
        units,
        args.map_size,
    )
    if not args.json:
        print(f"delivered: {result['delivered_windows_per_s']:.0f} windows/s")
        print(f"consumed:  {result['consumed_windows_per_s']:.0f} windows/s")
        print(f"headroom:  {result['headroom']:.1f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
