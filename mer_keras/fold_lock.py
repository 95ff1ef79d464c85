"""A lock file per fold (``fold_K/train.lock``): invocations sharing a run folder never train a fold at once.

The lock is made with ``O_CREAT | O_EXCL`` (atomic on local file systems and NFS v3 or later) and
holds the host, pid and start time of its owner. A lock of a process that no longer runs on this
host is stale and removed; a lock from another host cannot be checked and counts as held.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger("mer_keras")
LOCK = "train.lock"


def owner(lock: Path) -> dict | None:
    """The lock's ``{"host", "pid", "started"}``; None when it is gone; ``{}`` when it cannot be read."""
    try:
        return json.loads(lock.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def alive(holder: dict) -> bool:
    """Whether the lock's owner may still run: a live pid on this host, or any process on another host."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user has that pid
        return True
    except (KeyError, TypeError, ValueError):
        return True  # unreadable: treated as held (a lock half written by a process just starting)
    return True


def acquire(folder: Path, label: str) -> Path | None:
    """The lock of ``folder`` made for this process, or None (with a log line) when another holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK
    for _ in range(2):  # a second try after removing a stale lock
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            holder = owner(lock)
            if holder is None:
                continue  # released meanwhile
            if alive(holder):
                who = (
                    f"pid {holder['pid']} on host {holder['host']}"
                    if {"pid", "host"} <= set(holder)
                    else "another process (lock unreadable)"
                )
                log.warning(
                    "%s is being trained by %s (%s/%s); skipped (delete the lock if that process is gone)",
                    label,
                    who,
                    folder.name,
                    LOCK,
                )
                return None
            log.warning(
                "%s: stale lock of pid %s on this host (%s/%s, since %s) removed; training it",
                label,
                holder.get("pid"),
                folder.name,
                LOCK,
                holder.get("started"),
            )
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        with os.fdopen(fd, "w") as file:
            json.dump(
                {
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
                file,
            )
        return lock
    log.warning("%s: could not take %s/%s; skipped", label, folder.name, LOCK)
    return None


def release(lock: Path) -> None:
    """Remove this process's lock (if it is still ours)."""
    holder = owner(lock)
    if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        lock.unlink(missing_ok=True)
