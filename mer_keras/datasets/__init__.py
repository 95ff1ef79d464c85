"""Dataset loaders: each turns a folder as users have it on disk into a list of :class:`Clip`."""

from mer_keras.datasets.casme2 import load_casme2
from mer_keras.datasets.clip import Clip, DatasetError
from mer_keras.datasets.frames import FrameReadError, list_frames, read_frame, read_frames
from mer_keras.datasets.megc2019 import (
    MEGC2019_MAPPING,
    load_megc2019,
    load_megc2019_folder,
    load_megc2019_mapped,
    load_megc2019_mapped_folder,
)
from mer_keras.datasets.official_lists import identify_sheet, read_sample_list
from mer_keras.datasets.registry import LOADERS, detect_dataset, load_dataset
from mer_keras.datasets.samm import load_samm
from mer_keras.datasets.smic import load_smic

__all__ = [
    "LOADERS",
    "MEGC2019_MAPPING",
    "Clip",
    "DatasetError",
    "FrameReadError",
    "detect_dataset",
    "identify_sheet",
    "list_frames",
    "load_casme2",
    "load_dataset",
    "load_megc2019",
    "load_megc2019_folder",
    "load_megc2019_mapped",
    "load_megc2019_mapped_folder",
    "load_samm",
    "load_smic",
    "read_frame",
    "read_frames",
    "read_sample_list",
]
