"""Transfer-learning helpers: cut points, freezing (BatchNorm in inference mode), prefix/suffix split."""

import keras
import numpy as np
import pytest

from mer_keras.backbone import (
    VGGFaceResNet50,
    freeze_before,
    frozen_output_name,
    gradcam_candidates,
    retrain_candidates,
    split_backbone,
)

TINY = dict(blocks=(1, 2, 1, 1), width=1 / 16, input_shape=(48, 48, 3))
TINY_STARTS = [
    "conv2_1_1x1_reduce",
    "conv3_1_1x1_reduce",
    "conv3_2_1x1_reduce",
    "conv4_1_1x1_reduce",
    "conv5_1_1x1_reduce",
]


def images(n=2, size=48, seed=0):
    return np.random.default_rng(seed).normal(0, 50, (n, size, size, 3)).astype("float32")


def randomize_bn(model, seed=0):
    """Non-trivial BN statistics, so a prefix/suffix mismatch or a BN in the wrong mode would show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.5, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))


@pytest.fixture
def tiny():
    model = VGGFaceResNet50(**TINY)
    randomize_bn(model)
    return model


def test_candidates_of_the_full_network():
    model = VGGFaceResNet50(pooling=None)
    starts, outs = retrain_candidates(model), gradcam_candidates(model)
    assert len(starts) == len(outs) == 16
    assert starts[:4] == [
        "conv2_1_1x1_reduce",
        "conv2_2_1x1_reduce",
        "conv2_3_1x1_reduce",
        "conv3_1_1x1_reduce",
    ]
    assert starts[-3:] == ["conv5_1_1x1_reduce", "conv5_2_1x1_reduce", "conv5_3_1x1_reduce"]
    assert outs[12] == "conv4_6_out" and outs[-1] == "conv5_3_out"
    # Block i's output feeds block i + 1.
    assert [frozen_output_name(model, s) for s in starts] == ["pool1"] + outs[:-1]
    assert model.get_layer("conv4_6_out").output.shape == (None, 14, 14, 1024)


def test_candidates_follow_blocks_not_layer_order(tiny):
    assert retrain_candidates(tiny) == TINY_STARTS
    assert gradcam_candidates(tiny) == [
        "conv2_1_out",
        "conv3_1_out",
        "conv3_2_out",
        "conv4_1_out",
        "conv5_1_out",
    ]


@pytest.mark.parametrize("start", TINY_STARTS)
def test_freeze_before_table(tiny, start):
    freeze_before(tiny, start)
    start_block = start[: len("convS_B")]
    order = ["stem"] + [s[: len("convS_B")] for s in TINY_STARTS]
    first_trainable = order.index(start_block)
    for layer in tiny.layers:
        if layer.name.startswith(("conv1_", "pool1")):
            position = 0
        elif layer.name[: len("convS_B")] in order:
            position = order.index(layer.name[: len("convS_B")])
        else:
            position = len(order)  # input / pooling: nothing to freeze, left trainable
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        assert layer.trainable == (position >= first_trainable and not is_bn), layer.name
    trainable = {v.path.split("/")[0] for v in tiny.trainable_weights}
    assert start in trainable and "conv1_7x7_s2" not in trainable


@pytest.mark.parametrize("name", [None, "none", "None"])
def test_freeze_before_none_freezes_everything(tiny, name):
    freeze_before(tiny, name)
    assert tiny.trainable_weights == []
    freeze_before(tiny, "conv2_1_1x1_reduce")  # and back: everything but the stem trains again
    expected = [v.path for v in tiny.weights if "_bn/" not in v.path and not v.path.startswith("conv1_")]
    assert sorted(v.path for v in tiny.trainable_weights) == sorted(expected)


@pytest.mark.parametrize("bad", ["conv5_1_3x3", "conv4_1_out", "conv6_1_1x1_reduce", "", 3])
def test_invalid_start_lists_candidates(tiny, bad):
    for call in (freeze_before, split_backbone):
        with pytest.raises(ValueError, match=f"Received: {bad!r}") as info:
            call(tiny, bad)
        assert "conv5_1_1x1_reduce" in str(info.value)


@pytest.mark.parametrize("train_batchnorm", [False, True])
def test_frozen_batchnorm_keeps_its_statistics_during_fit(tiny, train_batchnorm):
    """Keras 3: BN with trainable=False runs in inference mode, so fit does not move its moving stats."""
    freeze_before(tiny, "conv4_1_1x1_reduce", train_batchnorm=train_batchnorm)
    head = keras.layers.Dense(3, name="head")
    model = keras.Sequential([tiny, head])
    # the head gives logits: read as probabilities they are clipped, and the gradient can vanish
    model.compile(
        optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    frozen_bn = tiny.get_layer("conv3_2_1x1_increase_bn")
    trained_bn = tiny.get_layer("conv4_1_1x1_reduce_bn")
    before = {
        name: tiny.get_layer(name).get_weights()
        for name in (
            "conv1_7x7_s2",
            "conv1_7x7_s2_bn",
            "conv3_2_1x1_increase_bn",
            "conv4_1_1x1_reduce_bn",
            "conv4_1_1x1_reduce",
        )
    }
    model.fit(images(4), np.array([0, 1, 2, 0]), epochs=1, batch_size=4, verbose=0)
    for name in ("conv1_7x7_s2", "conv1_7x7_s2_bn", "conv3_2_1x1_increase_bn"):
        for old, new in zip(before[name], tiny.get_layer(name).get_weights()):
            np.testing.assert_array_equal(old, new, err_msg=name)
    assert not np.array_equal(
        before["conv4_1_1x1_reduce"][0], tiny.get_layer("conv4_1_1x1_reduce").kernel.numpy()
    )
    # BN of the retrained blocks: frozen like the rest by default, or trained in training mode
    moved = not np.allclose(before["conv4_1_1x1_reduce_bn"][2], trained_bn.moving_mean.numpy())
    assert moved is train_batchnorm and trained_bn.trainable is train_batchnorm
    assert not frozen_bn.trainable


@pytest.mark.parametrize("start", TINY_STARTS)
def test_split_backbone_composes_to_the_backbone(tiny, start):
    x = images()
    expected = tiny(x).numpy()
    prefix, suffix = split_backbone(tiny, start)
    features = prefix(x)
    np.testing.assert_allclose(suffix(features), expected, rtol=0, atol=1e-5)
    assert prefix.output.shape[1:] == suffix.input.shape[1:]
    assert prefix.trainable_weights == []
    assert suffix.layers[-1].name == "global_avg_pool"
    suffix_names = {layer.name for layer in suffix.layers[1:]}
    assert start in suffix_names and frozen_output_name(tiny, start) not in suffix_names
    for name in suffix_names:
        assert suffix.get_layer(name) is tiny.get_layer(name)  # same layers, same variables
    assert {id(v) for v in suffix.trainable_weights} == {id(v) for v in tiny.trainable_weights}


def test_split_backbone_with_top_and_training_the_suffix_trains_the_backbone():
    backbone = VGGFaceResNet50(**{**TINY, "input_shape": (224, 224, 3)}, include_top=True, classes=4)
    randomize_bn(backbone)
    x = images(2, 224)
    prefix, suffix = split_backbone(backbone, "conv5_1_1x1_reduce")
    assert suffix.layers[-1].name == "classifier" and suffix.output.shape == (None, 4)
    np.testing.assert_allclose(suffix(prefix(x)), backbone(x), atol=1e-6)
    features = prefix.predict(x, verbose=0)  # what the experiments cache
    suffix.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    before = backbone(x).numpy()
    suffix.fit(features, np.array([0, 3]), epochs=2, verbose=0)
    after = backbone(x).numpy()
    assert not np.allclose(before, after)
    np.testing.assert_allclose(suffix(prefix(x)), after, atol=1e-6)


def test_split_backbone_none_and_type_errors(tiny):
    prefix, suffix = split_backbone(tiny, None)
    assert prefix is tiny and suffix is None and tiny.trainable_weights == []
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="conv2_1_1x1_reduce")])
    with pytest.raises(TypeError, match="Received: Sequential"):
        split_backbone(plain, "conv2_1_1x1_reduce")


def test_suffix_saves_and_reloads(tmp_path, tiny):
    _, suffix = split_backbone(tiny, "conv4_1_1x1_reduce")
    suffix.save(tmp_path / "suffix.keras")
    restored = keras.saving.load_model(tmp_path / "suffix.keras")
    features = np.random.default_rng(1).normal(size=(2,) + tuple(suffix.input.shape[1:])).astype("float32")
    np.testing.assert_allclose(restored(features), suffix(features), atol=1e-6)
