"""What a run ran on: library versions, the machine (CPU, instruction sets, GPUs) and the package's commit.

TensorFlow on CPU picks oneDNN kernels by instruction set, so the same run can give other figures
on another CPU; config.json records enough to trace a figure to its code and hardware.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

# instruction sets that change which kernels oneDNN and Eigen run
CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_tile",
    "amx_int8",
    "neon",
    "asimd",
    "sve",
)


def library_versions() -> dict:
    """Versions of mer_keras and every library whose change can change results."""
    import cv2
    import sklearn

    import mer_keras

    return {
        "mer_keras": mer_keras.__version__,
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _cpuinfo() -> tuple[str, list]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine()):
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return model, [f for f in CPU_FLAGS if f in flags]


def package_commit() -> dict:
    """The git commit of the mer_keras source in use, and whether it had uncommitted changes."""
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "note": f"{source} is not a git checkout (installed package?)"}
    return {"commit": commit, "dirty": bool(status.strip())}


def machine() -> dict:
    """CPU model, instruction-set flags, cores, oneDNN on/off, GPUs and the platform."""
    model, flags = _cpuinfo()
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    return {
        "cpu": model,
        "cpu_flags": flags,
        "cpus": os.cpu_count(),
        "onednn": "off" if onednn == "0" else "on (default)" if onednn is None else f"on ({onednn})",
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "gpu_models": [
            tf.config.experimental.get_device_details(d).get("device_name", "?")
            for d in tf.config.list_physical_devices("GPU")
        ],
        "platform": platform.platform(),
    }
