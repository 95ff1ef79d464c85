"""Coding sheets (CASME II, SAMM): find the xlsx, read its table, turn its rows into clips.

Errors and report entries name the sheet and the row as Excel numbers it, so a user can open
the file and look. Rows the loader patches or skips go to ``report`` (a list of dicts with keys
``sheet``, ``row``, ``clip``, ``issue``) and to the ``mer_keras.datasets`` logger.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mer_keras.datasets.clip import Clip, DatasetError
from mer_keras.datasets.folders import check_link, numbered_subjects, subfolders
from mer_keras.datasets.frames import frame_number, list_frames

logger = logging.getLogger("mer_keras.datasets")

FRAME_MODES = ("onset-offset", "all")
# What a row whose clip folder is absent does: raise, or get reported and left out.
MISSING_MODES = ("error", "warn")
# Keys the loaders map to their sheet's spelling of each column.
CODED_FIELDS = ("subject", "filename", "onset", "apex", "offset", "emotion")
NO_APEX = "/"
_HEADER_SEARCH_ROWS = 100
# How the error for an ambiguous or absent sheet says to name one.
SHEET_OPTION = "--sheet PATH (sheet= in Python)"


def check_options(frames, report, missing="error") -> None:
    """Argument checks shared by the sheet loaders."""
    if frames not in FRAME_MODES:
        raise ValueError(f"`frames` must be one of {FRAME_MODES}. Received: frames={frames!r}")
    if report is not None and not isinstance(report, list):
        raise ValueError(f"`report` must be None or a list. Received: report={report!r}")
    if missing not in MISSING_MODES:
        raise ValueError(f"`missing` must be one of {MISSING_MODES}. Received: missing={missing!r}")


def note(report, sheet, row, clip, issue, level=logging.WARNING) -> None:
    """Record a patched or skipped row: appended to ``report`` (if a list) and logged."""
    if report is not None:
        sheet_name = None if sheet is None else str(sheet)
        report.append({"sheet": sheet_name, "row": row, "clip": clip, "issue": issue})
    where = "" if sheet is None else f"{sheet}{'' if row is None else f' row {row}'}: "
    logger.log(level, "%s%s: %s", where, clip, issue)


def find_sheet(folders, pattern: str) -> Path:
    """The one file matching ``pattern`` in the first of ``folders`` holding any."""
    folders = list(dict.fromkeys(Path(f) for f in folders))
    for folder in folders:
        matches = sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))
        for match in matches:
            check_link(match)
        matches = [p for p in matches if p.is_file()]
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise DatasetError(
                f"{folder}: several sheets match {pattern!r} ({names}); pass {SHEET_OPTION} to choose one."
            )
        if matches:
            return matches[0]
    searched = ", ".join(str(f) for f in folders)
    raise DatasetError(f"No coding sheet matching {pattern!r} found in {searched}; pass {SHEET_OPTION}.")


def _normal(name) -> str:
    """Header names compared without case or spaces: ``Onset Frame`` == ``OnsetFrame``."""
    return "".join(str(name).split()).lower()


def is_blank(value) -> bool:
    """An empty cell: None, NaN (Excel error values) or only spaces."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def read_sheet(path, columns) -> pd.DataFrame:
    """The table of the first worksheet tab, ``columns`` only, indexed by Excel row number.

    The header row is the first naming both ``columns[0]`` and ``columns[1]`` (text rows may
    come before it); blank header columns and wholly blank rows are left out. Only the first tab
    is read (the released sheets hold their table there); the error names the tabs found.
    """
    path = Path(path)
    check_link(path)
    if not path.is_file():
        raise DatasetError(f"{path}: coding sheet not found.")
    try:
        with pd.ExcelFile(path, engine="openpyxl") as book:
            tabs = list(book.sheet_names)
            cells = book.parse(0, header=None, dtype=object, keep_default_na=False)
    except Exception as error:  # openpyxl raises several types for a non-xlsx file
        raise DatasetError(f"{path}: cannot read the sheet as xlsx ({error}).") from error
    keys = [_normal(c) for c in columns[:2]]
    header = next(
        (
            i
            for i in range(min(len(cells), _HEADER_SEARCH_ROWS))
            if all(k in {_normal(v) for v in cells.iloc[i]} for k in keys)
        ),
        None,
    )
    if header is None:
        listed = ", ".join(repr(t) for t in tabs)
        raise DatasetError(
            f"{path}: no header row naming {columns[0]!r} and {columns[1]!r} in the first "
            f"{_HEADER_SEARCH_ROWS} rows of its first worksheet tab {tabs[0]!r}; only the first tab is "
            f"read (tabs found: {listed}): move the table to the first tab."
        )
    names = [None if is_blank(v) else str(v).strip() for v in cells.iloc[header]]
    found = {}
    for position, name in enumerate(names):
        if name is not None:
            found.setdefault(_normal(name), position)
    for column in columns:
        if _normal(column) not in found:
            listed = ", ".join(repr(n) for n in names if n is not None)
            raise DatasetError(f"{path} row {header + 1}: no column {column!r} (columns found: {listed}).")
    table = cells.iloc[header + 1 :, [found[_normal(c)] for c in columns]]
    table.columns = list(columns)
    table.index = table.index + 1  # pandas row 0 is Excel row 1
    body = cells.iloc[header + 1 :].itertuples(index=False)
    return table[[not all(is_blank(v) for v in row) for row in body]]


