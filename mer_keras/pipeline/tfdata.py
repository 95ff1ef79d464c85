"""tf.data pipelines over cached features: balanced, shuffled training windows and plain test windows.

Features are a ``(variants, frames, ...)`` array in memory, or a ``DiskFeatures`` whose rows are
read from the on-disk cache batch by batch; for ``--augment online`` they are uint8 frames.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mer_keras.pipeline.feature_store import DiskFeatures
from mer_keras.pipeline.windows import WindowSet, balanced_indices


def frame_gather(features):
    """``(gather, shape)``: ``gather(variant ids, frame rows)`` -> their features, as a TF function."""
    if isinstance(features, DiskFeatures):

        def gather(variant, rows):
            x = tf.numpy_function(features.read, [variant, rows], tf.as_dtype(features.dtype), stateful=False)
            return tf.ensure_shape(x, rows.shape.concatenate(features.row_shape))

        return gather, features.shape
    features = tf.convert_to_tensor(features)
    return (lambda variant, rows: tf.gather_nd(features, tf.stack([variant, rows], axis=-1))), features.shape


def _fetcher(features, rows: tf.Tensor, labels: tf.Tensor, num_classes: int, squeeze_time: bool):
    gather, shape = frame_gather(features)
    variants = shape[0]

    def fetch(ids, draws):
        window_rows = tf.gather(rows, ids)  # (B, n)
        # one variant per window: every frame of a window gets the same augmentation
        variant = tf.cast(draws % variants, tf.int32)
        x = gather(tf.broadcast_to(variant[:, None], tf.shape(window_rows)), window_rows)
        if squeeze_time:
            x = tf.squeeze(x, axis=1)
        return x, tf.one_hot(tf.gather(labels, ids), num_classes)

    return fetch


class EpochClock:
    """Which epoch each new pass over a training dataset is, so that its batches are a function of
    (seed, epoch) alone: a fit resumed at epoch k sees the batches an uninterrupted one saw there.

    Keras makes one iterator per epoch (the next one as soon as an epoch ends), so the n-th pass is
    epoch ``first_epoch + n``; ``first_epoch`` is where a resumed fit starts.
    """

    def __init__(self, first_epoch: int = 0, started: bool = True):
        self.epoch = int(first_epoch)
        self.started = started  # False: passes do not count until ``started`` (see distribute.epoch_clock)

    def next_pass(self) -> int:
        if not self.started:
            return self.epoch
        self.epoch += 1
        return self.epoch - 1


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch])


def make_dataset(
    features,
    windows: WindowSet,
    num_classes: int,
    batch_size: int,
    *,
    training: bool,
    seed: int = 0,
    balance: bool = True,
    squeeze_time: bool = False,
    clock=None,
    balance_scale: float = 1.0,
):
    """Batches of ``(x, one-hot y)`` from a cached feature array ``(variants, frames, ...)``.

    Training: each epoch, windows resampled so classes are about equal (``balance``), shuffled, and a
    random cached variant per window, all drawn from (``seed``, epoch) (``clock`` tells the epoch).
    Otherwise: every window once, in order, identity variant. Returns ``(dataset, sample_count)``.
    """
    if len(windows) == 0:
        raise ValueError("No windows to make a dataset from.")
    fetch = _fetcher(
        features,
        tf.constant(windows.rows),
        tf.constant(windows.labels),
        num_classes,
        squeeze_time=squeeze_time,
    )
    if not training:
        ids = np.arange(len(windows), dtype=np.int32)
        dataset = tf.data.Dataset.from_tensor_slices((ids, np.zeros(len(ids), np.int64))).batch(batch_size)
        return dataset.map(fetch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), len(ids)
    clock = clock or EpochClock()
    count = (
        len(balanced_indices(windows.labels, num_classes, _epoch_rng(seed, 0), scale=balance_scale))
        if balance
        else len(windows)
    )

    def generate():  # one epoch: its order and variant draws depend on (seed, epoch) only
        rng = _epoch_rng(seed, clock.next_pass())
        ids = (
            balanced_indices(windows.labels, num_classes, rng, scale=balance_scale)
            if balance
            else np.arange(len(windows))
        )
        ids = rng.permutation(ids).astype(np.int32)
        draws = rng.integers(0, 2**31 - 1, size=len(ids))
        for start in range(0, len(ids), batch_size):
            yield ids[start : start + batch_size], draws[start : start + batch_size]

    signature = (tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.int64))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-count // batch_size)))
    return dataset.map(fetch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), count


def _grouped_order(
    windows: WindowSet,
    num_classes: int,
    variants: int,
    *,
    training: bool,
    balance: bool,
    rng: np.random.Generator,
    balance_scale: float = 1.0,
):
    """One epoch of ``(window ids, variant ids)`` ordered clip by clip, so a batch spans few clips.

    Training: classes balanced, clips in random order, each clip's windows in temporal order (so a
    batch holds runs of overlapping windows), and one random variant per clip (its windows keep
    sharing frames). Otherwise every window in order.
    """
    if not training:
        ids = np.arange(len(windows), dtype=np.int32)
        return ids, np.zeros_like(ids)
    ids = (
        balanced_indices(windows.labels, num_classes, rng, scale=balance_scale)
        if balance
        else np.arange(len(windows))
    )
    clip_order = rng.permutation(np.unique(windows.clip_index))
    rank = np.empty(clip_order.max() + 1, np.int64)
    rank[clip_order] = np.arange(len(clip_order))
    ids = np.sort(ids)  # windows of a clip are stored in temporal order
    ids = ids[np.argsort(rank[windows.clip_index[ids]], kind="stable")].astype(np.int32)
    clip_variant = rng.integers(0, variants, size=len(rank))
    return ids, clip_variant[windows.clip_index[ids]].astype(np.int32)


def make_deduplicated_dataset(
    features,
    windows: WindowSet,
    num_classes: int,
    batch_size: int,
    *,
    training: bool,
    seed: int = 0,
    balance: bool = True,
    clock=None,
    balance_scale: float = 1.0,
    groups: bool = False,
):
    """Batches of ``((distinct frames, index), one-hot y)`` for models that encode each frame once.

    Consecutive batches walk through the clips in an order redrawn every epoch, so a batch holds
    overlapping windows of two or three clips that share most of their frames, and the trainable encoder runs
    once per distinct frame instead of once per window position. Returns ``(dataset, sample_count)``.
    ``groups``: inputs are ``(frames, index, group)``, ``group`` numbering the clip (0, 1, ...) of each
    distinct frame, so an augmentation can draw once per clip of the batch and keep frames shared.
    """
    if len(windows) == 0:
        raise ValueError("No windows to make a dataset from.")
    gather, shape = frame_gather(features)
    variants, frames_per_variant = shape[0], shape[1]
    rows, labels = tf.constant(windows.rows), tf.constant(windows.labels)
    clip_index = tf.constant(windows.clip_index)
    clock = clock or EpochClock()
    order = {"training": training, "balance": balance, "balance_scale": balance_scale}
    count = len(_grouped_order(windows, num_classes, variants, rng=_epoch_rng(seed, 0), **order)[0])

    def generate():  # called again every epoch: a new order from (seed, epoch), same number of batches
        epoch = clock.next_pass() if training else 0
        ids, variant = _grouped_order(windows, num_classes, variants, rng=_epoch_rng(seed, epoch), **order)
        for start in range(0, len(ids), batch_size):
            yield ids[start : start + batch_size], variant[start : start + batch_size]

    def fetch(ids, variant):
        window_rows = tf.gather(rows, ids)
        keys = variant[:, None] * frames_per_variant + window_rows
        distinct, index = tf.unique(tf.reshape(keys, [-1]))
        frames = gather(distinct // frames_per_variant, distinct % frames_per_variant)
        inputs = (frames, tf.reshape(index, tf.shape(window_rows)))
        if groups:  # a frame row belongs to one clip: its clip, renumbered 0.. within the batch
            clip_of_position = tf.broadcast_to(tf.gather(clip_index, ids)[:, None], tf.shape(window_rows))
            clip = tf.math.unsorted_segment_max(tf.reshape(clip_of_position, [-1]), index, tf.size(distinct))
            inputs = (*inputs, tf.unique(clip)[1])
        return inputs, tf.one_hot(tf.gather(labels, ids), num_classes)

    spec = tf.TensorSpec((None,), tf.int32)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=(spec, spec))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-count // batch_size)))
    return dataset.map(fetch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), count


def prefetch_to_device(dataset, device=None):
    """``dataset`` prefetched into the memory of ``device`` (default: the first GPU, if one is seen).

    Unchanged without a GPU, or inside a tf.distribute strategy, whose distributed datasets fetch
    to their devices themselves. The raw uint8 frames of ``--augment online`` are what this is for:
    a quarter of the bytes of float32, copied while the previous step runs.
    """
    if device is None:
        gpus = tf.config.list_logical_devices("GPU")
        if not gpus or tf.distribute.has_strategy():
            return dataset
        device = gpus[0].name
    return dataset.apply(tf.data.experimental.prefetch_to_device(device))
