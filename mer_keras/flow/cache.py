"""Flow inputs of the apex-frame networks, computed once per clip and kept on disk.

One ``<key>.npy`` (the clip's ``(h, w, 3)`` float32 u, v, strain) and one ``<key>.json`` (what the
key was computed from, and the onset/apex chosen) per clip. The key hashes everything the result
depends on: every frame file of the clip (``feature_store.file_stamp``: path, size, mtime_ns; the
apex search reads them all), the coded onset/apex, the apex rule and search settings, the TV-L1
parameters, the crop box, the work and output sizes, and the OpenCV/numpy versions. A changed
frame or setting gives a new key, so a stale entry is never read. Files are written atomically
(``mer_keras.files``), so a half-written one is never read either.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

import mer_keras
from mer_keras.files import read_json, write_bytes, write_json
from mer_keras.flow.apex import ApexSearch, OnsetApex, choose_onset_apex, require_flow_clip
from mer_keras.flow.optical_flow import (
    CHANNELS,
    STSTNET_SIZE,
    TVL1Params,
    as_hw,
    flow_images_of_files,
)
from mer_keras.paths import user_cache_base
from mer_keras.pipeline.feature_store import file_stamp
from mer_keras.pipeline.frame_cache import FrameCache
from mer_keras.pipeline.windows import FrameTable

FORMAT = 1  # bump when the layout or the meaning of the stored arrays changes
logger = logging.getLogger(__name__)


def default_flow_cache() -> Path:
    """``<mer_keras user cache>/flow``."""
    return user_cache_base() / "flow"


def _box(transforms, clip):
    box = None if transforms is None else transforms.get(clip.key)
    if box is None:
        return None
    if (
        not isinstance(box, (tuple, list))
        or len(box) != 4
        or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in box)
    ):
        raise ValueError(
            f"Clip {clip.key}: the flow cache takes crop boxes (x, y, width, height) of ints "
            f"only (a callable cannot be part of a cache key). Received: {box!r}"
        )
    return [int(d) for d in box]


def clip_description(clip, size, estimate, use_coded_apex, search, params, box, work_size) -> dict:
    """The JSON-able facts a clip's flow inputs depend on (hashed into its key)."""
    digest = hashlib.sha256()
    for path in clip.frames:
        digest.update(file_stamp(path, "the flow cache").encode() + b"\n")
    return {
        "format": FORMAT,
        "clip": clip.key,
        "frames": len(clip),
        "frames_sha256": digest.hexdigest(),
        "coded": {k: None if getattr(clip, k) is None else int(getattr(clip, k)) for k in ("onset", "apex")},
        "estimate": estimate,
        "use_coded_apex": bool(use_coded_apex),
        "search": search.as_dict() if estimate == "flow" else None,
        "tvl1": params.as_dict(),
        "box": box,
        "work_size": None if work_size is None else list(as_hw(work_size, "work_size")),
        "size": list(as_hw(size)),
        "channels": list(CHANNELS),
        "versions": {"mer_keras": mer_keras.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
    }


def description_key(description) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:32]


