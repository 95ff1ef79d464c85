"""Tiny CASME II and SAMM trees with their xlsx coding sheets, in the real layouts (openpyxl)."""

from __future__ import annotations

import cv2
import numpy as np
import openpyxl

CASME2_SHEET = "CASME2-coding-20140508.xlsx"
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"

# Columns as real copies have them; None is a blank header cell (its column may hold notes).
CASME2_HEADER = [
    "Subject",
    "Filename",
    None,
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    None,
    "Action Units",
    "Estimated Emotion",
]
SAMM_HEADER = [
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Type",
    "Action Units",
    "Notes",
    "Estimated Emotion",
    "Objective Classes",
]
SAMM_PREAMBLE = 13

# (Subject cell, Filename, Onset, Apex cell, Offset, Estimated Emotion cell, frame numbers on disk)
CASME2_ROWS = [
    (1, "EP02_01f", 3, 5, 8, "happiness", range(1, 11)),
    ("01", "EP03_02", 997, "/", 1002, " Disgust ", range(995, 1004)),
    ("02", "EP01_11f", 12, None, 15, "repression", range(12, 16)),
    (11, "EP19_05f", 101, 103, 104, "others", range(100, 106)),
    (11, "EP13_02", 20, 22, 24, "surprise", range(20, 25)),
    (2, "EP08_03", 5, 6, 7, "fear", range(4, 9)),
]
# Excel row of each CASME2_ROWS entry: the header is row 1.
CASME2_FIRST_ROW = 2

SAMM_ROWS = [
    (6, "006_1_2", 5562, 5570, 5575, "Anger", range(5560, 5580)),
    ("006", "006_1_5", 995, "/", 1003, "Contempt", range(990, 1006)),
    ("007", "007_6_1", 12, 14, 15, "Happiness", range(12, 16)),
    (7, "007_7_3", 300, None, 303, "Other", range(298, 305)),
    (11, "011_2_1", 40, 41, 44, "surprise", range(40, 45)),
]
SAMM_FIRST_ROW = SAMM_PREAMBLE + 2


ROW_FIELDS = ("subject", "filename", "onset", "apex", "offset", "emotion", "numbers")


def changed_rows(rows, index, **changes):
    """A copy of fixture ``rows`` with row ``index`` changed (fields by name)."""
    rows = [list(r) for r in rows]
    for name, value in changes.items():
        rows[index][ROW_FIELDS.index(name)] = value
    return rows


def write_image(path, number, grey=False, size=(6, 8)):
    """A tiny image whose pixel (0, 0) encodes ``number``."""
    image = np.full(size if grey else (*size, 3), 60, np.uint8)
    image[0, 0] = number % 251
    cv2.imwrite(str(path), image)


def _write_clip(folder, numbers, name, grey):
    folder.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        write_image(folder / name(number), number, grey)
    (folder / "Thumbs.db").write_bytes(b"junk")
    (folder.parent / ".DS_Store").write_bytes(b"junk")


def casme2_subject(cell):
    text = str(cell)
    return f"sub{int(text[3:] if text.startswith('sub') else text):02d}"


def samm_subject(cell):
    return f"{int(cell):03d}"


def write_sheet(path, header, rows, preamble=()):
    """An xlsx with ``preamble`` text rows, then ``header``, then ``rows`` (lists of cells)."""
    book = openpyxl.Workbook()
    sheet = book.active
    for line in preamble:
        sheet.append(list(line))
    sheet.append(header)
    for row in rows:
        sheet.append(list(row))
    book.save(path)
    return path


def casme2_cells(row):
    subject, filename, onset, apex, offset, emotion, _ = row
    return [
        subject,
        filename,
        "note" if filename.endswith("f") else None,
        onset,
        apex,
        offset,
        None,
        "12+L25",
        emotion,
    ]


def build_casme2(
    root,
    rows=CASME2_ROWS,
    release="CASME2-RAW",
    prefix="img",
    sheet_dir=None,
    header=CASME2_HEADER,
    cells=casme2_cells,
):
    """``root/<release>/subXX/<clip>/<prefix>N.jpg`` and the coding sheet in ``sheet_dir`` (root)."""
    for row in rows:
        subject, filename, numbers = casme2_subject(row[0]), row[1], row[-1]
        _write_clip(root / release / subject / filename, numbers, lambda n: f"{prefix}{n}.jpg", grey=False)
    write_sheet((sheet_dir or root) / CASME2_SHEET, header, [cells(r) for r in rows])
    return root


def samm_cells(row):
    subject, filename, onset, apex, offset, emotion, _ = row
    return [
        subject,
        filename,
        1,
        onset,
        apex,
        offset,
        offset - onset + 1,
        "Micro - 1/2",
        "R14",
        None,
        emotion,
        7,
    ]


SAMM_PREAMBLE_LINES = [["SAMM Micro-Movement FACS Codes v2"], [], ["Dataset: SAMM"]] + [
    [f"Note line {i}"] for i in range(SAMM_PREAMBLE - 3)
]


def build_samm(
    root, rows=SAMM_ROWS, sheet_dir=None, header=SAMM_HEADER, cells=samm_cells, preamble=SAMM_PREAMBLE_LINES
):
    """``root/SAMM/006/006_1_2/006_05562.jpg`` (grey, 5-digit numbers) and the FACS sheet."""
    for row in rows:
        subject, filename, numbers = samm_subject(row[0]), row[1], row[-1]
        _write_clip(
            root / "SAMM" / subject / filename, numbers, lambda n, s=subject: f"{s}_{n:05d}.jpg", grey=True
        )
    write_sheet((sheet_dir or root) / SAMM_SHEET, header, [cells(r) for r in rows], preamble)
    return root
