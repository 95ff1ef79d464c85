"""The VGGFace2 ResNet-50 port: keras-vggface's RESNET50 architecture, arguments, saving, preprocessing."""

import re
import time

import keras
import numpy as np
import pytest

from mer_keras.backbone import (
    BGR_MEAN,
    VGGFacePreprocess,
    VGGFaceResNet50,
    legacy_layer_name,
    preprocess_input,
    vggface_resnet50,
)

TINY = dict(blocks=(1, 1, 1, 1), width=1 / 16)


@pytest.fixture(scope="module")
def full():
    return VGGFaceResNet50(pooling=None)


def original_weighted_names(blocks=(3, 4, 6, 3)):
    """keras-vggface RESNET50's weighted layer names, in creation order (from its models.py)."""
    names = ["conv1/7x7_s2", "conv1/7x7_s2/bn"]
    for stage, n in enumerate(blocks, start=2):
        for block in range(1, n + 1):
            convs = ["1x1_reduce", "3x3", "1x1_increase"] + (["1x1_proj"] if block == 1 else [])
            for conv in convs:
                names += [f"conv{stage}_{block}_{conv}", f"conv{stage}_{block}_{conv}/bn"]
    return names


def test_full_size_parameter_count_and_names(full):
    assert full.count_params() == 23_561_152
    weighted = [layer.name for layer in full.layers if layer.weights]
    assert sorted(legacy_layer_name(n) for n in weighted) == sorted(original_weighted_names())
    assert sorted(full.legacy_name_map().values()) == sorted(original_weighted_names())
    assert all("/" not in layer.name for layer in full.layers)


def test_full_size_hyper_parameters(full):
    conv1 = full.get_layer("conv1_7x7_s2")
    assert (conv1.kernel_size, conv1.strides, conv1.padding, conv1.use_bias) == (
        (7, 7),
        (2, 2),
        "same",
        False,
    )
    pool1 = full.get_layer("pool1")
    assert (pool1.pool_size, pool1.strides, pool1.padding) == ((3, 3), (2, 2), "valid")
    for layer in full.layers:
        if isinstance(layer, keras.layers.Conv2D):
            assert not layer.use_bias, layer.name
            kernel = 3 if layer.name.endswith("_3x3") else (7 if layer.name == "conv1_7x7_s2" else 1)
            assert layer.kernel_size == (kernel, kernel), layer.name
            assert layer.padding == ("valid" if kernel == 1 else "same"), layer.name
            first_downsampling = re.match(r"conv[345]_1_1x1_(reduce|proj)$", layer.name)
            stride = 2 if layer.name == "conv1_7x7_s2" or first_downsampling else 1
            assert layer.strides == (stride, stride), layer.name
        if isinstance(layer, keras.layers.BatchNormalization):
            hyper = (layer.epsilon, layer.momentum, layer.center, layer.scale)
            assert hyper == (1e-3, 0.99, True, True), layer.name
    # Bottleneck widths of the last block: 512 -> 512 -> 2048.
    assert full.get_layer("conv5_3_1x1_reduce").filters == 512
    assert full.get_layer("conv5_3_1x1_increase").filters == 2048


@pytest.mark.parametrize(
    "layer, shape",
    [
        ("pool1", (None, 55, 55, 64)),
        ("conv2_3_out", (None, 55, 55, 256)),
        ("conv3_4_out", (None, 28, 28, 512)),
        ("conv4_6_out", (None, 14, 14, 1024)),
        ("conv5_3_out", (None, 7, 7, 2048)),
    ],
)
def test_full_size_feature_map_shapes(full, layer, shape):
    # keras-vggface max-pools "valid" without zero padding: 55x55 after the stem (keras.applications: 56).
    assert tuple(full.get_layer(layer).output.shape) == shape


