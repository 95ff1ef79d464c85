import numpy as np
import pytest

from mer_keras.datasets import Clip
from mer_keras.datasets.short_clips import apply_policy
from mer_keras.pipeline.windows import balanced_indices, build_frame_table, sliding_windows, window_set


def _clip(clip_id, length, label="negative", subject="s1"):
    frames = tuple(f"/d/{clip_id}/image{100 + i}.bmp" for i in range(length))
    return Clip("smic", subject, clip_id, label, frames, 100.0)


@pytest.mark.parametrize("length, n", [(13, 13), (20, 13), (11, 1), (60, 17)])
def test_window_count_and_consecutive_frames(length, n):
    clip = _clip("a", length)
    table = build_frame_table(apply_policy([clip], n)[0])
    windows = window_set([clip], table, n, ["negative"])
    assert len(windows) == length - n + 1
    for w, rows in enumerate(windows.rows):
        paths = [table.frames[r][0] for r in rows]
        assert paths == list(clip.frames[w : w + n])  # n consecutive frames starting at frame w


def test_short_clip_is_interpolated_into_one_window():
    clip = _clip("short", 11)
    table = build_frame_table(apply_policy([clip], 13)[0])
    (rows,) = window_set([clip], table, 13, ["negative"]).rows
    keys = [table.frames[r] for r in rows]
    assert keys[0] == (clip.frames[0], clip.frames[0], 0.0) and keys[-1][0] == clip.frames[-1]
    assert sum(1 for _, _, t in keys if t) == 10 and table.interpolated == 10


def test_frames_shared_by_clips_are_stored_once():
    clips = [_clip("a", 15), _clip("b", 14)]
    table = build_frame_table(apply_policy(clips, 13)[0])
    assert len(table) == 29
    windows = window_set(clips, table, 13, ["negative"])
    assert len(windows) == 3 + 2 and list(windows.clip_index) == [0, 0, 0, 1, 1]


def test_windows_errors():
    clip = _clip("a", 5)
    table = build_frame_table(apply_policy([clip], 1)[0])
    with pytest.raises(ValueError, match="no window of n=13"):
        window_set([clip], table, 13, ["negative"])
    with pytest.raises(ValueError, match="label 'negative' is not one of"):
        window_set([clip], table, 1, ["positive"])
    with pytest.raises(ValueError, match="Received: n=0"):
        sliding_windows(np.arange(4), 0)


def test_balanced_indices_equalise_classes():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 7)
    picked = balanced_indices(labels, 4, np.random.default_rng(0))
    assert np.bincount(labels[picked], minlength=4).tolist() == [10, 10, 10, 0]
    # every sample of a small class is used before any is repeated
    assert set(picked[labels[picked] == 1]) == {10, 11, 12}
