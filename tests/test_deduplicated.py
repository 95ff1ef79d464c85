"""The deduplicated clip model: each distinct frame through the trainable encoder once per batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mer_keras.models import HeadSpec, build_head, compose, deduplicated
from mer_keras.pipeline.tfdata import make_dataset, make_deduplicated_dataset
from mer_keras.pipeline.windows import WindowSet

N = 5


@pytest.fixture(params=["raw", "motion"])
def encoder(request):
    """A trainable suffix ending pooled (raw features) or in 2x2 maps (motion), and its clip features."""
    inputs = keras.Input((4, 4, 8))
    x = keras.layers.Conv2D(6, 3, name="suffix_conv")(inputs)
    bn = keras.layers.BatchNormalization(name="suffix_bn")
    bn.trainable = False  # as split_backbone leaves it: inference mode, so frames never mix in a batch
    x = bn(x)
    if request.param == "raw":
        x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="suffix"), request.param


@pytest.fixture
def windows():
    """Two clips of 20 and 18 frames (rows 0-19 and 20-37): 16 + 14 overlapping windows."""
    rows = [np.arange(i, i + N) for i in range(16)] + [np.arange(i, i + N) for i in range(20, 34)]
    clip_index = np.array([0] * 16 + [1] * 14, np.int32)
    return WindowSet(np.array(rows, np.int32), clip_index, clip_index.copy(), ("a", "b"))


@pytest.fixture
def features():
    return np.random.default_rng(0).random((2, 38, 4, 4, 8)).astype("float32")


def _models(encoder):
    """The deduplicated and the per-window model: one head, one encoder, shared (nothing copied)."""
    encoder, clip_features = encoder
    head = build_head(
        HeadSpec("lstm", (6, 5, 4), clip_features=clip_features, dropout=0.0),
        3,
        encoder.outputs[0].shape[1:],
        N,
    )
    return deduplicated(head, encoder, (4, 4, 8)), compose(head, encoder, (4, 4, 8))


def test_gradients_equal_the_per_window_computation(encoder, windows, features):
    deduplicated, per_window = _models(encoder)
    (frames, index), y = next(iter(make_deduplicated_dataset(features, windows, 3, 12, training=True)[0]))
    assert frames.shape[0] < index.shape[0] * N  # frames really are shared between windows
    clips = tf.gather(frames, index)  # the same windows, every frame repeated per window position
    loss = keras.losses.CategoricalCrossentropy()
    grads = []
    for model, inputs in ((deduplicated, (frames, index)), (per_window, clips)):
        with tf.GradientTape() as tape:
            value = loss(
                y, model(inputs, training=True)
            )  # as in fit; the encoder's BatchNorm stays in inference
        grads.append(
            {
                v.path: g
                for v, g in zip(model.trainable_variables, tape.gradient(value, model.trainable_variables))
            }
        )
    assert set(grads[0]) == set(grads[1]) and any("suffix_conv" in k for k in grads[0])
    for name, grad in grads[0].items():
        np.testing.assert_allclose(grad, grads[1][name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_predictions_equal_and_training_reaches_the_per_window_model(encoder, windows, features):
    deduplicated, per_window = _models(encoder)
    before = per_window.predict(make_dataset(features, windows, 3, 8, training=False)[0], verbose=0)
    deduplicated.compile("adam", "categorical_crossentropy")
    deduplicated.fit(
        make_deduplicated_dataset(features, windows, 3, 8, training=True)[0],
        epochs=1,
        verbose=0,
        shuffle=False,
    )
    ours = deduplicated.predict(
        make_deduplicated_dataset(features, windows, 3, 8, training=False)[0], verbose=0
    )
    theirs = per_window.predict(make_dataset(features, windows, 3, 8, training=False)[0], verbose=0)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert ours.shape == (len(windows), 3) and np.abs(theirs - before).max() > 1e-4  # trained, and shared


def test_training_batches_walk_clip_by_clip_and_cover_the_balanced_epoch(windows, features):
    dataset, count = make_deduplicated_dataset(features, windows, 3, 8, training=True)
    assert count == 32 and dataset.cardinality() == 4  # 16 windows per class after balancing (14 -> 16)
    for _ in range(2):  # two epochs
        labels = []
        for (frames, _), y in dataset:
            labels += np.argmax(y, 1).tolist()
            assert frames.shape[0] <= 20 < 8 * N  # the frames of one clip, not 8 windows' worth
        assert sorted(labels) == [0] * 16 + [1] * 16
        assert labels in ([0] * 16 + [1] * 16, [1] * 16 + [0] * 16)  # one clip after the other
