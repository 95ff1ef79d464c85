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


def _grouped_batches(windows: WindowSet, num_classes: int, batch_size: int, variants: int, *,
                     training: bool, balance: bool, clips_per_batch: int, rng: np.random.Generator):
    """One epoch of ``(window ids, variant ids)`` batches, each drawn from a few clips only.

    A clip keeps one random variant within a batch, so its windows still share frames.
    """
    if not training:
        for start in range(0, len(windows), batch_size):
            ids = np.arange(start, min(start + batch_size, len(windows)), dtype=np.int32)
            yield ids, np.zeros_like(ids)
        return
    ids = balanced_indices(windows.labels, num_classes, rng) if balance else np.arange(len(windows))
    clips = rng.permutation(np.unique(windows.clip_index[ids]))
    for start in range(0, len(clips), clips_per_batch):
        members = rng.permutation(ids[np.isin(windows.clip_index[ids], clips[start:start + clips_per_batch])])
        for first in range(0, len(members), batch_size):
            batch = members[first:first + batch_size].astype(np.int32)
            clip_variant = dict(zip(clips[start:start + clips_per_batch].tolist(),
                                    rng.integers(0, variants, size=clips_per_batch).tolist()))
            yield batch, np.array([clip_variant[c] for c in windows.clip_index[batch]], np.int32)


def make_deduplicated_dataset(features, windows: WindowSet, num_classes: int, batch_size: int, *,
                              training: bool, seed: int = 0, balance: bool = True, clips_per_batch: int = 2):
    """Batches of ``((distinct frames, index), one-hot y)`` for models that encode each frame once.

    Windows of a batch come from ``clips_per_batch`` clips (reshuffled every epoch: clip order,
    then windows within the group), so overlapping windows share most of their frames and the
    trainable encoder runs once per distinct frame instead of once per window position.
    Returns ``(dataset, sample_count)``.
    """
    if len(windows) == 0:
        raise ValueError("No windows to make a dataset from.")
    features = tf.convert_to_tensor(features)
    variants, frames_per_variant = features.shape[0], features.shape[1]
    flat = tf.reshape(features, (variants * frames_per_variant, *features.shape[2:]))
    rows, labels = tf.constant(windows.rows), tf.constant(windows.labels)
    rng = np.random.default_rng(seed)
    count = len(balanced_indices(windows.labels, num_classes, np.random.default_rng(seed))) \
        if training and balance else len(windows)

    def generate():
        yield from _grouped_batches(windows, num_classes, batch_size, variants, training=training,
                                    balance=balance, clips_per_batch=clips_per_batch, rng=rng)

    def fetch(ids, variant):
        window_rows = tf.gather(rows, ids)
        keys = variant[:, None] * frames_per_variant + window_rows
        distinct, index = tf.unique(tf.reshape(keys, [-1]))
        inputs = (tf.gather(flat, distinct), tf.reshape(index, tf.shape(window_rows)))
        return inputs, tf.one_hot(tf.gather(labels, ids), num_classes)

    spec = tf.TensorSpec((None,), tf.int32)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=(spec, spec))
    return dataset.map(fetch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), count
