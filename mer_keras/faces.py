"""Faces: MTCNN detection, one crop or alignment per clip (``--face none|crop|align``), landmark regions.

A clip gets ONE geometric transform, found on its first few frames (median of their detections,
so the crop does not jitter) and applied to every frame, so that frame-to-frame motion, the
signal of a micro-expression, is left exactly as recorded.

- ``none``: the whole frame, resized to the output size (no detector runs).
- ``crop``: the face box, enlarged by ``margin`` of its longer side on each side and made square
  around its centre. Where the square leaves the frame it is padded, not clipped, so the face
  stays centred and the scale stays that of the box (``BORDER_MODE``: edge pixels repeated).
- ``align``: a similarity transform (rotation, uniform scale, translation) that puts the two eyes
  exactly on ``ALIGN_TEMPLATE`` (eyes level, fixed inter-ocular distance). Only the eyes are used:
  nose and mouth positions vary with a person's proportions and, in a five-point least-squares
  fit, would pull the eyes off their targets.

No face in any of the first frames: a ``FaceNotFoundWarning`` naming the clip and the fallback,
the whole frame resized exactly as ``none`` (``found=False``, so a run can count such clips).

Coordinates are continuous pixels: pixel (row i, column j) covers [j, j+1) x [i, i+1), its centre
is (j + 0.5, i + 0.5). ``FaceTransform.matrix`` maps source pixels to output coordinates as
fractions of the output side (the unit square), so one transform serves every output size.
MTCNN's "left" and "right" are the image's left and right (its ``left_eye`` is the subject's
right eye).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer_keras.datasets.frames import read_frame, resize_frame

FACE_MODES = ("none", "crop", "align")
FACE_FORMAT = 1  # bump when the geometry or the resampling of apply_face changes (part of key())
DEFAULT_MARGIN = 0.2  # crop: added on each side, as a fraction of the face box's longer side
MAX_MARGIN = 1.0
DETECT_FRAMES = 3  # a clip's transform comes from its first frames
# Landmark order everywhere in this module (MTCNN's five keypoints; left/right as seen in the image).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# align: where the eyes go, (x, y) as fractions of the output side. Inter-ocular distance 0.30 of the
# side: brows (about 0.3-0.4 of it above the eyes) and chin (about 1.8 below) stay inside.
ALIGN_TEMPLATE = {"left_eye": (0.35, 0.38), "right_eye": (0.65, 0.38)}
BORDER_MODE = cv2.BORDER_REPLICATE  # output pixels from outside the frame repeat its edge
PRESHRINK_BELOW = 2.0 / 3.0  # shrinking more than 1.5x: INTER_AREA first, then the warp (no aliasing)

# Detection. MTCNN's defaults are 0.6 / 0.7 / 0.8 for its P-, R- and O-Net stages; the last two are
# lowered because a clip holds one face and only the most confident box is kept. With the smoothing
# below, MTCNN finds the face on 153 of the 172 first frames of the built-in synthetic dataset (its
# plain defaults: 121). Below an O-Net score of 0.7 the eye landmarks of synthetic faces were off by
# up to 6-9 px (128 px frames), so MIN_CONFIDENCE (the O-Net threshold, the confidence reported) is 0.7.
PNET_THRESHOLD, RNET_THRESHOLD = 0.6, 0.5
MIN_CONFIDENCE = 0.7
DETECT_SMOOTHING = 1.0  # Gaussian sigma (pixels) on the detector's copy only: sensor noise hurts MTCNN
DETECT_MAX_SIDE = 640  # larger frames are shrunk for detection (SAMM: 2040x1088), results scaled back
SAME_FACE = 0.5  # a frame's face is combined if its box centre is within this share of the best box's side

# Landmark focus regions: boxes (u0, v0, u1, v1) around each named landmark, in units of the
# inter-ocular distance, u along the eye axis (image left to right), v across it (downwards).
# Where micro-expressions move the face (the paper's Figure 4: "eyes, eyebrows, nose wings,
# corners of the mouth").
LANDMARK_REGIONS = {
    "brows_and_eyes": (("left_eye", "right_eye"), (-0.5, -0.7, 0.5, 0.3)),
    "nose_wings": (("nose",), (-0.45, -0.3, 0.45, 0.3)),
    "mouth_corners": (("mouth_left", "mouth_right"), (-0.25, -0.25, 0.25, 0.25)),
}


class FaceNotFoundWarning(UserWarning):
    """A clip asked for ``crop`` or ``align`` but MTCNN found no face: it falls back to the whole frame."""


def check_face_mode(mode) -> str:
    """``mode`` if it is one of ``FACE_MODES``, else a ValueError naming ``--face``."""
    if not isinstance(mode, str) or mode not in FACE_MODES:
        raise ValueError(f"`--face` must be one of {', '.join(FACE_MODES)}. Received: {mode!r}")
    return mode


def check_margin(margin) -> float:
    """``margin`` as a float in [0, ``MAX_MARGIN``] (a share of the face box's longer side, each side)."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float, np.integer, np.floating)):
        raise TypeError(f"`--face-margin` must be a number in [0, {MAX_MARGIN}]. Received: {margin!r}")
    if not (math.isfinite(margin) and 0.0 <= margin <= MAX_MARGIN):
        raise ValueError(
            f"`--face-margin` must be in [0, {MAX_MARGIN}] (share of the face box on each "
            f"side). Received: {margin!r}"
        )
    return float(margin)


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"`size` (output side in pixels) must be a positive int. Received: {size!r}")
    return int(size)


