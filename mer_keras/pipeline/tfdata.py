"""tf.data pipelines over cached features: balanced, shuffled training windows and plain test windows."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mer_keras.pipeline.windows import WindowSet, balanced_indices


def _fetcher(features: tf.Tensor, rows: tf.Tensor, labels: tf.Tensor, num_classes: int,
             random_variant: bool, squeeze_time: bool, seed: int):
    variants = features.shape[0]

    def fetch(ids):
        window_rows = tf.gather(rows, ids)  # (B, n)
        if random_variant and variants > 1:
            variant = tf.random.uniform(tf.shape(ids), 0, variants, dtype=tf.int32, seed=seed)
        else:
            variant = tf.zeros_like(ids, dtype=tf.int32)
        # one variant per window: every frame of a window gets the same augmentation
        variant = tf.broadcast_to(variant[:, None], tf.shape(window_rows))
        x = tf.gather_nd(features, tf.stack([variant, window_rows], axis=-1))
        if squeeze_time:
            x = tf.squeeze(x, axis=1)
        return x, tf.one_hot(tf.gather(labels, ids), num_classes)

    return fetch


def make_dataset(features, windows: WindowSet, num_classes: int, batch_size: int, *,
                 training: bool, seed: int = 0, balance: bool = True, squeeze_time: bool = False):
    """Batches of ``(x, one-hot y)`` from a cached feature array ``(variants, frames, ...)``.

    Training: windows resampled so classes are about equal (``balance``), a random cached variant
    per window, reshuffled every epoch. Otherwise: every window once, in order, identity variant.
    Returns ``(dataset, sample_count)``.
    """
    if len(windows) == 0:
        raise ValueError("No windows to make a dataset from.")
    features = tf.convert_to_tensor(features)
    ids = np.arange(len(windows))
    if training and balance:
        ids = balanced_indices(windows.labels, num_classes, np.random.default_rng(seed))
    fetch = _fetcher(features, tf.constant(windows.rows), tf.constant(windows.labels), num_classes,
                     random_variant=training, squeeze_time=squeeze_time, seed=seed)
    dataset = tf.data.Dataset.from_tensor_slices(ids.astype(np.int32))
    if training:
        dataset = dataset.shuffle(len(ids), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(fetch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE), len(ids)
