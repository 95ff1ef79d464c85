"""Issue #14: what a careful user found in the loaders, each a (damaged tree, expected message) case.

Every message names the file or folder (or the option) at fault; none of these trees may load silently.
"""

import os
import shutil

import openpyxl
import pytest

from mer_keras.config import DataConfig
from mer_keras.dataset_plan import load_clips
from mer_keras.datasets import DatasetError, detect_dataset, load_casme2, load_dataset, load_samm, load_smic
from mer_keras.datasets.frames import FrameReadError, frame_number, read_frame
from mer_keras.datasets.megc2019 import route_sheets

from conftest import build_smic, write_frames
from sheet_fixtures import (
    CASME2_ROWS,
    CASME2_SHEET,
    SAMM_ROWS,
    SAMM_SHEET,
    build_casme2,
    build_samm,
    casme2_cells,
    write_sheet,
)

HS = ("SMIC_all_raw", "HS")


def _smic(tmp_path):
    root = build_smic(tmp_path / "smic")
    return root, root.joinpath(*HS)


def _casme2(tmp_path):
    root = build_casme2(tmp_path / "casme2")
    return root, root / "CASME2-RAW"


def _samm(tmp_path):
    root = build_samm(tmp_path / "samm")
    return root, root / "SAMM"


def _link(target, link):
    """A symbolic link at ``link`` to ``target`` (which does not exist: a disk that is not mounted)."""
    if link.exists():
        shutil.rmtree(link) if link.is_dir() else link.unlink()
    os.symlink(target, link)


# ---- item 1: a clip folder holding a subfolder with images ---------------------------------------


def smic_non_micro_nested(tmp_path):
    root, hs = _smic(tmp_path)
    write_frames(hs / "s1" / "non_micro" / "s1_nm_01" / "extra", range(1, 5))
    return lambda: load_smic(root)


def smic_micro_nested(tmp_path):
    root, hs = _smic(tmp_path)
    write_frames(hs / "s2" / "micro" / "surprise" / "s2_sur_01" / "deeper" / "more", [7])
    return lambda: load_smic(root)


def casme2_nested(tmp_path):
    root, release = _casme2(tmp_path)
    write_frames(release / "sub01" / "EP02_01f" / "EP02_01f_copy", [3, 4], prefix="img", ext=".jpg")
    return lambda: load_casme2(root)


def casme2_only_subfolders(tmp_path):
    root, release = _casme2(tmp_path)
    clip = release / "sub02" / "EP08_03"
    clip.rename(release / "sub02" / "frames")
    clip.mkdir()
    (release / "sub02" / "frames").rename(clip / "frames")
    return lambda: load_casme2(root)


def samm_nested(tmp_path):
    root, release = _samm(tmp_path)
    write_frames(release / "007" / "007_6_1" / "thumbs", [12], prefix="007_", ext=".jpg")
    return lambda: load_samm(root)


def smic_two_clips_one_name(tmp_path):
    root, hs = _smic(tmp_path)
    non_micro = hs / "s11" / "non_micro"
    (non_micro / "take1").mkdir()
    (non_micro / "s11_nm_01").rename(non_micro / "take1" / "s11_nm_01")
    write_frames(non_micro / "take2" / "s11_nm_01", range(50, 60))
    return lambda: load_smic(root)


# ---- item 2: broken symbolic links ---------------------------------------------------------------


def smic_broken_frame(tmp_path):
    root, hs = _smic(tmp_path)
    _link("/nonexistent/disk/image1006.bmp", hs / "s1" / "micro" / "negative" / "s1_ne_01" / "image1006.bmp")
    return lambda: load_smic(root)


def smic_broken_clip_folder(tmp_path):
    root, hs = _smic(tmp_path)
    _link("/mnt/unmounted/s1_ne_02", hs / "s1" / "micro" / "negative" / "s1_ne_02")
    return lambda: load_smic(root)


def smic_broken_non_micro_folder(tmp_path):
    root, hs = _smic(tmp_path)
    _link("/mnt/unmounted/non_micro", hs / "s11" / "non_micro")
    return lambda: load_smic(root)