def parse_int(value) -> int:
    """An integer cell (``46``, ``46.0``, ``"046"``); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError(value)


@dataclass(frozen=True)
class CodedDataset:
    """What differs between the sheet-coded datasets; :func:`load_coded` does the rest."""

    name: str
    columns: dict  # CODED_FIELDS -> the header as the sheet spells it
    emotions: tuple
    fps: float
    sheet_pattern: str
    find_release: Callable  # root -> the folder holding the subject folders
    subject_pattern: re.Pattern  # a subject folder's name; its first group is the subject number
    subject_folder: Callable  # Subject cell (or number) -> folder name; ValueError if it is not one


def subject_number(dataset: CodedDataset, name: str) -> int:
    """The number in a subject folder name as ``subject_folder`` spells it (``sub01`` -> 1)."""
    return int(dataset.subject_pattern.fullmatch(name).group(1))


def sheet_path(dataset: CodedDataset, root, sheet=None) -> Path:
    """The coding sheet a loader reads: ``sheet``, else the one in ``root`` or beside the release."""
    if sheet is not None:
        return Path(sheet)
    release = dataset.find_release(root)
    return find_sheet([root, release, release.parent], dataset.sheet_pattern)


def load_coded(dataset: CodedDataset, root, sheet, frames, report, missing="error") -> list:
    """One :class:`Clip` per sheet row, by subject then sheet order; uncoded folders reported.

    ``missing="warn"``: a row whose clip folder is absent is reported and left out (else an error).
    """
    check_options(frames, report, missing)
    release = dataset.find_release(root)
    subjects = numbered_subjects(release, dataset.subject_pattern)  # sub1 and sub01 at once: an error
    sheet = sheet_path(dataset, root, sheet)
    table = read_sheet(sheet, list(dataset.columns.values()))
    clips, rows_of, absent = [], {}, 0
    for row, cells in table.iterrows():
        cell = {field: cells[dataset.columns[field]] for field in CODED_FIELDS}
        if all(is_blank(v) for v in cell.values()):
            note(report, sheet, row, None, "row has text only outside the coded columns: skipped")
            continue
        clip = _row_clip(dataset, release, subjects, sheet, row, cell, frames, report, missing)
        if clip is None:
            absent += 1
            continue
        key = (clip.subject, clip.clip_id)
        if key in rows_of:
            raise DatasetError(
                f"{sheet} row {row}: clip {clip.subject}/{clip.clip_id} is also in row {rows_of[key]}."
            )
        rows_of[key] = row
        clips.append(clip)
    for number, subject in subjects.items():
        name = dataset.subject_folder(number)
        for folder in subfolders(subject):
            if (name, folder.name) not in rows_of:
                note(
                    report,
                    sheet,
                    None,
                    f"{name}/{folder.name}",
                    f"folder {folder} has no row in the sheet: not loaded",
                )
    if not clips and absent:
        raise DatasetError(f"{release}: none of the {absent} clip folders coded in {sheet} exists.")
    if not clips:
        raise DatasetError(f"{sheet}: the sheet codes no clips.")
    clips.sort(key=lambda c: (c.subject, rows_of[(c.subject, c.clip_id)]))
    return clips


def _row_clip(dataset: CodedDataset, release, subjects, sheet, row, cell, frames, report, missing):
    columns = dataset.columns

    def fail(problem):
        return DatasetError(f"{sheet} row {row}: {problem}")

    def frame_cell(field):
        try:
            return parse_int(cell[field])
        except ValueError:
            problem = f"{columns[field]} {cell[field]!r} is not a frame number."
            raise fail(f"clip {name}: {problem}") from None

    try:
        subject = dataset.subject_folder(cell["subject"])
    except ValueError:
        raise fail(f"{columns['subject']} {cell['subject']!r} is not a subject number.") from None
    if is_blank(cell["filename"]):
        raise fail(f"{columns['filename']} is empty.")
    clip_id = str(cell["filename"]).strip()
    name = f"{subject}/{clip_id}"
    label = "" if is_blank(cell["emotion"]) else str(cell["emotion"]).strip().lower()
    if label not in dataset.emotions:
        raise fail(
            f"clip {name}: unknown {columns['emotion']} {cell['emotion']!r}; "
            f"expected one of {', '.join(dataset.emotions)}."
        )
    onset, offset = frame_cell("onset"), frame_cell("offset")
    if onset > offset:
        raise fail(f"clip {name}: {columns['onset']} {onset} is after {columns['offset']} {offset}.")
    # the subject's folder as it is spelled on disk (sub1 for sub01), else where it would be
    folder = subjects.get(subject_number(dataset, subject), release / subject) / clip_id
    check_link(folder)  # a clip folder linked to an unmounted disk is broken, not absent
    if not folder.is_dir():
        if missing == "error":
            raise fail(f"clip {name} has no folder {folder}.")
        note(report, sheet, row, name, f"no folder {folder}: clip left out")
        return None
    try:
        paths = list_frames(folder)
    except DatasetError as error:
        raise fail(f"clip {name}: {error}") from None
    numbers = [frame_number(p) for p in paths]
    if onset not in numbers or offset not in numbers:
        raise fail(
            f"clip {name}: frame range {onset}..{offset} is outside the folder "
            f"{folder} (frames {numbers[0]}..{numbers[-1]}, {len(numbers)} files)."
        )
    if frames == "onset-offset":
        paths, numbers = zip(*[(p, n) for p, n in zip(paths, numbers) if onset <= n <= offset])
    missing = offset - onset + 1 - sum(onset <= n <= offset for n in numbers)
    if missing:
        note(report, sheet, row, name, f"{missing} frame file(s) missing between {onset} and {offset}")

    apex = None
    if is_blank(cell["apex"]) or str(cell["apex"]).strip() == NO_APEX:
        shown = "empty" if is_blank(cell["apex"]) else repr(NO_APEX)
        note(report, sheet, row, name, f"{columns['apex']} is {shown}: apex left unset")
    else:
        apex = frame_cell("apex")
        if not onset <= apex <= offset or apex not in numbers:
            note(
                report,
                sheet,
                row,
                name,
                f"{columns['apex']} {apex} is not a frame of the clip ({onset}..{offset}): apex left unset",
            )
            apex = None
    return Clip(
        dataset=dataset.name,
        subject=subject,
        clip_id=clip_id,
        label=label,
        frames=paths,
        fps=dataset.fps,
        onset=numbers.index(onset),
        offset=numbers.index(offset),
        apex=None if apex is None else numbers.index(apex),
    )
