"""Finding, ordering and decoding frames: the one place images are read from disk."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from mer_keras.datasets.clip import DatasetError

IMAGE_EXTENSIONS = frozenset({".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff"})
_NUMBER = re.compile(r"(\d+)")


class FrameReadError(DatasetError):
    """A frame file exists but cannot be decoded as an image."""


def is_image(path) -> bool:
    """True for image files by extension; junk such as ``Thumbs.db`` or ``.DS_Store`` is not."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def frame_number(path) -> int:
    """The frame number in a file name: the last run of digits (``image559700.bmp`` -> 559700)."""
    numbers = _NUMBER.findall(Path(path).stem)
    if not numbers:
        raise DatasetError(f"{path}: no frame number in the file name.")
    return int(numbers[-1])


def list_frames(folder) -> tuple:
    """Image files of a clip folder ordered by frame number (never lexically: 999 < 1000)."""
    folder = Path(folder)
    images = [p for p in folder.iterdir() if p.is_file() and is_image(p)]
    if not images:
        raise DatasetError(f"{folder}: clip folder holds no image files.")
    images.sort(key=lambda p: (frame_number(p), p.name))
    numbers = [frame_number(p) for p in images]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
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
