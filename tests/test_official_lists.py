"""The official MEGC2019 list: shipped with the package, selected exactly, and checked on a copy.

The real-sheet tests build frame folders from the real coding sheets in ``../shared/reference``
(never copied into the repository) and skip when that folder is absent, as it is for users.
"""

import configparser
import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

import pytest

from mer_keras.datasets import (
    DatasetError,
    casme2,
    identify_sheet,
    load_megc2019,
    load_megc2019_folder,
    load_megc2019_mapped_folder,
    read_sample_list,
    samm,
)
from mer_keras.datasets.__main__ import main
from mer_keras.datasets.sheets import parse_int, read_sheet

from conftest import write_frames
from sheet_fixtures import write_image

REPO = Path(__file__).resolve().parents[1]
PACKAGED = REPO / "mer_keras" / "datasets" / "official" / "megc2019_composite_442.csv"
CASME2_REAL = "CASME2-coding-20190701.xlsx"
SAMM_REAL = "SAMM_Micro_FACS_Codes_v2.xlsx"
# The 5 clips the CASME II mapping takes and the official list leaves out (reference README).
LEFT_OUT = {
    "casme2/sub04/EP12_01f": "disgust",
    "casme2/sub05/EP09_05f": "disgust",
    "casme2/sub24/EP07_01": "surprise",
    "casme2/sub24/EP07_04f": "surprise",
    "casme2/sub24/EP10_03": "surprise",
}


def _reference_folder():
    """``<repo>/../shared/reference/megc2019``; from a git worktree, the main checkout's sibling too."""
    candidates = [REPO.parent / "shared" / "reference" / "megc2019"]
    git = REPO / ".git"
    if git.is_file() and git.read_text().startswith("gitdir:"):  # .../main/.git/worktrees/<name>
        main_checkout = Path(git.read_text().split(":", 1)[1].strip()).parents[2]
        candidates.append(main_checkout.parent / "shared" / "reference" / "megc2019")
    return next((c for c in candidates if (c / "megc2019_composite_442.csv").is_file()), None)


REFERENCE = _reference_folder()
needs_reference = pytest.mark.skipif(
    REFERENCE is None,
    reason="the real MEGC2019 reference sheets (<repo>/../shared/reference/megc2019) "
    "are absent: they are not part of the repository",
)


def _official_tuples():
    table = read_sample_list()
    return sorted(zip(table["dataset"], table["subject"], table["clip"], table["label"]))


# ---- the packaged list -------------------------------------------------------------------------


def test_packaged_list_has_the_published_counts():
    table = read_sample_list()
    assert len(table) == 442 and table["subject"].groupby(table["dataset"]).nunique().sum() == 68
    assert Counter(table["label"]) == {"negative": 250, "positive": 109, "surprise": 83}
    parts = {d: (dict(Counter(p["label"])), p["subject"].nunique()) for d, p in table.groupby("dataset")}
    assert parts == {
        "smic": ({"negative": 70, "positive": 51, "surprise": 43}, 16),
        "casme2": ({"negative": 88, "positive": 32, "surprise": 25}, 24),
        "samm": ({"negative": 92, "positive": 26, "surprise": 15}, 28),
    }
    smic = set(table.loc[table["dataset"] == "smic", "subject"])
    assert smic == {f"s{n}" for n in (1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 18, 19, 20)}
    assert list(table.index[:2]) == [2, 3]  # indexed by CSV line: the header is line 1


def test_packaged_list_is_declared_package_data_and_documented():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    patterns = config["options.package_data"]["mer_keras.datasets"].split()
    folder = PACKAGED.parent
    shipped = {p.relative_to(folder.parent).as_posix() for p in folder.iterdir()}
    assert shipped == {"official/megc2019_composite_442.csv", "official/README.md"}
    assert all(any(fnmatch(name, p) for p in patterns) for name in shipped)
    readme = (folder / "README.md").read_text()
    assert "wangzhifengharrison/HTNet" in readme and "combined_3_class2_for_optical_flow.csv" in readme
    assert hashlib.sha256(PACKAGED.read_bytes()).hexdigest() in readme


@needs_reference
def test_packaged_list_is_the_reference_list():
    assert PACKAGED.read_bytes() == (REFERENCE / "megc2019_composite_442.csv").read_bytes()


# ---- bad lists -----------------------------------------------------------------------------------

