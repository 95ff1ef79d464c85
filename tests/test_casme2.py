import json
import logging
import shutil

import pytest

from mer_keras.datasets import DatasetError, detect_dataset, load_casme2, load_dataset
from mer_keras.datasets.__main__ import main
from mer_keras.datasets.casme2 import subject_folder
from mer_keras.datasets.frames import frame_number

from sheet_fixtures import (
    CASME2_HEADER,
    CASME2_ROWS,
    CASME2_SHEET,
    build_casme2,
    casme2_cells,
    changed_rows,
    write_sheet,
)

# clip_id -> (subject, label, onset-offset: (first, last), (onset, apex, offset),
#                               all: (first, last), (onset, apex, offset))
EXPECTED = {
    "EP02_01f": ("sub01", "happiness", (3, 8), (0, 2, 5), (1, 10), (2, 4, 7)),
    "EP03_02": ("sub01", "disgust", (997, 1002), (0, None, 5), (995, 1003), (2, None, 7)),
    "EP01_11f": ("sub02", "repression", (12, 15), (0, None, 3), (12, 15), (0, None, 3)),
    "EP08_03": ("sub02", "fear", (5, 7), (0, 1, 2), (4, 8), (1, 2, 3)),
    "EP19_05f": ("sub11", "others", (101, 104), (0, 2, 3), (100, 105), (1, 3, 4)),
    "EP13_02": ("sub11", "surprise", (20, 24), (0, 2, 4), (20, 24), (0, 2, 4)),
}


@pytest.fixture
def casme2_root(tmp_path):
    return build_casme2(tmp_path / "CASME2")


def _numbers(clip):
    return [frame_number(f) for f in clip.frames]


@pytest.mark.parametrize("mode, column", [("onset-offset", 0), ("all", 2)])
def test_every_clip_in_both_frame_modes(casme2_root, mode, column):
    clips = load_casme2(casme2_root, frames=mode)
    assert [c.clip_id for c in clips] == list(EXPECTED)  # subject order, then sheet order
    for clip in clips:
        subject, label, *expected = EXPECTED[clip.clip_id]
        (first, last), coded = expected[column], expected[column + 1]
        assert (clip.dataset, clip.subject, clip.label, clip.fps) == ("casme2", subject, label, 200.0)
        assert _numbers(clip) == list(range(first, last + 1))
        assert (clip.onset, clip.apex, clip.offset) == coded
        assert all(f.endswith(".jpg") and "/CASME2-RAW/" in f for f in clip.frames)


def test_frames_cross_999_to_1000(casme2_root):
    clip = next(c for c in load_casme2(casme2_root) if c.clip_id == "EP03_02")
    assert [f.rsplit("/", 1)[1] for f in clip.frames][:4] == [
        "img997.jpg",
        "img998.jpg",
        "img999.jpg",
        "img1000.jpg",
    ]


def test_patched_rows_are_reported_and_logged(casme2_root, caplog):
    report = []
    with caplog.at_level(logging.WARNING, logger="mer_keras.datasets"):
        load_casme2(casme2_root, report=report)
    sheet = str(casme2_root / CASME2_SHEET)
    assert report == [
        {"sheet": sheet, "row": 3, "clip": "sub01/EP03_02", "issue": "ApexFrame is '/': apex left unset"},
        {"sheet": sheet, "row": 4, "clip": "sub02/EP01_11f", "issue": "ApexFrame is empty: apex left unset"},
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"{sheet} row 3: sub01/EP03_02: ApexFrame is '/': apex left unset",
        f"{sheet} row 4: sub02/EP01_11f: ApexFrame is empty: apex left unset",
    ]


