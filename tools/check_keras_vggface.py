"""Checks our port against keras-vggface's own RESNET50, run under tf-keras (Keras 2), on the same weights.

keras-vggface cannot import on Keras 3, so its half runs in a separate virtualenv:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install tensorflow==2.21.0 tf-keras==2.21.0 h5py
    /tmp/refvenv/bin/pip install --no-deps keras-vggface==0.6 keras-applications==1.0.8

then, from the repository root with the project's environment:

    .venv/bin/python -m tools.check_keras_vggface [--ref-python /tmp/refvenv/bin/python] [--workdir DIR]

The reference half (`--reference`, in the other interpreter) points keras-vggface's `keras.*` imports
at tf_keras, builds `RESNET50(weights=None)` with and without top, gives every variable distinct
random values (BN moving statistics included), saves them with tf-keras `save_weights(..., "x.h5")`
and `save("x.h5")` (real Keras 2 files), and records its outputs on random images preprocessed by its
own `preprocess_input(version=2)`. This half loads those files with mer_keras's loader and compares.
Relative error = max |ours - theirs| / max |theirs|. The last line printed is one JSON object;
the exit code is 0 when every check passes (relative error < 1e-4).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

DEFAULT_REF_PYTHON = os.environ.get("MER_REF_PYTHON", "/tmp/refvenv/bin/python")
TOLERANCE = 1e-4
BATCH = 2


def _alias_keras_to_tf_keras():
    """Makes keras-vggface 0.6's Keras 2 imports (`keras.engine.topology`, ...) resolve to tf_keras."""
    import types

    import tf_keras
    from tf_keras.src.utils import layer_utils

    utils = types.ModuleType("keras.utils")  # tf_keras.utils without layer_utils, which Keras 2 had
    utils.__dict__.update({k: v for k, v in vars(tf_keras.utils).items() if not k.startswith("__")})
    utils.layer_utils = layer_utils
    aliases = {
        "keras": tf_keras,
        "keras.layers": tf_keras.layers,
        "keras.models": tf_keras.models,
        "keras.backend": tf_keras.backend,
        "keras.utils": utils,
        "keras.utils.layer_utils": layer_utils,
        "keras.utils.data_utils": types.SimpleNamespace(get_file=tf_keras.utils.get_file),
        "keras.engine": types.SimpleNamespace(),
        "keras.engine.topology": types.SimpleNamespace(get_source_inputs=tf_keras.utils.get_source_inputs),
    }
    sys.modules.update(aliases)


def _randomize(model, rng):
    """Distinct random values in every variable, scaled so activations stay in a sane range."""
    import numpy as np

    for layer in model.layers:
        values = []
        for w in layer.weights:
            shape, kind = tuple(w.shape), w.name.rsplit("/", 1)[-1].split(":")[0]
            if kind == "kernel":
                fan_in = int(np.prod(shape[:-1]))
                values.append(rng.normal(0.0, np.sqrt(1.0 / fan_in), shape))
            elif kind == "gamma":
                values.append(rng.uniform(0.5, 1.0, shape))
            elif kind in ("beta", "bias"):
                values.append(rng.normal(0.0, 0.1, shape))
            elif kind == "moving_mean":
                values.append(rng.normal(0.0, 0.1, shape))
            elif kind == "moving_variance":
                values.append(rng.uniform(0.5, 2.0, shape))
            else:
                raise ValueError(f"unexpected weight {w.name} in layer {layer.name}")
        if values:
            layer.set_weights([v.astype("float32") for v in values])


