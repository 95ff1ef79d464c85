"""Shared fixtures: tiny dataset trees in the real layouts, written on the fly."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np
import pytest

# Modules of end-to-end runs, longest first: pytest-xdist gives each worker whole files in collection
# order, so starting with these lets the workers finish together instead of one running them alone.
LONG_MODULES = (
    "test_experiments.py",
    "test_paper_runs.py",
    "test_retraining_and_export.py",
    "test_resume.py",
    "test_ray_executor.py",
    "test_trust.py",
    "test_only_folds.py",
    "test_sweep.py",
    "test_gradcam_run.py",
    "test_predict_command.py",
    "test_flow_experiments.py",
    "test_benchmarks_smoke.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file kept


def write_frames(folder, numbers, size=(8, 10), value=None, prefix="image", ext=".bmp"):
    """Write tiny frames named ``<prefix><number><ext>``; pixel (0, 0) encodes the number."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in numbers:
        image = np.full((*size, 3), 40 if value is None else value, np.uint8)
        image[0, 0] = (number % 251, (number // 251) % 251, 7)
        path = folder / f"{prefix}{number}{ext}"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


# subject -> [(label, clip_id, first frame number, length)]
SMIC_SPEC = {
    "s1": [
        ("negative", "s1_ne_01", 995, 12),
        ("positive", "s1_po_01", 559700, 15),
        ("non_micro", "s1_nm_01", 4000, 14),
    ],
    "s2": [("negative", "s2_ne_01", 99990, 20), ("surprise", "s2_sur_01", 1200, 9)],
    "s11": [
        ("positive", "s11_po_01", 7, 13),
        ("surprise", "s11_sur_01", 300, 16),
        ("non_micro", "s11_nm_01", 98, 11),
    ],
}


def build_smic(root, spec=SMIC_SPEC, modality="HS", release="SMIC_all_raw"):
    """A SMIC tree in the release layout, with junk files where real copies have them."""
    base = root / release / modality
    for subject, clips in spec.items():
        for label, clip_id, first, length in clips:
            parent = base / subject / ("non_micro" if label == "non_micro" else f"micro/{label}")
            write_frames(parent / clip_id, range(first, first + length))
            (parent / clip_id / "Thumbs.db").write_bytes(b"junk")
            (parent / ".DS_Store").write_bytes(b"junk")
    return root


@pytest.fixture
def smic_root(tmp_path):
    return build_smic(tmp_path / "data")


@pytest.fixture(scope="module")
def tiny_smic(tmp_path_factory):
    """A small synthetic SMIC (6 subjects, 32 px frames) for tiny end-to-end runs; one per test module."""
    from mer_keras.datasets.synthetic import make_synthetic_smic

    return make_synthetic_smic(
        tmp_path_factory.mktemp("synthetic"), subjects=6, seed=1, size=32, clips_scale=0.4, progress=False
    )