def test_apex_outside_clip_gap_and_uncoded_folder_are_reported(tmp_path):
    rows = [(1, "EP02_01f", 3, 9, 8, "happiness", [1, 2, 3, 5, 6, 7, 8])]
    root = build_casme2(tmp_path, rows)
    (root / "CASME2-RAW" / "sub01" / "EP99_01").mkdir()
    report = []
    (clip,) = load_casme2(root, report=report)
    assert _numbers(clip) == [3, 5, 6, 7, 8] and (clip.onset, clip.apex, clip.offset) == (0, None, 4)
    assert [(r["row"], r["clip"], r["issue"]) for r in report] == [
        (2, "sub01/EP02_01f", "1 frame file(s) missing between 3 and 8"),
        (2, "sub01/EP02_01f", "ApexFrame 9 is not a frame of the clip (3..8): apex left unset"),
        (
            None,
            "sub01/EP99_01",
            f"folder {root / 'CASME2-RAW' / 'sub01' / 'EP99_01'} has no row in the sheet: not loaded",
        ),
    ]


def test_row_with_text_only_outside_the_coded_columns_is_reported(tmp_path):
    root = build_casme2(tmp_path, CASME2_ROWS[:1])
    cells = [casme2_cells(CASME2_ROWS[0]), [None, None, "checked by rater 2"] + [None] * 6]
    write_sheet(root / CASME2_SHEET, CASME2_HEADER, cells)
    report = []
    assert len(load_casme2(root, report=report)) == 1
    assert report == [
        {
            "sheet": str(root / CASME2_SHEET),
            "row": 3,
            "clip": None,
            "issue": "row has text only outside the coded columns: skipped",
        }
    ]


@pytest.mark.parametrize(
    "release, prefix, level",
    [
        ("CASME2-RAW", "img", ""),
        ("CASME2_RAW_selected", "img", ""),
        ("Cropped", "reg_img", ""),
        ("CASME2-RAW", "img", "CASME2-RAW"),
        ("Cropped", "reg_img", "Cropped"),
    ],
)
def test_releases_and_root_levels(tmp_path, release, prefix, level):
    root = build_casme2(tmp_path, CASME2_ROWS[:2], release=release, prefix=prefix)
    clips = load_casme2(root / level)  # at the release level the sheet is found in its parent
    assert [c.clip_id for c in clips] == ["EP02_01f", "EP03_02"]
    assert clips[0].frames[0].endswith(f"/{release}/sub01/EP02_01f/{prefix}3.jpg")


def test_full_frames_preferred_over_cropped(tmp_path):
    build_casme2(tmp_path, CASME2_ROWS[:1], release="Cropped", prefix="reg_img")
    build_casme2(tmp_path, CASME2_ROWS[:1], release="CASME2-RAW")
    (clip,) = load_casme2(tmp_path)
    assert "/CASME2-RAW/" in clip.frames[0]
    (clip,) = load_casme2(tmp_path / "Cropped")
    assert "/Cropped/" in clip.frames[0]


def test_explicit_sheet_elsewhere(tmp_path):
    elsewhere = tmp_path / "sheets"
    elsewhere.mkdir()
    root = build_casme2(tmp_path / "data", CASME2_ROWS[:1], sheet_dir=elsewhere)
    (clip,) = load_casme2(root, sheet=elsewhere / CASME2_SHEET)
    assert clip.label == "happiness"


