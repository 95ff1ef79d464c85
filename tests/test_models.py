import keras
import numpy as np
import pytest
import tensorflow as tf

from mer_keras.models import FramewiseTimeDistributed, HeadSpec, WindowMotion, build_head, compose


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
    "spec, frame_shape, n, head_layers",
    [
        (HeadSpec("frame", (8, 6)), (16,), None, ["fc1", "fc2", "fc3"]),
        (HeadSpec("lstm", (8, 6, 5)), (16,), 7, ["lstm1", "lstm2", "lstm3", "classifier"]),
        (HeadSpec("lstm", (8, 6), rnn="gru"), (16,), 7, ["gru1", "gru2", "classifier"]),
        (HeadSpec("bilstm", (5,)), (16,), 7, ["bilstm", "classifier"]),
        (HeadSpec("bilstm", (5,), rnn="gru"), (16,), 7, ["bigru", "classifier"]),
    ],
)
def test_heads_have_the_papers_layers(spec, frame_shape, n, head_layers):
    head = build_head(spec, 4, frame_shape, n)
    for name in head_layers:
        head.get_layer(name)
    cells = {
        type(layer.forward_layer if hasattr(layer, "forward_layer") else layer).__name__
        for layer in head.layers
        if "lstm" in layer.name or "gru" in layer.name
    }
    assert cells <= {"LSTM" if spec.rnn == "lstm" else "GRU"}
    x = np.ones((3, *(() if n is None else (n,)), *frame_shape), np.float32)
    probs = np.asarray(head(x))
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_default_sizes_are_the_command_lines():
    from mer_keras.cli import build_parser

    assert HeadSpec("lstm").units == build_parser("exp2").get_default("lstm_units") == (128, 64, 32)
    assert HeadSpec("bilstm").units == (build_parser("exp3").get_default("bilstm_units"),) == (64,)
    assert HeadSpec("frame").units == build_parser("exp1").get_default("fc_units") == (512, 128)


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"kind": "gru"}, "Received: kind='gru'"),
        ({"kind": "lstm", "rnn": "rnn"}, "Received: rnn='rnn'"),
        ({"kind": "lstm", "clip_features": "flow"}, "Received: clip_features='flow'"),
        ({"kind": "frame", "clip_features": "motion"}, "must be 'raw'. Received: clip_features='motion'"),
        ({"kind": "bilstm", "units": (4, 4)}, r"Received: units=\(4, 4\)"),
        ({"kind": "lstm", "units": (4, 0)}, r"Received: units=\(4, 0\)"),
        ({"kind": "lstm", "dropout": 1.0}, "Received: dropout=1.0"),
    ],
)
def test_head_spec_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        HeadSpec(**spec)


@pytest.mark.parametrize(
    "args, match",
    [
        ((HeadSpec("lstm"), 3, (4,)), "Received: n=None"),
        ((HeadSpec("frame"), 1, (4,)), "Received: num_classes=1"),
        (
            (HeadSpec("lstm", clip_features="motion"), 3, (16,), 5),
            r"needs unpooled maps .* Received: input shape",
        ),
        ((HeadSpec("lstm", standardize=True), 3, (16,), 5), "Received: standardize_on=None"),
    ],
)
def test_build_head_errors(args, match):
    with pytest.raises(ValueError, match=match):
        build_head(*args)


def test_softmax_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        head = build_head(HeadSpec("lstm", (8, 8, 8)), 3, (6,), 4)
        assert head.get_layer("lstm1").compute_dtype == "bfloat16"
        assert head.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_composed_models_share_the_heads_layers_and_answer_alike(encoder):
    head = build_head(HeadSpec("lstm", (6, 5, 4)), 3, (4,), 5)
    full = compose(head, encoder, (8, 8, 3))
    # training the head alone changes the full model: the same variables, nothing copied
    head.get_layer("classifier").kernel.assign(np.full((4, 3), 0.25, np.float32))
    np.testing.assert_array_equal(full.get_layer(head.name).get_layer("classifier").kernel, 0.25)
    assert {id(v) for v in head.weights} <= {id(v) for v in full.weights}
    clips = np.random.default_rng(4).random((2, 5, 8, 8, 3), np.float32)
    features = np.asarray(FramewiseTimeDistributed(encoder)(clips))
    np.testing.assert_allclose(full(clips), head(features), atol=1e-6)
    assert compose(head) is head


def test_window_relative_features_and_standardization_adapt_on_the_training_frames(encoder):
    frames = np.random.default_rng(2).normal(3.0, 2.0, (50, 4)).astype("float32")
    head = build_head(
        HeadSpec("lstm", (6, 5, 4), clip_features="relative", standardize=True),
        3,
        (4,),
        5,
        standardize_on=frames,
    )
    x = np.random.default_rng(3).random((2, 5, 4), np.float32)
    standardized = np.asarray(head.get_layer("feature_standardization")(x))
    np.testing.assert_allclose(standardized, (x - frames.mean(0)) / frames.std(0), rtol=1e-4, atol=1e-4)
    relative = np.asarray(head.get_layer("window_relative")(standardized))
    np.testing.assert_allclose(relative[:, 0], 0.0)
    np.testing.assert_allclose(relative[:, 3], standardized[:, 3] - standardized[:, 0], atol=1e-6)


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


def test_motion_features_are_standardized_with_the_motion_of_the_training_windows():
    windows = np.random.default_rng(6).normal(size=(20, 5, 3, 3, 4)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((windows, np.zeros((20, 3), "float32"))).batch(8)
    head = build_head(
        HeadSpec("bilstm", (4,), clip_features="motion", standardize=True),
        3,
        (3, 3, 4),
        5,
        standardize_on=dataset,
    )
    motion = np.abs(windows - windows[:, :1]).mean(axis=(2, 3)).reshape(-1, 4)
    layer = head.get_layer("feature_standardization")
    variance = np.maximum(motion.var(0), 1e-3 * motion.var(0).mean())  # the floor build_head applies
    np.testing.assert_allclose(np.ravel(layer.mean), motion.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.ravel(layer.variance), variance, rtol=1e-3, atol=1e-7)