def reference(workdir):
    """Runs under tf-keras: writes weights, inputs and keras-vggface's outputs into `workdir`."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    _alias_keras_to_tf_keras()
    import h5py
    import numpy as np
    import tensorflow as tf
    import tf_keras
    from keras_vggface import __version__ as vggface_version
    from keras_vggface.models import RESNET50
    from keras_vggface.utils import preprocess_input

    rng = np.random.default_rng(0)
    top = RESNET50(include_top=True, weights=None)
    _randomize(top, rng)
    images = rng.integers(0, 256, (BATCH, 224, 224, 3)).astype("float32")
    x = preprocess_input(images, version=2)
    # Scale the classifier so its logits have std ~2: softmax neither flat nor one-hot.
    features = tf_keras.Model(top.input, top.get_layer("classifier").input).predict(x, verbose=0)
    dense = top.get_layer("classifier")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 2.0 / float(np.std(features @ kernel)), bias])

    notop = RESNET50(include_top=False, pooling="avg", weights=None)
    for layer in notop.layers:
        if layer.weights:
            layer.set_weights(top.get_layer(layer.name).get_weights())

    paths = {
        name: os.path.join(workdir, f"{name}.h5") for name in ("top_weights", "notop_weights", "top_model")
    }
    top.save_weights(paths["top_weights"])
    notop.save_weights(paths["notop_weights"])
    top.save(paths["top_model"])
    with h5py.File(paths["notop_weights"], "r") as f:
        names = f["conv1/7x7_s2/bn"].attrs["weight_names"]
        layout = {  # what tf-keras really writes, to compare with tests/backbone_fixtures.py
            "root_attrs": sorted(f.attrs),
            "attr_dtype": str(names.dtype),
            "bn_weight_names": [n.decode() if isinstance(n, bytes) else n for n in names],
            "bn_kernel_dataset": "conv1/7x7_s2/bn/conv1/7x7_s2/bn/moving_variance:0" in f,
            "first_layer_names": [
                n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"][:4]
            ],
        }
    np.savez(
        os.path.join(workdir, "reference.npz"),
        images=images,
        preprocessed=x,
        top=top.predict(x, verbose=0),
        notop_avg=notop.predict(x, verbose=0),
        features=features,
    )
    info = {
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
        "keras_vggface": vggface_version,
        "paths": paths,
        "layout": layout,
    }
    with open(os.path.join(workdir, "reference.json"), "w") as f:
        json.dump(info, f)


def _errors(ours, theirs):
    import numpy as np

    ours, theirs = np.asarray(ours, "float64"), np.asarray(theirs, "float64")
    if ours.shape != theirs.shape:
        raise ValueError(f"shape mismatch: ours {ours.shape}, keras-vggface {theirs.shape}")
    abs_err = float(np.max(np.abs(ours - theirs)))
    scale = float(np.max(np.abs(theirs)))
    return {"max_abs_err": abs_err, "max_rel_err": abs_err / scale, "max_abs_reference": scale}


def compare(workdir):
    """Loads the reference files with mer_keras and compares; returns the report dict."""
    import keras
    import numpy as np

    from mer_keras.backbone import preprocess_input, vggface_resnet50

    with open(os.path.join(workdir, "reference.json")) as f:
        info = json.load(f)
    ref = np.load(os.path.join(workdir, "reference.npz"))
    paths = info["paths"]
    x = preprocess_input(ref["images"])
    report = {"preprocess_max_abs_err": float(np.max(np.abs(x - ref["preprocessed"])))}

    top = vggface_resnet50(weights=paths["top_weights"], include_top=True)
    report["top"] = _errors(top.predict(x, verbose=0), ref["top"])
    features = keras.Model(top.input, top.get_layer("flatten").output).predict(x, verbose=0)
    report["top_features"] = _errors(features, ref["features"])
    notop = vggface_resnet50(weights=paths["notop_weights"], include_top=False, pooling="avg")
    report["notop_avg"] = _errors(notop.predict(x, verbose=0), ref["notop_avg"])
    # The top file loaded into a no-top model (classifier ignored), and a whole-model .h5 file.
    notop_from_top = vggface_resnet50(weights=paths["top_weights"], include_top=False, pooling="avg")
    report["notop_from_top_file"] = _errors(notop_from_top.predict(x, verbose=0), ref["notop_avg"])
    full = vggface_resnet50(weights=paths["top_model"], include_top=True)
    report["top_from_model_file"] = _errors(full.predict(x, verbose=0), ref["top"])

    checked = ("top", "top_features", "notop_avg", "notop_from_top_file", "top_from_model_file")
    report["passed"] = bool(
        all(report[k]["max_rel_err"] < TOLERANCE for k in checked) and report["preprocess_max_abs_err"] < 1e-4
    )
    report["tolerance"] = TOLERANCE
    report["reference"] = {k: info[k] for k in ("tensorflow", "tf_keras", "keras_vggface")}
    report["keras"] = keras.__version__
    report["legacy_layout"] = info["layout"]
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--ref-python",
        default=DEFAULT_REF_PYTHON,
        help="Python with tf-keras and keras-vggface (default: $MER_REF_PYTHON or /tmp/refvenv)",
    )
    parser.add_argument("--workdir", help="where to keep the files (default: a temporary folder)")
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference:
        reference(args.workdir)
        return 0
    if not os.path.exists(args.ref_python):
        raise SystemExit(
            f"No reference interpreter at {args.ref_python}; the docstring of this script says how "
            "to make one."
        )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        # Run as a file path, not -m: the reference interpreter need not have mer_keras.
        subprocess.run(
            [args.ref_python, os.path.abspath(__file__), "--reference", "--workdir", workdir],
            check=True,
            env=env,
            cwd=workdir,
        )
        report = compare(workdir)
    print(json.dumps(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