@pytest.mark.parametrize(
    "kwargs, output_shape",
    [
        (dict(input_shape=(224, 224, 3), pooling=None), (None, 7, 7, 128)),
        (dict(input_shape=(224, 224, 3), pooling="avg"), (None, 128)),
        (dict(input_shape=(32, 32, 3), pooling="max"), (None, 128)),
        (dict(input_shape=(32, 32, 3), pooling=None), (None, 1, 1, 128)),
        (dict(input_shape=(None, None, 3), pooling="avg"), (None, 128)),
        (dict(input_shape=(48, 64, 3), pooling=None), (None, 2, 2, 128)),
        (dict(input_shape=(224, 224, 3), include_top=True, classes=7), (None, 7)),
        (dict(input_shape=(416, 416, 3), include_top=True, classes=3), (None, 3)),
    ],
)
def test_output_shapes(kwargs, output_shape):
    model = VGGFaceResNet50(**TINY, **kwargs)
    assert tuple(model.output.shape) == output_shape


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(31, 64, 3)), "at least 32"),
        (dict(input_shape=(64, 64, 1)), "input_shape=(64, 64, 1)"),
        (dict(input_shape=(64, 64)), "(height, width, 3)"),
        (dict(input_shape=(None, None, 3), include_top=True), "include_top=True"),
        (dict(input_shape=(128, 128, 3), include_top=True), "input_shape=(128, 128, 3)"),
        (dict(pooling="mean"), "pooling='mean'"),
        (dict(include_top=1), "include_top=1"),
        (dict(classes=0), "classes=0"),
        (dict(blocks=(3, 4, 6)), "blocks=(3, 4, 6)"),
        (dict(blocks=(3, 0, 6, 3)), "blocks=(3, 0, 6, 3)"),
        (dict(width=0), "width=0"),
        (dict(classifier_activation=max), "classifier_activation="),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match="Received") as info:
        VGGFaceResNet50(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(weights="vggface2", width=0.5), "width=0.5"),
        (dict(weights="/some/file.h5", blocks=(1, 1, 1, 1)), "blocks=(1, 1, 1, 1)"),
        (dict(weights="vggface2", include_top=True, classes=10), "classes=10"),
        (dict(weights="vggface2", input_shape=(16, 16, 3)), "at least 32"),  # checked before any download
    ],
)
def test_pretrained_weights_need_the_full_architecture(kwargs, message):
    with pytest.raises(ValueError, match="Received") as info:
        vggface_resnet50(**kwargs)
    assert message in str(info.value)


