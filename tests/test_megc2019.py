import json
import logging
from collections import Counter

import pytest

from mer_keras.datasets import MEGC2019_MAPPING, DatasetError, load_megc2019, load_megc2019_folder
from mer_keras.datasets import casme2, samm
from mer_keras.datasets.__main__ import main
from mer_keras.datasets.megc2019 import MEGC2019_CLASSES

from conftest import build_smic
from sheet_fixtures import SAMM_SHEET, build_casme2, build_samm

# clip key in the composite -> composite label
EXPECTED = {
    "smic/smic_s1/s1_ne_01": "negative",
    "smic/smic_s1/s1_po_01": "positive",
    "smic/smic_s2/s2_ne_01": "negative",
    "smic/smic_s2/s2_sur_01": "surprise",
    "smic/smic_s11/s11_po_01": "positive",
    "smic/smic_s11/s11_sur_01": "surprise",
    "casme2/casme2_sub01/EP02_01f": "positive",    # happiness
    "casme2/casme2_sub01/EP03_02": "negative",     # disgust
    "casme2/casme2_sub02/EP01_11f": "negative",    # repression
    "casme2/casme2_sub11/EP13_02": "surprise",
    "samm/samm_006/006_1_2": "negative",           # anger
    "samm/samm_006/006_1_5": "negative",           # contempt
    "samm/samm_007/007_6_1": "positive",           # happiness
    "samm/samm_011/011_2_1": "surprise",
}
DROPPED = [  # (source clip key, original label); SMIC non-micro clips are never loaded
    ("casme2/sub02/EP08_03", "fear"),
    ("casme2/sub11/EP19_05f", "others"),
    ("samm/007/007_7_3", "other"),
]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("megc")
    return build_smic(base / "smic"), build_casme2(base / "casme2"), build_samm(base / "samm")


def _drops(report):
    return [(r["clip"], r["issue"]) for r in report if r["issue"].endswith("dropped")]


def test_composite_labels_subjects_and_drops(roots, caplog):
    report = []
    with caplog.at_level(logging.INFO, logger="mer_keras.datasets"):
        clips = load_megc2019(*roots, report=report)
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
    assert ("006/006_1_5", "Apex Frame is '/': apex left unset") in [
        (r["clip"], r["issue"]) for r in report]


def test_coded_frames_survive_relabelling(roots):
    clips = {c.key: c for c in load_megc2019(*roots, frames="all")}
    clip = clips["casme2/casme2_sub01/EP02_01f"]
    assert (len(clip), clip.onset, clip.apex, clip.offset, clip.fps) == (10, 2, 4, 7, 200.0)
    assert len(clips["smic/smic_s1/s1_ne_01"]) == 12 and clips["smic/smic_s1/s1_ne_01"].fps == 100.0


def test_subjects_never_collide_across_sources(roots):
    # SAMM subject 011 and CASME II sub11 are different people: no subject spans two sources.
    clips = load_megc2019(*roots)
    subjects = {}
    for clip in clips:
        subjects.setdefault(clip.subject, set()).add(clip.dataset)
    assert all(len(sources) == 1 for sources in subjects.values())
    assert Counter(c.dataset for c in clips) == {"smic": 6, "casme2": 4, "samm": 4}


def test_mapping_matches_design_and_the_loaders_labels():
    negatives = {source: {label for label, composite in mapping.items() if composite == "negative"}
                 for source, mapping in MEGC2019_MAPPING.items()}
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
    assert {c.key for c in load_megc2019_folder(side_by_side)} == set(EXPECTED)
    assert main(["describe", str(side_by_side), "--dataset", "megc2019", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["datasets"] == ["casme2", "samm", "smic"]
    assert (summary["clips"], summary["subjects"]) == (14, 9)
    assert {k: v["clips"] for k, v in summary["classes"].items()} == {
        "negative": 6, "positive": 4, "surprise": 4}


def test_a_source_error_names_its_sheet(side_by_side):
    (side_by_side / SAMM_SHEET).unlink()
    with pytest.raises(DatasetError, match=r"No coding sheet matching 'SAMM_Micro_FACS_Codes\*"):
        load_megc2019_folder(side_by_side)


def test_invalid_arguments(roots):
    with pytest.raises(ValueError, match="Received: frames='onset'"):
        load_megc2019(*roots, frames="onset")
