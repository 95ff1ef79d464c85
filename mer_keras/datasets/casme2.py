"""CASME II loader: the release folders as users have them, labelled by the coding sheet.

``CASME2-RAW/sub01/EP02_01f/img46.jpg`` (also ``CASME2_RAW_selected/`` and
``Cropped/sub01/EP02_01f/reg_img46.jpg``) next to ``CASME2-coding-20140508.xlsx``.
"""

from __future__ import annotations

import re
from pathlib import Path

from mer_keras.datasets.clip import DatasetError
from mer_keras.datasets.folders import check_link, dataset_root
from mer_keras.datasets.sheets import CodedDataset, load_coded, parse_int

# Tried in this order when the root holds several releases: full frames first (the paper
# feeds uncropped frames); pass a release folder itself as `root` to choose another.
RELEASES = ("CASME2-RAW", "CASME2_RAW_selected", "Cropped")
SHEET_PATTERN = "CASME2-coding-*.xlsx"
COLUMNS = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "OnsetFrame",
    "apex": "ApexFrame",
    "offset": "OffsetFrame",
    "emotion": "Estimated Emotion",
}
EMOTIONS = ("happiness", "disgust", "repression", "surprise", "fear", "sadness", "others")
FPS = 200.0
# A subject folder and its number; two folders with one number (sub1, sub01) are an error.
SUBJECT = re.compile(r"sub(\d+)")


def _is_subject(folder: Path) -> bool:
    return folder.is_dir() and SUBJECT.fullmatch(folder.name) is not None


def find_release_folder(root) -> Path:
    """The folder holding ``sub01/``…: ``root`` itself or one of :data:`RELEASES` inside it."""
    root = dataset_root(root, "CASME II root")
    for candidate in (root, *(root / name for name in RELEASES)):
        check_link(candidate)
        if candidate.is_dir() and any(_is_subject(p) for p in candidate.iterdir()):
            return candidate
    raise DatasetError(f"{root}: no CASME II subject folders (sub01/…) in it or in {', '.join(RELEASES)}/.")


def subject_folder(value) -> str:
    """The folder of a sheet's Subject cell: ``1``, ``"01"`` or ``"sub01"`` -> ``"sub01"``."""
    text = str(value).strip()
    number = parse_int(text[3:] if text.lower().startswith("sub") else value)
    if number < 1:
        raise ValueError(value)
    return f"sub{number:02d}"


def load_casme2(root, sheet=None, frames="onset-offset", report=None, missing="error") -> list:
    """All CASME II clips coded in the sheet, subjects in order, labels = ``Estimated Emotion``.

    ``frames="onset-offset"`` keeps OnsetFrame..OffsetFrame (by the number in the file name),
    ``"all"`` the whole folder; ``onset``/``apex``/``offset`` index the kept frames. The sheet
    (``CASME2-coding-*.xlsx``) is looked for in ``root`` and beside the release folder when
    None. Patched or skipped rows are appended to ``report`` (a list) and logged. A row whose clip
    folder is absent is an error, or with ``missing="warn"`` reported and left out.
    """
    return load_coded(CASME2, root, sheet, frames, report, missing)


CASME2 = CodedDataset(
    name="casme2",
    columns=COLUMNS,
    emotions=EMOTIONS,
    fps=FPS,
    sheet_pattern=SHEET_PATTERN,
    find_release=find_release_folder,
    subject_pattern=SUBJECT,
    subject_folder=subject_folder,
)
