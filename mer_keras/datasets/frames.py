"""Finding, ordering and decoding frames: the one place images are read from disk."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from mer_keras.datasets.clip import DatasetError
from mer_keras.datasets.folders import (
    IMAGE_EXTENSIONS,
    check_link,
    entries,
    is_image,
    nested_image_folder,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "FrameReadError",
    "frame_number",
    "frame_problem",
    "is_image",
    "list_frames",
    "read_frame",
    "read_frames",
    "resize_frame",
]

_NUMBER = re.compile(r"(\d+)")
# A complete JPEG ends with the end-of-image marker; some writers pad a few bytes after it.
_JPEG_START, _JPEG_END, _JPEG_TAIL = b"\xff\xd8", b"\xff\xd9", 64


class FrameReadError(DatasetError):
    """A frame file exists but cannot be decoded as an image."""


def frame_number(path) -> int:
    """The frame number in a file name: the last run of digits (``image559700.bmp`` -> 559700)."""
    numbers = _NUMBER.findall(Path(path).stem)
    if not numbers:
        raise DatasetError(f"{path}: no frame number in the file name.")
    return int(numbers[-1])


def list_frames(folder) -> tuple:
    """Image files of a clip folder ordered by frame number (never lexically: 999 < 1000).

    A broken link (frame or folder) is an error, and so is a subfolder with images: the frames of
    one clip are the images directly in its folder (see :mod:`mer_keras.datasets.folders`).
    """
    folder = Path(folder)
    check_link(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: clip folder not found.")
    images = [p for p in entries(folder) if p.is_file() and is_image(p)]
    nested = nested_image_folder(folder)
    if nested is not None:
        subfolder, image = nested
        if images:
            raise DatasetError(
                f"{folder}: clip folder holds image files and also a subfolder with images ({subfolder}, "
                f"e.g. {image.name}); a clip's frames sit directly in its folder: move or remove {subfolder}."
            )
        raise DatasetError(
            f"{folder}: clip folder holds no image files, only subfolders with images ({subfolder}, e.g. "
            f"{image.name}); a clip's frames sit directly in its folder."
        )
    if not images:
        raise DatasetError(f"{folder}: clip folder holds no image files.")
    images.sort(key=lambda p: (frame_number(p), p.name))
    numbers = [frame_number(p) for p in images]
    counts = Counter(numbers)
    duplicates = sorted(n for n, count in counts.items() if count > 1)
    if duplicates:
        raise DatasetError(f"{folder}: several images carry frame number(s) {duplicates[:5]}.")
    return tuple(str(p) for p in images)


def _as_hw(size):
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def read_frame(path, size=None) -> np.ndarray:
    """Decode one frame to RGB uint8 (grey frames become three equal channels).

    ``size`` is an int (square) or ``(height, width)``; None keeps the file's size.
    """
    path = str(path)
    if not os.path.isfile(path):
        if os.path.islink(path):
            raise FrameReadError(f"{path}: broken symbolic link to {os.readlink(path)} (frame not found).")
        raise FrameReadError(f"{path}: frame file not found.")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise FrameReadError(f"{path}: cannot decode the image (corrupt or not an image).")
    return resize_frame(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), size)


def resize_frame(image: np.ndarray, size=None) -> np.ndarray:
    """``image`` at ``size`` (int or ``(height, width)``; None or equal: unchanged, same array).

    INTER_AREA when shrinking (no aliasing), INTER_LINEAR otherwise: every frame the package
    reads (dataset frames, video frames of a recording) is resized by this one rule.
    """
    hw = _as_hw(size)
    if hw is not None and image.shape[:2] != hw:
        shrink = hw[0] * hw[1] < image.shape[0] * image.shape[1]
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        image = cv2.resize(image, (hw[1], hw[0]), interpolation=interpolation)
    return image


def read_frames(paths, size=None) -> np.ndarray:
    """Decode several frames into one ``(T, H, W, 3)`` uint8 array."""
    return np.stack([read_frame(p, size) for p in paths])


def frame_problem(path):
    """Why the frame file at ``path`` cannot be read, or None when it decodes whole.

    Beyond :func:`read_frame` (which OpenCV lets through for a truncated JPEG, filling the missing
    rows with grey), a JPEG must end with its end-of-image marker.
    """
    path = str(path)
    try:
        check_link(path)
    except DatasetError:
        return f"broken symbolic link to {os.readlink(path)}"
    if not os.path.isfile(path):
        return "frame file not found"
    size = os.path.getsize(path)
    if size == 0:
        return "zero-byte file"
    try:
        read_frame(path)
    except FrameReadError:
        return "cannot decode the image (corrupt, truncated or not an image)"
    with open(path, "rb") as f:
        start = f.read(2)
        f.seek(max(0, size - _JPEG_TAIL))
        tail = f.read()
    if start == _JPEG_START and _JPEG_END not in tail:
        return "truncated JPEG (no end-of-image marker): OpenCV fills the missing part with grey"
    return None
