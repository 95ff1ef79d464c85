"""Frozen-prefix features, computed once per distinct frame and variant, shared by all folds.

Frozen layers do not depend on the fold, so their output for every frame of the run is computed
once, in batches, and windows become index slices into the resulting array.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from mer_keras.datasets.frames import read_frame
from mer_keras.pipeline.augment import apply_variant
from mer_keras.pipeline.cache_store import cache_key, cached_features


def load_frame(key, size) -> np.ndarray:
    """The float32 RGB image of a frame-table entry ``(path_a, path_b, t)`` at ``size``."""
    path_a, path_b, t = key
    image = read_frame(path_a, size).astype(np.float32)
    if t:
        image = (1.0 - t) * image + t * read_frame(path_b, size).astype(np.float32)
    return image


def compute_features(encoder, table, size, variants=("identity",), batch_size=32,
                     progress=True, cache_dir=None, weights=None) -> np.ndarray:
    """``encoder`` (raw RGB in, features out) on every frame of ``table`` in every variant.

    Returns float32 ``(len(variants), len(table), *feature_shape)``. With ``cache_dir``, the array
    is kept there (see ``cache_store``; ``weights`` is the backbone's weights record) and reused,
    memory-mapped read-only, by any later call with the same frames, encoder and weights.
    """
    if len(table) == 0:
        raise ValueError("The frame table is empty: no frames to compute features for.")
    if cache_dir is None:
        return _compute(encoder, table, size, variants, batch_size, progress,
                        lambda shape: np.empty(shape, np.float32))
    key, description = cache_key(encoder, table, size, variants, weights)
    return cached_features(cache_dir, key, description, lambda allocate: _compute(
        encoder, table, size, variants, batch_size, progress, allocate))


def _compute(encoder, table, size, variants, batch_size, progress, allocate):
    features = None
    steps = [(v, start) for v in range(len(variants)) for start in range(0, len(table), batch_size)]

    def decode(step):
        v, start = step
        return np.stack([apply_variant(load_frame(k, size), variants[v])
                         for k in table.frames[start:start + batch_size]])

    bar = tqdm(total=len(table) * len(variants), unit="frame", desc="frozen features",
               disable=not progress)
    with ThreadPoolExecutor(max_workers=1) as pool:  # decode the next batch while this one runs
        pending = pool.submit(decode, steps[0])
        for i, (v, start) in enumerate(steps):
            batch = pending.result()
            if i + 1 < len(steps):
                pending = pool.submit(decode, steps[i + 1])
            out = np.asarray(encoder.predict_on_batch(batch), dtype=np.float32)
            if features is None:
                features = allocate((len(variants), len(table), *out.shape[1:]))
            features[v, start:start + len(batch)] = out
            bar.update(len(batch))
    bar.close()
    return features
