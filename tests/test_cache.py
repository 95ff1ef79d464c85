import keras
import numpy as np
import pytest

from mer_keras.datasets import Clip, FrameReadError, read_frame
from mer_keras.datasets.short_clips import apply_policy
from mer_keras.pipeline.augment import apply_variant
from mer_keras.pipeline.frame_cache import compute_features
from mer_keras.pipeline.windows import build_frame_table

from conftest import write_frames


@pytest.fixture
def encoder():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(5, 3, name="conv")(inputs / 255.0)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def _clip(tmp_path, name, numbers):
    paths = write_frames(tmp_path / name, numbers, size=(8, 8))
    for i, path in enumerate(paths):  # give every frame its own content
        import cv2

        cv2.imwrite(str(path), np.full((8, 8, 3), 10 * i + 5 * len(name), np.uint8))
    return Clip("smic", "s1", name, "negative", tuple(str(p) for p in paths), 100.0)


def test_features_equal_the_encoder_on_each_frame_and_variant(tmp_path, encoder):
    clips = [_clip(tmp_path, "a", range(100, 103)), _clip(tmp_path, "bb", range(7, 12))]
    table = build_frame_table(apply_policy(clips, 4)[0])  # clip "a" (3 frames) is interpolated to 4
    assert len(table) == 4 + 5 and table.interpolated == 2
    features = compute_features(encoder, table, 8, ("identity", "flip"), batch_size=3, progress=False)
    assert features.shape == (2, 9, 5)
    for row, (path_a, path_b, t) in enumerate(table.frames):
        image = (1 - t) * read_frame(path_a, 8).astype(np.float32) + t * read_frame(path_b, 8).astype(
            np.float32
        )
        for v, name in enumerate(("identity", "flip")):
            expected = encoder.predict(apply_variant(image, name)[None], verbose=0)[0]
            np.testing.assert_allclose(features[v, row], expected, rtol=1e-5, atol=1e-6)


def test_a_corrupt_frame_stops_the_cache_naming_the_file(tmp_path, encoder):
    clip = _clip(tmp_path, "a", range(1, 4))
    with open(clip.frames[1], "wb") as broken:
        broken.write(b"BM not really")
    table = build_frame_table(apply_policy([clip], 1)[0])
    with pytest.raises(FrameReadError, match=r"a/image2\.bmp: cannot decode"):
        compute_features(encoder, table, 8, progress=False)
