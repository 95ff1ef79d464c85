"""The built-in synthetic dataset: SMIC layout, determinism, masks, and where its signal lives."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

import numpy as np
import pytest

from mer_keras.datasets import synthetic
from mer_keras.datasets.clip import Clip, DatasetError
from mer_keras.datasets.frames import frame_number, read_frames
from mer_keras.datasets.synthetic import (
    ensure_synthetic_smic,
    make_synthetic_smic,
    mask_path,
    plan_clips,
    read_mask,
    synthetic_root,
)

LABELS = ("negative", "positive", "surprise", "non_micro")
MOVING = ("negative", "positive", "surprise")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Four subjects at 64x64 (about 45 clips), generated once for the module."""
    root = make_synthetic_smic(
        tmp_path_factory.mktemp("synthetic"), subjects=4, seed=0, size=64, progress=False
    )
    from mer_keras.datasets.smic import load_smic

    manifest = json.loads((root / "SMIC_all_raw" / "synthetic_manifest.json").read_text())
    return root, load_smic(root), {c["clip_id"]: c for c in manifest["clips"]}


def _hashes(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    options = dict(subjects=2, size=48, clips_scale=0.4, progress=False)
    first = _hashes(make_synthetic_smic(tmp_path / "a", seed=3, **options))
    second = _hashes(make_synthetic_smic(tmp_path / "b", seed=3, **options))
    other = _hashes(make_synthetic_smic(tmp_path / "c", seed=4, **options))
    assert len(first) > 20 and first == second
    shared_frames = [name for name in set(first) & set(other) if name.endswith(".bmp")]
    assert shared_frames and all(first[name] != other[name] for name in shared_frames)


def test_tree_is_read_by_the_smic_loader(tree):
    root, clips, manifest = tree
    assert {c.clip_id for c in clips} == set(manifest)
    assert sorted({c.subject for c in clips}, key=lambda s: int(s[1:])) == ["s1", "s2", "s3", "s4"]
    for clip in clips:
        planned = manifest[clip.clip_id]
        assert (clip.subject, clip.label, len(clip), clip.fps) == (
            planned["subject"],
            planned["label"],
            planned["n_frames"],
            100.0,
        )
        numbers = [frame_number(f) for f in clip.frames]
        assert numbers == list(range(planned["first_frame"], planned["first_frame"] + len(clip)))
        abbreviation = synthetic.CLASS_ABBREVIATIONS[clip.label]
        assert clip.clip_id.startswith(f"{clip.subject}_{abbreviation}_")
    assert set(c.label for c in clips) == set(LABELS)
    lengths = [len(c) for c in clips]
    assert min(lengths) == 11 and max(lengths) <= 60
    crossing = [c for c in clips if frame_number(c.frames[0]) < 100_000 <= frame_number(c.frames[-1])]
    assert crossing, "some clip's numbers must cross 99999 -> 100000 (lexical order would be wrong)"
    names = [f.rsplit("/", 1)[-1] for f in crossing[0].frames]
    assert names != sorted(names)


def test_plan_matches_smic_hs_at_16_subjects():
    plans = plan_clips(subjects=16, seed=0)
    per_class = defaultdict(set)
    for plan in plans:
        per_class[plan.label].add(plan.subject)
    counts = {label: sum(p.label == label for p in plans) for label in LABELS}
    assert 160 <= len(plans) <= 200
    assert counts["negative"] > counts["positive"] > counts["surprise"]
    assert all(len(per_class[label]) >= 10 for label in LABELS)
    smic_hs = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 18, 19, 20)
    assert {p.subject for p in plans} == {f"s{n}" for n in smic_hs}
    lengths = np.array([p.n_frames for p in plans])
    assert lengths.min() == 11 and lengths.max() <= 60 and 24 <= lengths.mean() <= 31


def test_masks_exist_and_are_empty_only_without_expression(tree):
    _, clips, _ = tree
    for clip in clips:
        assert mask_path(clip) == mask_path(clip.frames[0].rsplit("/", 1)[0])
        assert mask_path(clip).name == f"{clip.clip_id}_mask.png"
        mask = read_mask(clip)
        assert mask.shape == (64, 64) and mask.dtype == bool
        if clip.label == "non_micro":
            assert not mask.any()
        else:
            assert 0.01 < mask.mean() < 0.2
    resized = read_mask(next(c for c in clips if c.label == "surprise"), size=(32, 48))
    assert resized.shape == (32, 48) and resized.any()


def _region_energies(tree):
    """Per clip and region: mean |frame - first frame| at apex (+-1) and at the second frame.

    A region is the union of one subject's masks of one class, so its geometry is the subject's.
    """
    _, clips, manifest = tree
    regions = defaultdict(list)
    for clip in clips:
        if clip.label in MOVING:
            regions[clip.subject, clip.label].append(read_mask(clip))
    regions = {key: np.any(masks, axis=0) for key, masks in regions.items()}
    apex, onset = defaultdict(list), defaultdict(list)
    for clip in clips:
        grey = read_frames(clip.frames).astype(np.float32).mean(axis=-1)
        peak = manifest[clip.clip_id]["apex"]
        at_apex = np.abs(grey[peak - 1 : peak + 2] - grey[0]).mean(axis=0)
        at_onset = np.abs(grey[1] - grey[0])
        for region in MOVING:
            if (clip.subject, region) in regions:
                inside = regions[clip.subject, region]
                apex[clip.label, region].append(at_apex[inside].mean())
                onset[clip.label, region].append(at_onset[inside].mean())
    return apex, onset