def test_detected_and_described(casme2_root, capsys):
    assert detect_dataset(casme2_root) == "casme2"
    assert detect_dataset(casme2_root / "CASME2-RAW") == "casme2"
    assert len(load_dataset(casme2_root)) == 6
    assert main(["describe", str(casme2_root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["clips"], summary["subjects"], summary["fps"]) == (6, 3, [200.0])
    assert summary["per_subject"]["sub02"]["repression"] == 1
    assert summary["frames"] == {"total": 28, "min": 3, "median": 4.5, "mean": 4.67, "max": 6}


@pytest.mark.parametrize(
    "cell, folder",
    [
        (1, "sub01"),
        ("01", "sub01"),
        (" 7 ", "sub07"),
        ("sub26", "sub26"),
        (26.0, "sub26"),
        ("S1", None),
        ("1.5", None),
        (0, None),
        (None, None),
    ],
)
def test_subject_cell_to_folder(cell, folder):
    if folder is None:
        with pytest.raises(ValueError):
            subject_folder(cell)
    else:
        assert subject_folder(cell) == folder


def _row(index, **changes):
    return changed_rows(CASME2_ROWS, index, **changes)


def _remove(path):
    shutil.rmtree(path) if path.is_dir() else path.unlink()


ROW = r"CASME2-coding-20140508\.xlsx row"
ERRORS = [
    # (case, rows for the sheet, change after building, error pattern)
    (
        "no folder",
        CASME2_ROWS,
        lambda r: _remove(r / "CASME2-RAW/sub11/EP19_05f"),
        rf"{ROW} 5: clip sub11/EP19_05f has no folder .*CASME2-RAW/sub11/EP19_05f\.",
    ),
    (
        "folder without images",
        CASME2_ROWS,
        lambda r: [f.unlink() for f in (r / "CASME2-RAW/sub01/EP02_01f").glob("*.jpg")],
        rf"{ROW} 2: clip sub01/EP02_01f: .*sub01/EP02_01f: clip folder holds no image files\.",
    ),
    (
        "no subject folder",
        CASME2_ROWS,
        lambda r: _remove(r / "CASME2-RAW/sub02"),
        rf"{ROW} 4: clip sub02/EP01_11f has no folder",
    ),
    (
        "offset past folder",
        _row(2, offset=16),
        None,
        rf"{ROW} 4: clip sub02/EP01_11f: frame range 12\.\.16 is outside the folder .*EP01_11f "
        r"\(frames 12\.\.15, 4 files\)\.",
    ),
    ("onset before folder", _row(0, onset=0), None, rf"{ROW} 2: clip sub01/EP02_01f: frame range 0\.\.8"),
    (
        "unknown emotion",
        _row(4, emotion="Joy"),
        None,
        rf"{ROW} 6: clip sub11/EP13_02: unknown Estimated Emotion 'Joy'; expected one of happiness, ",
    ),
    (
        "empty emotion",
        _row(1, emotion=None),
        None,
        rf"{ROW} 3: clip sub01/EP03_02: unknown Estimated Emotion ''",
    ),
    (
        "onset after offset",
        _row(0, onset=9),
        None,
        rf"{ROW} 2: clip sub01/EP02_01f: OnsetFrame 9 is after OffsetFrame 8",
    ),
    (
        "onset not a number",
        _row(3, onset="abc"),
        None,
        rf"{ROW} 5: clip sub11/EP19_05f: OnsetFrame 'abc' is not a frame number",
    ),
    (
        "offset empty",
        _row(3, offset=None),
        None,
        rf"{ROW} 5: clip sub11/EP19_05f: OffsetFrame '' is not a frame",
    ),
    (
        "apex not a number",
        _row(0, apex="x"),
        None,
        rf"{ROW} 2: clip sub01/EP02_01f: ApexFrame 'x' is not a frame",
    ),
    ("subject not a number", _row(5, subject="S2"), None, rf"{ROW} 7: Subject 'S2' is not a subject number"),
    ("filename empty", _row(5, filename=" "), None, rf"{ROW} 7: Filename is empty"),
    (
        "duplicate row",
        CASME2_ROWS + [CASME2_ROWS[0]],
        None,
        rf"{ROW} 8: clip sub01/EP02_01f is also in row 2",
    ),
    (
        "no sheet",
        CASME2_ROWS,
        lambda r: _remove(r / CASME2_SHEET),
        r"No coding sheet matching 'CASME2-coding-\*\.xlsx' found in .*/CASME2, .*/CASME2/CASME2-RAW",
    ),
    (
        "several sheets",
        CASME2_ROWS,
        lambda r: shutil.copy(r / CASME2_SHEET, r / "CASME2-coding-old.xlsx"),
        r"CASME2: several sheets match 'CASME2-coding-\*\.xlsx' \(CASME2-coding-20140508\.xlsx, "
        r"CASME2-coding-old\.xlsx\); pass --sheet PATH \(sheet= in Python\)",
    ),
    (
        "not xlsx",
        CASME2_ROWS,
        lambda r: (r / CASME2_SHEET).write_text("Subject,Filename\n"),
        r"CASME2-coding-20140508\.xlsx: cannot read the sheet as xlsx",
    ),
    (
        "no subject folders",
        CASME2_ROWS,
        lambda r: _remove(r / "CASME2-RAW"),
        r"CASME2: no CASME II subject folders \(sub01/…\) in it or in "
        r"CASME2-RAW, CASME2_RAW_selected, Cropped/",
    ),
]


@pytest.mark.parametrize("case, rows, change, match", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_sheet_row_and_problem(tmp_path, case, rows, change, match):
    root = build_casme2(tmp_path / "CASME2")
    write_sheet(root / CASME2_SHEET, CASME2_HEADER, [casme2_cells(r) for r in rows])
    if change:
        change(root)
    with pytest.raises(DatasetError, match=match):
        load_casme2(root)


@pytest.mark.parametrize(
    "header, match",
    [
        (
            [h if h != "Estimated Emotion" else "Emotion" for h in CASME2_HEADER],
            r"CASME2-coding-20140508\.xlsx row 1: no column 'Estimated Emotion' \(columns found: "
            r"'Subject', 'Filename', 'OnsetFrame', 'ApexFrame', 'OffsetFrame', 'Action Units', "
            r"'Emotion'\)",
        ),
        ([h if h != "ApexFrame" else None for h in CASME2_HEADER], r"row 1: no column 'ApexFrame'"),
        (
            ["Subject", "File"] + CASME2_HEADER[2:],
            r"CASME2-coding-20140508\.xlsx: no header row naming 'Subject' and 'Filename'",
        ),
    ],
)
def test_header_errors(tmp_path, header, match):
    root = build_casme2(tmp_path, CASME2_ROWS[:1], header=header)
    with pytest.raises(DatasetError, match=match):
        load_casme2(root)


def test_sheet_with_no_clips_and_missing_sheet_path(tmp_path):
    root = build_casme2(tmp_path, CASME2_ROWS[:1])
    write_sheet(root / CASME2_SHEET, CASME2_HEADER, [])
    with pytest.raises(DatasetError, match=r"CASME2-coding-20140508\.xlsx: the sheet codes no clips"):
        load_casme2(root)
    with pytest.raises(DatasetError, match=r"nothing\.xlsx: coding sheet not found"):
        load_casme2(root, sheet=tmp_path / "nothing.xlsx")


@pytest.mark.parametrize(
    "options, match",
    [
        ({"frames": "onset"}, r"`frames` must be one of \('onset-offset', 'all'\). Received: frames='onset'"),
        ({"report": {}}, r"`report` must be None or a list. Received: report=\{\}"),
    ],
)
def test_invalid_arguments(casme2_root, options, match):
    with pytest.raises(ValueError, match=match):
        load_casme2(casme2_root, **options)


def test_a_missing_clip_folder_is_an_error_or_with_missing_warn_reported(casme2_root):
    folder = casme2_root / "CASME2-RAW" / "sub01" / "EP02_01f"
    shutil.rmtree(folder)
    with pytest.raises(DatasetError, match=r"row 2: clip sub01/EP02_01f has no folder"):
        load_casme2(casme2_root)
    report = []
    clips = load_casme2(casme2_root, report=report, missing="warn")
    assert [c.clip_id for c in clips] == [c for c in EXPECTED if c != "EP02_01f"]
    assert {
        "sheet": str(casme2_root / CASME2_SHEET),
        "row": 2,
        "clip": "sub01/EP02_01f",
        "issue": f"no folder {folder}: clip left out",
    } in report
    for other in ("sub01", "sub02", "sub11"):
        shutil.rmtree(casme2_root / "CASME2-RAW" / other)
    (casme2_root / "CASME2-RAW" / "sub03").mkdir()
    with pytest.raises(DatasetError, match=r"CASME2-RAW: none of the 6 clip folders coded in .*CASME2-cod"):
        load_casme2(casme2_root, missing="warn")
    with pytest.raises(ValueError, match=r"Received: missing='skip'"):
        load_casme2(casme2_root, missing="skip")