def _load(folder, key, shape):
    """The cached ``(array, OnsetApex)`` of ``key``, or None if absent or unreadable (then recomputed)."""
    array_path, record_path = folder / f"{key}.npy", folder / f"{key}.json"
    if not (array_path.is_file() and record_path.is_file()):
        return None
    try:
        array = np.load(array_path, allow_pickle=False)
        record = read_json(record_path)
        choice = OnsetApex(**record["choice"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("%s: unreadable flow cache entry (%s): recomputing it.", array_path, error)
        return None
    if array.dtype != np.float32 or array.shape != shape:
        logger.warning(
            "%s: flow cache entry holds %s %s, expected float32 %s: recomputing it.",
            array_path,
            array.dtype,
            array.shape,
            shape,
        )
        return None
    return array, choice


def _store(folder, key, array, description, choice):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_json(folder / f"{key}.json", {"description": description, "choice": choice.as_dict()})
    write_bytes(folder / f"{key}.npy", buffer.getvalue())  # last: the array exists only with its record


def flow_inputs(
    clips,
    size=STSTNET_SIZE,
    estimate="flow",
    use_coded_apex=True,
    search: ApexSearch | None = None,
    params: TVL1Params | None = None,
    transforms=None,
    work_size=None,
    cache_dir=None,
    progress=True,
    report=None,
) -> np.ndarray:
    """``(len(clips), h, w, 3)`` float32 flow inputs, channels u, v, strain (``CHANNELS``), one per clip.

    Each clip's onset and apex come from ``choose_onset_apex(clip, estimate, use_coded_apex,
    search)``; its TV-L1 flow (``params``) from onset to apex, on the frames cropped to
    ``transforms[clip.key]`` (a box (x, y, width, height); absent or None: the whole frame) and
    resized to ``work_size`` (None: as read), gives the u, v, strain images at ``size``.
    ``cache_dir``: where entries are kept (None: ``default_flow_cache()``; False: nowhere).
    ``report``, if a list, receives one dict per clip: ``clip, onset, apex, source, issue, cached``.
    """
    if report is not None and not isinstance(report, list):
        raise ValueError(f"`report` must be None or a list. Received: report={report!r}")
    if transforms is not None and not hasattr(transforms, "get"):
        raise ValueError(
            "`transforms` must be None or a mapping clip key -> crop box. "
            f"Received: transforms={transforms!r}"
        )
    clips = list(clips)
    if not clips:
        raise ValueError("No clips to compute flow inputs for. Received: clips=[]")
    height, width = as_hw(size)
    search, params = search or ApexSearch(), params or TVL1Params()
    for clip in clips:  # refuse one-frame clips before any work
        require_flow_clip(clip)
    folder = None
    if cache_dir is not False:
        folder = Path(default_flow_cache() if cache_dir is None else cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
    solver = params.create()
    out = np.empty((len(clips), height, width, len(CHANNELS)), np.float32)
    for i, clip in enumerate(tqdm(clips, desc="flow inputs", unit="clip", disable=not progress)):
        box = _box(transforms, clip)
        hit = key = description = None
        if folder is not None:
            description = clip_description(
                clip, size, estimate, use_coded_apex, search, params, box, work_size
            )
            key = description_key(description)
            hit = _load(folder, key, (height, width, len(CHANNELS)))
        if hit is None:
            choice = choose_onset_apex(clip, estimate, use_coded_apex, search, box)
            array = flow_images_of_files(
                clip.frames[choice.onset],
                clip.frames[choice.apex],
                (height, width),
                params,
                box,
                work_size,
                solver,
            )
            if folder is not None:
                _store(folder, key, array, description, choice)
        else:
            array, choice = hit
            if choice.issue:
                logger.warning("%s: %s", clip.key, choice.issue)
        out[i] = array
        if report is not None:
            report.append({**choice.as_dict(), "cached": hit is not None})
    return out


def flow_frame_cache(clips, size, estimate, *, progress=True):
    """``(FrameCache, report)``: one onset-to-apex flow image per clip, as the frame cache of a flow baseline.

    The table has one row per clip (its onset and apex frames), so windows of one "frame" are clips
    and the harness of the appearance models (folds, balancing, training, reports) serves as it is.
    """
    started, report = time.perf_counter(), []
    features = flow_inputs(clips, size=size, estimate=estimate, progress=progress, report=report)
    choices = {entry["clip"]: entry for entry in report}
    table = FrameTable(
        tuple((c.frames[choices[c.key]["onset"]], c.frames[choices[c.key]["apex"]], 0.0) for c in clips),
        {c.key: np.array([i], np.int32) for i, c in enumerate(clips)},
    )
    cache = FrameCache(
        table,
        tf.constant(features[None]),
        ("identity",),
        tuple(features.shape[1:]),
        int(features.nbytes),
        "memory (flow images; per clip on disk in the flow cache)",
        time.perf_counter() - started,
    )
    sources = [entry["source"] for entry in report]
    return cache, {
        "size": list(features.shape[1:3]),
        "channels": list(CHANNELS),
        "apex_estimate": estimate,
        "apex_sources": {s: sources.count(s) for s in sorted(set(sources))},
        "issues": [e for e in report if e.get("issue")],
        "cached": sum(e["cached"] for e in report),
        "seconds": round(cache.seconds, 1),
        "tvl1": TVL1Params().as_dict(),
        "cache": str(default_flow_cache()),
    }
