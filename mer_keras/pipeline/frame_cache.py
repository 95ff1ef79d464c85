"""The frame cache: frozen-prefix features of every distinct frame and variant, shared by all folds.

Frozen layers do not depend on the fold, so their output for every frame of the run is computed
once, in batches, and windows become index slices into the resulting array (in memory, or on disk
where it would take too much memory; see ``feature_store``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from mer_keras.datasets.frames import read_frame
from mer_keras.datasets.short_clips import blend
from mer_keras.faces import apply_face
from mer_keras.pipeline.augment import apply_variant
from mer_keras.pipeline.feature_store import DiskFeatures, cache_key, cached_features, choose_storage
from mer_keras.pipeline.windows import FrameTable


def load_frame(key, size, face=None) -> np.ndarray:
    """The float32 RGB image of a frame-table entry ``(path_a, path_b, t)`` at ``size``.

    ``face``: the clip's face transform (``--face crop|align``), applied before resizing.
    """
    path_a, path_b, t = key

    def read(path):
        return read_frame(path, size) if face is None else apply_face(read_frame(path), face, size)

    image = read(path_a).astype(np.float32)
    return blend(image, read(path_b), t) if t else image


def compute_features(
    encoder, table, size, variants=("identity",), batch_size=32, progress=True, cache_dir=None, weights=None
) -> np.ndarray:
    """``encoder`` (raw RGB in, features out) on every frame of ``table`` in every variant.

    Returns float32 ``(len(variants), len(table), *feature_shape)``. With ``cache_dir``, the array
    is kept there (see ``cache_store``; ``weights`` is the backbone's weights record) and reused,
    memory-mapped read-only, by any later call with the same frames, encoder and weights.
    """
    if len(table) == 0:
        raise ValueError("The frame table is empty: no frames to compute features for.")
    if cache_dir is None:
        return _compute(
            encoder, table, size, variants, batch_size, progress, lambda shape: np.empty(shape, np.float32)
        )
    key, description = cache_key(encoder, table, size, variants, weights)
    return cached_features(
        cache_dir,
        key,
        description,
        lambda allocate: _compute(encoder, table, size, variants, batch_size, progress, allocate),
    )


def _compute(encoder, table, size, variants, batch_size, progress, allocate):
    features = None
    steps = [(v, start) for v in range(len(variants)) for start in range(0, len(table), batch_size)]

    def decode(step):
        v, start = step
        return np.stack(
            [
                apply_variant(load_frame(table.frames[row], size, table.face(row)), variants[v])
                for row in range(start, min(start + batch_size, len(table)))
            ]
        )

    bar = tqdm(total=len(table) * len(variants), unit="frame", desc="frozen features", disable=not progress)
    with ThreadPoolExecutor(max_workers=1) as pool:  # decode the next batch while this one runs
        pending = pool.submit(decode, steps[0])
        for i, (v, start) in enumerate(steps):
            batch = pending.result()
            if i + 1 < len(steps):
                pending = pool.submit(decode, steps[i + 1])
            out = np.asarray(encoder.predict_on_batch(batch), dtype=np.float32)
            if features is None:
                features = allocate((len(variants), len(table), *out.shape[1:]))
            features[v, start : start + len(batch)] = out
            bar.update(len(batch))
    bar.close()
    return features


@dataclass(frozen=True)
class FrameCache:
    """Distinct frames of the run (``table``), their frozen features per variant, and how they were made."""

    table: FrameTable
    features: object  # tf.Tensor (variants, frames, *feature_shape), or DiskFeatures on disk
    variants: tuple
    feature_shape: tuple
    nbytes: int
    storage: str  # "memory", or the folder of the on-disk file
    seconds: float
    dtype: str = "float32"  # uint8 for the raw frames of --augment online (pipeline.raw_frames)

    def frames(self, rows) -> np.ndarray:
        """The identity-variant features (raw cache: uint8 frames) of frame ``rows`` as a NumPy array."""
        rows = np.asarray(rows)
        if isinstance(self.features, DiskFeatures):
            return self.features.read(np.zeros_like(rows), rows)
        return tf.gather(self.features[0], rows).numpy()

    def record(self) -> dict:
        """What config.json says of the cache."""
        return {
            "distinct_frames": len(self.table),
            "interpolated_frames": self.table.interpolated,
            "variants": list(self.variants),
            "feature_shape": list(self.feature_shape),
            "seconds": round(self.seconds, 1),
            "bytes": self.nbytes,
            "storage": self.storage,
            "dtype": self.dtype,
        }


def build_frame_cache(
    table: FrameTable, encoder, size, variants, *, cache_dir=None, weights=None, progress=True
) -> FrameCache:
    """``encoder`` (raw RGB in, frozen features out) run once on every frame and variant of ``table``.

    The features stay in memory unless ``cache_dir`` is given or they would take over a quarter of
    the machine's memory (then on disk, in the user cache dir); training reads on-disk rows per batch.
    """
    nbytes = 4 * len(variants) * len(table) * int(np.prod(encoder.outputs[0].shape[1:]))
    folder = choose_storage(cache_dir, nbytes)
    started = time.perf_counter()
    features = compute_features(
        encoder, table, size, variants, batch_size=32, progress=progress, cache_dir=folder, weights=weights
    )
    seconds = time.perf_counter() - started
    shape = tuple(features.shape[2:])
    stored = DiskFeatures(features) if isinstance(features, np.memmap) else tf.constant(features)
    del features
    return FrameCache(
        table, stored, tuple(variants), shape, nbytes, "memory" if folder is None else str(folder), seconds
    )
