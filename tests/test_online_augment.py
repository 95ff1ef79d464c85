"""WindowAugmentation: one draw per window applied alike to its frames, seeded, identity outside training."""

import json

import keras
import numpy as np
import pytest

from mer_keras.pipeline.online_augment import WindowAugmentation, affine_transforms

H, W, C = 9, 11, 3
NEUTRAL = dict(flip=0.0, angle=0.0, translate_x=0.0, translate_y=0.0, scale=1.0, brightness=0.0, contrast=1.0)


def _image(seed=0):
    """A non-symmetric random image, so a flip or rotation shows."""
    return np.random.default_rng(seed).uniform(0, 255, (H, W, C)).astype("float32")


def _windows(batch=4, n=5, same_content=True):
    """``batch`` windows of ``n`` identical frames (the same image in every window if ``same_content``)."""
    images = [_image(0 if same_content else i) for i in range(batch)]
    return np.stack([np.repeat(image[None], n, axis=0) for image in images])


def _draws(batch=1, **values):
    return {k: np.full(batch, values.get(k, v), "float32") for k, v in NEUTRAL.items()}


def _argmax(image):
    return tuple(int(i) for i in np.unravel_index(np.argmax(image), image.shape))


def test_one_transform_per_window_applied_alike_to_its_frames():
    x = _windows(batch=6, n=5, same_content=False)
    y = np.asarray(WindowAugmentation(seed=1)(x, training=True))
    assert y.shape == x.shape and y.dtype == np.float32
    for window, original in zip(y, x):
        np.testing.assert_array_equal(window, np.repeat(window[:1], 5, axis=0))  # frames alike
        assert np.abs(window - original).mean() > 1.0  # and something was applied
    assert y.min() >= 0.0 and y.max() <= 255.0


def test_windows_of_one_batch_get_different_draws():
    y = np.asarray(WindowAugmentation(seed=2)(_windows(batch=5), training=True))
    for i in range(5):
        for j in range(i):
            assert np.abs(y[i] - y[j]).mean() > 0.5, (i, j)


@pytest.mark.parametrize("seed_a, seed_b, same", [(7, 7, True), (7, 8, False)])
def test_the_seed_decides_the_draws(seed_a, seed_b, same):
    x = _windows(batch=3, n=2)
    a = np.asarray(WindowAugmentation(seed=seed_a)(x, training=True))
    b = np.asarray(WindowAugmentation(seed=seed_b)(x, training=True))
    assert np.array_equal(a, b) == same


def test_successive_calls_draw_anew():
    layer, x = WindowAugmentation(seed=3), _windows(batch=2, n=2)
    assert not np.array_equal(np.asarray(layer(x, training=True)), np.asarray(layer(x, training=True)))


def test_identity_outside_training():
    x = keras.ops.convert_to_tensor(_windows(batch=3, n=4, same_content=False))
    layer = WindowAugmentation(seed=4)
    assert layer(x, training=False) is x and layer(x) is x
    model = keras.Sequential([keras.Input((4, H, W, C)), layer])
    np.testing.assert_array_equal(model.predict(np.asarray(x), verbose=0), np.asarray(x))


def test_a_model_with_the_layer_is_not_xla_compiled():
    """TF cannot compile the image warp with XLA, so Keras must not try (it would on a GPU machine)."""
    model = keras.Sequential([keras.Input((2, H, W, C)), WindowAugmentation(), keras.layers.Flatten()])
    with pytest.warns(UserWarning, match="doesn't support `jit_compile=True`"):
        model.compile(loss="mse", jit_compile=True)
    assert model.jit_compile is False


