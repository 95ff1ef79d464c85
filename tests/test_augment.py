import numpy as np
import pytest

from mer_keras.pipeline.augment import apply_variant, variant_names
from mer_keras.pipeline.tfdata import make_dataset
from mer_keras.pipeline.windows import WindowSet


@pytest.mark.parametrize(
    "flip, rotation, expected",
    [
        (False, 0.0, ("identity",)),
        (True, 0.0, ("identity", "flip")),
        (False, 8.0, ("identity", "rotate+8", "rotate-8")),
        (True, 8.0, ("identity", "flip", "rotate+8", "flip,rotate-8")),
    ],
)
def test_variant_names(flip, rotation, expected):
    assert variant_names(flip, rotation) == expected


def test_flip_and_rotation():
    image = np.zeros((9, 9, 3), np.float32)
    image[4, 1] = 100.0  # a dot left of the centre
    assert apply_variant(image, "flip")[4, 7, 0] == 100.0
    np.testing.assert_array_equal(apply_variant(image, "identity"), image)
    turned = apply_variant(image, "rotate+90")  # counter-clockwise: the dot moves below the centre
    assert np.unravel_index(np.argmax(turned[..., 0]), (9, 9)) == (7, 4)
    both = apply_variant(image, "flip,rotate-90")
    assert np.unravel_index(np.argmax(both[..., 0]), (9, 9)) == (7, 4)
    with pytest.raises(ValueError, match="Unknown frame variant step 'blur'"):
        apply_variant(image, "flip,blur")


def test_one_variant_for_every_frame_of_a_window():
    features = np.stack([np.arange(30, dtype=np.float32), np.arange(30, dtype=np.float32) + 1000])[..., None]
    rows = np.array([np.arange(i, i + 4) for i in range(27)], np.int32)
    windows = WindowSet(rows, np.zeros(27, np.int32), np.zeros(27, np.int32), ("a",))
    dataset, count = make_dataset(features, windows, 2, 9, training=True, seed=3)
    seen_variants = set()
    for x, _ in dataset:
        for window in x.numpy()[..., 0]:
            variant = int(window[0] >= 1000)
            assert (window >= 1000).all() if variant else (window < 1000).all()
            np.testing.assert_array_equal(np.diff(window), 1.0)  # consecutive frames
            seen_variants.add(variant)
    assert seen_variants == {0, 1} and count == 27


def test_variant_draws_are_independent_of_the_window_and_reproducible():
    frames = 2000
    features = np.stack([np.arange(frames, dtype=np.float32), np.arange(frames, dtype=np.float32) + 10**6])[
        ..., None
    ]
    rows = np.arange(frames, dtype=np.int32)[:, None]  # one-frame windows: window id == row
    windows = WindowSet(rows, np.zeros(frames, np.int32), np.zeros(frames, np.int32), ("a",))

    def epochs(seed):
        dataset = make_dataset(features, windows, 1, 100, training=True, seed=seed, balance=False)[0]
        return [np.concatenate([x.numpy()[:, 0, 0] for x, _ in dataset]) for _ in range(3)]

    first = epochs(5)
    for x, again in zip(first, epochs(5)):
        np.testing.assert_array_equal(x, again)  # same seed, same batches
    for x in first:
        variant, window = x >= 10**6, (x % 10**6).astype(int)
        assert 0.45 < variant.mean() < 0.55
        # a variant tied to the window (e.g. to the shuffle's stream) would break this: 0.5 expected
        assert 0.45 < np.mean(variant == (window % 2 == 1)) < 0.55
    assert not np.array_equal(first[0] >= 10**6, first[1] >= 10**6)  # redrawn every epoch
