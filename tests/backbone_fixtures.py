"""Fabricates keras-vggface weight files the way Keras 2 (tf-keras `save_weights` / `save`) writes them.

Mirrors tf_keras/src/saving/legacy/hdf5_format.py: root attrs `layer_names` (byte strings, one per
model layer, weighted or not), `backend`, `keras_version`; one group per layer created in name order
(so `conv1/7x7_s2/bn` nests inside `conv1/7x7_s2`); group attr `weight_names` such as
`conv1/7x7_s2/bn/gamma:0`, each a dataset created relative to its layer group; whole-model files put
all that under `model_weights`. tools/check_keras_vggface.py checks this against real tf-keras output.
"""

import json

import h5py
import numpy as np

from mer_keras.backbone import legacy_layer_name

# Keras 2 variable order inside a layer.
KERAS2_ORDER = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


def _keras2_auto_name(layer, counters):
    """Keras 2's default name for an unnamed layer (`activation_3`, `add_1`, ...)."""
    base = {
        "InputLayer": "input",
        "Activation": "activation",
        "Add": "add",
        "MaxPooling2D": "max_pooling2d",
        "Flatten": "flatten",
        "GlobalAveragePooling2D": "global_average_pooling2d",
        "GlobalMaxPooling2D": "global_max_pooling2d",
    }.get(type(layer).__name__, layer.name)
    counters[base] = counters.get(base, 0) + 1
    return f"{base}_{counters[base]}"


def random_values(model, seed=0):
    """{our layer name: {variable name: distinct random array}} for every weighted layer."""
    rng = np.random.default_rng(seed)
    values = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        values[layer.name] = {}
        for v in layer.weights:
            if v.name == "moving_variance":
                value = rng.uniform(0.5, 2.0, v.shape)
            elif v.name in ("gamma", "moving_mean"):
                value = rng.uniform(0.5, 1.5, v.shape) * rng.choice([-1.0, 1.0], v.shape)
            else:
                value = rng.normal(0.0, 0.05, v.shape)
            values[layer.name][v.name] = value.astype("float32")
    return values


def _write_names(group, attr, names, chunks):
    data = [n.encode("utf8") for n in names]
    if chunks > 1:
        for i, chunk in enumerate(np.array_split(np.asarray(data), chunks)):
            group.attrs[f"{attr}{i}"] = chunk
    else:
        group.attrs[attr] = data  # an empty list becomes an empty float array, as in Keras 2


def write_keras2_weights(path, model, values, full_model=False, drop=(), replace=None, extra=None, chunks=1):
    """Writes `values` (see random_values) for `model` as a Keras 2 file; returns the legacy layer names.

    `drop`: legacy layer names to leave out; `replace`: {legacy name: {key: array}} overriding values;
    `extra`: {legacy name: {key: array}} weighted layers the model does not have.
    """
    counters, entries = {}, []
    for layer in model.layers:
        if layer.weights:
            legacy = legacy_layer_name(layer.name)
            weights = values[layer.name]
        else:
            legacy, weights = _keras2_auto_name(layer, counters), {}
        entries.append((legacy, dict(weights)))
    entries += [(name, dict(w)) for name, w in (extra or {}).items()]
    entries = [(name, {**w, **(replace or {}).get(name, {})}) for name, w in entries if name not in drop]

    with h5py.File(path, "w") as f:
        root = f
        if full_model:
            f.attrs["keras_version"] = b"2.2.4"
            f.attrs["backend"] = b"tensorflow"
            f.attrs["model_config"] = json.dumps(
                {"class_name": "Model", "config": {"name": model.name}}
            ).encode()
            root = f.create_group("model_weights")
        _write_names(root, "layer_names", [name for name, _ in entries], chunks)
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.2.4"
        for name, weights in sorted(entries):
            group = root.create_group(name)
            keys = sorted(weights, key=KERAS2_ORDER.index)
            weight_names = [f"{name}/{key}:0" for key in keys]
            _write_names(group, "weight_names", weight_names, 1)
            for wname, key in zip(weight_names, keys):
                value = weights[key]
                group.create_dataset(wname, value.shape, dtype=value.dtype)[...] = value
    return [name for name, _ in entries]
