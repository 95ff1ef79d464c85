"""Files a run writes, written atomically: bytes, text, JSON and figures.

The bytes go to a hidden temporary file in the target's folder, then ``os.replace`` puts it in
place, so a crash or a serialisation error never leaves a half-written or emptied file behind
(an existing file stays as it was).
"""

from __future__ import annotations

import io
import json
import math
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def write_bytes(path, data: bytes) -> Path:
    """Atomically replace ``path`` (parent folders created) with ``data``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 & ~umask, like open()
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path, text: str) -> Path:
    """Atomically write ``text`` as UTF-8."""
    return write_bytes(path, text.encode("utf-8"))


def _jsonable(obj, where="obj"):
    """Plain JSON types from numpy scalars/arrays, paths and tuples; NaN/inf become null."""
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    elif isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return {
            str(k.item() if isinstance(k, np.generic) else k): _jsonable(v, f"{where}[{k!r}]")
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"Cannot write {where} to JSON. Received: {type(obj).__name__} {obj!r}")


def write_json(path, obj) -> Path:
    """Atomically write ``obj`` as indented JSON, keys in insertion order (see ``_jsonable``)."""
    return write_text(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def read_json(path):
    """Load a JSON file; a malformed one raises ValueError naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None


def save_figure(path, fig) -> Path:
    """Atomically write a matplotlib figure as PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return write_bytes(path, buffer.getvalue())