def _check_count(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1. Received: {value!r}")
    return int(value)


def _check_confidence(value) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0.0 < value <= 1.0
    ):
        raise ValueError(f"`min_confidence` must be a number in (0, 1]. Received: {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class Detection:
    """One face found by MTCNN, in continuous pixels of the image it was found in."""

    box: tuple  # (x0, y0, x1, y1)
    landmarks: tuple  # five (x, y), in LANDMARK_NAMES order
    confidence: float

    @property
    def side(self) -> float:
        """The box's longer side."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def centre(self) -> tuple:
        return (0.5 * (self.box[0] + self.box[2]), 0.5 * (self.box[1] + self.box[3]))


_detector = None
_detector_lock = threading.Lock()


def face_detector():
    """The process's one MTCNN detector, built on first use (it loads three TensorFlow models)."""
    global _detector
    with _detector_lock:
        if _detector is None:
            from mtcnn import MTCNN

            _detector = MTCNN()
        return _detector


def _check_image(image, what="image") -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
        raise ValueError(
            f"{what} must be an RGB uint8 array (H, W, 3). Received: shape {image.shape}, dtype {image.dtype}"
        )
    return image


def detect_faces(images, min_confidence=MIN_CONFIDENCE) -> list:
    """The most confident face of each RGB uint8 image (a ``Detection``), or None where there is none.

    The detector sees a copy smoothed by ``DETECT_SMOOTHING`` and, above ``DETECT_MAX_SIDE``, shrunk;
    coordinates are those of the images as given. Images of one shape go through MTCNN as one batch.
    """
    min_confidence = _check_confidence(min_confidence)
    images = [_check_image(image) for image in images]
    if not images:
        return []
    prepared, scales = [], []
    for image in images:
        height, width = image.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scales.append((size[0] / width, size[1] / height))
        else:
            scales.append((1.0, 1.0))
        prepared.append(cv2.GaussianBlur(image, (0, 0), DETECT_SMOOTHING) if DETECT_SMOOTHING else image)
    rows = face_detector().detect_faces(
        prepared,
        output_type="numpy",
        box_format="xyxy",
        fit_to_image=False,
        threshold_pnet=PNET_THRESHOLD,
        threshold_rnet=min(RNET_THRESHOLD, min_confidence),
        threshold_onet=min_confidence,
    )
    rows = np.asarray(rows, np.float64).reshape(-1, np.shape(rows)[-1] if np.size(rows) else 16)
    found = []
    for index, (sx, sy) in enumerate(scales):
        mine = rows[rows[:, 0] == index] if rows.shape[1] >= 16 else rows[:0]
        mine = mine[mine[:, 5] >= min_confidence]
        if not len(mine):
            found.append(None)
            continue
        # Row layout: image, x0, y0, x1, y1, confidence, five landmark x, then five landmark y, in
        # pixel-index coordinates (pixel centres at integers): + 0.5 makes them continuous.
        best = mine[np.argmax(mine[:, 5])]
        box = ((best[1] + 0.5) / sx, (best[2] + 0.5) / sy, (best[3] + 0.5) / sx, (best[4] + 0.5) / sy)
        landmarks = tuple(((best[6 + k] + 0.5) / sx, (best[11 + k] + 0.5) / sy) for k in range(5))
        found.append(
            Detection(
                box=tuple(float(v) for v in box),
                landmarks=tuple((float(x), float(y)) for x, y in landmarks),
                confidence=float(best[5]),
            )
        )
    return found


def combine_detections(detections) -> tuple:
    """``(box, landmarks, confidence, used)``: the median over the frames' faces that agree with the
    most confident one (box centres within ``SAME_FACE`` of its side); None entries are skipped."""
    present = [d for d in detections if d is not None]
    if not present:
        raise ValueError("combine_detections needs at least one Detection. Received: none")
    best = max(present, key=lambda d: d.confidence)
    (bx, by), reach = best.centre, SAME_FACE * best.side
    agree = [d for d in present if math.hypot(d.centre[0] - bx, d.centre[1] - by) <= reach]
    box = np.median([d.box for d in agree], axis=0)
    landmarks = np.median([d.landmarks for d in agree], axis=0)
    return (
        tuple(float(v) for v in box),
        tuple((float(x), float(y)) for x, y in landmarks),
        best.confidence,
        len(agree),
    )


# ---------------------------------------------------------------------------------------------
# Geometry


def whole_frame_matrix(frame_size) -> np.ndarray:
    """2x3 matrix taking an ``(height, width)`` frame onto the unit square (the ``none`` geometry)."""
    height, width = frame_size
    return np.array([[1.0 / width, 0.0, 0.0], [0.0, 1.0 / height, 0.0]])


def crop_matrix(box, margin=DEFAULT_MARGIN) -> np.ndarray:
    """2x3 matrix taking the square around ``box`` (x0, y0, x1, y1), ``margin`` of its longer side
    added on each side, onto the unit square: a scale and a translation."""
    margin = check_margin(margin)
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    if not side > 0:
        raise ValueError(f"A face box needs x1 > x0 or y1 > y0. Received: {box!r}")
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    return np.array([[1.0 / side, 0.0, 0.5 - cx / side], [0.0, 1.0 / side, 0.5 - cy / side]])


def align_matrix(landmarks) -> np.ndarray:
    """2x3 similarity matrix putting the two eyes of ``landmarks`` (LANDMARK_NAMES order) on
    ``ALIGN_TEMPLATE`` in the unit square: eyes level, inter-ocular distance fixed."""
    points = np.asarray(landmarks, np.float64)
    left, right = points[0], points[1]
    target_left = np.array(ALIGN_TEMPLATE["left_eye"])
    target_right = np.array(ALIGN_TEMPLATE["right_eye"])
    eyes, target = right - left, target_right - target_left
    distance = math.hypot(*eyes)
    if not distance > 0:
        raise ValueError(
            f"Alignment needs two distinct eye positions. Received: {left.tolist()}, {right.tolist()}"
        )
    scale = math.hypot(*target) / distance
    angle = math.atan2(target[1], target[0]) - math.atan2(eyes[1], eyes[0])
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    linear = np.array([[c, -s], [s, c]])
    return np.hstack([linear, (target_left - linear @ left)[:, None]])


def _round_nested(values, digits):
    return tuple(
        _round_nested(v, digits) if isinstance(v, (list, tuple, np.ndarray)) else round(float(v), digits)
        for v in values
    )


@dataclass(frozen=True)
class FaceTransform:
    """One clip's face geometry: what ``apply_face`` does to each of its frames. JSON-able, hashable.

    ``matrix`` maps the source frame's continuous pixels onto the output's unit square (None for
    ``none``); ``box``/``landmarks`` (source pixels) and ``confidence`` come from MTCNN; ``detections``
    counts the first frames whose face was combined; ``margin`` is the crop's.
    """

    mode: str
    found: bool = False
    frame_size: tuple | None = None  # (height, width) of the frames the geometry refers to
    matrix: tuple | None = None  # ((a, b, c), (d, e, f))
    box: tuple | None = None  # (x0, y0, x1, y1)
    landmarks: tuple | None = None  # five (x, y), LANDMARK_NAMES order
    confidence: float | None = None
    detections: int = 0
    margin: float | None = None

    def __post_init__(self):
        check_face_mode(self.mode)
        normalised = {
            "frame_size": None if self.frame_size is None else tuple(int(v) for v in self.frame_size),
            "matrix": None if self.matrix is None else _round_nested(self.matrix, 9),
            "box": None if self.box is None else _round_nested(self.box, 2),
            "landmarks": None if self.landmarks is None else _round_nested(self.landmarks, 2),
            "confidence": None if self.confidence is None else round(float(self.confidence), 4),
            "margin": None if self.margin is None else check_margin(self.margin),
            "found": bool(self.found),
            "detections": int(self.detections),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)
        shapes = {"frame_size": (2,), "matrix": (2, 3), "box": (4,), "landmarks": (5, 2)}
        for name, shape in shapes.items():
            value = getattr(self, name)
            if value is not None and np.shape(value) != shape:
                raise ValueError(f"FaceTransform.{name} must have shape {shape}. Received: {value!r}")
        if self.mode == "none" and (self.found or self.matrix is not None):
            raise ValueError(
                f"A `none` FaceTransform has no face and no matrix. Received: found={self.found}, "
                f"matrix={self.matrix!r}"
            )
        if self.mode != "none" and (self.frame_size is None or self.matrix is None):
            raise ValueError(
                f"A {self.mode!r} FaceTransform needs frame_size and matrix. Received: "
                f"frame_size={self.frame_size!r}, matrix={self.matrix!r}"
            )
        if self.found and (self.box is None or self.landmarks is None or self.confidence is None):
            raise ValueError(
                "A FaceTransform with found=True needs box, landmarks and confidence. "
                f"Received: box={self.box!r}, landmarks={self.landmarks!r}, "
                f"confidence={self.confidence!r}"
            )

    @property
    def fell_back(self) -> bool:
        """A face was asked for (``crop``/``align``) but not found: the whole frame is used."""
        return self.mode != "none" and not self.found

    def to_json(self) -> dict:
        """A plain dict (lists, floats) for config.json; ``from_json`` reads it back equal."""
        return {
            "mode": self.mode,
            "found": self.found,
            "frame_size": None if self.frame_size is None else list(self.frame_size),
            "matrix": None if self.matrix is None else [list(row) for row in self.matrix],
            "box": None if self.box is None else list(self.box),
            "landmarks": None if self.landmarks is None else [list(p) for p in self.landmarks],
            "confidence": self.confidence,
            "detections": self.detections,
            "margin": self.margin,
        }

    @classmethod
    def from_json(cls, data) -> FaceTransform:
        """The transform written by ``to_json``; unknown or missing keys are an error."""
        if not isinstance(data, dict):
            raise TypeError(f"A FaceTransform JSON form is a dict. Received: {type(data).__name__}")
        fields = set(cls.__dataclass_fields__)
        unknown = set(data) - fields
        if unknown or "mode" not in data:
            raise ValueError(
                f"FaceTransform JSON needs 'mode' and only the keys {sorted(fields)}. "
                f"Received: {sorted(data)}"
            )
        return cls(**data)

    def key(self) -> str:
        """A stable hex key of what the output pixels depend on (for the frame cache key).

        A clip that fell back and a ``none`` clip give the same pixels, hence the same key.
        """
        if self.found:
            geometry = {
                "format": FACE_FORMAT,
                "frame_size": list(self.frame_size),
                "matrix": [list(row) for row in self.matrix],
            }
        else:
            geometry = {"format": FACE_FORMAT, "whole_frame": True}
        return hashlib.sha256(json.dumps(geometry, sort_keys=True).encode()).hexdigest()[:16]

    def output_matrix(self, size) -> np.ndarray:
        """2x3 matrix from source pixels to output pixels of a ``size`` x ``size`` output (continuous)."""
        size = _check_size(size)
        if self.matrix is None:
            raise ValueError(
                "A `none` FaceTransform has no matrix (the frame is resized). Received: mode='none'"
            )
        return size * np.asarray(self.matrix, np.float64)

    def to_output(self, points, size) -> np.ndarray:
        """Source points (N, 2) mapped to output pixel coordinates of a ``size`` x ``size`` output."""
        points = np.asarray(points, np.float64).reshape(-1, 2)
        matrix = self.output_matrix(size)
        return points @ matrix[:, :2].T + matrix[:, 2]

    def output_landmarks(self, size) -> np.ndarray:
        """The five landmarks (5, 2) in output pixels; ValueError if no face was found."""
        if not self.found:
            raise ValueError(
                f"No face was found, so there are no landmarks. Received: mode={self.mode!r}, found=False"
            )
        return self.to_output(self.landmarks, size)


def face_transform(
    mode, detection=None, frame_size=None, margin=DEFAULT_MARGIN, detections=1
) -> FaceTransform:
    """The transform of ``mode`` for a combined ``detection`` (a ``Detection``) in frames of
    ``frame_size``; ``detection=None`` gives the whole-frame fallback."""
    mode = check_face_mode(mode)
    margin = check_margin(margin)
    if mode == "none":
        return FaceTransform(mode="none")
    if frame_size is None:
        raise ValueError(f"--face {mode} needs the frame size (height, width). Received: frame_size=None")
    margin_field = margin if mode == "crop" else None
    if detection is None:
        return FaceTransform(
            mode=mode,
            found=False,
            frame_size=tuple(frame_size),
            matrix=whole_frame_matrix(frame_size),
            margin=margin_field,
        )
    # Rounded first, so the matrix follows from exactly the landmarks and box that are stored.
    box, landmarks = _round_nested(detection.box, 2), _round_nested(detection.landmarks, 2)
    matrix = crop_matrix(box, margin) if mode == "crop" else align_matrix(landmarks)
    return FaceTransform(
        mode=mode,
        found=True,
        frame_size=tuple(frame_size),
        matrix=matrix,
        box=box,
        landmarks=landmarks,
        confidence=detection.confidence,
        detections=detections,
        margin=margin_field,
    )


def _clip_name(frames, name):
    if name is not None:
        return str(name)
    first = frames[0]
    if isinstance(first, (str, Path)):
        return str(Path(first).parent)
    return "clip"


def clip_face_transform(
    frames,
    mode,
    *,
    margin=DEFAULT_MARGIN,
    name=None,
    detect_frames=DETECT_FRAMES,
    min_confidence=MIN_CONFIDENCE,
) -> FaceTransform:
    """One clip's ``FaceTransform`` for ``--face mode``, from its first ``detect_frames`` frames.

    ``frames``: frame paths (read at their own size) or RGB uint8 arrays, in temporal order. ``name``
    names the clip in messages (default: the first frame's folder). Without a face in any of those
    frames: a ``FaceNotFoundWarning`` and the whole-frame fallback (``found=False``).
    """
    mode = check_face_mode(mode)
    margin = check_margin(margin)
    detect_frames = _check_count("detect_frames", detect_frames)
    min_confidence = _check_confidence(min_confidence)
    if mode == "none":
        return FaceTransform(mode="none")
    frames = list(frames)
    if not frames:
        raise ValueError(f"{name or 'clip'}: --face {mode} needs at least one frame. Received: 0 frames")
    name = _clip_name(frames, name)
    images = [
        read_frame(f) if isinstance(f, (str, Path)) else _check_image(f, f"{name}: frame {i}")
        for i, f in enumerate(frames[:detect_frames])
    ]
    sizes = sorted({image.shape[:2] for image in images})
    if len(sizes) > 1:
        raise ValueError(f"{name}: the frames of a clip must share one size. Received: {sizes}")
    detected = detect_faces(images, min_confidence)
    if all(d is None for d in detected):
        warnings.warn(
            f"{name}: MTCNN found no face (confidence >= {min_confidence}) in the first "
            f"{len(images)} frame(s); --face {mode} falls back to the whole frame, resized.",
            FaceNotFoundWarning,
            stacklevel=2,
        )
        return face_transform(mode, None, sizes[0], margin)
    box, landmarks, confidence, used = combine_detections(detected)
    return face_transform(mode, Detection(box, landmarks, confidence), sizes[0], margin, detections=used)


# ---------------------------------------------------------------------------------------------
# Applying a transform


def apply_face(image, transform: FaceTransform, size) -> np.ndarray:
    """``(size, size, 3)`` uint8: ``image`` (RGB uint8, the clip's frame size) under ``transform``.

    Found faces go through one ``cv2.warpAffine`` (bilinear, ``BORDER_MODE``), after an INTER_AREA
    shrink when the warp would shrink more than 1/``PRESHRINK_BELOW``; ``none`` and fallbacks are
    resized like ``read_frame``.
    """
    image, size = _check_image(image), _check_size(size)
    if not isinstance(transform, FaceTransform):
        raise TypeError(f"`transform` must be a FaceTransform. Received: {type(transform).__name__}")
    if transform.frame_size is not None and tuple(image.shape[:2]) != transform.frame_size:
        raise ValueError(
            f"The frame is {image.shape[0]}x{image.shape[1]} but the face transform was found "
            f"on {transform.frame_size[0]}x{transform.frame_size[1]} frames. Received: "
            f"shape {image.shape}"
        )
    if not transform.found:
        return resize_frame(image, size)
    matrix = transform.output_matrix(size)
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))  # output pixels per source pixel
    source = image
    if scale < PRESHRINK_BELOW:
        height, width = image.shape[:2]
        shrunk = (max(1, round(width * scale)), max(1, round(height * scale)))
        source = cv2.resize(image, shrunk, interpolation=cv2.INTER_AREA)
        matrix = matrix @ np.diag([width / shrunk[0], height / shrunk[1], 1.0])
    # warpAffine indexes pixels by their centres: continuous = index + 0.5 on both sides.
    indexed = matrix.copy()
    indexed[:, 2] += 0.5 * (matrix[:, 0] + matrix[:, 1]) - 0.5
    return cv2.warpAffine(source, indexed, (size, size), flags=cv2.INTER_LINEAR, borderMode=BORDER_MODE)