GOOD = ["dataset,subject,clip,label", "smic,s1,s1_ne_01,negative", "casme2,sub01,EP02_01f,positive"]
BAD_LISTS = [
    (
        "missing column",
        ["dataset,subject,clip", "smic,s1,s1_ne_01"],
        (
            r"bad\.csv line 1: no column 'label'; the sample list needs dataset, subject, clip, label\. "
            r"Received: columns \['dataset', 'subject', 'clip'\]"
        ),
    ),
    (
        "unknown label",
        GOOD + ["samm,006,006_1_2,anger"],
        (
            r"bad\.csv line 4: unknown label; expected one of negative, positive, surprise\. "
            r"Received: label='anger'"
        ),
    ),
    (
        "listed twice",
        GOOD + ["smic,s1,s1_ne_01,positive"],
        r"bad\.csv line 4: clip smic/s1/s1_ne_01 is listed twice \(also on line 2\)",
    ),
    (
        "unknown dataset",
        GOOD + ["casme,sub01,EP02_01f,positive"],
        r"bad\.csv line 4: unknown dataset; expected one of smic, casme2, samm\. Received: dataset='casme'",
    ),
    (
        "zero-padded SMIC subject",
        GOOD + ["smic,s01,s1_po_01,positive"],
        (
            r"bad\.csv line 4: smic subjects are written as their folders are \(s1, s2, …, not zero-padded\)\. "
            r"Received: subject='s01'"
        ),
    ),
    ("blank cell", GOOD + ["samm,006,,negative"], r"bad\.csv line 4: clip is empty"),
    ("no rows", GOOD[:1], r"bad\.csv: the sample list holds no clips"),
]


@pytest.mark.parametrize("case, lines, match", BAD_LISTS, ids=[b[0] for b in BAD_LISTS])
def test_bad_lists_name_file_and_line(tmp_path, case, lines, match):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=match):
        read_sample_list(path)


def test_a_good_list_file_and_a_missing_one(tmp_path):
    path = tmp_path / "good.csv"
    path.write_text("\n".join(GOOD) + "\n")
    assert read_sample_list(path).to_dict("index") == {
        2: {"dataset": "smic", "subject": "s1", "clip": "s1_ne_01", "label": "negative"},
        3: {"dataset": "casme2", "subject": "sub01", "clip": "EP02_01f", "label": "positive"},
    }
    with pytest.raises(DatasetError, match=r"absent\.csv: sample list not found"):
        read_sample_list(tmp_path / "absent.csv")


# ---- sheet versions ------------------------------------------------------------------------------


def test_sheet_versions_by_hash_by_name_and_unknown(tmp_path):
    holder = tmp_path / "CASME2-coding-20140508.xlsx"
    holder.write_bytes(b"not the real one")
    named = identify_sheet(holder, "casme2")
    assert named["known"] == "file name"
    assert named["version"] == (
        "CASME II coding sheet of 2014-05-08 (first release), by its file name; its sha256 is not known here"
    )
    assert named["sha256"] == hashlib.sha256(b"not the real one").hexdigest()
    other = tmp_path / "CASME2-coding-20190701.xlsx"
    other.write_bytes(b"edited")
    assert identify_sheet(other, "casme2")["known"] == "unknown"
    assert identify_sheet(holder, "samm")["version"].startswith("unknown version")


@needs_reference
def test_real_sheets_are_known_by_hash_whatever_their_name(tmp_path):
    renamed = tmp_path / "my_copy.xlsx"
    shutil.copy(REFERENCE / CASME2_REAL, renamed)
    assert identify_sheet(renamed, "casme2")["version"] == "CASME II coding sheet of 2019-07-01"
    found = identify_sheet(REFERENCE / SAMM_REAL, "samm")
    assert (found["known"], found["released_as"]) == ("sha256", SAMM_REAL)
    assert identify_sheet(REFERENCE / SAMM_REAL, "casme2")["known"] == "unknown"  # right hash, wrong dataset


# ---- a tree built from the real sheets -----------------------------------------------------------


def _coded_rows(module, sheet):
    """(subject folder, clip, onset, apex or None, offset) of every row of a real sheet."""
    columns = module.COLUMNS
    rows = []
    for _, cells in read_sheet(sheet, list(columns.values())).iterrows():
        try:
            apex = parse_int(cells[columns["apex"]])
        except ValueError:
            apex = None
        subject = module.subject_folder(cells[columns["subject"]])
        rows.append(
            (
                subject,
                str(cells[columns["filename"]]).strip(),
                parse_int(cells[columns["onset"]]),
                apex,
                parse_int(cells[columns["offset"]]),
            )
        )
    return rows