def smic_broken_subject_folder(tmp_path):
    root, hs = _smic(tmp_path)
    _link("/mnt/unmounted/s4", hs / "s4")
    return lambda: load_smic(root)


def casme2_broken_clip_folder(tmp_path):
    root, release = _casme2(tmp_path)
    _link("/mnt/unmounted/EP13_02", release / "sub11" / "EP13_02")
    return lambda: load_casme2(root, missing="warn")  # broken is not absent: an error even so


def casme2_broken_subject_folder(tmp_path):
    root, release = _casme2(tmp_path)
    _link("/mnt/unmounted/sub05", release / "sub05")
    return lambda: load_casme2(root)


def samm_broken_frame(tmp_path):
    root, release = _samm(tmp_path)
    _link("/nonexistent/disk/011_00042.jpg", release / "011" / "011_2_1" / "011_00042.jpg")
    return lambda: load_samm(root)


def casme2_broken_sheet(tmp_path):
    root, _ = _casme2(tmp_path)
    _link("/mnt/unmounted/CASME2-coding-20140508.xlsx", root / CASME2_SHEET)
    return lambda: load_casme2(root)


# ---- item 3: two folders for one subject number --------------------------------------------------


def smic_s1_and_s01(tmp_path):
    root, hs = _smic(tmp_path)
    write_frames(hs / "s01" / "micro" / "negative" / "s1_ne_09", range(1, 12))
    return lambda: load_smic(root)


def casme2_sub1_and_sub01(tmp_path):
    root, release = _casme2(tmp_path)
    write_frames(release / "sub1" / "EP05_09", range(1, 12), prefix="img", ext=".jpg")
    return lambda: load_casme2(root)


def samm_6_and_006(tmp_path):
    root, release = _samm(tmp_path)
    write_frames(release / "6" / "006_9_9", range(1, 12), prefix="006_", ext=".jpg")
    return lambda: load_samm(root)


# ---- item 4: several layouts under --dataset auto ------------------------------------------------


def auto_with_smic_and_casme2(tmp_path):
    root = tmp_path / "both"
    build_smic(root)
    build_casme2(root)
    return lambda: detect_dataset(root)


def auto_with_all_three(tmp_path):
    root = tmp_path / "all"
    build_smic(root), build_casme2(root), build_samm(root)
    return lambda: load_dataset(root)


# ---- item 5: sheets ------------------------------------------------------------------------------


def casme2_two_sheets(tmp_path):
    root, _ = _casme2(tmp_path)
    shutil.copy(root / CASME2_SHEET, root / "CASME2-coding-20190701.xlsx")
    return lambda: load_dataset(root, "casme2")


def casme2_table_on_second_tab(tmp_path):
    root, _ = _casme2(tmp_path)
    book = openpyxl.load_workbook(root / CASME2_SHEET)
    book.active.title = "Codes"
    notes = book.create_sheet("Read me", 0)  # the first tab now holds text only
    notes.append(["CASME II coding, see the second tab"])
    book.save(root / CASME2_SHEET)
    return lambda: load_casme2(root)


def smic_given_a_sheet(tmp_path):
    root, _ = _smic(tmp_path)
    return lambda: load_dataset(root, "auto", sheet=tmp_path / CASME2_SHEET)


def megc2019_sheet_with_another_name(tmp_path):
    return lambda: route_sheets(tmp_path / "codes.xlsx")


def megc2019_two_casme2_sheets(tmp_path):
    return lambda: route_sheets([tmp_path / "CASME2-coding-1.xlsx", tmp_path / "CASME2-coding-2.xlsx"])


# ---- item 9: a file where the dataset folder should be -------------------------------------------


def _a_file(tmp_path):
    path = tmp_path / "SMIC_all_raw.zip"
    path.write_bytes(b"PK\x03\x04")
    return path


def auto_on_a_file(tmp_path):
    return lambda: load_dataset(_a_file(tmp_path))


def smic_on_a_file(tmp_path):
    return lambda: load_dataset(_a_file(tmp_path), "smic")


def casme2_on_a_file(tmp_path):
    return lambda: load_casme2(_a_file(tmp_path))


def samm_on_a_file(tmp_path):
    return lambda: load_samm(_a_file(tmp_path))


