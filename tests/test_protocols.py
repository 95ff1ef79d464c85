import pytest

from mer_keras.datasets import Clip
from mer_keras.protocols import carve_validation, loso, subject_kfold

LABELS = ("negative", "positive", "surprise", "non_micro")


def make_clips(subjects=16, per_subject=6):
    return [
        Clip("smic", f"s{s}", f"s{s}_{i:02d}", LABELS[(s + i) % 4], (f"f{i}.bmp",), 100.0)
        for s in range(1, subjects + 1)
        for i in range(per_subject - (s % 3))
    ]


def _assert_disjoint(fold):
    train, val, test = (set(fold.subjects(p)) for p in ("train", "validation", "test"))
    assert not (train & val or train & test or val & test)
    assert train and val and test


def test_kfold_subjects_disjoint_and_complete():
    clips = make_clips()
    folds = subject_kfold(clips, k=5, seed=3)
    assert len(folds) == 5
    for fold in folds:
        _assert_disjoint(fold)
        assert len(fold.train) + len(fold.validation) + len(fold.test) == len(clips)
    tested = sorted(c.key for f in folds for c in f.test)
    assert tested == sorted(c.key for c in clips)


def test_kfold_stratifies_classes():
    folds = subject_kfold(make_clips(), k=4, seed=0)
    for fold in folds:
        assert {c.label for c in fold.test} == set(LABELS)


def test_same_seed_same_folds_other_seed_other_folds():
    clips = make_clips()
    first = [f.subjects("test") for f in subject_kfold(clips, 5, seed=1)]
    assert first == [f.subjects("test") for f in subject_kfold(clips, 5, seed=1)]
    assert first != [f.subjects("test") for f in subject_kfold(clips, 5, seed=2)]


def test_loso_one_fold_per_subject():
    clips = make_clips(subjects=6)
    folds = loso(clips)
    assert len(folds) == 6
    assert sorted(tuple(f.subjects("test")) for f in folds) == sorted((f"s{s}",) for s in range(1, 7))
    for fold in folds:
        _assert_disjoint(fold)


def test_validation_comes_from_training_subjects():
    clips = make_clips(subjects=10)
    train, val = carve_validation(clips, 0.2, seed=0)
    assert set(c.subject for c in train).isdisjoint(c.subject for c in val)
    assert 1 <= len({c.subject for c in val}) <= 3
    assert carve_validation(clips[:3], 0.2)[1] == ()  # one subject: nothing to hold out


@pytest.mark.parametrize("k, match", [(1, "Received: k=1"), (17, "Received: k=17")])
def test_kfold_errors(k, match):
    with pytest.raises(ValueError, match=match):
        subject_kfold(make_clips(), k=k)


def test_loso_needs_two_subjects():
    with pytest.raises(ValueError, match="at least 2 subjects"):
        loso(make_clips(subjects=1))


def test_validation_from_very_few_clips_is_still_carved_by_subject():
    clips = [Clip("smic", f"s{s}", f"c{s}", LABELS[s % 4], ("f1.bmp",), 100.0) for s in range(1, 9)]
    train, val = carve_validation(clips, 0.2, seed=0)  # one clip per class at most: nothing to stratify
    assert len(val) >= 1 and len(train) + len(val) == 8
    assert {c.subject for c in train}.isdisjoint(c.subject for c in val)
