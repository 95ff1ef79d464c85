"""SMIC loader: reads the release layout as users have it on disk.

``SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/image559700.bmp`` (and ``SMIC_all_cropped`` with
``reg_image*.bmp``); non-micro clips sit in a ``non_micro/`` folder of each subject, directly or
in grouping folders (``non_micro/<group>/<clip>/``): a folder holding images is a clip folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from mer_keras.datasets.clip import Clip, DatasetError
from mer_keras.datasets.folders import (
    check_link,
    clip_folders,
    dataset_root,
    entries,
    numbered_subjects,
    subfolders,
)
from mer_keras.datasets.frames import list_frames

MODALITIES = ("HS", "VIS", "NIR")
MICRO_CLASSES = ("negative", "positive", "surprise")
NON_MICRO = "non_micro"
FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
_RELEASES = ("SMIC_all_raw", "SMIC_all_cropped")
SUBJECT = re.compile(r"s(\d+)")


def _is_subject(folder: Path) -> bool:
    return folder.is_dir() and SUBJECT.fullmatch(folder.name) is not None


def find_modality_folder(root, modality="HS") -> Path:
    """The ``HS``/``VIS``/``NIR`` folder, given it, its release folder, or the folder above."""
    root = dataset_root(root, "SMIC root")
    if root.name == modality or any(_is_subject(p) for p in root.iterdir()):
        return root
    for candidate in [root / modality] + [root / r / modality for r in _RELEASES]:
        check_link(candidate)
        if candidate.is_dir():
            return candidate
    raise DatasetError(
        f"{root}: no SMIC {modality} folder found (looked for {modality}/ and "
        f"{'/, '.join(_RELEASES)}/{modality}/)."
    )


def load_smic(root, modality="HS", non_micro=True) -> list:
    """All SMIC clips of one modality as :class:`Clip` records, subjects in numeric order.

    Labels are the class folder names (``negative``, ``positive``, ``surprise``) and ``non_micro``
    for the non-micro clips (the paper's 4-class setting) when ``non_micro`` is true.
    """
    if modality not in MODALITIES:
        raise ValueError(f"`modality` must be one of {MODALITIES}. Received: modality={modality!r}")
    folder = find_modality_folder(root, modality)
    clips, folder_of = [], {}
    for subject in numbered_subjects(folder, SUBJECT).values():
        found = []
        entries(subject)  # a broken link to micro/ or non_micro/ is an error, not an absent folder
        if (subject / "micro").is_dir():
            for class_folder in subfolders(subject / "micro"):
                if class_folder.name not in MICRO_CLASSES:
                    raise DatasetError(
                        f"{class_folder}: unknown class folder {class_folder.name!r}; "
                        f"expected one of {MICRO_CLASSES}."
                    )
                found += [(clip_folder, class_folder.name) for clip_folder in clip_folders(class_folder)]
        if non_micro and (subject / NON_MICRO).is_dir():
            found += [(clip_folder, NON_MICRO) for clip_folder in clip_folders(subject / NON_MICRO)]
        for clip_folder, label in found:
            key = (subject.name, clip_folder.name)
            if key in folder_of:
                raise DatasetError(
                    f"{folder_of[key]} and {clip_folder}: two clip folders named {clip_folder.name!r} in "
                    f"subject {subject.name}; clip names must be unique within a subject."
                )
            folder_of[key] = clip_folder
            clips.append(_clip(clip_folder, subject.name, label, modality))
    if not clips:
        raise DatasetError(f"{folder}: no SMIC clips found (expected s1/micro/<class>/<clip>/ folders).")
    return clips


def _clip(folder: Path, subject: str, label: str, modality: str) -> Clip:
    return Clip(
        dataset="smic",
        subject=subject,
        clip_id=folder.name,
        label=label,
        frames=list_frames(folder),
        fps=FPS[modality],
    )
