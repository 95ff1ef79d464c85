"""Clips/s of Exp-II training four ways, side by side in one process (random-weight ResNet-50).

    python -m benchmarks.train_throughput [--size 112] [--n 13] [--batch 32] [--steps 3]
                                          [--clip-features motion] [--json]

The same Exp-II model (LSTM head on the experiments' default per-frame features) trained four
ways: (a) naive: raw frames through the whole backbone (time folded into the batch), all
trainable; (b) frozen: the head alone on cached backbone outputs (stage-5 maps for ``motion``,
2048-d pooled features otherwise); (c) stage 5 retrained, run on every window position of cached
stage-4 maps; (d) the same, deduplicated: stage 5 once per distinct frame of a batch, batches
drawn by ``make_deduplicated_dataset`` from SMIC-like clips. Each round times one
``train_on_batch`` of every setting in turn (after warm-up); medians are reported.
``--extras`` adds XLA and mixed_bfloat16 variants of (b) and (d). Last line: one JSON object.
"""

import argparse
import json
import statistics
import sys
import time

from mer_keras.models import CLIP_FEATURES


def _clips_windows(n, clips, rng):
    """``(windows, frames)``: ``clips`` SMIC-like clips (20-50 frames, 3 classes) over consecutive rows."""
    from benchmarks import consecutive_clips

    lengths = rng.integers(max(n, 20), max(n, 50) + 1, size=clips)
    return consecutive_clips(lengths, n), int(lengths.sum())


def _compiled(model, jit_compile=False):
    from mer_keras.training import compile_model

    return compile_model(model, 1e-3, jit_compile=jit_compile)


def build_settings(size, n, batch, steps, units, tiny, extras, clip_features="motion", seed=0):
    """``{name: (model, [(x, y), ...])}`` for every setting, with fixed batches."""
    import keras
    import numpy as np

    from mer_keras.backbone import split_backbone, vggface_resnet50, with_preprocessing
    from mer_keras.backbone.build import TINY
    from mer_keras.models import HeadSpec, build_head, compose, deduplicated
    from mer_keras.pipeline.tfdata import make_deduplicated_dataset

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    arch = TINY if tiny else {}
    classes, settings, info = 3, {}, {}

    spec = HeadSpec("lstm", units, clip_features=clip_features)

    def backbone():
        return vggface_resnet50(weights=None, input_shape=(size, size, 3), pooling=spec.pooling, **arch)

    def head(frame_shape, encoder=None, dedup=False):
        features = frame_shape if encoder is None else encoder.outputs[0].shape[1:]
        top = build_head(spec, classes, features, n)
        return deduplicated(top, encoder, frame_shape) if dedup else compose(top, encoder, frame_shape)

    def labels():
        return keras.utils.to_categorical(rng.integers(0, classes, batch), classes)

    whole = backbone()
    whole.trainable = True
    encoder = with_preprocessing(whole, size)
    raw = [(rng.uniform(0, 255, (batch, n, size, size, 3)).astype("float32"), labels()) for _ in range(steps)]
    settings["naive"] = (_compiled(head((size, size, 3), encoder)), raw)
    frozen = tuple(whole.output.shape[1:])  # what the frozen backbone caches per frame
    cached = [
        (np.maximum(rng.normal(size=(batch, n, *frozen)), 0).astype("float32"), labels())
        for _ in range(steps)
    ]
    settings["frozen"] = (_compiled(head(frozen)), cached)

    prefix, suffix = split_backbone(backbone(), "conv5_1_1x1_reduce")
    maps = tuple(prefix.output.shape[1:])
    windows, frames = _clips_windows(n, 12, rng)
    features = np.maximum(rng.normal(size=(1, frames, *maps)), 0).astype("float32")
    dataset = make_deduplicated_dataset(features, windows, classes, batch, training=True, seed=seed)[0]
    dedup = [((f.numpy(), i.numpy()), y.numpy()) for (f, i), y in dataset.take(steps)]
    per_window = [(f[i], y) for (f, i), y in dedup]  # the same windows, every frame once per position
    info["distinct_frames_per_batch"] = statistics.mean(len(f) for (f, _), _ in dedup)

    settings["stage5_naive"] = (_compiled(head(maps, suffix)), per_window)
    settings["stage5_dedup"] = (_compiled(head(maps, suffix, dedup=True)), dedup)
    if extras:
        settings["frozen_xla"] = (_compiled(head(frozen), True), cached)
        settings["stage5_dedup_xla"] = (_compiled(head(maps, suffix, dedup=True), True), dedup)
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            settings["frozen_bf16"] = (_compiled(head(frozen)), cached)
            bf16_suffix = split_backbone(backbone(), "conv5_1_1x1_reduce")[1]
            settings["stage5_dedup_bf16"] = (_compiled(head(maps, bf16_suffix, dedup=True)), dedup)
        finally:
            keras.config.set_dtype_policy("float32")
    return settings, {**info, "frozen_features": list(frozen), "stage4_maps": list(maps)}


