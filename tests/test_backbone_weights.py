"""The strict Keras 2 HDF5 loader and the `weights="vggface2"` file resolution, on fabricated files."""

import hashlib
import os

import h5py
import keras
import numpy as np
import pytest

from mer_keras.backbone import (
    VGGFaceResNet50,
    WeightsError,
    WeightsNotFoundError,
    fetch_vggface2_weights,
    load_legacy_weights,
    load_vggface_weights,
    vggface2_weights_path,
    vggface_resnet50,
)
from mer_keras.backbone import weights as weights_module

from backbone_fixtures import random_values, write_keras2_weights

TINY = dict(blocks=(1, 2, 1, 1), width=1 / 16, input_shape=(64, 64, 3))
NOTOP_FILE = "rcmalli_vggface_tf_notop_resnet50.h5"


def assert_loaded(model, values):
    for layer in model.layers:
        for v in layer.weights:
            np.testing.assert_array_equal(
                v.numpy(), values[layer.name][v.name], err_msg=f"{layer.name}/{v.name}"
            )


def snapshot(model):
    return [w.copy() for w in model.get_weights()]


@pytest.fixture
def tiny():
    return VGGFaceResNet50(**TINY)


@pytest.fixture
def tiny_file(tmp_path, tiny):
    values = random_values(tiny, seed=1)
    path = tmp_path / "tiny.h5"
    write_keras2_weights(path, tiny, values)
    return path, values


def test_fabricated_layout_is_keras2s(tiny_file):
    path, _ = tiny_file
    with h5py.File(path, "r") as f:
        assert f.attrs["backend"] == "tensorflow" or f.attrs["backend"] == b"tensorflow"
        names = list(f.attrs["layer_names"])
        assert names[:3] == ["input_1", "conv1/7x7_s2", "conv1/7x7_s2/bn"]
        assert list(f["conv1/7x7_s2/bn"].attrs["weight_names"]) == [
            f"conv1/7x7_s2/bn/{k}:0" for k in ("gamma", "beta", "moving_mean", "moving_variance")
        ]
        # `/` in names makes nested groups: the BN layer's group sits inside the conv layer's group.
        assert isinstance(f["conv1"]["7x7_s2"]["bn"], h5py.Group)
        assert f["conv1/7x7_s2/conv1/7x7_s2/kernel:0"].shape == (7, 7, 3, 4)
        assert len(f["activation_1"].attrs["weight_names"]) == 0


@pytest.mark.parametrize(
    "variant",
    [dict(), dict(full_model=True), dict(chunks=3), dict(full_model=True, chunks=2)],
    ids=["save_weights", "model_weights", "chunked_layer_names", "model_weights_chunked"],
)
def test_loads_every_variable(tmp_path, tiny, variant):
    values = random_values(tiny, seed=2)
    path = tmp_path / "w.h5"
    write_keras2_weights(path, tiny, values, **variant)
    source = load_legacy_weights(tiny, path)
    assert_loaded(tiny, values)
    assert source["layers"] == len([layer for layer in tiny.layers if layer.weights])
    # The same-shaped increase/proj pair of the first block each got its own values.
    increase = tiny.get_layer("conv2_1_1x1_increase").kernel.numpy()
    proj = tiny.get_layer("conv2_1_1x1_proj").kernel.numpy()
    assert increase.shape == proj.shape and not np.array_equal(increase, proj)
    for stat in ("moving_mean", "moving_variance"):
        bn = tiny.get_layer("conv2_1_1x1_proj_bn")
        np.testing.assert_array_equal(getattr(bn, stat).numpy(), values["conv2_1_1x1_proj_bn"][stat])


def test_fixed_length_byte_string_attributes(tmp_path, tiny):
    """The published files date from h5py 2 / Keras 2.x, whose string attributes are fixed-length bytes."""
    values = random_values(tiny, seed=3)
    path = tmp_path / "w.h5"
    write_keras2_weights(path, tiny, values)
    with h5py.File(path, "r+") as f:
        for group in [f] + [f[name] for name in f.attrs["layer_names"]]:
            attr = "layer_names" if group is f else "weight_names"
            names = list(group.attrs[attr])
            if names:
                group.attrs[attr] = np.array([n.encode() for n in names], dtype=f"S{max(map(len, names))}")
        assert f.attrs["layer_names"].dtype.kind == "S"
    load_legacy_weights(tiny, path)
    assert_loaded(tiny, values)


