"""One frame cache for the runs of a sweep: the union of their frames, computed once per encoder.

Runs at different N see the same real frames but not the same blended ones: a clip shorter than
N is stretched to N frames (``short_clips``), and its in-between frames depend on N. The union of
every N's frame table is computed once per encoder (the same layer cut, weights, image size and
variants: the ``feature_store.cache_key`` of the union); each run gets a view of it whose clip rows
point into the union, so no feature is copied. With random weights (made from the run's seed)
runs share features only when their seeds give the same weights; with a weights file all seeds do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mer_keras.pipeline.feature_store import cache_key
from mer_keras.pipeline.frame_cache import FrameCache, build_frame_cache
from mer_keras.pipeline.windows import FrameTable

log = logging.getLogger("mer_keras")


def _frame_key(table: FrameTable, row: int) -> tuple:
    face = table.face(row)
    return (*table.frames[row], None if face is None else face.key())


def union_table(tables) -> FrameTable:
    """The distinct frames of all ``tables`` (with their face transforms), in order of first appearance.

    Its ``clip_rows`` is empty: a clip's rows depend on N, and each run's view holds its own.
    """
    seen, frames, faces = set(), [], []
    for table in tables:
        for row in range(len(table)):
            key = _frame_key(table, row)
            if key not in seen:
                seen.add(key)
                frames.append(table.frames[row])
                faces.append(table.face(row))
    with_faces = any(face is not None for face in faces)
    return FrameTable(tuple(frames), {}, tuple(faces) if with_faces else ())


@dataclass(frozen=True)
class SharedFrameView(FrameCache):
    """A run's view of the shared cache: its own clip rows into the union's features."""

    run_frames: int = 0
    run_interpolated: int = 0
    computed_here: bool = False

    def record(self) -> dict:
        return {
            **super().record(),
            "distinct_frames": self.run_frames,
            "interpolated_frames": self.run_interpolated,
            "shared": {
                "union_frames": len(self.table),
                "computed_by_this_run": self.computed_here,
                "how": "the frames of every N of the sweep computed once per encoder; seconds and "
                "bytes are the union's, seconds 0 where another run of the sweep computed them",
            },
        }


class SharedFrames:
    """A ``build_frame_cache`` stand-in for ``prepare_run`` that computes the union of ``tables`` once.

    ``computed`` lists each computation (one per distinct encoder). A run whose frames are not all
    in the union (its data differ from the sweep's plan) gets a cache of its own, with a warning.
    """

    def __init__(self, tables):
        self.union = union_table(tables)
        self._rows = {_frame_key(self.union, row): row for row in range(len(self.union))}
        self._caches = {}  # cache key of the union -> FrameCache of the union
        self.computed = []

    def __call__(self, table, encoder, size, variants, *, cache_dir=None, weights=None, progress=True):
        options = {"cache_dir": cache_dir, "weights": weights, "progress": progress}
        rows = self.union_rows(table)
        if rows is None:
            log.warning("a run's frames are not all in the sweep's shared frame cache: computed for it alone")
            return build_frame_cache(table, encoder, size, variants, **options)
        key, _ = cache_key(encoder, self.union, size, variants, weights)
        computed_here = key not in self._caches
        if computed_here:
            self._caches[key] = build_frame_cache(self.union, encoder, size, variants, **options)
            self.computed.append({"key": key, **self._caches[key].record()})
        union = self._caches[key]
        return SharedFrameView(
            FrameTable(
                union.table.frames,
                {clip: rows[clip_rows] for clip, clip_rows in table.clip_rows.items()},
                union.table.faces,
            ),
            union.features,
            union.variants,
            union.feature_shape,
            union.nbytes,
            union.storage,
            union.seconds if computed_here else 0.0,
            run_frames=len(table),
            run_interpolated=table.interpolated,
            computed_here=computed_here,
        )

    def union_rows(self, table: FrameTable) -> np.ndarray | None:
        """The union's row of each of ``table``'s frames, or None if one is not in the union."""
        rows = [self._rows.get(_frame_key(table, row)) for row in range(len(table))]
        return None if None in rows else np.asarray(rows, np.int32)
