"""The raw frame cache of ``--augment online``: every distinct frame decoded and resized once, as uint8.

Online augmentation transforms pixels before the frozen backbone, so its features cannot be
cached; the decoded frames can. The cache is a ``FrameCache`` like the feature cache (one
``identity`` variant, ``(1, frames, H, W, 3)`` uint8), in memory or, when large, in the same
on-disk store (``feature_store``); windows stay index slices into it and the model converts to
float and preprocesses (``VGGFacePreprocess``) itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from mer_keras.machine import library_versions
from mer_keras.pipeline.feature_store import (
    FORMAT,
    DiskFeatures,
    cached_features,
    choose_storage,
    frames_digest,
)
from mer_keras.pipeline.frame_cache import FrameCache, load_frame
from mer_keras.pipeline.windows import FrameTable

CHUNK = 64  # frames decoded per task


def decode_frame(table: FrameTable, row: int, size: int) -> np.ndarray:
    """Frame ``row`` of ``table`` as ``(size, size, 3)`` uint8 RGB (interpolated frames rounded)."""
    image = load_frame(table.frames[row], size, table.face(row))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def raw_frames_key(table: FrameTable, size: int) -> tuple:
    """``(key, description)`` of the on-disk file: the frames (files, weights, faces), size, versions."""
    description = {
        "format": FORMAT,
        "kind": "raw uint8 frames",
        "dtype": "uint8",
        "frames": len(table),
        "frames_sha256": frames_digest(table),
        "image_size": int(size),
        "output_shape": [int(size), int(size), 3],
        "variants": ["identity"],
        "versions": library_versions(),
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:32], description


def _decode_all(table, size, allocate, progress):
    frames = allocate((1, len(table), size, size, 3))
    starts = range(0, len(table), CHUNK)

    def decode(start):
        stop = min(start + CHUNK, len(table))
        return start, np.stack([decode_frame(table, row, size) for row in range(start, stop)])

    bar = tqdm(total=len(table), unit="frame", desc="raw frames", disable=not progress)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # cv2 releases the GIL
        for start, chunk in pool.map(decode, starts):
            frames[0, start : start + len(chunk)] = chunk
            bar.update(len(chunk))
    bar.close()
    return frames


def build_raw_frame_cache(table: FrameTable, size: int, *, cache_dir=None, progress=True) -> FrameCache:
    """Every frame of ``table`` decoded at ``size`` once: a uint8 ``FrameCache`` (feature shape H, W, 3).

    In memory unless ``cache_dir`` is given or the frames would take over a quarter of the machine's
    memory (then on disk in the user cache dir, read per batch); a later run reuses the file.
    """
    if len(table) == 0:
        raise ValueError("The frame table is empty: no frames to decode.")
    nbytes = len(table) * size * size * 3
    folder = choose_storage(cache_dir, nbytes, "raw frames")
    started = time.perf_counter()
    if folder is None:
        frames = _decode_all(table, size, lambda shape: np.empty(shape, np.uint8), progress)
        stored = tf.constant(frames)
    else:
        key, description = raw_frames_key(table, size)
        frames = cached_features(
            folder, key, description, lambda allocate: _decode_all(table, size, allocate, progress)
        )
        stored = DiskFeatures(frames)
    del frames
    return FrameCache(
        table,
        stored,
        ("identity",),
        (size, size, 3),
        nbytes,
        "memory" if folder is None else str(folder),
        time.perf_counter() - started,
        dtype="uint8",
    )