def run_data_on_a_file(tmp_path):
    return lambda: load_clips(DataConfig(path=str(_a_file(tmp_path)), dataset="auto", synthetic=False))


CASES = [
    # (build the tree, return the load; exception; message pattern, where "{tmp}" is the test's tmp_path)
    (
        smic_non_micro_nested,
        DatasetError,
        r"{tmp}/smic/SMIC_all_raw/HS/s1/non_micro/s1_nm_01: clip folder holds image files and also a subfolder "
        r"with images \({tmp}/smic/SMIC_all_raw/HS/s1/non_micro/s1_nm_01/extra, e\.g\. image1\.bmp\)",
    ),
    (
        smic_micro_nested,
        DatasetError,
        r"s2_sur_01: clip folder holds image files and also a subfolder with images \(.*/s2_sur_01/deeper, "
        r"e\.g\. image7\.bmp\)",
    ),
    (
        casme2_nested,
        DatasetError,
        r"CASME2-coding-20140508\.xlsx row 2: clip sub01/EP02_01f: .*/sub01/EP02_01f: clip folder holds image "
        r"files and also a subfolder with images \(.*/EP02_01f/EP02_01f_copy",
    ),
    (
        casme2_only_subfolders,
        DatasetError,
        r"clip sub02/EP08_03: .*/sub02/EP08_03: clip folder holds no image files, only subfolders with images "
        r"\(.*/EP08_03/frames",
    ),
    (
        samm_nested,
        DatasetError,
        r"clip 007/007_6_1: .*/SAMM/007/007_6_1: clip folder holds image files and also a subfolder with images "
        r"\(.*/007_6_1/thumbs",
    ),
    (
        smic_two_clips_one_name,
        DatasetError,
        r"{tmp}/smic/SMIC_all_raw/HS/s11/non_micro/take1/s11_nm_01 and .*/non_micro/take2/s11_nm_01: two clip "
        r"folders named 's11_nm_01' in subject s11",
    ),
    (
        smic_broken_frame,
        DatasetError,
        r"{tmp}/smic/.*/s1_ne_01/image1006\.bmp: broken symbolic link to /nonexistent/disk/image1006\.bmp",
    ),
    (
        smic_broken_clip_folder,
        DatasetError,
        r"{tmp}/smic/.*/micro/negative/s1_ne_02: broken symbolic link to /mnt/unmounted/s1_ne_02",
    ),
    (
        smic_broken_non_micro_folder,
        DatasetError,
        r"{tmp}/smic/.*/s11/non_micro: broken symbolic link to /mnt/unmounted/non_micro",
    ),
    (
        smic_broken_subject_folder,
        DatasetError,
        r"{tmp}/smic/.*/HS/s4: broken symbolic link to /mnt/unmounted/s4",
    ),
    (
        casme2_broken_clip_folder,
        DatasetError,
        r"{tmp}/casme2/CASME2-RAW/sub11/EP13_02: broken symbolic link to /mnt/unmounted/EP13_02",
    ),
    (
        casme2_broken_subject_folder,
        DatasetError,
        r"{tmp}/casme2/CASME2-RAW/sub05: broken symbolic link to /mnt/unmounted/sub05",
    ),
    (samm_broken_frame, DatasetError, r"011_2_1/011_00042\.jpg: broken symbolic link to /nonexistent/disk/"),
    (
        casme2_broken_sheet,
        DatasetError,
        r"{tmp}/casme2/CASME2-coding-20140508\.xlsx: broken symbolic link to /mnt/unmounted/",
    ),
    (
        smic_s1_and_s01,
        DatasetError,
        r"{tmp}/smic/SMIC_all_raw/HS: folders 's01' and 's1' are both subject 1; merge them or remove one\. "
        r"Received: {tmp}/smic/SMIC_all_raw/HS/s01 and {tmp}/smic/SMIC_all_raw/HS/s1",
    ),
    (
        casme2_sub1_and_sub01,
        DatasetError,
        r"CASME2-RAW: folders 'sub01' and 'sub1' are both subject 1; .*Received: {tmp}/casme2/CASME2-RAW/sub01 "
        r"and {tmp}/casme2/CASME2-RAW/sub1",
    ),
    (
        samm_6_and_006,
        DatasetError,
        r"SAMM: folders '006' and '6' are both subject 6; .*Received: {tmp}/samm/SAMM/006 and "
        r"{tmp}/samm/SAMM/6",
    ),
    (
        auto_with_smic_and_casme2,
        DatasetError,
        r"{tmp}/both: holds the layouts of several datasets \(smic, casme2\); pass --dataset NAME \(dataset= in "
        r"Python\) to choose which one to read\.$",
    ),
    (
        auto_with_all_three,
        DatasetError,
        r"several datasets \(smic, casme2, samm\); pass --dataset NAME .*; megc2019 or megc2019-mapping reads "
        r"SMIC, CASME II and SAMM side by side",
    ),
    (
        casme2_two_sheets,
        DatasetError,
        r"{tmp}/casme2: several sheets match 'CASME2-coding-\*\.xlsx' \(CASME2-coding-20140508\.xlsx, "
        r"CASME2-coding-20190701\.xlsx\); pass --sheet PATH \(sheet= in Python\) to choose one",
    ),
    (
        casme2_table_on_second_tab,
        DatasetError,
        r"{tmp}/casme2/CASME2-coding-20140508\.xlsx: no header row naming 'Subject' and 'Filename' in the first "
        r"100 rows of its first worksheet tab 'Read me'; only the first tab is read \(tabs found: 'Read me', "
        r"'Codes'\)",
    ),
    (
        smic_given_a_sheet,
        ValueError,
        r"--sheet \(sheet=\) names a coding sheet, and smic reads none .*Received: --sheet {tmp}/CASME2-coding",
    ),
    (
        megc2019_sheet_with_another_name,
        DatasetError,
        r"{tmp}/codes\.xlsx: not a coding sheet name this run reads \(expected 'CASME2-coding-\*\.xlsx' "
        r"\(casme2\) or 'SAMM_Micro_FACS_Codes\*\.xlsx' \(samm\)\)",
    ),
    (
        megc2019_two_casme2_sheets,
        DatasetError,
        r"CASME2-coding-1\.xlsx and .*CASME2-coding-2\.xlsx: two casme2 ",
    ),
    (auto_on_a_file, DatasetError, r"{tmp}/SMIC_all_raw\.zip: is a file, not a dataset folder"),
    (smic_on_a_file, DatasetError, r"{tmp}/SMIC_all_raw\.zip: is a file, not a dataset folder"),
    (casme2_on_a_file, DatasetError, r"{tmp}/SMIC_all_raw\.zip: is a file, not a dataset folder"),
    (samm_on_a_file, DatasetError, r"{tmp}/SMIC_all_raw\.zip: is a file, not a dataset folder"),
    (run_data_on_a_file, DatasetError, r"{tmp}/SMIC_all_raw\.zip: is a file, not a dataset folder"),
]


