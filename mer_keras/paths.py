"""Where mer_keras keeps things on this machine: its own cache folder and Keras's home."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def user_cache_base() -> Path:
    """mer_keras's own cache folder: ``$MER_KERAS_CACHE`` or the user cache dir."""
    return Path(os.environ.get("MER_KERAS_CACHE") or platformdirs.user_cache_dir("mer_keras"))


def keras_home() -> str:
    """``$KERAS_HOME`` if set (read now; Keras reads it once, at import), else ``~/.keras`` as Keras does."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