def _frames_of(onset, apex, offset):
    """Onset, apex (when inside) and offset only: the loaders report the frames between as missing."""
    return sorted({onset, offset} | ({apex} if apex is not None and onset <= apex <= offset else set()))


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory):
    """SMIC_all_raw (the list's SMIC clips), CASME2-RAW and SAMM from the real sheets, tiny frames."""
    if REFERENCE is None:
        pytest.skip("the real MEGC2019 reference sheets are absent")
    root = tmp_path_factory.mktemp("megc_real")
    for name in (CASME2_REAL, SAMM_REAL):
        shutil.copy(REFERENCE / name, root / name)
    for subject, clip, onset, apex, offset in _coded_rows(casme2, root / CASME2_REAL):
        write_frames(
            root / "CASME2-RAW" / subject / clip,
            _frames_of(onset, apex, offset),
            size=(8, 10),
            prefix="img",
            ext=".jpg",
        )
    for subject, clip, onset, apex, offset in _coded_rows(samm, root / SAMM_REAL):
        folder = root / "SAMM" / subject / clip
        folder.mkdir(parents=True)
        for number in _frames_of(onset, apex, offset):
            write_image(folder / f"{subject}_{number:05d}.jpg", number, grey=True, size=(8, 10))
    table = read_sample_list()
    for row in table[table["dataset"] == "smic"].itertuples():
        first = 100000 + 10 * row.Index
        write_frames(
            root / "SMIC_all_raw" / "HS" / row.subject / "micro" / row.label / row.clip,
            range(first, first + 3),
            size=(8, 10),
        )
    return root


@pytest.fixture
def without(real_tree):
    """Move one clip folder of the real tree away for a test, and back afterwards."""
    moved = []

    def remove(relative):
        folder = real_tree / relative
        aside = real_tree.parent / f"aside_{folder.name}"
        folder.rename(aside)
        moved.append((aside, folder))

    yield remove
    for aside, folder in moved:
        aside.rename(folder)


def test_real_sheets_give_exactly_the_official_442(real_tree, caplog):
    report = []
    with caplog.at_level(logging.INFO, logger="mer_keras.datasets"):
        clips = load_megc2019_folder(real_tree, report=report)
    found = sorted((c.dataset, c.subject.split("_", 1)[1], c.clip_id, c.label) for c in clips)
    assert found == _official_tuples()
    assert all(c.subject == f"{c.dataset}_{c.subject.split('_', 1)[1]}" for c in clips)
    assert Counter(c.dataset for c in clips) == {"smic": 164, "casme2": 145, "samm": 133}
    dropped = {r["clip"]: r["issue"] for r in report if "not in the official MEGC2019 list" in r["issue"]}
    composite = {"disgust": "negative", "surprise": "surprise"}
    assert dropped == {
        key: f"labelled {label!r} ({composite[label]}), not in the official MEGC2019 list: dropped"
        for key, label in LEFT_OUT.items()
    }
    assert not [r for r in report if "official list" in r["issue"] and "class" in r["issue"]]
    assert (
        "MEGC2019 (official list): smic 164, casme2 145, samm 133; dropped smic 0, casme2 110, "
        "samm 26 clips the list leaves out"
    ) in caplog.messages


def test_mapping_alone_takes_the_five_left_out_clips(real_tree):
    clips = load_megc2019_mapped_folder(real_tree)
    assert Counter(c.dataset for c in clips) == {"smic": 164, "casme2": 150, "samm": 133}
    mapped = {f"{c.dataset}/{c.subject.split('_', 1)[1]}/{c.clip_id}" for c in clips}
    official = {f"{d}/{s}/{c}" for d, s, c, _ in _official_tuples()}
    assert mapped - official == set(LEFT_OUT) and official <= mapped


def test_check_on_the_real_tree_prints_every_count_equal(real_tree, capsys):
    assert main(["describe", str(real_tree), "--check", "megc2019"]) == 0
    out = capsys.readouterr().out
    for line in (
        "negative          250    250   yes",
        "positive          109    109   yes",
        "surprise           83     83   yes",
        "total clips       442    442   yes",
        "subjects           68     68   yes",
    ):
        assert line in out
    assert (
        "sha256 6004a3ea87055ef9e6319d59b7940b337dc08e18ac785429c9b851587aa5e090: CASME II coding "
        "sheet of 2019-07-01 (known by sha256)" in out
    )
    assert "differences from the official list: none" in out
    assert "not in the official list (dropped by the official loader; not a mismatch): 5" in out
    assert "  extra          casme2/sub24/EP07_01: labelled 'surprise' (surprise)" in out
    assert out.rstrip().endswith("result: all counts equal the official ones")
    check_part = out.split("per subject (official/found):")[1].splitlines()
    subject_rows = [line for line in check_part if line.startswith(("smic_s", "casme2_sub", "samm_0"))]
    assert len(subject_rows) == 68 and all(line.endswith("yes") for line in subject_rows)
    assert "casme2_sub01      2/2      1/1      0/0    3/3   yes" in subject_rows
    assert [line.split()[0] for line in subject_rows[7:10]] == ["smic_s9", "smic_s11", "smic_s12"]