@pytest.mark.parametrize("build, error, pattern", CASES, ids=[case[0].__name__ for case in CASES])
def test_error_names_the_file(tmp_path, build, error, pattern):
    load = build(tmp_path)
    with pytest.raises(error, match=pattern.replace("{tmp}", str(tmp_path))):
        load()


def test_non_micro_and_class_grouping_folders_are_looked_into(tmp_path):
    root, hs = _smic(tmp_path)
    non_micro, negative = hs / "s1" / "non_micro", hs / "s1" / "micro" / "negative"
    (non_micro / "session 2").mkdir()
    (non_micro / "s1_nm_01").rename(non_micro / "session 2" / "s1_nm_01")
    (negative / "take1" / "a").mkdir(parents=True)
    (negative / "s1_ne_01").rename(negative / "take1" / "a" / "s1_ne_01")
    clips = {c.clip_id: c for c in load_smic(root)}
    assert len(clips) == 8
    assert (clips["s1_nm_01"].label, len(clips["s1_nm_01"])) == ("non_micro", 14)
    assert (clips["s1_ne_01"].label, len(clips["s1_ne_01"])) == ("negative", 12)
    assert "/session 2/s1_nm_01/" in clips["s1_nm_01"].frames[0]


def test_hidden_folders_and_junk_stay_skipped(tmp_path):
    root, hs = _smic(tmp_path)
    clip = hs / "s1" / "micro" / "negative" / "s1_ne_01"
    write_frames(clip / ".thumbnails", [1, 2])  # a viewer's cache, hidden: junk, not a nested clip
    os.symlink("/nonexistent/._image1.bmp", clip / "._image1.bmp")  # hidden junk, even as a broken link
    assert len(next(c for c in load_smic(root) if c.clip_id == "s1_ne_01")) == 12


