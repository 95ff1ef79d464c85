"""Deterministic frame variants (flip, small rotations) whose frozen features can be cached.

Random per-step pixel augmentation cannot pass through a cache of frozen features, so each
training sample draws one of a few fixed variants instead; a window uses one variant for all
of its frames, so augmentation is consistent over time.
"""

from __future__ import annotations

import cv2
import numpy as np


def variant_names(flip: bool = True, rotation: float = 0.0) -> tuple:
    """``identity`` first, then ``flip``, ``rotate+A`` and ``flip,rotate-A``.

    Four variants at most: each one costs a full pass of the frozen backbone over every frame.
    """
    names = ["identity"]
    if flip:
        names.append("flip")
    if rotation:
        names.append(f"rotate+{rotation:g}")
        names.append(f"{'flip,' if flip else ''}rotate-{rotation:g}")
    return tuple(names)


def apply_variant(image: np.ndarray, name: str) -> np.ndarray:
    """The variant ``name`` of an ``(H, W, 3)`` image (rotation about the centre, edges reflected)."""
    out = image
    for step in name.split(","):
        if step == "identity":
            continue
        if step == "flip":
            out = out[:, ::-1]
        elif step.startswith("rotate"):
            angle = float(step[len("rotate") :])
            height, width = out.shape[:2]
            matrix = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), angle, 1.0)
            out = cv2.warpAffine(
                np.ascontiguousarray(out),
                matrix,
                (width, height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT_101,
            )
        else:
            raise ValueError(f"Unknown frame variant step {step!r}. Received: {name!r}")
    return np.ascontiguousarray(out)
