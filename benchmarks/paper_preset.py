"""Cost of the paper's setting (``--preset paper``): the uint8 frame pipeline, and one training step.

    python -m benchmarks.paper_preset [--image-size 112 224] [--backbone tiny resnet50] [--batch 8]
                                      [--n 13] [--precisions float32 mixed_bfloat16 mixed_float16] [--json]

Per image size and backbone (random weights): (1) frames/s the tf.data pipeline delivers from a
raw uint8 frame cache of SMIC-like clips (gather + batch + prefetch, to the GPU when one is seen),
per window (``make_dataset``) and deduplicated (``make_deduplicated_dataset``, distinct frames);
(2) clips/s of one ``train_on_batch`` of the paper's training model (online flip + rotation per clip
of a deduplicated batch, the backbone from ``--retrain-from`` with its frozen prefix, 3-layer LSTM
on pooled features) per precision, without XLA (the run's own model) and with XLA. Keras compiles
no model holding the augmentation with XLA (the warp has no XLA kernel), so the XLA figure runs the
augmentation as its own step and compiles the rest: what XLA could give the run; ``xla_kept``
says whether Keras really compiled (a cuDNN LSTM on a GPU refuses too). Medians after a warm-up.
The device TensorFlow sees is printed first; the last line is JSON.
"""

import argparse
import json
import statistics
import sys
import time

from benchmarks.pipeline import delivered

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
CLASSES = 4  # SMIC-HS with non-micro clips


def _clips(n, frames, rng):
    """A WindowSet of SMIC-like clips (20-50 frames) over consecutive rows, at most ``frames`` rows."""
    from benchmarks import consecutive_clips

    lengths = []
    while True:
        length = int(rng.integers(max(n, 20), max(n, 50) + 1))
        if sum(lengths) + length > frames:
            break
        lengths.append(length)
    return consecutive_clips(lengths or [max(n, frames)], n, CLASSES), sum(lengths) or max(n, frames)


def device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return (
        ", ".join(g.name for g in gpus)
        if gpus
        else "CPU only: " + tf.config.list_logical_devices("CPU")[0].name
    )


def frames_in(x) -> int:
    """The frames in a batch's input: windows x N, or the distinct frames of a deduplicated batch."""
    x = x[0] if isinstance(x, tuple) else x
    return int(x.shape[0]) * (int(x.shape[1]) if len(x.shape) == 5 else 1)


def _median_step(step, batches, rounds, warmup):
    for x, y in batches[: max(warmup, 1)] + batches:  # every batch once: shapes differ
        step(x, y)
    times = []
    for r in range(rounds):
        x, y = batches[r % len(batches)]
        start = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_steps(size, backbone, n, batch, precision, retrain_from, batches, rounds, warmup, seed=0):
    """``{clips_per_s, xla_clips_per_s, xla_kept}`` of the paper's training step at ``precision``."""
    import keras
    import tensorflow as tf

    from mer_keras.backbone import split_backbone, vggface_resnet50
    from mer_keras.backbone.build import TINY
    from mer_keras.models import GatherFrames, HeadSpec, build_head
    from mer_keras.online_model import ClipAugmentation, augmentation, online_model, raw_frame_encoder
    from mer_keras.presets import PAPER_ROTATION
    from mer_keras.training import compile_model

    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(seed)
        net = vggface_resnet50(
            weights=None, input_shape=(size, size, 3), **(TINY if backbone == "tiny" else {})
        )
        prefix, suffix = split_backbone(net, retrain_from)
        encoder = raw_frame_encoder(prefix, suffix, size)
        head = build_head(HeadSpec("lstm", clip_features="raw"), CLASSES, encoder.outputs[0].shape[1:], n)
        augment = augmentation(True, PAPER_ROTATION, seed=seed)
        model = compile_model(online_model(head, encoder, augment, deduplicate=True), 1e-3)
        result = {"clips_per_s": batch / _median_step(model.train_on_batch, batches, rounds, warmup)}

        frames = keras.Input(encoder.inputs[0].shape[1:], dtype="uint8")
        index = keras.Input((n,), dtype="int32")
        rest = keras.Model([frames, index], head(GatherFrames()([encoder(frames), index])))
        rest = compile_model(rest, 1e-3, jit_compile=True)
        clip_augmentation = ClipAugmentation(augment)
        augment_step = tf.function(lambda f, g: clip_augmentation([f, g], training=True))

        def split_step(x, y):
            f, i, g = x
            return rest.train_on_batch((augment_step(f, g), i), y)

        result["xla_clips_per_s"] = batch / _median_step(split_step, batches, rounds, warmup)
        result["xla_kept"] = bool(rest.jit_compile)
        return result
    finally:
        keras.mixed_precision.set_global_policy("float32")


