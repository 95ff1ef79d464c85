"""keras-vggface's published weight files: where they live, how to fetch them, and a strict loader.

The files are Keras 2 HDF5 weights (`save_weights` layout, or a whole-model file with a
`model_weights` group). Keras 3's own `load_weights(by_name=True)` skips their `/` names
silently and loading by order swaps same-shaped layers, so this loader maps every layer by
name, checks every shape, and refuses anything missing or left over.
"""

import hashlib
import os

import h5py
import numpy as np

from mer_keras.paths import keras_home

RELEASE_URL = "https://github.com/rcmalli/keras-vggface/releases/download/v2.0/"
WEIGHT_FILES = {False: "rcmalli_vggface_tf_notop_resnet50.h5", True: "rcmalli_vggface_tf_resnet50.h5"}
CACHE_SUBDIR = os.path.join("models", "vggface")


def legacy_layer_name(name):
    """keras-vggface's (Keras 2) name of our weighted layer: `conv1_7x7_s2_bn` -> `conv1/7x7_s2/bn`."""
    if name.endswith("_bn"):
        return legacy_layer_name(name[: -len("_bn")]) + "/bn"
    if name == "conv1_7x7_s2":
        return "conv1/7x7_s2"
    return name


class WeightsError(ValueError):
    """A weight file that cannot be loaded into the model: unreadable, or layers/shapes do not match."""


class WeightsNotFoundError(FileNotFoundError):
    """The VGGFace2 weight file is neither on disk nor downloadable."""


def vggface2_weights_path(include_top=False):
    """Where `weights="vggface2"` looks for (and downloads) the file."""
    return os.path.join(keras_home(), CACHE_SUBDIR, WEIGHT_FILES[bool(include_top)])


def fetch_vggface2_weights(include_top=False, base_url=None):
    """The local path of the VGGFace2 ResNet-50 file, downloaded with `keras.utils.get_file` if absent."""
    import keras

    base_url = base_url or RELEASE_URL
    path = vggface2_weights_path(include_top)
    if os.path.isfile(path):
        return path
    fname = WEIGHT_FILES[bool(include_top)]
    # get_file falls back to /tmp/.keras when the cache folder does not exist yet; make it first.
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        return keras.utils.get_file(
            fname, base_url + fname, cache_subdir=CACHE_SUBDIR, cache_dir=keras_home()
        )
    except Exception as e:  # get_file raises bare Exception on URL failures
        raise WeightsNotFoundError(
            f"VGGFace2 weights {fname} are not on disk and could not be downloaded "
            f"from {base_url + fname} ({type(e).__name__}: {e}).\n"
            f"Put the file in {os.path.dirname(path)}/ (or set KERAS_HOME), pass its path as "
            "weights=..., or run without pretrained weights with weights=None."
        ) from e


def sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _read_names(group, attr):
    """A Keras 2 string-list attribute (byte strings, possibly split into `attr0`, `attr1`, ...)."""
    if attr in group.attrs:
        values = [group.attrs[attr]]
    elif f"{attr}0" in group.attrs:
        values, i = [], 0
        while f"{attr}{i}" in group.attrs:
            values.append(group.attrs[f"{attr}{i}"])
            i += 1
    else:
        return None
    names = [v for chunk in values for v in np.atleast_1d(chunk).tolist()]
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names]


def _weight_key(weight_name):
    """`conv1/7x7_s2/bn/moving_mean:0` -> `moving_mean` (Keras 3's variable name)."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def _read_file_layers(path):
    """{legacy layer name: {variable key: array}} for every layer of the file that has weights."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(
            f"Cannot read weight file {path}: not a readable HDF5 file (truncated or corrupt?): {e}"
        ) from e
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        layer_names = _read_names(root, "layer_names")
        if layer_names is None:
            raise WeightsError(
                f"{path} is not a Keras 2 weight file: no 'layer_names' attribute at its root "
                "(nor in a 'model_weights' group)."
            )
        layers = {}
        for lname in layer_names:
            where = f"layer {lname!r} of {path}"
            try:
                group = root[lname]
            except (KeyError, OSError) as e:
                raise WeightsError(
                    f"{where}: listed in layer_names but its group is unreadable or absent: {e}"
                ) from e
            weight_names = _read_names(group, "weight_names")
            if weight_names is None:
                raise WeightsError(f"{where}: group has no 'weight_names' attribute.")
            values = {}
            for wname in weight_names:
                key = _weight_key(wname)
                if key in values:
                    raise WeightsError(f"{where}: two weights named {key!r} ({weight_names}).")
                try:
                    values[key] = np.asarray(group[wname])
                except (KeyError, OSError) as e:
                    raise WeightsError(
                        f"{where}: cannot read weight {wname!r} (truncated or corrupt file?): {e}"
                    ) from e
            if values:
                layers[lname] = values
        return layers


