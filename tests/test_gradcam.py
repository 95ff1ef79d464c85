"""Grad-CAM on small models with known weights: maps, per-frame maps, focus scores, layer choice."""

import keras
import numpy as np
import pytest
from keras import layers

from mer_keras.backbone import gradcam_candidates, vggface_resnet50
from mer_keras.datasets.clip import Clip
from mer_keras.gradcam import (
    Sample,
    choose_layer,
    expose_layers,
    face_layout_mask,
    focus_score,
    frame_scores,
    gradcam,
    layer_score,
    layer_sweep,
    sequence_cams,
)
from mer_keras.models import FramewiseTimeDistributed, HeadSpec, build_head

SIZE = 32
REGION = (slice(4, 12), slice(18, 26))  # rows, columns: the only pixels the prediction depends on
REGION_MASK = np.zeros((SIZE, SIZE), bool)
REGION_MASK[REGION] = True
MOCK_LAYERS = ["stem_out", "region_out", "coarse_out"]


class SpatialMask(layers.Layer):
    """Multiplies every channel by a fixed (H, W) mask."""

    def __init__(self, mask, **kwargs):
        super().__init__(**kwargs)
        self.mask = np.asarray(mask, np.float32)[None, :, :, None]

    def call(self, x):
        return x * self.mask


def region_backbone():
    """stem (grey level, everywhere) -> keep REGION only -> 16x16 average pool (2x2 map) -> mean."""
    x = keras.Input((SIZE, SIZE, 3))
    stem = layers.Conv2D(2, 1, use_bias=False, activation="relu", name="stem_out")(x)
    region = SpatialMask(REGION_MASK, name="region_out")(stem)
    coarse = layers.AveragePooling2D(16, name="coarse_out")(region)
    backbone = keras.Model(x, layers.GlobalAveragePooling2D(name="pool")(coarse), name="backbone")
    backbone.get_layer("stem_out").set_weights([np.full((1, 1, 3, 2), 1 / (3 * 255), np.float32)])
    return backbone


def head(x, kernel=((4.0, -4.0), (4.0, -4.0))):
    """Class 0 grows with the region's brightness, class 1 shrinks with it."""
    dense = layers.Dense(2, name="logits")
    out = layers.Activation("softmax", name="probabilities")(dense(x))
    dense.set_weights([np.array(kernel, np.float32), np.zeros(2, np.float32)])
    return out


@pytest.fixture(scope="module")
def region_model():
    x = keras.Input((SIZE, SIZE, 3), name="frames")
    return keras.Model(x, head(region_backbone()(x)), name="region_model")


TIME_WEIGHTS = (1.0, -1.0, 2.0)  # frame 1 argues against class 0, frame 2 twice as much for it as frame 0


def region_clip_model(wrapper):
    x = keras.Input((len(TIME_WEIGHTS), SIZE, SIZE, 3), name="clips")
    features = wrapper(region_backbone(), name="frame_encoder")(x)  # (batch, time, 2)
    kernel = [(4.0 * w, -4.0 * w) for w in TIME_WEIGHTS for _ in range(2)]
    logits_input = layers.Flatten(name="time_and_features")(features)
    return keras.Model(x, head(logits_input, kernel), name="region_clips")


def random_frames(count, seed=0):
    return np.random.default_rng(seed).uniform(50, 250, (count, SIZE, SIZE, 3)).astype(np.float32)


def fake_sample(image, label=0, mask=REGION_MASK):
    clip = Clip("test", "s1", f"clip{label}", "negative", ("unused.bmp",), 100.0)
    return Sample(clip, 0, label, image, mask)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_peaks_in_the_region_the_prediction_depends_on(region_model, method):
    images = random_frames(3)
    maps = gradcam(region_model, images, MOCK_LAYERS, [0, 0, 0], method=method)
    for cam in maps["region_out"]:
        row, col = np.unravel_index(np.argmax(cam), cam.shape)
        assert REGION_MASK[row, col]
        assert focus_score(cam, REGION_MASK) == pytest.approx(1.0)
    # the stem sees the whole frame (focus ~ the region's area share); the 2x2 map blurs it
    assert layer_score(maps["stem_out"], [REGION_MASK] * 3)[0] < 0.15
    assert 0.1 < layer_score(maps["coarse_out"], [REGION_MASK] * 3)[0] < 0.5