def test_shuffled_layer_names_still_load_by_name(tmp_path, tiny):
    values = random_values(tiny, seed=4)
    path = tmp_path / "w.h5"
    names = write_keras2_weights(path, tiny, values)
    with h5py.File(path, "r+") as f:
        f.attrs["layer_names"] = [n.encode() for n in reversed(names)]
    load_legacy_weights(tiny, path)
    assert_loaded(tiny, values)


def test_loads_under_mixed_precision(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = VGGFaceResNet50(**TINY)
        values = random_values(model, seed=9)
        write_keras2_weights(tmp_path / "w.h5", model, values)
        load_legacy_weights(model, tmp_path / "w.h5")
        out = model(np.zeros((1, 64, 64, 3), "float32"))
    finally:
        keras.config.set_dtype_policy("float32")
    assert all(v.dtype == "float32" for v in model.weights)  # variables stay float32, exact values
    assert_loaded(model, values)
    assert out.dtype == "bfloat16"


def test_top_file_into_no_top_model_ignores_classifier(tmp_path):
    top = VGGFaceResNet50(**{**TINY, "input_shape": (224, 224, 3)}, include_top=True, classes=5)
    values = random_values(top, seed=5)
    path = tmp_path / "top.h5"
    write_keras2_weights(path, top, values)
    notop = VGGFaceResNet50(**TINY)
    load_vggface_weights(notop, path)
    assert_loaded(notop, values)
    load_vggface_weights(top, path)
    assert_loaded(top, values)


def test_no_top_file_into_top_model_fails_on_classifier(tiny_file):
    path, _ = tiny_file
    top = VGGFaceResNet50(**{**TINY, "input_shape": (224, 224, 3)}, include_top=True, classes=5)
    with pytest.raises(WeightsError, match="'classifier': missing from the file"):
        load_vggface_weights(top, path)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            dict(drop=["conv2_1_1x1_proj/bn"]),
            "layer 'conv2_1_1x1_proj_bn' (file: 'conv2_1_1x1_proj/bn'): missing",
        ),
        (dict(drop=["conv1/7x7_s2"]), "layer 'conv1_7x7_s2' (file: 'conv1/7x7_s2'): missing"),
        (
            dict(replace={"conv3_2_3x3": {"kernel": np.zeros((3, 3, 9, 8), "float32")}}),
            "layer 'conv3_2_3x3': kernel has shape (3, 3, 9, 8) in the file, (3, 3, 8, 8) in the model",
        ),
        (
            dict(replace={"conv4_1_1x1_increase": {"bias": np.zeros(64, "float32")}}),
            "layer 'conv4_1_1x1_increase': file has weights ['bias', 'kernel'], model has ['kernel']",
        ),
        (
            dict(extra={"conv2_1_1x1_down": {"kernel": np.zeros((1, 1, 16, 1), "float32")}}),
            "weighted layers the model lacks: ['conv2_1_1x1_down']",
        ),
        (
            dict(
                extra={
                    "classifier": {"kernel": np.zeros((128, 5), "float32"), "bias": np.zeros(5, "float32")}
                }
            ),
            "weighted layers the model lacks: ['classifier']",
        ),
    ],
    ids=[
        "missing_bn",
        "missing_stem",
        "wrong_shape",
        "unexpected_bias",
        "extra_layer",
        "classifier_not_ignored",
    ],
)
def test_mismatches_name_the_layer_and_load_nothing(tmp_path, tiny, change, message):
    values = random_values(tiny, seed=6)
    path = tmp_path / "bad.h5"
    write_keras2_weights(path, tiny, values, **change)
    before = snapshot(tiny)
    with pytest.raises(WeightsError) as info:
        load_legacy_weights(tiny, path)  # no `ignore`: a classifier the model lacks is an error here
    assert message in str(info.value)
    assert str(path) in str(info.value)
    for old, new in zip(before, tiny.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize(
    "layer, key, bad, message",
    [
        (
            "conv1_7x7_s2",
            "kernel",
            [np.nan],
            "layer 'conv1_7x7_s2' (file: 'conv1/7x7_s2') weight 'kernel' holds NaN/inf (1 of 588 values)",
        ),
        (
            "conv2_1_1x1_proj_bn",
            "moving_variance",
            [np.inf, -np.inf],
            "layer 'conv2_1_1x1_proj_bn' (file: 'conv2_1_1x1_proj/bn') weight 'moving_variance' holds NaN/inf "
            "(2 of 16 values)",
        ),
        ("conv5_1_3x3", "kernel", [np.nan] * 3, "layer 'conv5_1_3x3' weight 'kernel' holds NaN/inf (3 of"),
    ],
    ids=["nan_kernel", "inf_moving_variance", "nan_deep_kernel"],
)
def test_non_finite_weights_name_layer_weight_and_file_and_load_nothing(
    tmp_path, tiny, layer, key, bad, message
):
    values = random_values(tiny, seed=8)
    values[layer][key].flat[: len(bad)] = bad
    path = tmp_path / "nan.h5"
    write_keras2_weights(path, tiny, values)
    before = snapshot(tiny)
    with pytest.raises(WeightsError) as info:
        load_legacy_weights(tiny, path)
    assert message in str(info.value)
    assert f"Cannot load {path} into model" in str(info.value)
    for old, new in zip(before, tiny.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_truncated_file_names_the_file(tmp_path, tiny_file, tiny):
    path, _ = tiny_file
    data = path.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated.h5.*truncated or corrupt"):
        load_legacy_weights(tiny, truncated)


def test_not_hdf5_and_not_keras_files(tmp_path, tiny):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(WeightsError, match="junk.h5"):
        load_legacy_weights(tiny, junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsError, match="other.h5 is not a Keras 2 weight file"):
        load_legacy_weights(tiny, other)


def test_corrupt_dataset_names_layer_and_file(tmp_path, tiny):
    values = random_values(tiny, seed=7)
    path = tmp_path / "w.h5"
    write_keras2_weights(path, tiny, values)
    with h5py.File(path, "r+") as f:
        del f["conv5_1_3x3/conv5_1_3x3/kernel:0"]  # listed in weight_names, data gone
    expected = r"layer 'conv5_1_3x3' of .*w\.h5: cannot read weight 'conv5_1_3x3/kernel:0'"
    with pytest.raises(WeightsError, match=expected):
        load_legacy_weights(tiny, path)


def test_weights_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file at .*nope.h5"):
        vggface_resnet50(weights=str(tmp_path / "nope.h5"))
    with pytest.raises(ValueError, match="Received: weights=3"):
        vggface_resnet50(weights=3)


def test_full_size_vggface2_from_keras_home(tmp_path, monkeypatch):
    """The real architecture, a 94 MB fabricated file where `weights="vggface2"` looks; no network."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(weights_module, "RELEASE_URL", "file:///nonexistent/")  # would fail if used
    path = vggface2_weights_path(include_top=False)
    assert path == os.path.join(tmp_path, "keras_home", "models", "vggface", NOTOP_FILE)
    os.makedirs(os.path.dirname(path))
    reference = VGGFaceResNet50()
    values = random_values(reference, seed=8)
    write_keras2_weights(path, reference, values)
    del reference

    model = vggface_resnet50(weights="vggface2")
    assert_loaded(model, values)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert dict(model.weights_source) == {"path": path, "sha256": digest, "layers": 106}


def test_fetch_downloads_with_get_file(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / NOTOP_FILE).write_bytes(b"weights")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    path = fetch_vggface2_weights(include_top=False, base_url=mirror.as_uri() + "/")
    assert path == vggface2_weights_path(False)
    assert open(path, "rb").read() == b"weights"


def test_missing_and_undownloadable_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(weights_module, "RELEASE_URL", (tmp_path / "no_mirror").as_uri() + "/")
    with pytest.raises(WeightsNotFoundError) as info:
        vggface_resnet50(weights="vggface2", include_top=True)
    message = str(info.value)
    assert "rcmalli_vggface_tf_resnet50.h5" in message
    assert os.path.join(str(tmp_path), "keras_home", "models", "vggface") in message
    assert "weights=None" in message
    assert not os.path.exists(vggface2_weights_path(True))  # no partial file left behind