def test_unpadded_subject_folders_are_read_by_number(tmp_path):
    root = build_casme2(tmp_path / "casme2", CASME2_ROWS[:2])
    (root / "CASME2-RAW" / "sub01").rename(root / "CASME2-RAW" / "sub1")
    clips = load_casme2(root)
    assert [(c.subject, c.clip_id) for c in clips] == [("sub01", "EP02_01f"), ("sub01", "EP03_02")]
    assert "/CASME2-RAW/sub1/EP02_01f/" in clips[0].frames[0]
    root = build_samm(tmp_path / "samm", SAMM_ROWS[2:3])
    (root / "SAMM" / "007").rename(root / "SAMM" / "7")
    (clip,) = load_samm(root)
    assert (clip.subject, [frame_number(f) for f in clip.frames]) == ("007", [12, 13, 14, 15])


def test_sheet_chooses_between_two_matching_sheets(tmp_path):
    root, _ = _casme2(tmp_path)
    newer = root / "CASME2-coding-20190701.xlsx"
    write_sheet(
        newer,
        ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion"],
        [[c for i, c in enumerate(casme2_cells(CASME2_ROWS[0])) if i not in (2, 6, 7)]],
    )
    assert [c.clip_id for c in load_dataset(root, "casme2", sheet=newer)] == ["EP02_01f"]
    assert len(load_dataset(root, "auto", sheet=root / CASME2_SHEET)) == 6
    samm_root = build_samm(tmp_path / "samm")
    shutil.copy(samm_root / SAMM_SHEET, samm_root / "SAMM_Micro_FACS_Codes_v1.xlsx")
    assert len(load_dataset(samm_root, "samm", sheet=samm_root / SAMM_SHEET)) == 5


def test_megc2019_sheets_are_told_apart_by_name(tmp_path):
    root = tmp_path / "all"
    build_smic(root), build_casme2(root), build_samm(root)
    casme2_new, samm_old = root / "CASME2-coding-20190701.xlsx", root / "SAMM_Micro_FACS_Codes_v1.xlsx"
    shutil.copy(root / CASME2_SHEET, casme2_new)
    shutil.copy(root / SAMM_SHEET, samm_old)
    with pytest.raises(DatasetError, match="pass --sheet PATH"):
        load_dataset(root, "megc2019-mapping")
    assert route_sheets([samm_old, str(casme2_new)]) == {"samm": samm_old, "casme2": casme2_new}
    assert route_sheets(None) == {}
    (root / "SAMM_Micro_FACS_Codes_v1.xlsx").unlink()
    clips = load_dataset(root, "megc2019-mapping", sheet=str(casme2_new))
    assert {c.dataset for c in clips} == {"smic", "casme2", "samm"}
    assert len(load_dataset(root, "megc2019", sheet=[casme2_new, root / SAMM_SHEET], missing="warn")) > 0


def test_broken_frame_link_read_directly_names_its_target(tmp_path):
    os.symlink("/nonexistent/disk/image3.bmp", tmp_path / "image3.bmp")
    with pytest.raises(FrameReadError, match=r"image3\.bmp: broken symbolic link to /nonexistent/disk/"):
        read_frame(tmp_path / "image3.bmp")


@pytest.mark.parametrize("experiment", ["exp1", "exp2", "exp3"])
def test_the_experiments_have_a_sheet_option(experiment):
    from mer_keras.cli import build_parser

    parser = build_parser(experiment)
    assert parser.parse_args([]).sheet is None
    assert parser.parse_args(["--sheet", "/data/CASME2-coding-20190701.xlsx"]).sheet == (
        "/data/CASME2-coding-20190701.xlsx"
    )
    assert "--sheet PATH" in parser.format_help()