def test_check_json_on_the_real_tree(real_tree, capsys):
    assert main(["describe", str(real_tree), "--check", "megc2019", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    check = summary["check"]
    assert summary["clips"] == 442 and check["equal"] is True and check["differences"] == []
    assert check["classes"] == {
        "negative": {"official": 250, "found": 250},
        "positive": {"official": 109, "found": 109},
        "surprise": {"official": 83, "found": 83},
    }
    assert check["datasets"]["casme2"] == {
        "clips": {"official": 145, "found": 145},
        "subjects": {"official": 24, "found": 24},
    }
    assert check["subjects"]["smic_s1"] == {
        "negative": {"official": 3, "found": 3},
        "positive": {"official": 2, "found": 2},
        "surprise": {"official": 1, "found": 1},
    }
    assert len(check["subjects"]) == 68
    assert [s["known"] for s in check["sheets"]] == ["sha256", "sha256"]
    assert sorted(e["clip"] for e in check["not_listed"]) == sorted(LEFT_OUT)


@pytest.mark.parametrize(
    "check, clips, classes, subjects",
    [
        ("smic-hs", 164, {"negative": 70, "positive": 51, "surprise": 43}, 16),
        ("casme2", 145, {"negative": 88, "positive": 32, "surprise": 25}, 24),
        ("samm", 133, {"negative": 92, "positive": 26, "surprise": 15}, 28),
    ],
)
def test_single_dataset_checks_on_the_real_tree(real_tree, capsys, check, clips, classes, subjects):
    assert main(["describe", str(real_tree), "--check", check, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["check"]
    assert result["totals"] == {
        "clips": {"official": clips, "found": clips},
        "subjects": {"official": subjects, "found": subjects},
    }
    assert {c: n["found"] for c, n in result["classes"].items()} == classes
    assert len(result["not_listed"]) == (5 if check == "casme2" else 0)
    assert all(not s.startswith(("smic_", "casme2_", "samm_")) for s in result["subjects"])


def test_a_deleted_clip_is_named_by_the_check_and_the_loader(real_tree, without, capsys, caplog):
    without("CASME2-RAW/sub01/EP02_01f")
    assert main(["describe", str(real_tree), "--check", "megc2019"]) == 1
    out = capsys.readouterr().out
    assert "  missing        casme2/sub01/EP02_01f: listed as positive (line 2), not on disk" in out
    assert "positive          109    108    NO" in out and "total clips       442    441    NO" in out
    assert "differences from the official list: 1" in out
    assert "result: the copy differs from the official list (1 clip(s))" in out

    with pytest.raises(
        DatasetError,
        match=r"1 clip\(s\) of the official MEGC2019 list "
        r"\(megc2019_composite_442\.csv\) are not on disk .*: "
        r"casme2/sub01/EP02_01f\. Pass missing='warn'",
    ):
        load_megc2019_folder(real_tree)

    report = []
    with caplog.at_level(logging.WARNING, logger="mer_keras.datasets"):
        clips = load_megc2019(real_tree, real_tree, real_tree, report=report, missing="warn")
    assert len(clips) == 441
    entry = {
        "sheet": "megc2019_composite_442.csv",
        "row": 2,
        "clip": "casme2/sub01/EP02_01f",
        "issue": "listed (positive) but not on disk: left out",
    }
    assert entry in report
    assert (
        "megc2019_composite_442.csv row 2: casme2/sub01/EP02_01f: listed (positive) but not on disk: "
        "left out" in caplog.messages
    )
    json.dumps(report)  # the run can put it into config.json


def test_a_deleted_smic_clip_fails_the_smic_check(real_tree, without, capsys):
    without("SMIC_all_raw/HS/s20/micro/surprise/s20_sur_01")
    assert main(["describe", str(real_tree), "--check", "smic-hs"]) == 1
    out = capsys.readouterr().out
    assert "  missing        smic/s20/s20_sur_01: listed as surprise" in out
    assert "surprise           43     42    NO" in out


def test_check_and_dataset_must_agree(real_tree, capsys):
    assert main(["describe", str(real_tree), "--check", "casme2", "--dataset", "samm"]) == 2
    assert (
        "--check casme2 reads ROOT as casme2; --dataset must be auto or casme2. Received: --dataset samm"
        in capsys.readouterr().err
    )


def test_the_check_runs_where_the_reference_is_absent_too(tmp_path, capsys):
    # no reference needed: an empty folder is a read error (2), not a mismatch (1)
    os.makedirs(tmp_path / "empty")
    assert main(["describe", str(tmp_path / "empty"), "--check", "samm"]) == 2
    assert "no SAMM subject folders" in capsys.readouterr().err
