"""Dataset loaders: each turns a folder as users have it on disk into a list of :class:`Clip`."""

from mer_keras.datasets.clip import Clip, DatasetError
from mer_keras.datasets.frames import FrameReadError, list_frames, read_frame, read_frames
from mer_keras.datasets.registry import LOADERS, detect_dataset, load_dataset
from mer_keras.datasets.smic import load_smic

__all__ = [
    "Clip",
    "DatasetError",
    "FrameReadError",
    "LOADERS",
    "detect_dataset",
    "list_frames",
    "load_dataset",
    "load_smic",
    "read_frame",
    "read_frames",
]
