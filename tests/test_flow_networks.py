"""STSTNet and OFF-ApexNet: shapes, softmax, sizes against their sources, .keras round trips, arguments."""

import keras
import numpy as np
import pytest

from mer_keras.flow import OffApexNet, STSTNet


def _flow_batch(n=4, size=28, channels=3, seed=0):
    return np.random.default_rng(seed).normal(0, 1, (n, size, size, channels)).astype(np.float32)


def test_ststnet_shapes_softmax_and_size_of_the_authors_code():
    model = STSTNet()
    assert model.input_shape == (None, 28, 28, 3) and model.output_shape == (None, 3)
    assert model.get_layer("stream1_pool").output.shape[1:] == (10, 10, 3)
    assert model.get_layer("avg_pool").output.shape[1:] == (5, 5, 16)
    # github.com/christy1206/STSTNet main.py: convs 3x3 with 3, 5, 8 filters (27 * 16 + 16 = 448),
    # BatchNorm (2 x 16 trainable, 2 x 16 statistics), fc 400 -> 3 (1,203)
    assert model.count_params() == 448 + 64 + 1203 == 1715
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 1683
    probabilities = model.predict(_flow_batch(), verbose=0)
    assert probabilities.dtype == np.float32 and probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_off_apexnet_size_and_that_it_reads_u_and_v_only():
    full = OffApexNet()
    assert full.input_shape == (None, 28, 28, 2) and full.get_layer("u_pool2").output.shape[1:] == (7, 7, 16)
    assert full.get_layer("streams").output.shape[1:] == (1568,)
    # 2 x (5*5*6 + 6 + 5*5*6*16 + 16) + (1568 + 1) * 1024 + (1024 + 1) * 1024 + (1024 + 1) * 3
    assert full.count_params() == 2 * (156 + 2416) + 1_606_656 + 1_049_600 + 3075 == 2_664_475

    model = OffApexNet(classes=4, input_shape=(16, 16, 3), filters=(2, 3), units=(8, 8))
    x = _flow_batch(3, 16)
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (3, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    other_strain = x.copy()
    other_strain[..., 2] = 100.0
    np.testing.assert_array_equal(model.predict(other_strain, verbose=0), probabilities)
    other_v = x.copy()
    other_v[..., 1] += 1.0
    assert not np.allclose(model.predict(other_v, verbose=0), probabilities)


@pytest.mark.parametrize(
    "make",
    [
        lambda: STSTNet(
            classes=4, input_shape=(16, 16, 3), filters=(2, 3), dropout=0.25, name="tiny_ststnet"
        ),
        lambda: STSTNet(batch_norm=False, dropout=0.0),
        lambda: OffApexNet(
            classes=2, input_shape=(16, 16, 2), filters=(2, 3), kernel_size=3, units=(6,), name="tiny_off"
        ),
    ],
)
def test_keras_round_trip_keeps_config_and_predictions(tmp_path, make):
    keras.utils.set_random_seed(3)
    model = make()
    x = _flow_batch(2, model.input_shape[1], model.input_shape[3], seed=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, np.array([0, 1]), epochs=1, verbose=0)  # moves BatchNorm statistics off their start
    expected = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_softmax_stays_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        for model in (STSTNet(filters=(2, 2, 2)), OffApexNet(filters=(2, 2), units=(4, 4))):
            assert model.get_layer("logits").compute_dtype == "bfloat16"
            out = model(_flow_batch(2, channels=model.input_shape[3]))
            assert keras.backend.standardize_dtype(out.dtype) == "float32"
            np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, rtol=1e-5)
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: STSTNet(classes=1), r"`classes` must be an int >= 2. Received: classes=1"),
        (
            lambda: STSTNet(input_shape=(28, 28, 2)),
            r"channels in \(3,\). Received: input_shape=\(28, 28, 2\)",
        ),
        (lambda: STSTNet(filters=()), r"Received: filters=\(\)"),
        (lambda: STSTNet(dropout=1.0), r"Received: dropout=1.0"),
        (lambda: OffApexNet(input_shape=(28, 28, 4)), r"Received: input_shape=\(28, 28, 4\)"),
        (lambda: OffApexNet(units=(1024, 0)), r"Received: units=\(1024, 0\)"),
        (lambda: OffApexNet(input_shape=(6, 6, 2), filters=(2, 2, 2)), r"at least 8 pixels.*Received"),
    ],
)
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
    with pytest.raises(TypeError, match=r"Received: batch_norm=1"):
        STSTNet(batch_norm=1)
