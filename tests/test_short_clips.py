import numpy as np
import pytest

from mer_keras.datasets import Clip
from mer_keras.datasets.short_clips import apply_policy, blend, timeline


@pytest.mark.parametrize(
    "length, n, policy, expected",
    [
        (3, 3, "interpolate", [(0, 0, 0.0), (1, 1, 0.0), (2, 2, 0.0)]),
        (2, 3, "interpolate", [(0, 1, 0.0), (0, 1, 0.5), (1, 1, 0.0)]),
        (3, 5, "interpolate", [(0, 1, 0.0), (0, 1, 0.5), (1, 2, 0.0), (1, 2, 0.5), (2, 2, 0.0)]),
        (3, 5, "repeat", [(0, 0, 0.0), (0, 0, 0.0), (1, 1, 0.0), (2, 2, 0.0), (2, 2, 0.0)]),
        (2, 3, "drop", None),
        (4, 3, "drop", [(0, 0, 0.0), (1, 1, 0.0), (2, 2, 0.0), (3, 3, 0.0)]),
    ],
)
def test_timeline(length, n, policy, expected):
    assert timeline(length, n, policy) == expected


@pytest.mark.parametrize(
    "args, match",
    [((5, 3, "pad"), "Received: policy='pad'"), ((0, 3, "repeat"), "Received: length=0")],
)
def test_timeline_errors(args, match):
    with pytest.raises(ValueError, match=match):
        timeline(*args)


def test_interpolated_frames_lie_between_neighbours():
    frames = np.arange(11, dtype=np.float32).reshape(11, 1, 1) * 10.0  # frame i has value 10*i
    out = np.stack([blend(frames[a], frames[b], t) for a, b, t in timeline(11, 13, "interpolate")])
    assert out.shape == (13, 1, 1)
    np.testing.assert_allclose(out.ravel(), np.linspace(0, 100, 13), atol=1e-4)


def _clip(clip_id, length, label="negative"):
    return Clip("smic", "s1", clip_id, label, tuple(f"f{i}.bmp" for i in range(length)), 100.0)


def test_report_says_what_was_done():
    clips = [_clip("a", 11), _clip("b", 20), _clip("c", 9, "positive")]
    kept, report = apply_policy(clips, 13, "drop")
    assert [c.clip_id for c, _ in kept] == ["b"]
    assert report["shorter_than_n"] == 2 and report["action"] == "dropped"
    assert report["shorter_by_class"] == {"negative": 1, "positive": 1}
    assert report["dropped"] == ["smic/s1/a", "smic/s1/c"]
    kept, report = apply_policy(clips, 13)
    assert [len(plan) for _, plan in kept] == [13, 20, 13] and report["dropped"] == []


def test_n_longer_than_every_clip_with_drop_is_an_error():
    with pytest.raises(ValueError, match="longest clip: 12 frames"):
        apply_policy([_clip("a", 11), _clip("b", 12)], 13, "drop")
