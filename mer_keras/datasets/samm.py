"""SAMM loader: ``SAMM/006/006_1_2/006_05562.jpg`` labelled by ``SAMM_Micro_FACS_Codes_v2.xlsx``.

The sheet opens with text rows (13 in v2) before its header; the header row is found, not assumed.
"""

from __future__ import annotations

import re
from pathlib import Path

from mer_keras.datasets.clip import DatasetError
from mer_keras.datasets.folders import check_link, dataset_root
from mer_keras.datasets.sheets import CodedDataset, load_coded, parse_int

RELEASE = "SAMM"
SHEET_PATTERN = "SAMM_Micro_FACS_Codes*.xlsx"
COLUMNS = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "Onset Frame",
    "apex": "Apex Frame",
    "offset": "Offset Frame",
    "emotion": "Estimated Emotion",
}
EMOTIONS = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise", "other")
FPS = 200.0
# A subject folder and its number; two folders with one number (6 and 006) are an error.
SUBJECT = re.compile(r"(\d+)")


def _is_subject(folder: Path) -> bool:
    return folder.is_dir() and SUBJECT.fullmatch(folder.name) is not None


def find_release_folder(root) -> Path:
    """The folder holding ``006/``…: ``root`` itself or ``SAMM/`` inside it."""
    root = dataset_root(root, "SAMM root")
    for candidate in (root, root / RELEASE):
        check_link(candidate)
        if candidate.is_dir() and any(_is_subject(p) for p in candidate.iterdir()):
            return candidate
    raise DatasetError(f"{root}: no SAMM subject folders (006/…) in it or in {RELEASE}/.")


def subject_folder(value) -> str:
    """The folder of a sheet's Subject cell: ``6`` or ``"006"`` -> ``"006"``."""
    number = parse_int(value)
    if not 1 <= number <= 999:
        raise ValueError(value)
    return f"{number:03d}"


def load_samm(root, sheet=None, frames="onset-offset", report=None, missing="error") -> list:
    """All SAMM clips coded in the sheet, subjects in order, labels = ``Estimated Emotion``.

    ``frames``, ``report`` and ``missing`` work as in :func:`~mer_keras.datasets.load_casme2`; the sheet
    (``SAMM_Micro_FACS_Codes*.xlsx``) is looked for in ``root`` and beside ``SAMM/`` when None.
    """
    return load_coded(SAMM, root, sheet, frames, report, missing)


SAMM = CodedDataset(
    name="samm",
    columns=COLUMNS,
    emotions=EMOTIONS,
    fps=FPS,
    sheet_pattern=SHEET_PATTERN,
    find_release=find_release_folder,
    subject_pattern=SUBJECT,
    subject_folder=subject_folder,
)