def read_face_frames(paths, transform: FaceTransform, size) -> np.ndarray:
    """A clip's frames read and put through ``transform``: ``(T, size, size, 3)`` uint8."""
    return np.stack([apply_face(read_frame(p), transform, size) for p in paths])


# ---------------------------------------------------------------------------------------------
# Landmark focus regions


def landmark_mask(landmarks, shape) -> np.ndarray:
    """Bool ``(H, W)`` mask of ``LANDMARK_REGIONS`` around five landmarks given in pixels of an
    ``(H, W)`` image (LANDMARK_NAMES order); boxes follow the eye axis, sized by the eye distance."""
    height, width = int(shape[0]), int(shape[1])
    points = np.asarray(landmarks, np.float64)
    if points.shape != (5, 2) or not np.all(np.isfinite(points)):
        raise ValueError(f"`landmarks` must be five finite (x, y) points. Received: shape {points.shape}")
    eye_axis = points[1] - points[0]
    distance = math.hypot(*eye_axis)
    if not distance > 0:
        raise ValueError(f"The two eyes must be distinct points. Received: {points[:2].tolist()}")
    along = eye_axis / distance
    across = np.array([-along[1], along[0]])  # image y points down, so this points down the face
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5  # pixel centres
    mask = np.zeros((height, width), bool)
    index = {name: k for k, name in enumerate(LANDMARK_NAMES)}
    for anchors, (u0, v0, u1, v1) in LANDMARK_REGIONS.values():
        for anchor in anchors:
            dx, dy = xs - points[index[anchor], 0], ys - points[index[anchor], 1]
            u = (dx * along[0] + dy * along[1]) / distance
            v = (dx * across[0] + dy * across[1]) / distance
            mask |= (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
    return mask


def face_focus_mask(transform: FaceTransform, size) -> np.ndarray:
    """``landmark_mask`` of a found face on the ``size`` x ``size`` output of ``apply_face``.

    Without a face (``none``, fallback) there are no landmarks: ValueError, and the caller uses the
    fixed layout (``mer_keras.gradcam.focus.face_layout_mask``).
    """
    size = _check_size(size)
    return landmark_mask(transform.output_landmarks(size), (size, size))


def describe_landmark_regions() -> dict:
    """What ``landmark_mask`` draws, for focus.json."""
    return {
        "kind": "MTCNN landmarks (five points) after the face transform",
        "units": "inter-ocular distance; u along the eye axis, v across it (down)",
        "boxes_around_landmarks": {
            name: {"landmarks": list(anchors), "box_u0_v0_u1_v1": list(box)}
            for name, (anchors, box) in LANDMARK_REGIONS.items()
        },
    }
