import json
import logging
from collections import Counter
from functools import partial

import pytest

from mer_keras.datasets import (
    MEGC2019_MAPPING,
    DatasetError,
    casme2,
    load_megc2019,
    load_megc2019_folder,
    load_megc2019_mapped,
    load_megc2019_mapped_folder,
    samm,
)
from mer_keras.datasets.__main__ import main
from mer_keras.datasets.megc2019 import MEGC2019_CLASSES

from conftest import build_smic
from sheet_fixtures import CASME2_HEADER, CASME2_SHEET, SAMM_SHEET, build_casme2, build_samm

# The fabricated sources (conftest.SMIC_SPEC, sheet_fixtures) by the label mapping alone:
# clip key in the composite -> composite label
EXPECTED = {
    "smic/smic_s1/s1_ne_01": "negative",
    "smic/smic_s1/s1_po_01": "positive",
    "smic/smic_s2/s2_ne_01": "negative",
    "smic/smic_s2/s2_sur_01": "surprise",
    "smic/smic_s11/s11_po_01": "positive",
    "smic/smic_s11/s11_sur_01": "surprise",
    "casme2/casme2_sub01/EP02_01f": "positive",  # happiness
    "casme2/casme2_sub01/EP03_02": "negative",  # disgust
    "casme2/casme2_sub02/EP01_11f": "negative",  # repression
    "casme2/casme2_sub11/EP13_02": "surprise",
    "samm/samm_006/006_1_2": "negative",  # anger
    "samm/samm_006/006_1_5": "negative",  # contempt
    "samm/samm_007/007_6_1": "positive",  # happiness
    "samm/samm_011/011_2_1": "surprise",
}
DROPPED = [  # (source clip key, original label); SMIC non-micro clips are never loaded
    ("casme2/sub02/EP08_03", "fear"),
    ("casme2/sub11/EP19_05f", "others"),
    ("samm/007/007_7_3", "other"),
]
# The same sources through the official list: 11 of its clips share a name with fabricated ones.
NOT_LISTED = {  # mapped clips the official list does not have
    "smic/s2/s2_ne_01": "labelled 'negative' (negative), not in the official MEGC2019 list: dropped",
    "casme2/sub01/EP03_02": "labelled 'disgust' (negative), not in the official MEGC2019 list: dropped",
    "casme2/sub11/EP13_02": "labelled 'surprise' (surprise), not in the official MEGC2019 list: dropped",
}
OFFICIAL = {
    key: label
    for key, label in EXPECTED.items()
    if key.replace("smic_", "").replace("casme2_", "").replace("samm_", "") not in NOT_LISTED
}
OFFICIAL["samm/samm_011/011_2_1"] = "negative"  # the fabricated sheet says surprise; the list wins


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("megc")
    return build_smic(base / "smic"), build_casme2(base / "casme2"), build_samm(base / "samm")


def _drops(report):
    return [(r["clip"], r["issue"]) for r in report if r["issue"].endswith("dropped")]


def test_mapped_composite_labels_subjects_and_drops(roots, caplog):
    report = []
    with caplog.at_level(logging.INFO, logger="mer_keras.datasets"):
        clips = load_megc2019_mapped(*roots, report=report)
    assert {c.key: c.label for c in clips} == EXPECTED
    assert [c.key for c in clips] == list(EXPECTED)  # SMIC, then CASME II, then SAMM
    for clip in clips:
        assert clip.subject.startswith(f"{clip.dataset}_")
    assert _drops(report) == [
        (key, f"label {label!r} is not a MEGC2019 class: dropped") for key, label in DROPPED
    ]
    summaries = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert summaries == [
        "MEGC2019: dropped 2 casme2 clips outside the 3 classes (fear 1, others 1)",
        "MEGC2019: dropped 1 samm clips outside the 3 classes (other 1)",
    ]
    # the sources' own patched rows are in the same report
    assert ("006/006_1_5", "Apex Frame is '/': apex left unset") in [(r["clip"], r["issue"]) for r in report]


@pytest.mark.parametrize(
    "loader", [load_megc2019_mapped, partial(load_megc2019, missing="warn")], ids=["mapped", "official"]
)
def test_coded_frames_survive_relabelling(roots, loader):
    clips = {c.key: c for c in loader(*roots, frames="all")}
    clip = clips["casme2/casme2_sub01/EP02_01f"]
    assert (len(clip), clip.onset, clip.apex, clip.offset, clip.fps) == (10, 2, 4, 7, 200.0)
    assert len(clips["smic/smic_s1/s1_ne_01"]) == 12 and clips["smic/smic_s1/s1_ne_01"].fps == 100.0


def test_subjects_never_collide_across_sources(roots):
    # SAMM subject 011 and CASME II sub11 are different people: no subject spans two sources.
    clips = load_megc2019_mapped(*roots)
    subjects = {}
    for clip in clips:
        subjects.setdefault(clip.subject, set()).add(clip.dataset)
    assert all(len(sources) == 1 for sources in subjects.values())
    assert Counter(c.dataset for c in clips) == {"smic": 6, "casme2": 4, "samm": 4}


def test_mapping_matches_design_and_the_loaders_labels():
    negatives = {
        source: {label for label, composite in mapping.items() if composite == "negative"}
        for source, mapping in MEGC2019_MAPPING.items()
    }
    assert negatives == {
        "smic": {"negative"},
        "casme2": {"disgust", "repression"},
        "samm": {"anger", "contempt", "disgust", "fear", "sadness"},
    }
    for source, emotions in (("casme2", casme2.EMOTIONS), ("samm", samm.EMOTIONS)):
        assert set(MEGC2019_MAPPING[source]) <= set(emotions)
        assert MEGC2019_MAPPING[source]["happiness"] == "positive"
    assert {v for m in MEGC2019_MAPPING.values() for v in m.values()} == set(MEGC2019_CLASSES)