def test_cam_of_a_class_the_region_argues_against_is_empty(region_model):
    maps = gradcam(region_model, random_frames(2), ["region_out"], 1)
    assert np.all(maps["region_out"] == 0)  # negative evidence only: ReLU leaves nothing
    assert np.isnan(focus_score(maps["region_out"][0], REGION_MASK))


def test_sweep_picks_the_layer_that_sees_the_region(region_model):
    samples = [fake_sample(image) for image in random_frames(4, seed=1)]
    sweep = layer_sweep(region_model, samples, MOCK_LAYERS)
    scores = {layer: result["score"] for layer, result in sweep.items()}
    assert choose_layer(scores) == "region_out"
    assert scores["region_out"] > scores["coarse_out"] > scores["stem_out"]
    assert sweep["region_out"]["maps"].shape == (4, SIZE, SIZE) and sweep["region_out"]["defined"] == 4


@pytest.mark.parametrize("wrapper", [FramewiseTimeDistributed, layers.TimeDistributed])
def test_per_frame_maps_follow_each_frame(region_model, wrapper):
    frames = random_frames(3, seed=2)
    frames[2][REGION] = 250.0  # frame 2: the region is bright
    maps = sequence_cams(region_clip_model(wrapper), frames[None], ["region_out", "stem_out"], 0)
    region = maps["region_out"][0]
    assert region.shape == (3, SIZE, SIZE)
    assert np.all(region[1] == 0)  # its own weights are negative: nothing left after ReLU
    assert region[0].max() > 0 and not np.allclose(region[0] / region[0].max(), region[2] / region[2].max())
    # frame t's map is the frame model's map of frame t, its weights scaled by that frame's time weight
    single = gradcam(region_model, frames, ["region_out", "stem_out"], [0, 0, 0])
    for layer in ("region_out", "stem_out"):
        expected = np.maximum(np.array(TIME_WEIGHTS), 0)[:, None, None] * single[layer]
        np.testing.assert_allclose(maps[layer][0], expected, rtol=1e-4, atol=1e-6)


def tiny_backbone():
    return vggface_resnet50(weights=None, input_shape=(SIZE, SIZE, 3), blocks=(1, 1, 1, 1), width=1 / 16)


def exported_like(kind, n=None):
    """The structure of a run's final model: frames -> preprocess -> nested backbone -> nested head."""
    from mer_keras.final_model import exported_model

    head = build_head(
        HeadSpec(kind, (8, 4) if kind == "frame" else (8, 4, 4) if kind == "lstm" else (4,)), 3, (128,), n
    )
    return exported_model(head, tiny_backbone(), SIZE, name=f"exported_{kind}")


