import pytest

from mer_keras.datasets import Clip, DatasetError, load_dataset, load_smic
from mer_keras.datasets.frames import frame_number

from conftest import SMIC_SPEC, build_smic, write_frames


def _expected():
    return {
        clip_id: (subject, label, list(range(first, first + length)))
        for subject, clips in SMIC_SPEC.items()
        for label, clip_id, first, length in clips
    }


def test_every_clip_subject_label_and_ordered_frames(smic_root):
    clips = load_smic(smic_root)
    expected = _expected()
    assert sorted(c.clip_id for c in clips) == sorted(expected)
    for clip in clips:
        subject, label, numbers = expected[clip.clip_id]
        assert (clip.dataset, clip.subject, clip.label, clip.fps) == ("smic", subject, label, 100.0)
        assert [frame_number(f) for f in clip.frames] == numbers
        assert all(f.endswith(".bmp") for f in clip.frames)
    # subjects come in numeric order: s1, s2, s11 (not s1, s11, s2)
    assert [c.subject for c in clips][-1] == "s11"


def test_frames_cross_999_to_1000_numerically(smic_root):
    clip = next(c for c in load_smic(smic_root) if c.clip_id == "s1_ne_01")
    names = [f.rsplit("/", 1)[1] for f in clip.frames]
    assert names[:6] == [
        "image995.bmp",
        "image996.bmp",
        "image997.bmp",
        "image998.bmp",
        "image999.bmp",
        "image1000.bmp",
    ]


@pytest.mark.parametrize("level", ["", "SMIC_all_raw", "SMIC_all_raw/HS"])
def test_root_may_be_any_level(smic_root, level):
    assert len(load_smic(smic_root / level)) == 8


def test_cropped_release_is_read(tmp_path):
    spec = {"s3": [("negative", "s3_ne_01", 10, 5)]}
    root = build_smic(tmp_path, spec, release="SMIC_all_cropped")
    (clip,) = load_smic(root)
    assert clip.subject == "s3" and len(clip) == 5


def test_non_micro_can_be_left_out(smic_root):
    clips = load_smic(smic_root, non_micro=False)
    assert {c.label for c in clips} == {"negative", "positive", "surprise"}
    assert len(clips) == 6


def test_other_modality(tmp_path):
    root = build_smic(tmp_path, {"s4": [("positive", "s4_po_01", 1, 4)]}, modality="NIR")
    (clip,) = load_smic(root, modality="NIR")
    assert clip.fps == 25.0
    with pytest.raises(DatasetError, match="no SMIC HS folder"):
        load_smic(root, modality="HS")


@pytest.mark.parametrize(
    "damage, match",
    [
        ("missing_root", "SMIC root not found"),
        ("unknown_class", "unknown class folder 'happy'"),
        ("empty_clip", "clip folder holds no image files"),
        ("no_clips", "no SMIC clips found"),
    ],
)
def test_errors_name_the_path(tmp_path, damage, match):
    root = build_smic(tmp_path / "d", {"s1": [("negative", "s1_ne_01", 1, 3)]})
    hs = root / "SMIC_all_raw" / "HS"
    if damage == "missing_root":
        root = tmp_path / "nowhere"
    elif damage == "unknown_class":
        write_frames(hs / "s1" / "micro" / "happy" / "s1_ha_01", [1, 2])
    elif damage == "empty_clip":
        (hs / "s1" / "micro" / "negative" / "s1_ne_02").mkdir()
        (hs / "s1" / "micro" / "negative" / "s1_ne_02" / "Thumbs.db").write_bytes(b"x")
    elif damage == "no_clips":
        import shutil

        shutil.rmtree(hs / "s1" / "micro" / "negative")
    with pytest.raises(DatasetError, match=match) as info:
        load_smic(root)
    assert str(tmp_path) in str(info.value)


def test_invalid_modality():
    with pytest.raises(ValueError, match="Received: modality='RGB'"):
        load_smic("/tmp", modality="RGB")


def test_load_dataset_detects_smic(smic_root, tmp_path):
    assert len(load_dataset(smic_root)) == 8
    with pytest.raises(DatasetError, match="not a known dataset layout"):
        load_dataset(tmp_path / "data" / "SMIC_all_raw" / "HS" / "s1" / "micro")


def test_clip_record_is_immutable_and_printable():
    clip = Clip("smic", "s1", "s1_ne_01", "negative", ["a1.bmp", "a2.bmp"], 100.0)
    assert clip.frames == ("a1.bmp", "a2.bmp") and len(clip) == 2
    assert repr(clip) == "Clip(smic/s1/s1_ne_01, label='negative', 2 frames @ 100 fps)"
    with pytest.raises(AttributeError):
        clip.label = "positive"
    with pytest.raises(DatasetError, match="has no frames"):
        Clip("smic", "s1", "x", "negative", (), 100.0)


def test_corrupt_frame_in_tree_is_reported_with_its_path(smic_root):
    from mer_keras.datasets import FrameReadError, read_frames

    clip = next(c for c in load_smic(smic_root) if c.clip_id == "s2_sur_01")
    with open(clip.frames[4], "wb") as broken:
        broken.write(b"BM garbage")
    with pytest.raises(FrameReadError, match=r"s2_sur_01/image1204\.bmp: cannot decode"):
        read_frames(clip.frames)
