import keras
import numpy as np
import pytest

from mer_keras.models import FramewiseTimeDistributed, WindowMotion, build_model, copy_weights_by_name


@pytest.fixture
def encoder():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="enc_conv")(inputs)
    x = keras.layers.BatchNormalization(name="enc_bn")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="encoder")


def test_folded_time_equals_keras_timedistributed(encoder):
    x = np.random.default_rng(0).random((2, 5, 8, 8, 3), np.float32)
    folded = FramewiseTimeDistributed(encoder)(x)
    looped = keras.layers.TimeDistributed(encoder)(x)
    assert folded.shape == (2, 5, 4)
    np.testing.assert_allclose(folded, looped, atol=1e-6)


@pytest.mark.parametrize(
    "kind, frame_shape, n, head_layers, output",
    [
        ("frame", (16,), None, ["fc1", "fc2", "fc3"], (3, 4)),
        ("lstm", (16,), 7, ["lstm1", "lstm2", "lstm3", "classifier"], (3, 4)),
        ("bilstm", (16,), 7, ["bilstm", "classifier"], (3, 4)),
    ],
)
def test_models_have_the_papers_heads(kind, frame_shape, n, head_layers, output):
    model = build_model(kind, 4, frame_shape, n, fc_units=(8, 6), lstm_units=(8, 6, 5), bilstm_units=5)
    for name in head_layers:
        model.get_layer(name)
    x = np.ones((3, *(() if n is None else (n,)), *frame_shape), np.float32)
    probs = np.asarray(model(x))
    assert probs.shape == output
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "gru", "num_classes": 3, "frame_shape": (4,)}, "Received: kind='gru'"),
        ({"kind": "lstm", "num_classes": 3, "frame_shape": (4,)}, "Received: n=None"),
        ({"kind": "frame", "num_classes": 1, "frame_shape": (4,)}, "Received: num_classes=1"),
        ({"kind": "lstm", "num_classes": 3, "frame_shape": (4,), "n": 5, "clip_features": "flow"},
         "Received: clip_features='flow'"),
        ({"kind": "frame", "num_classes": 3, "frame_shape": (4,), "clip_features": "motion"},
         "must be 'raw'. Received: clip_features='motion'"),
        ({"kind": "lstm", "num_classes": 3, "frame_shape": (16,), "n": 5, "clip_features": "motion"},
         r"needs unpooled maps .* Received: input shape \(None, 5, 16\)"),
    ],
)
def test_build_model_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(**kwargs)


def test_softmax_stays_float32_under_mixed_precision(encoder):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model("lstm", 3, (6,), 4, lstm_units=(8, 8, 8))
        assert model.get_layer("lstm1").compute_dtype == "bfloat16"
        assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_trained_head_moves_into_full_model_by_name(encoder):
    cached = build_model("lstm", 3, (4,), 5, lstm_units=(6, 5, 4))
    full = build_model("lstm", 3, (8, 8, 3), 5, encoder, lstm_units=(6, 5, 4))
    for w in cached.weights:
        w.assign(np.random.default_rng(1).random(w.shape).astype("float32"))
    assert copy_weights_by_name(cached, full) == ["lstm1", "lstm2", "lstm3", "classifier"]
    for name in ("lstm2", "classifier"):
        for a, b in zip(cached.get_layer(name).get_weights(), full.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    wrong = build_model("lstm", 3, (4,), 5, lstm_units=(7, 5, 4))
    with pytest.raises(ValueError, match="Layer 'lstm1': shapes"):
        copy_weights_by_name(wrong, full)


def test_window_relative_features_and_standardization_survive_the_move_to_the_full_model(encoder):
    cached = build_model("lstm", 3, (4,), 5, lstm_units=(6, 5, 4), standardize=True, clip_features="relative")
    frames = np.random.default_rng(2).normal(3.0, 2.0, (50, 1, 4)).astype("float32")
    cached.get_layer("feature_standardization").adapt(frames)
    x = np.random.default_rng(3).random((2, 5, 4), np.float32)
    standardized = cached.get_layer("feature_standardization")(x)
    np.testing.assert_allclose(standardized, (x - frames.mean((0, 1))) / frames.std((0, 1)), rtol=1e-4, atol=1e-4)
    relative = np.asarray(cached.get_layer("window_relative")(standardized))
    np.testing.assert_allclose(relative[:, 0], 0.0)
    np.testing.assert_allclose(relative[:, 3], np.asarray(standardized)[:, 3] - np.asarray(standardized)[:, 0],
                               atol=1e-6)
    # the full model (encoder in front) gets the adapted statistics by name and answers the same
    full = build_model("lstm", 3, (8, 8, 3), 5, encoder, lstm_units=(6, 5, 4), standardize=True,
                       clip_features="relative")
    assert "feature_standardization" in copy_weights_by_name(cached, full)
    clips = np.random.default_rng(4).random((2, 5, 8, 8, 3), np.float32)
    features = np.asarray(FramewiseTimeDistributed(encoder)(clips))
    np.testing.assert_allclose(full(clips), cached(features), atol=1e-5)


def test_window_motion_is_the_mean_absolute_change_of_each_map_since_the_first_frame():
    maps = np.random.default_rng(5).normal(size=(2, 4, 3, 3, 6)).astype("float32")
    motion = np.asarray(WindowMotion()(maps))
    assert motion.shape == (2, 4, 6)
    np.testing.assert_allclose(motion[:, 0], 0.0)
    np.testing.assert_allclose(motion[1, 2], np.abs(maps[1, 2] - maps[1, 0]).mean(axis=(0, 1)), rtol=1e-6)
    # a change that moves between places keeps its size; pooling first would cancel it
    still = np.zeros((1, 2, 2, 2, 1), "float32")
    still[0, :, 0, 0] = 1.0
    moved = still.copy()
    moved[0, 1] = still[0, 1, ::-1, ::-1]
    np.testing.assert_allclose(np.asarray(WindowMotion()(moved))[0, 1], [0.5])
    np.testing.assert_allclose(np.asarray(WindowMotion()(still))[0, 1], [0.0])


def test_motion_features_standardized_survive_the_move_to_the_full_model():
    inputs = keras.Input((8, 8, 3))
    maps_encoder = keras.Model(inputs, keras.layers.Conv2D(4, 3, strides=2, name="enc_conv")(inputs), name="enc")
    cached = build_model("bilstm", 3, (3, 3, 4), 5, bilstm_units=4, standardize=True, clip_features="motion")
    windows = np.random.default_rng(6).normal(size=(20, 5, 3, 3, 4)).astype("float32")
    motion = np.asarray(cached.get_layer("window_motion")(windows))
    cached.get_layer("feature_standardization").adapt(motion)
    standardized = cached.get_layer("feature_standardization")(motion)
    np.testing.assert_allclose(np.asarray(standardized).reshape(-1, 4).mean(0), 0.0, atol=1e-4)
    full = build_model("bilstm", 3, (8, 8, 3), 5, maps_encoder, bilstm_units=4, standardize=True,
                       clip_features="motion")
    assert copy_weights_by_name(cached, full) == ["feature_standardization", "bilstm", "classifier"]
    clips = np.random.default_rng(7).random((2, 5, 8, 8, 3), np.float32)
    features = np.asarray(FramewiseTimeDistributed(maps_encoder)(clips))
    np.testing.assert_allclose(full(clips), cached(features), atol=1e-5)