def test_draw_ranges():
    layer = WindowAugmentation(
        flip=True, rotation=12.0, translation=0.1, scale=0.2, brightness=0.3, contrast=0.4, seed=5
    )
    draws = {k: np.asarray(v) for k, v in layer.draw(4000).items()}
    bounds = {
        "angle": (-12.0, 12.0),
        "translate_x": (-0.1, 0.1),
        "translate_y": (-0.1, 0.1),
        "scale": (0.8, 1.2),
        "brightness": (-0.3 * 255, 0.3 * 255),
        "contrast": (0.6, 1.4),
    }
    for name, (low, high) in bounds.items():
        values = draws[name]
        assert values.shape == (4000,)
        assert low <= values.min() < low + 0.02 * (high - low), name  # stays within and fills the range
        assert high - 0.02 * (high - low) < values.max() <= high, name
    assert set(np.unique(draws["flip"])) == {0.0, 1.0} and 0.45 < draws["flip"].mean() < 0.55
    off = WindowAugmentation(flip=False, rotation=0, translation=0, scale=0, brightness=0, contrast=0, seed=5)
    for name, values in off.draw(50).items():
        np.testing.assert_array_equal(values, NEUTRAL[name], err_msg=name)


def test_flip_only_gives_the_input_or_its_mirror_image():
    x = _windows(batch=16, n=3)
    layer = WindowAugmentation(rotation=0, translation=0, scale=0, brightness=0, contrast=0, seed=6)
    y = np.asarray(layer(x, training=True))
    flipped = [np.allclose(window, x[0][:, :, ::-1], atol=1e-3) for window in y]
    kept = [np.allclose(window, x[0], atol=1e-3) for window in y]
    assert all(f != k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    forced = np.asarray(layer.transform(x[:2], _draws(2, flip=1.0)))  # neutral otherwise: exact
    np.testing.assert_array_equal(forced, x[:2, :, :, ::-1, :])


@pytest.mark.parametrize(
    "draw, dot, expected",
    [
        (dict(flip=1.0), (4, 2), (4, 8)),  # mirrored across the width
        (dict(translate_x=2 / W, translate_y=1 / H), (4, 5), (5, 7)),  # 2 px right, 1 px down
        (dict(translate_x=-3 / W), (4, 5), (4, 2)),
        (dict(angle=90.0), (4, 3), (6, 5)),  # counter-clockwise: left of the centre goes below it
        (dict(angle=-90.0), (4, 3), (2, 5)),
        (dict(scale=2.0), (4, 3), (4, 1)),  # twice as far from the centre (4, 5)
        (dict(flip=1.0, translate_x=1 / W), (4, 2), (4, 9)),  # flip, then shift
    ],
)
def test_transform_geometry_moves_a_dot(draw, dot, expected):
    image = np.zeros((1, H, W, 1), "float32")
    image[(0, *dot, 0)] = 200.0
    layer = WindowAugmentation(seed=0)
    moved = np.asarray(layer.transform(image, _draws(**draw)))[0, ..., 0]
    assert _argmax(moved) == expected and moved.max() == pytest.approx(200.0, abs=1e-3)


def test_transform_vector_of_the_identity_and_a_flip():
    vectors = np.asarray(affine_transforms(_draws(2, flip=0.0) | {"flip": np.array([0.0, 1.0])}, H, W))
    np.testing.assert_allclose(vectors[0], [1, 0, 0, 0, 1, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(vectors[1], [-1, 0, W - 1, 0, 1, 0, 0, 0], atol=1e-6)


@pytest.mark.parametrize(
    "draw, expected",
    [
        (dict(brightness=30.0), lambda x: np.clip(x + 30.0, 0, 255)),
        (dict(brightness=-300.0), lambda x: np.zeros_like(x)),
        (dict(contrast=0.5), lambda x: (x - x.mean(axis=(0, 1, 2))) * 0.5 + x.mean(axis=(0, 1, 2))),
        (dict(contrast=0.0), lambda x: np.broadcast_to(x.mean(axis=(0, 1, 2)), x.shape)),
    ],
)
def test_brightness_and_contrast_per_window(draw, expected):
    window = np.stack([_image(1), _image(2)])  # frames differ: the mean is the window's, not a frame's
    y = np.asarray(WindowAugmentation(seed=0).transform(window[None], _draws(**draw)))[0]
    np.testing.assert_allclose(y, expected(window), atol=1e-3)


def test_frames_each_get_their_own_draw():
    frames = np.stack([_image(0)] * 6)  # (6, H, W, C): Exp-I input
    y = np.asarray(WindowAugmentation(seed=8)(frames, training=True))
    assert y.shape == frames.shape
    for i in range(6):
        for j in range(i):
            assert np.abs(y[i] - y[j]).mean() > 0.5, (i, j)


@pytest.mark.parametrize(
    "policy, compute_dtype",
    [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")],
)
def test_mixed_precision(policy, compute_dtype):
    keras.mixed_precision.set_global_policy(policy)
    try:
        inputs = keras.Input((3, H, W, C))
        augment = WindowAugmentation(seed=9)
        outputs = keras.layers.Dense(2, dtype="float32")(keras.layers.Flatten()(augment(inputs)))
        model = keras.Model(inputs, outputs)
        x = _windows(batch=4, n=3, same_content=False)
        y = augment(x, training=True)
        assert keras.backend.standardize_dtype(y.dtype) == compute_dtype
        values = np.asarray(keras.ops.cast(y, "float32"))
        assert values.min() >= 0.0 and values.max() <= 255.0 and np.abs(values - x).mean() > 1.0
        if policy == "mixed_bfloat16":
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
            loss = model.train_on_batch(x, np.array([0, 1, 0, 1]))
            assert np.isfinite(loss)
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rotation=50), "`rotation` must be between 0 and 45 degrees. Received: rotation=50"),
        (dict(rotation=-1), "`rotation` must be between 0 and 45 degrees. Received: rotation=-1"),
        (dict(rotation="5"), "`rotation` must be between 0 and 45 degrees. Received: rotation='5'"),
        (
            dict(translation=0.5),
            "`translation` must be at least 0 and less than 0.5. Received: translation=0.5",
        ),
        (dict(scale=-0.1), "`scale` must be at least 0 and less than 0.5. Received: scale=-0.1"),
        (dict(scale=float("nan")), "`scale` must be at least 0 and less than 0.5. Received: scale=nan"),
        (dict(brightness=1), "`brightness` must be at least 0 and less than 1. Received: brightness=1"),
        (dict(contrast=1.5), "`contrast` must be at least 0 and less than 1. Received: contrast=1.5"),
        (dict(contrast=True), "`contrast` must be at least 0 and less than 1. Received: contrast=True"),
        (dict(flip=1), "`flip` must be True or False. Received: flip=1"),
        (dict(seed=1.5), "`seed` must be an int or None. Received: seed=1.5"),
        (dict(seed=True), "`seed` must be an int or None. Received: seed=True"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        WindowAugmentation(**kwargs)
    assert str(error.value) == message


def test_config_round_trip():
    layer = WindowAugmentation(
        flip=False, rotation=5, translation=0.1, scale=0.0, brightness=0.2, contrast=0.3, seed=11
    )
    config = layer.get_config()
    expected = dict(
        flip=False, rotation=5.0, translation=0.1, scale=0.0, brightness=0.2, contrast=0.3, seed=11
    )
    assert {k: config[k] for k in expected} == expected
    assert WindowAugmentation.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, WindowAugmentation) and restored.get_config() == config
    assert layer.compute_output_shape((None, 13, H, W, C)) == (None, 13, H, W, C)


def test_save_and_load_a_model_with_the_layer(tmp_path):
    inputs = keras.Input((2, H, W, C))
    outputs = keras.layers.Dense(2)(
        keras.layers.Flatten()(WindowAugmentation(seed=12, name="augment")(inputs))
    )
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    x = _windows(batch=3, n=2)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert loaded.get_layer("augment").get_config() == model.get_layer("augment").get_config()
    augment = loaded.get_layer("augment")
    assert not np.array_equal(np.asarray(augment(x, training=True)), x)


def test_benchmark_reports_windows_per_second(capsys):
    from benchmarks import online_augment

    assert online_augment.main(["--batch", "2", "--n", "3", "--size", "16", "--repeats", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["windows_per_s"] == pytest.approx(2 / result["median_s"])
    assert result["frames_per_s"] == pytest.approx(3 * result["windows_per_s"])
    assert (result["settings"]["batch"], result["settings"]["n"], result["settings"]["size"]) == (2, 3, 16)
    assert result["settings"]["layer"]["seed"] == 0 and result["machine"]["cpus"] >= 1
