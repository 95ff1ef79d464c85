"""Equivalence with keras-vggface's own RESNET50 under tf-keras (needs the reference venv; slow)."""

import json
import os
import subprocess
import sys

import h5py
import pytest

from mer_keras.backbone import VGGFaceResNet50

from backbone_fixtures import random_values, write_keras2_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF_PYTHON = os.environ.get("MER_REF_PYTHON", "/tmp/refvenv/bin/python")


def datasets(path):
    """{dataset path: shape} and {group: weight_names} of the weighted layers of an HDF5 file."""
    shapes, names = {}, {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: shapes.update({name: obj.shape}) if isinstance(obj, h5py.Dataset) else None
        )
        for layer in f.attrs["layer_names"]:
            layer = layer.decode() if isinstance(layer, bytes) else layer
            weight_names = [n.decode() if isinstance(n, bytes) else n for n in f[layer].attrs["weight_names"]]
            if weight_names:
                names[layer] = weight_names
    return shapes, names


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists(REF_PYTHON),
    reason=f"no reference interpreter at {REF_PYTHON} (tf-keras + keras-vggface: tools/check_keras_vggface.py)",
)
def test_outputs_equal_keras_vggface_and_fixture_layout_is_real(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.check_keras_vggface",
            "--ref-python",
            REF_PYTHON,
            "--workdir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["passed"]
    for key in ("top", "notop_avg", "notop_from_top_file", "top_from_model_file"):
        assert report[key]["max_rel_err"] < 1e-4, (key, report[key])
    assert report["preprocess_max_abs_err"] < 1e-4

    # The file tf-keras wrote and the one tests/backbone_fixtures.py fabricates have the same weight layout.
    model = VGGFaceResNet50()
    fabricated = tmp_path / "fabricated.h5"
    write_keras2_weights(fabricated, model, random_values(model))
    assert datasets(fabricated) == datasets(tmp_path / "notop_weights.h5")