def run(
    sizes=(112, 224),
    backbones=("tiny", "resnet50"),
    batch=8,
    n=13,
    precisions=PRECISIONS,
    retrain_from="conv5_1_1x1_reduce",
    frames=600,
    pipeline_batches=20,
    steps=2,
    rounds=3,
    warmup=1,
):
    import numpy as np
    import tensorflow as tf

    from mer_keras.machine import library_versions, machine
    from mer_keras.pipeline.tfdata import make_dataset, make_deduplicated_dataset, prefetch_to_device

    rows = []
    for size in sizes:
        rng = np.random.default_rng(0)
        windows, count = _clips(n, frames, rng)
        cache = tf.constant(rng.integers(0, 256, (1, count, size, size, 3), dtype=np.uint8))
        per_window = prefetch_to_device(make_dataset(cache, windows, CLASSES, batch, training=True)[0])
        dedup = make_deduplicated_dataset(cache, windows, CLASSES, batch, training=True, groups=True)[0]
        batches = [(tuple(t.numpy() for t in x), y.numpy()) for x, y in dedup.take(steps)]
        entry = {
            "image_size": size,
            "pipeline_window_frames_per_s": delivered(per_window, pipeline_batches, 3, frames_in),
            "pipeline_distinct_frames_per_s": delivered(
                prefetch_to_device(dedup), pipeline_batches, 3, frames_in
            ),
            "distinct_frames_per_batch": statistics.mean(len(x[0]) for x, _ in batches),
            "cache_frames": int(count),
        }
        for backbone in backbones:
            steps_at = {}
            for precision in precisions:
                steps_at[precision] = training_steps(
                    size, backbone, n, batch, precision, retrain_from, batches, rounds, warmup
                )
            rows.append({**entry, "backbone": backbone, "training_step": steps_at})
    return {
        "device": device(),
        "results": rows,
        "settings": {
            "batch": batch,
            "n": n,
            "retrain_from": retrain_from,
            "precisions": list(precisions),
            "augmentation": "flip + rotation, one draw per clip of a deduplicated batch",
            "head": "3-layer LSTM 128/64/32 on pooled features (--clip-features raw)",
            "distinct_batches": steps,
            "rounds": rounds,
            "warmup": warmup,
        },
        "machine": machine(),
        "versions": library_versions(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, nargs="+", default=[112, 224], help="frame sides")
    parser.add_argument("--backbone", nargs="+", choices=("tiny", "resnet50"), default=["tiny", "resnet50"])
    parser.add_argument("--batch", type=int, default=8, help="windows per training batch (default 8)")
    parser.add_argument("--n", type=int, default=13, help="frames per window (default 13)")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--retrain-from", default="conv5_1_1x1_reduce", help="l_s: first retrained layer")
    parser.add_argument("--frames", type=int, default=600, help="frames of the raw cache (default 600)")
    parser.add_argument("--pipeline-batches", type=int, default=20)
    parser.add_argument("--steps", type=int, default=2, help="distinct training batches")
    parser.add_argument("--rounds", type=int, default=3, help="timed steps per setting (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print only the device line and the JSON line")
    args = parser.parse_args(argv)
    for name in ("batch", "n", "frames", "pipeline_batches", "steps", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1. Received: {getattr(args, name)}")
    if min(args.image_size) < 32:
        parser.error(f"--image-size must be at least 32. Received: {min(args.image_size)}")
    print(f"device: {device()}", flush=True)
    result = run(
        args.image_size,
        args.backbone,
        args.batch,
        args.n,
        args.precisions,
        args.retrain_from,
        args.frames,
        args.pipeline_batches,
        args.steps,
        args.rounds,
        args.warmup,
    )
    if not args.json:
        for row in result["results"]:
            print(
                f"{row['image_size']}² {row['backbone']}: pipeline {row['pipeline_window_frames_per_s']:.0f} "
                "frames/s; step "
                + ", ".join(
                    f"{p} {s['clips_per_s']:.2f} clips/s (XLA {s['xla_clips_per_s']:.2f})"
                    for p, s in row["training_step"].items()
                )
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
