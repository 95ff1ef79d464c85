"""Focus score: the share of a CAM's mass inside the face regions that move, and region masks.

Synthetic clips carry a mask of the regions their action units move. Real datasets carry none,
so ``face_layout_mask`` draws a documented fixed layout of a frontal face (brows and eyes, nose
wings, mouth) inside a face box, by default the whole frame (cropped releases: SMIC_all_cropped,
CASME II Cropped). OpenCV's Haar face/eye cascades would place it per frame, but opencv-python
5.0 ships neither ``cv2.CascadeClassifier`` nor the cascade files, and its DNN face detector
needs a model file we cannot bundle.
"""

from __future__ import annotations

import numpy as np

# Boxes (x0, y0, x1, y1) as fractions of the face box: where micro-expressions move the face
# (the paper's Figure 4: "eyes, eyebrows, nose wings, corners of the mouth").
FACE_LAYOUT = {
    "brows_and_eyes": (0.12, 0.20, 0.88, 0.45),
    "nose_wings": (0.32, 0.50, 0.68, 0.68),
    "mouth": (0.25, 0.68, 0.75, 0.88),
}
WHOLE_FRAME = (0.0, 0.0, 1.0, 1.0)


def check_face_box(face_box) -> tuple:
    """``(x0, y0, x1, y1)`` fractions of the frame, 0 <= x0 < x1 <= 1 and the same for y."""
    try:
        x0, y0, x1, y1 = (float(v) for v in face_box)
    except (TypeError, ValueError):
        raise ValueError(
            f"`face_box` must be 4 numbers x0, y0, x1, y1 (fractions of the frame). Received: {face_box!r}"
        ) from None
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise ValueError(f"`face_box` needs 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1. Received: {face_box!r}")
    return x0, y0, x1, y1


def face_layout_mask(shape, face_box=WHOLE_FRAME) -> np.ndarray:
    """Bool ``(H, W)`` mask of the ``FACE_LAYOUT`` boxes inside ``face_box`` of an ``(H, W)`` frame."""
    height, width = int(shape[0]), int(shape[1])
    fx0, fy0, fx1, fy1 = check_face_box(face_box)
    mask = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in FACE_LAYOUT.values():
        left, right = fx0 + x0 * (fx1 - fx0), fx0 + x1 * (fx1 - fx0)
        top, bottom = fy0 + y0 * (fy1 - fy0), fy0 + y1 * (fy1 - fy0)
        mask[
            int(round(top * height)) : int(round(bottom * height)),
            int(round(left * width)) : int(round(right * width)),
        ] = True
    return mask


def describe_layout(face_box=WHOLE_FRAME) -> dict:
    """What ``face_layout_mask`` draws, for focus.json."""
    return {
        "kind": "fixed face layout (no detector: opencv-python 5.0 has no Haar cascades)",
        "face_box": list(check_face_box(face_box)),
        "boxes_in_face_box": FACE_LAYOUT,
    }


def focus_score(cam, mask) -> float:
    """Share of the (non-negative) CAM's mass inside ``mask``; NaN for an empty mask or an all-zero CAM."""
    cam, mask = np.asarray(cam, np.float64), np.asarray(mask, bool)
    if cam.shape != mask.shape:
        raise ValueError(
            f"CAM and mask must have the same (H, W) shape. Received: cam {cam.shape}, mask {mask.shape}"
        )
    if np.any(cam < 0) or not np.all(np.isfinite(cam)):
        raise ValueError(f"A CAM must be finite and >= 0 (ReLU'd). Received: min {np.nanmin(cam):.3g}")
    total = cam.sum()
    if not mask.any() or total <= 0:
        return float("nan")
    return float(cam[mask].sum() / total)


def frame_scores(cams, masks) -> np.ndarray:
    """Focus of every map: one per sample, or per frame for clip samples (NaN where undefined)."""
    return np.array(
        [
            focus_score(cam, mask)
            for sample_cams, mask in zip(cams, masks)
            for cam in np.reshape(sample_cams, (-1, *np.shape(mask)))
        ]
    )


def layer_score(cams, masks) -> tuple[float, int]:
    """``(mean focus, maps with a score)`` over samples (and frames); undefined ones left out (NaN if all)."""
    scores = frame_scores(cams, masks)
    defined = scores[np.isfinite(scores)]
    return (float(defined.mean()) if defined.size else float("nan")), int(defined.size)


def chance_level(masks) -> float:
    """The focus score of a uniform map: mean area share of the non-empty masks."""
    shares = [np.mean(m) for m in masks if np.any(m)]
    return float(np.mean(shares)) if shares else float("nan")