def test_classes_separate_by_where_the_face_moves(tree):
    apex, onset = _region_energies(tree)
    # Motion energy: apex difference above the noise floor of frames 0 -> 1 (~1.3 grey levels).
    energy = {key: float(np.median(np.subtract(apex[key], onset[key]))) for key in apex}
    # Brows and eyes (surprise regions): surprise moves them, positive and non_micro do not.
    assert energy["surprise", "surprise"] >= 2.0
    assert energy["surprise", "surprise"] >= 3 * energy["positive", "surprise"]
    assert energy["surprise", "surprise"] >= 3 * energy["non_micro", "surprise"]
    # Mouth corners (positive regions): positive and negative (AU15) move them, surprise does not.
    assert energy["positive", "positive"] >= 1.0
    assert energy["positive", "positive"] >= 3 * energy["surprise", "positive"]
    assert energy["positive", "positive"] >= 3 * energy["non_micro", "positive"]
    assert energy["negative", "positive"] >= 3 * energy["non_micro", "positive"]
    # Inner brows and mouth corners (negative regions): nothing moves there in non_micro clips.
    assert energy["negative", "negative"] >= 2.0
    assert energy["negative", "negative"] >= 4 * energy["non_micro", "negative"]


def test_onset_frames_look_neutral_in_every_class(tree):
    apex, onset = _region_energies(tree)
    for region in MOVING:
        nuisance = np.median(onset["non_micro", region])
        for label in MOVING:
            # Frame 1 differs from frame 0 by sensor noise and drift only, as in non_micro clips...
            assert abs(np.median(onset[label, region]) / nuisance - 1) < 0.15
        # ...and far less than the apex does where the clip's own class moves.
        assert np.median(apex[region, region]) >= 2.5 * np.median(onset[region, region])


def test_each_subject_has_its_own_face(tree):
    _, clips, _ = tree
    first = {}
    within, between = [], []
    for clip in clips:
        frame = read_frames(clip.frames[:1]).astype(np.float32)[0]
        for subject, other in first.items():
            (within if subject == clip.subject else between).append(np.abs(frame - other).mean())
        first.setdefault(clip.subject, frame)
    # Same subject: only pose, lighting gain and noise differ. Other subjects: another face.
    assert np.min(between) > np.max(within) and np.median(between) > 5 * np.median(within)


def test_cache_is_reused_and_an_interrupted_one_redone(tmp_path, monkeypatch):
    monkeypatch.setenv("MER_KERAS_CACHE", str(tmp_path))
    root = synthetic_root(seed=1, subjects=1, size=32)
    assert root.parent == tmp_path and root.name == "synthetic-smic-v1-s1-seed1-32"
    (root / "SMIC_all_raw").mkdir(parents=True)  # a half-written tree without the marker
    (root / "SMIC_all_raw" / "leftover").write_text("interrupted")
    assert ensure_synthetic_smic(seed=1, subjects=1, size=32, progress=False) == root
    assert (root / synthetic.COMPLETE_MARKER).is_file()
    assert not (root / "SMIC_all_raw" / "leftover").exists()
    assert [p.name for p in tmp_path.iterdir()] == [root.name]  # no scratch folder left behind

    def must_not_run(*args, **kwargs):
        raise AssertionError("regenerated a complete cache")

    monkeypatch.setattr(synthetic, "make_synthetic_smic", must_not_run)
    assert ensure_synthetic_smic(seed=1, subjects=1, size=32, progress=False) == root


def test_command_line_writes_the_tree(tmp_path, capsys):
    from mer_keras.datasets.smic import load_smic

    arguments = [str(tmp_path), "--subjects", "1", "--size", "32", "--seed", "2", "--quiet"]
    assert synthetic.main(arguments) == 0
    assert "synthetic-smic-v1" in capsys.readouterr().out
    assert (tmp_path / "SMIC_all_raw" / "README_SYNTHETIC.txt").is_file()
    assert {c.subject for c in load_smic(tmp_path)} == {"s1"}
    with pytest.raises(SystemExit) as exit_info:  # refuses to write over an existing tree
        synthetic.main([str(tmp_path), "--subjects", "1", "--size", "32", "--quiet"])
    assert exit_info.value.code == 2


def test_bad_input_raises_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="size"):
        make_synthetic_smic(tmp_path / "x", size=16)
    with pytest.raises(ValueError, match="subjects"):
        make_synthetic_smic(tmp_path / "x", subjects=0)
    folder = tmp_path / "real" / "s1" / "micro" / "negative" / "s1_ne_01"
    folder.mkdir(parents=True)
    (folder / "image5.bmp").write_bytes(b"")
    clip = Clip("smic", "s1", "s1_ne_01", "negative", (str(folder / "image5.bmp"),), 100.0)
    with pytest.raises(DatasetError, match="s1_ne_01_mask.png"):
        read_mask(clip)