def test_tiny_config_builds_and_runs_fast():
    # CPU time, not wall time: other processes share the 2 cores. About 0.3 s on an idle machine.
    start = time.process_time()
    model = VGGFaceResNet50(input_shape=(32, 32, 3), **TINY)
    out = model(np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32"))
    elapsed = time.process_time() - start
    assert out.shape == (2, 128)
    assert elapsed < 1.5, f"tiny backbone took {elapsed:.2f} s of CPU"


def test_avg_pooling_is_the_mean_of_the_stage5_map():
    maps = VGGFaceResNet50(input_shape=(64, 64, 3), pooling=None, **TINY)
    pooled = VGGFaceResNet50(input_shape=(64, 64, 3), pooling="avg", **TINY)
    pooled.set_weights(maps.get_weights())
    x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(pooled(x), np.mean(maps(x), axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_top_is_softmax_of_dense_over_the_7x7_average():
    model = VGGFaceResNet50(input_shape=(224, 224, 3), include_top=True, classes=5, **TINY)
    x = np.random.default_rng(2).normal(size=(1, 224, 224, 3)).astype("float32")
    stage5 = keras.Model(model.input, model.get_layer("conv5_1_out").output)(x).numpy()
    kernel, bias = model.get_layer("classifier").get_weights()
    logits = stage5.mean(axis=(1, 2)) @ kernel + bias
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-7)


def test_keras_file_round_trip(tmp_path):
    model = VGGFaceResNet50(input_shape=(48, 48, 3), pooling="max", **TINY, name="tiny_backbone")
    path = tmp_path / "backbone.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, VGGFaceResNet50)
    assert restored.get_config() == model.get_config()
    x = np.random.default_rng(3).normal(size=(2, 48, 48, 3)).astype("float32")
    np.testing.assert_array_equal(restored(x), model(x))
    assert restored.get_layer("conv4_1_out").name == "conv4_1_out"


# --- preprocessing ---------------------------------------------------------------------------


def original_preprocess_v2(x):
    """keras-vggface utils.preprocess_input(x, version=2), channels_last, transcribed."""
    x_temp = np.copy(x)[..., ::-1]
    x_temp[..., 0] -= 91.4953
    x_temp[..., 1] -= 103.8827
    x_temp[..., 2] -= 131.0912
    return x_temp


@pytest.mark.parametrize(
    "rgb, bgr",
    [
        ((0, 0, 0), (-91.4953, -103.8827, -131.0912)),
        ((255, 0, 0), (-91.4953, -103.8827, 255 - 131.0912)),  # red ends up last, minus the red mean
        ((0, 0, 255), (255 - 91.4953, -103.8827, -131.0912)),
        ((131.0912, 103.8827, 91.4953), (0, 0, 0)),
    ],
)
def test_preprocess_input_table(rgb, bgr):
    np.testing.assert_allclose(preprocess_input(np.array([[rgb]], dtype="float64")), [[bgr]], atol=1e-9)


def test_preprocess_input_matches_the_original_and_keeps_input():
    images = np.random.default_rng(4).uniform(0, 255, (2, 5, 7, 3)).astype("float32")
    before = images.copy()
    np.testing.assert_allclose(preprocess_input(images), original_preprocess_v2(images), atol=1e-5)
    np.testing.assert_array_equal(images, before)
    assert BGR_MEAN == (91.4953, 103.8827, 131.0912)


@pytest.mark.parametrize(
    "dtype, expected", [("uint8", "float32"), ("int64", "float32"), ("float64", "float64")]
)
def test_preprocess_input_dtype(dtype, expected):
    assert preprocess_input(np.full((1, 1, 3), 200, dtype=dtype)).dtype == expected


@pytest.mark.parametrize("shape", [(4, 4, 1), (4, 4, 4), (3, 4, 4)])
def test_preprocess_wrong_channels(shape):
    with pytest.raises(ValueError, match=r"Received: shape=\(" + ", ".join(map(str, shape))):
        preprocess_input(np.zeros(shape))
    with pytest.raises(ValueError, match="Received"):
        VGGFacePreprocess()(np.zeros((1,) + shape, "float32"))


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_preprocess_layer_matches_function_in_a_saved_model(tmp_path, dtype):
    images = np.random.default_rng(5).integers(0, 256, (2, 6, 6, 3)).astype(dtype)
    inputs = keras.Input((6, 6, 3), dtype=dtype)
    model = keras.Model(inputs, VGGFacePreprocess(name="preprocess")(inputs))
    model.save(tmp_path / "pre.keras")
    restored = keras.saving.load_model(tmp_path / "pre.keras")
    for m in (model, restored):
        out = m(images)
        assert out.dtype == "float32"
        np.testing.assert_allclose(out, original_preprocess_v2(images.astype("float32")), atol=1e-5)


def test_preprocess_layer_under_mixed_precision():
    images = np.random.default_rng(6).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = original_preprocess_v2(images)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        out = VGGFacePreprocess()(images)
    finally:
        keras.config.set_dtype_policy("float32")
    assert out.dtype == "bfloat16"
    # Subtracting in float32 then rounding once: within half a bfloat16 ulp (2**-8 relative).
    err = np.abs(np.asarray(keras.ops.cast(out, "float32")) - expected)
    assert np.all(err <= np.abs(expected) * 2.0**-8 + 1e-6)
