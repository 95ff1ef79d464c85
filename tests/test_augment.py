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