@pytest.fixture
def side_by_side(tmp_path):
    root = tmp_path / "all"
    build_smic(root)
    build_casme2(root)
    build_samm(root)
    return root


def test_one_folder_side_by_side_and_describe(side_by_side, capsys):
    assert {c.key for c in load_megc2019_mapped_folder(side_by_side)} == set(EXPECTED)
    assert main(["describe", str(side_by_side), "--dataset", "megc2019-mapping", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["datasets"] == ["casme2", "samm", "smic"]
    assert (summary["clips"], summary["subjects"]) == (14, 9)
    assert {k: v["clips"] for k, v in summary["classes"].items()} == {
        "negative": 6,
        "positive": 4,
        "surprise": 4,
    }


@pytest.mark.parametrize("loader", [load_megc2019_mapped_folder, load_megc2019_folder])
def test_a_source_error_names_its_sheet(side_by_side, loader):
    (side_by_side / SAMM_SHEET).unlink()
    with pytest.raises(DatasetError, match=r"No coding sheet matching 'SAMM_Micro_FACS_Codes\*"):
        loader(side_by_side)


def test_a_missing_sheet_column_names_the_sheet(tmp_path):
    root = tmp_path / "all"
    build_smic(root), build_samm(root)
    build_casme2(root, header=[h if h != "Estimated Emotion" else "Emotion" for h in CASME2_HEADER])
    with pytest.raises(DatasetError, match=rf"{CASME2_SHEET} row 1: no column 'Estimated Emotion' "):
        load_megc2019_folder(root, missing="warn")


@pytest.mark.parametrize("loader", [load_megc2019_mapped, load_megc2019])
def test_invalid_arguments(roots, loader):
    with pytest.raises(ValueError, match="Received: frames='onset'"):
        loader(*roots, frames="onset")


def test_invalid_missing_option(roots):
    with pytest.raises(
        ValueError,
        match=r"`missing` must be one of \('error', 'warn'\)\. "
        r"Received: missing='skip'",
    ):
        load_megc2019(*roots, missing="skip")


# ---- the official list on the fabricated sources -------------------------------------------------


def test_official_selection_keeps_listed_clips_with_the_lists_class(roots, caplog):
    report = []
    with caplog.at_level(logging.INFO, logger="mer_keras.datasets"):
        clips = load_megc2019(*roots, report=report, missing="warn")
    assert {c.key: c.label for c in clips} == OFFICIAL
    assert [c.dataset for c in clips] == ["smic"] * 5 + ["casme2"] * 2 + ["samm"] * 4
    differs = {
        "sheet": "megc2019_composite_442.csv",
        "row": 339,
        "clip": "samm/011/011_2_1",
        "issue": "the source labels it 'surprise' (surprise), the official list 'negative': "
        "the list's class is used",
    }
    assert differs in report
    assert {r["clip"]: r["issue"] for r in report if "not in the official" in r["issue"]} == NOT_LISTED
    absent = [r for r in report if r["issue"].endswith("but not on disk: left out")]
    assert len(absent) == 442 - 11
    assert absent[0] == {
        "sheet": "megc2019_composite_442.csv",
        "row": 148,
        "clip": "smic/s1/s1_ne_02",
        "issue": "listed (negative) but not on disk: left out",
    }
    assert (
        "MEGC2019 (official list): smic 5, casme2 2, samm 4; dropped smic 1, casme2 4, samm 1 clips "
        "the list leaves out; 431 listed clips not on disk"
    ) in caplog.messages


def test_official_list_clips_missing_on_disk_are_an_error(roots):
    with pytest.raises(DatasetError) as error:
        load_megc2019(*roots)
    message = str(error.value)
    assert message.startswith(
        "431 clip(s) of the official MEGC2019 list (megc2019_composite_442.csv) are not on disk (SMIC "
    )
    assert ": smic/s1/s1_ne_02, smic/s1/s1_ne_03, " in message
    assert message.endswith(" and 411 more. Pass missing='warn' to load the others and report these.")


def test_check_on_fabricated_copy_lists_differences_and_exits_1(side_by_side, capsys):
    assert main(["describe", str(side_by_side), "--check", "megc2019"]) == 1
    out = capsys.readouterr().out
    assert (
        "  class differs  samm/011/011_2_1: listed as negative (line 339), the copy labels it "
        "'surprise' (surprise)"
    ) in out
    assert "  missing        smic/s1/s1_ne_02: listed as negative (line 148), not on disk" in out
    assert "differences from the official list: 432" in out
    assert "total clips       442     11    NO" in out
    assert (
        "CASME II coding sheet of 2014-05-08 (first release), by its file name; its sha256 is not "
        "known here" in out
    )
    assert "unknown version (sha256 matches no samm sheet known here)" in out
    assert "  extra          casme2/sub11/EP13_02: labelled 'surprise' (surprise)" in out
    assert out.rstrip().endswith("result: the copy differs from the official list (432 clip(s))")


def test_check_json_on_fabricated_copy(side_by_side, capsys):
    assert main(["describe", str(side_by_side), "--check", "samm", "--json"]) == 1
    check = json.loads(capsys.readouterr().out)["check"]
    assert check["equal"] is False
    assert check["classes"]["surprise"] == {"official": 15, "found": 1}
    assert check["subjects"]["011"]["negative"] == {"official": 13, "found": 0}
    assert check["differences"][0] == {
        "clip": "samm/011/011_2_1",
        "issue": "class differs",
        "list_line": 339,
        "official": "negative",
        "coded": "surprise",
        "found": "surprise",
    }
    assert sum(d["issue"] == "missing" for d in check["differences"]) == 133 - 4