def time_settings(settings, rounds, warmup):
    """Median seconds per ``train_on_batch`` of each setting, timed in alternating rounds."""
    for model, batches in settings.values():
        for i in range(max(warmup, 1)):
            for x, y in batches if i == 0 else batches[:1]:  # every batch once: shapes may differ
                model.train_on_batch(x, y)
    times = {name: [] for name in settings}
    for r in range(rounds):
        for name, (model, batches) in settings.items():
            x, y = batches[r % len(batches)]
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def run(
    size=112,
    n=13,
    batch=32,
    steps=3,
    rounds=3,
    warmup=1,
    units=(128, 64, 32),
    tiny=False,
    extras=False,
    clip_features="motion",
):
    from mer_keras.machine import library_versions, machine

    started = time.perf_counter()
    settings, info = build_settings(size, n, batch, steps, units, tiny, extras, clip_features)
    seconds = time_settings(settings, rounds, warmup)
    clips = {f"{name}_clips_per_s": batch / s for name, s in seconds.items()}
    result = {
        "speedup_frozen": seconds["naive"] / seconds["frozen"],
        "speedup_stage5": seconds["stage5_naive"] / seconds["stage5_dedup"],
        **clips,
        **{f"{name}_step_s": s for name, s in seconds.items()},
        "settings": {
            "size": size,
            "n": n,
            "batch": batch,
            "distinct_batches": steps,
            "rounds": rounds,
            "warmup": warmup,
            "lstm_units": list(units),
            "clip_features": clip_features,
            "backbone": "tiny" if tiny else "resnet50",
            "weights": "random",
            "retrain_from": "conv5_1_1x1_reduce",
            "precision": "float32",
            **info,
        },
        "machine": machine(),
        "versions": library_versions(),
        "total_s": time.perf_counter() - started,
    }
    if extras:
        for base in ("frozen", "stage5_dedup"):
            for kind in ("xla", "bf16"):
                result[f"gain_{base}_{kind}"] = seconds[base] / seconds[f"{base}_{kind}"]
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=112, help="frame height and width (default 112)")
    parser.add_argument("--n", type=int, default=13, help="frames per window (default 13)")
    parser.add_argument(
        "--batch", type=int, default=32, help="windows per batch (default 32, the experiments' --batch-size)"
    )
    parser.add_argument("--steps", type=int, default=3, help="distinct fixed batches per setting")
    parser.add_argument("--rounds", type=int, default=3, help="timed steps per setting (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--lstm-units", default="128,64,32", help="LSTM sizes (default: the exp2 default)")
    parser.add_argument(
        "--clip-features",
        choices=CLIP_FEATURES,
        default="motion",
        help="what the LSTM sees per frame (default: the experiments' default)",
    )
    parser.add_argument("--tiny", action="store_true", help="1-block, 1/16-width backbone (smoke tests)")
    parser.add_argument("--extras", action="store_true", help="also XLA and mixed_bfloat16 for (b) and (d)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    for name, low in (("size", 32), ("n", 1), ("batch", 1), ("steps", 1), ("rounds", 1)):
        if getattr(args, name) < low:
            parser.error(f"--{name} must be >= {low}. Received: {getattr(args, name)}")
    units = tuple(int(u) for u in args.lstm_units.split(","))
    result = run(
        args.size,
        args.n,
        args.batch,
        args.steps,
        args.rounds,
        args.warmup,
        units,
        args.tiny,
        args.extras,
        args.clip_features,
    )
    if not args.json:
        for key, value in result.items():
            if key.endswith("clips_per_s") or key.startswith(("speedup", "gain")):
                print(f"{key}: {value:.2f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
