import json
import shutil

import pytest

from mer_keras.datasets import DatasetError, detect_dataset, load_dataset, load_samm, read_frame
from mer_keras.datasets.__main__ import main
from mer_keras.datasets.frames import frame_number
from mer_keras.datasets.samm import subject_folder

from sheet_fixtures import (
    SAMM_HEADER,
    SAMM_PREAMBLE_LINES,
    SAMM_ROWS,
    SAMM_SHEET,
    build_samm,
    changed_rows,
    samm_cells,
    write_sheet,
)

# clip_id -> (subject, label, onset-offset: (first, last), (onset, apex, offset),
#                               all: (first, last), (onset, apex, offset))
EXPECTED = {
    "006_1_2": ("006", "anger", (5562, 5575), (0, 8, 13), (5560, 5579), (2, 10, 15)),
    "006_1_5": ("006", "contempt", (995, 1003), (0, None, 8), (990, 1005), (5, None, 13)),
    "007_6_1": ("007", "happiness", (12, 15), (0, 2, 3), (12, 15), (0, 2, 3)),
    "007_7_3": ("007", "other", (300, 303), (0, None, 3), (298, 304), (2, None, 5)),
    "011_2_1": ("011", "surprise", (40, 44), (0, 1, 4), (40, 44), (0, 1, 4)),
}


@pytest.fixture
def samm_root(tmp_path):
    return build_samm(tmp_path / "data")


@pytest.mark.parametrize("mode, column", [("onset-offset", 0), ("all", 2)])
def test_every_clip_in_both_frame_modes(samm_root, mode, column):
    clips = load_samm(samm_root, frames=mode)
    assert [c.clip_id for c in clips] == list(EXPECTED)
    for clip in clips:
        subject, label, *expected = EXPECTED[clip.clip_id]
        (first, last), coded = expected[column], expected[column + 1]
        assert (clip.dataset, clip.subject, clip.label, clip.fps) == ("samm", subject, label, 200.0)
        assert [frame_number(f) for f in clip.frames] == list(range(first, last + 1))
        assert (clip.onset, clip.apex, clip.offset) == coded
        assert all(f"/SAMM/{subject}/{clip.clip_id}/{subject}_" in f for f in clip.frames)


def test_zero_padded_names_cross_999_and_grey_frames_read_as_rgb(samm_root):
    clip = next(c for c in load_samm(samm_root) if c.clip_id == "006_1_5")
    assert [f.rsplit("/", 1)[1] for f in clip.frames][3:6] == [
        "006_00998.jpg",
        "006_00999.jpg",
        "006_01000.jpg",
    ]
    image = read_frame(clip.frames[0])
    assert image.shape == (6, 8, 3) and (image[..., 0] == image[..., 2]).all()


@pytest.mark.parametrize("preamble_rows", [0, 13, 20])
def test_header_row_is_found_after_any_preamble(tmp_path, preamble_rows):
    preamble = (SAMM_PREAMBLE_LINES * 2)[:preamble_rows]
    root = build_samm(tmp_path, SAMM_ROWS[:2], preamble=preamble)
    report = []
    clips = load_samm(root, report=report)
    assert [c.clip_id for c in clips] == ["006_1_2", "006_1_5"]
    # the "/" apex of the second data row, numbered as Excel shows it
    assert report == [
        {
            "sheet": str(root / SAMM_SHEET),
            "row": preamble_rows + 3,
            "clip": "006/006_1_5",
            "issue": "Apex Frame is '/': apex left unset",
        }
    ]


def test_patched_rows_reported_with_excel_rows(samm_root):
    report = []
    load_samm(samm_root, report=report)
    assert [(r["row"], r["clip"], r["issue"]) for r in report] == [
        (16, "006/006_1_5", "Apex Frame is '/': apex left unset"),
        (18, "007/007_7_3", "Apex Frame is empty: apex left unset"),
    ]


@pytest.mark.parametrize("level", ["", "SAMM"])
def test_root_may_be_either_level(samm_root, level):
    assert len(load_samm(samm_root / level)) == 5