def test_exposed_model_answers_like_the_original():
    model = exported_like("frame")
    images = random_frames(2)
    layer_names = gradcam_candidates(tiny_backbone())
    exposed = expose_layers(model, layer_names)
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(keras.ops.softmax(exposed(images)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(expose_layers(model, layer_names, logits=False)(images), expected, rtol=1e-5)
    top = [layer.name for layer in exposed.layers]
    assert all(f"gradcam_{name}" in top for name in layer_names) and "probabilities" not in top


def test_clip_model_maps_differ_between_different_frames():
    model = exported_like("lstm", n=4)
    clip = random_frames(4, seed=3)
    maps = sequence_cams(model, clip[None], ["conv2_1_out", "conv3_1_out"], 2)
    for layer in ("conv2_1_out", "conv3_1_out"):
        per_frame = maps[layer][0]
        assert per_frame.shape == (4, SIZE, SIZE) and np.all(per_frame >= 0)
        assert per_frame.max() > 0
        assert not np.allclose(per_frame[0], per_frame[1])


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda m, c: gradcam(m, random_frames(1), ["no_such_layer"], 0), "Layer 'no_such_layer' not found"),
        (lambda m, c: gradcam(m, random_frames(1), ["fc1"], 0), "layer 'fc1' .* gives \\(None, 8\\)"),
        (
            lambda m, c: gradcam(m, random_frames(1)[:, :16], ["conv2_1_out"], 0),
            "Received: shape \\(1, 16, 32, 3\\)",
        ),
        (lambda m, c: gradcam(m, random_frames(2), ["conv2_1_out"], [0, 1, 2]), "one per sample"),
        (
            lambda m, c: gradcam(m, random_frames(1), ["conv2_1_out"], 0, method="cam"),
            "Received: method='cam'",
        ),
        (
            lambda m, c: gradcam(c, random_frames(4)[None], ["conv2_1_out"], 0),
            "use mer_keras.gradcam.sequence_cams",
        ),
        (
            lambda m, c: sequence_cams(m, random_frames(1), ["conv2_1_out"], 0),
            "use mer_keras.gradcam.gradcam",
        ),
        (
            lambda m, c: layer_sweep(c, [fake_sample(random_frames(4))], ["conv2_1_out"], method="gradcam++"),
            "per-frame Grad-CAM only",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error):
    with pytest.raises(ValueError, match=error):
        call(exported_like("frame"), exported_like("lstm", n=4))


@pytest.mark.parametrize(
    "cam, mask, expected",
    [
        (REGION_MASK * 2.0, REGION_MASK, 1.0),
        (np.ones((SIZE, SIZE)), REGION_MASK, 64 / 1024),
        (REGION_MASK * 1.0, ~REGION_MASK, 0.0),
        (np.zeros((SIZE, SIZE)), REGION_MASK, np.nan),
        (np.ones((SIZE, SIZE)), np.zeros((SIZE, SIZE), bool), np.nan),
    ],
)
def test_focus_score(cam, mask, expected):
    assert focus_score(cam, mask) == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    "cam, mask, error",
    [
        (np.ones((SIZE, SIZE)), np.ones((16, 16), bool), "same \\(H, W\\) shape"),
        (-np.ones((SIZE, SIZE)), REGION_MASK, "ReLU"),
    ],
)
def test_focus_score_refuses(cam, mask, error):
    with pytest.raises(ValueError, match=error):
        focus_score(cam, mask)


def test_layer_score_averages_defined_frames_only():
    cams = np.stack([REGION_MASK * 1.0, np.ones((SIZE, SIZE)), np.zeros((SIZE, SIZE))])[None]  # a clip of 3
    np.testing.assert_allclose(frame_scores(cams, [REGION_MASK]), [1.0, 64 / 1024, np.nan])
    assert layer_score(cams, [REGION_MASK]) == (pytest.approx((1.0 + 64 / 1024) / 2), 2)


@pytest.mark.parametrize(
    "scores, expected",
    [
        ({"a": 0.2, "b": 0.5, "c": 0.1}, "b"),
        ({"a": 0.5, "b": 0.5, "c": 0.1}, "b"),  # tie: the later layer
        ({"a": 0.5000001, "b": 0.5}, "b"),  # equal to 6 decimals
        ({"a": 0.3, "b": float("nan"), "c": None}, "a"),
        ({"a": float("nan")}, ValueError),
    ],
)
def test_choose_layer(scores, expected):
    if expected is ValueError:
        with pytest.raises(ValueError, match="No layer has a defined focus score"):
            choose_layer(scores)
    else:
        assert choose_layer(scores) == expected


@pytest.mark.parametrize(
    "face_box, inside, outside",
    [
        ((0.0, 0.0, 1.0, 1.0), [(10, 16), (17, 16), (25, 16)], [(2, 16), (16, 1), (31, 16)]),  # (row, col)
        ((0.5, 0.0, 1.0, 1.0), [(10, 24)], [(10, 8), (25, 10)]),  # face on the right half
    ],
)
def test_face_layout_mask(face_box, inside, outside):
    mask = face_layout_mask((SIZE, SIZE), face_box)
    assert all(mask[r, c] for r, c in inside) and not any(mask[r, c] for r, c in outside)
    assert 0.2 < mask.mean() / ((face_box[2] - face_box[0]) * (face_box[3] - face_box[1])) < 0.5


@pytest.mark.parametrize("face_box", [(0.5, 0.0, 0.4, 1.0), (0, 0, 1), "face", (0.0, -0.1, 1.0, 1.0)])
def test_face_layout_mask_refuses_bad_boxes(face_box):
    with pytest.raises(ValueError, match="face_box"):
        face_layout_mask((SIZE, SIZE), face_box)