def load_legacy_weights(model, path, name_map=None, ignore=()):
    """Loads a Keras 2 HDF5 weight file into `model`, every layer by explicit name; all or nothing.

    `name_map` maps each weighted layer of `model` to its name in the file (default: keras-vggface's
    naming). `ignore` lists file layers that may be left unused (e.g. "classifier" for a no-top model).
    A weight holding NaN or inf is refused too: it would silently poison every feature computed.
    Returns {"path", "sha256", "layers"}.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weight file not found: {path}")
    weighted = [layer for layer in model.layers if layer.weights]
    if name_map is None:
        name_map = {layer.name: legacy_layer_name(layer.name) for layer in weighted}
    file_layers = _read_file_layers(path)

    problems, assignments = [], []
    for layer in weighted:
        legacy = name_map.get(layer.name)
        where = f"layer {layer.name!r}" + (f" (file: {legacy!r})" if legacy != layer.name else "")
        if legacy is None:
            problems.append(f"{where}: no file name given in name_map")
            continue
        if legacy not in file_layers:
            problems.append(f"{where}: missing from the file")
            continue
        stored = file_layers[legacy]
        variables = {v.name: v for v in layer.weights}
        if set(stored) != set(variables):
            problems.append(f"{where}: file has weights {sorted(stored)}, model has {sorted(variables)}")
            continue
        for key, variable in variables.items():
            value = stored[key]
            if tuple(value.shape) != tuple(variable.shape):
                problems.append(
                    f"{where}: {key} has shape {tuple(value.shape)} in the file, "
                    f"{tuple(variable.shape)} in the model"
                )
            elif value.dtype.kind in "fc" and not np.isfinite(value).all():
                bad = int(value.size - np.isfinite(value).sum())
                problems.append(
                    f"{where} weight {key!r} holds NaN/inf ({bad} of {value.size} values): "
                    "a damaged or badly converted file"
                )
            else:
                assignments.append((variable, value))
    unused = sorted(set(file_layers) - set(name_map.values()) - set(ignore))
    if unused:
        problems.append(f"the file has weighted layers the model lacks: {unused}")
    if problems:
        shown = "\n  - ".join(problems[:20]) + ("\n  - ..." if len(problems) > 20 else "")
        raise WeightsError(f"Cannot load {path} into model {model.name!r}:\n  - {shown}")
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))
    return {"path": os.path.abspath(path), "sha256": sha256(path), "layers": len(weighted)}


def resolve_weights(weights, include_top=False):
    """The file that `weights` ("vggface2" or a path) means; fetches the VGGFace2 file if needed."""
    if weights == "vggface2":
        return fetch_vggface2_weights(include_top)
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f'`weights` must be None, "vggface2" or a file path. Received: weights={weights!r}')
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'`weights` must be None, "vggface2" or the path of a Keras 2 .h5 weight file; '
            f"no file at {path!r}. Received: weights={weights!r}"
        )
    return path


def load_vggface_weights(model, weights="vggface2"):
    """Loads "vggface2" (fetched if needed) or a legacy .h5 path into a VGGFaceResNet50.

    Sets and returns `model.weights_source` = {"path", "sha256", "layers"}.
    """
    path = resolve_weights(weights, model.include_top)
    source = load_legacy_weights(
        model, path, name_map=model.legacy_name_map(), ignore=() if model.include_top else ("classifier",)
    )
    model.weights_source = source
    return source