def test_detected_and_described(samm_root, capsys):
    assert detect_dataset(samm_root) == "samm"
    assert detect_dataset(samm_root / "SAMM") == "samm"
    assert len(load_dataset(samm_root)) == 5
    assert main(["describe", str(samm_root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["clips"], summary["subjects"], summary["fps"]) == (5, 3, [200.0])
    assert summary["per_subject"]["006"] == {
        "anger": 1,
        "contempt": 1,
        "happiness": 0,
        "other": 0,
        "surprise": 0,
    }
    assert summary["frames"]["total"] == 14 + 9 + 4 + 4 + 5


@pytest.mark.parametrize(
    "cell, folder",
    [(6, "006"), ("006", "006"), ("37", "037"), (11.0, "011"), ("S6", None), (0, None), ("", None)],
)
def test_subject_cell_to_folder(cell, folder):
    if folder is None:
        with pytest.raises(ValueError):
            subject_folder(cell)
    else:
        assert subject_folder(cell) == folder


def _rows(index, **changes):
    return changed_rows(SAMM_ROWS, index, **changes)


ROW = r"SAMM_Micro_FACS_Codes_v2\.xlsx row"
ERRORS = [
    # (case, rows for the sheet, header, change after building, error pattern)
    (
        "no folder",
        SAMM_ROWS,
        SAMM_HEADER,
        lambda r: shutil.rmtree(r / "SAMM/007/007_6_1"),
        rf"{ROW} 17: clip 007/007_6_1 has no folder .*SAMM/007/007_6_1\.",
    ),
    (
        "range outside",
        _rows(4, offset=45),
        SAMM_HEADER,
        None,
        rf"{ROW} 19: clip 011/011_2_1: frame range 40\.\.45 is outside the folder .*011_2_1 "
        r"\(frames 40\.\.44, 5 files\)",
    ),
    (
        "unknown emotion",
        _rows(2, emotion="Joy"),
        SAMM_HEADER,
        None,
        rf"{ROW} 17: clip 007/007_6_1: unknown Estimated Emotion 'Joy'; expected one of anger, ",
    ),
    (
        "CASME II label",
        _rows(0, emotion="repression"),
        SAMM_HEADER,
        None,
        rf"{ROW} 15: clip 006/006_1_2: unknown Estimated Emotion 'repression'",
    ),
    (
        "apex not a number",
        _rows(0, apex="n/a"),
        SAMM_HEADER,
        None,
        rf"{ROW} 15: clip 006/006_1_2: Apex Frame 'n/a' is not a frame number",
    ),
    (
        "missing column",
        SAMM_ROWS,
        [h if h != "Onset Frame" else "Onset" for h in SAMM_HEADER],
        None,
        rf"{ROW} 14: no column 'Onset Frame' \(columns found: 'Subject', 'Filename', "
        r"'Inducement Code', 'Onset', 'Apex Frame', ",
    ),
    (
        "no sheet",
        SAMM_ROWS,
        SAMM_HEADER,
        lambda r: (r / SAMM_SHEET).unlink(),
        r"No coding sheet matching 'SAMM_Micro_FACS_Codes\*\.xlsx' found in .*/data, .*/data/SAMM;",
    ),
    (
        "no subject folders",
        SAMM_ROWS,
        SAMM_HEADER,
        lambda r: shutil.rmtree(r / "SAMM"),
        r"data: no SAMM subject folders \(006/…\) in it or in SAMM/\.",
    ),
]


@pytest.mark.parametrize("case, rows, header, change, match", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_sheet_row_and_problem(tmp_path, case, rows, header, change, match):
    root = build_samm(tmp_path / "data")
    write_sheet(root / SAMM_SHEET, header, [samm_cells(r) for r in rows], SAMM_PREAMBLE_LINES)
    if change:
        change(root)
    with pytest.raises(DatasetError, match=match):
        load_samm(root)


def test_blank_rows_inside_the_table_keep_excel_numbering(tmp_path):
    root = build_samm(tmp_path, SAMM_ROWS[:4])
    cells = [samm_cells(r) for r in SAMM_ROWS[:4]]
    write_sheet(
        root / SAMM_SHEET, SAMM_HEADER, cells[:2] + [[], [None] * 12] + cells[2:], SAMM_PREAMBLE_LINES
    )
    report = []
    assert len(load_samm(root, report=report)) == 4
    assert [(r["row"], r["clip"]) for r in report] == [(16, "006/006_1_5"), (20, "007/007_7_3")]
