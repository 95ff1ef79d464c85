"""Frozen features kept on disk between runs: a .npy per key, read row by row on demand.

The key hashes everything the features depend on: every frame file (path, size, mtime_ns,
interpolation weight), the image size, the encoder's output layer and shape, the weights (file
sha256, or a hash of the weights themselves when random), the variants and the library versions.
Any change gives a new key, so a stale file is never read. A file is written under a temporary
name and renamed last, so a partly written one is never read either; the temporary file of a
writer that died (its pid is in the name) is removed the next time the folder is used. Rows are
written and read with ``os.pwrite``/``os.preadv`` (``DiskFeatures``), not through a memory map, so
the features never count against the process's memory: only the rows of the batch in hand do.
Every file is scanned for NaN/inf once when it is opened (see ``_non_finite_rows``). The raw uint8
frames of ``--augment online`` (``raw_frames``) are kept the same way (``description["dtype"]``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import socket
from pathlib import Path

import numpy as np

from mer_keras.machine import library_versions
from mer_keras.paths import user_cache_base

FORMAT = 1  # bump when the layout or the meaning of the stored array changes
MEMORY_SHARE = 0.25  # features larger than this share of the machine's memory go to disk by default
SCAN_BYTES = 64 << 20  # the finiteness scan reads this much at a time: memory stays bounded
# .features-<key>.npy.tmp-<pid>[-<host>]: the writer's pid (and host, as a shared folder may be
# used by several machines, whose pids mean nothing here)
_TEMPORARY = re.compile(r"\.features-[0-9a-f]+\.npy\.tmp-(\d+)(?:-(.+))?")

log = logging.getLogger("mer_keras")


class CacheDirError(ValueError):
    """The feature cache folder cannot be used: a file, not creatable or not writable; names the option."""


def physical_memory():
    """Bytes of memory of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def choose_storage(cache_dir, nbytes: int, what: str = "frozen features"):
    """Where ``what`` of ``nbytes`` go: ``cache_dir`` if given, else memory (None) unless they would
    take more than ``MEMORY_SHARE`` of the machine's memory; then ``<user cache>/features`` (said once)."""
    if cache_dir is not None:
        return Path(cache_dir)
    memory = physical_memory()
    if memory and nbytes > MEMORY_SHARE * memory:
        folder = user_cache_base() / "features"
        log.warning(
            "%s of %.1f GB would take over a quarter of this machine's memory: kept on disk in %s "
            "(--cache-dir chooses the folder)",
            what,
            nbytes / 1e9,
            folder,
        )
        return folder
    return None


def file_stamp(path, purpose="the feature cache") -> str:
    """``absolute path|size|mtime_ns`` of a frame file: what a cache key records of it."""
    try:
        stat = os.stat(path)
    except OSError as error:
        raise FileNotFoundError(f"{path}: frame file unreadable for {purpose}: {error}") from error
    return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"


def frames_digest(table) -> str:
    """sha256 over every frame's files (``file_stamp``), interpolation weight and face transform."""
    digest, seen = hashlib.sha256(), {}
    for row, (path_a, path_b, t) in enumerate(table.frames):
        for path in (path_a, path_b) if t else (path_a,):
            if path not in seen:
                seen[path] = file_stamp(path)
            digest.update(seen[path].encode() + b"\n")
        digest.update(f"t={float(t)!r}\n".encode())
        face = table.face(row)
        if face is not None:
            digest.update(f"face={face.key()}\n".encode())
    return digest.hexdigest()


def _output_layer(encoder) -> str:
    """Name of the layer producing the encoder's output, looking inside nested models."""
    op = encoder
    while hasattr(op, "outputs") and op.outputs:
        op = op.outputs[0]._keras_history.operation
        if op is encoder:
            break
    return op.name


def weights_identity(encoder, weights=None) -> dict:
    """The weights file's sha256 if the record has one, else a hash of the encoder's weights."""
    weights = dict(weights or {})
    if weights.get("sha256"):
        return {"sha256": weights["sha256"]}
    digest = hashlib.sha256()
    for array in encoder.get_weights():
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return {"random": True, "seed": weights.get("seed"), "weights_hash": digest.hexdigest()}


def cache_key(encoder, table, size, variants, weights=None) -> tuple:
    """``(key, description)``: the hex key and the JSON-able facts it was computed from."""
    description = {
        "format": FORMAT,
        "frames": len(table),
        "frames_sha256": frames_digest(table),
        "image_size": int(size),
        "output_layer": _output_layer(encoder),
        "output_shape": [d for d in encoder.outputs[0].shape[1:]],
        "weights": weights_identity(encoder, weights),
        "variants": list(variants),
        "versions": library_versions(),
    }
    key = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:32]
    return key, description


def _folder_error(cache_dir, problem: str) -> CacheDirError:
    """The error for an unusable cache folder, naming ``--cache-dir``, or the default folder if it is that."""
    folder = Path(cache_dir)
    if folder == user_cache_base() / "features":
        return CacheDirError(
            f"feature cache folder {folder} ($MER_KERAS_CACHE or the user cache dir; "
            f"--cache-dir chooses another): {problem}."
        )
    return CacheDirError(f"--cache-dir {folder}: {problem}. Received: --cache-dir {cache_dir}")


def _cache_folder(cache_dir) -> Path:
    """``cache_dir`` created if needed; a file in its place or an uncreatable folder is a clear error."""
    folder = Path(cache_dir)
    if folder.exists() and not folder.is_dir():
        raise _folder_error(cache_dir, "is a file, not a folder; pass a folder for the feature cache")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _folder_error(cache_dir, f"cannot create the folder ({error.strerror or error})") from None
    return folder


def _writer_alive(pid: int) -> bool:
    """True if process ``pid`` runs on this machine (or may: one we may not signal is alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder) -> list:
    """Delete the temporary files of writers that died (killed mid-computation); returns their paths.

    A file whose pid runs, or was written on another host (its name says which), is left alone;
    each removal is logged with its size.
    """
    removed, host = [], socket.gethostname()
    for path in sorted(Path(folder).glob(".features-*.npy.tmp-*")):
        match = _TEMPORARY.fullmatch(path.name)
        if match is None or (match.group(2) is not None and match.group(2) != host):
            continue
        if _writer_alive(int(match.group(1))):
            continue
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue  # another process removed it first
        except OSError as error:
            log.warning(
                "cannot remove the stale temporary feature file %s (%s)", path, error.strerror or error
            )
            continue
        log.warning(
            "removed the stale temporary feature file %s (%.1f MB; its writer, pid %s, is not running)",
            path,
            size / 1e6,
            match.group(1),
        )
        removed.append(path)
    return removed


def cached_features(cache_dir, key, description, compute) -> np.ndarray:
    """The array stored under ``key`` (read-only memmap), computed by ``compute(allocate)`` if absent.

    ``compute`` fills the array returned by ``allocate(shape)``, here a memmap of a temporary file
    that is renamed to its final name only once complete. Temporary files of dead writers in the
    folder are removed first. A read-only folder is fine while the file is there.
    """
    folder = _cache_folder(cache_dir)
    remove_stale_temporaries(folder)
    final = folder / f"features-{key}.npy"
    if final.exists():
        return _read(final, description)
    temporary = folder / f".features-{key}.npy.tmp-{os.getpid()}-{socket.gethostname()}"
    try:  # created now, before any computing, so an unwritable folder fails at once
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
    except OSError as error:
        if not isinstance(error, PermissionError) and error.errno != errno.EROFS:
            raise
        raise _folder_error(
            cache_dir,
            f"the folder is not writable ({error.strerror or error}) and these "
            "features are not cached there yet; pass a writable folder",
        ) from None
    files, dtype = [], stored_dtype(description)

    def allocate(shape):
        files.append(_RowWriter(temporary, shape, dtype))
        return files[-1]

    try:
        compute(allocate)
        files[-1].close(sync=True)
        shape = files[-1].shape
        bad, first = _non_finite_rows(temporary, files[-1].offset, shape, dtype)
        if bad:
            raise ValueError(
                f"{final}: the computed features hold NaN/inf in {bad} of {shape[0] * shape[1]} "
                f"rows ({_row_name(first, shape)}): the encoder produced them (its weights or "
                "precision?); nothing was cached."
            )
        (folder / f"features-{key}.json").write_text(json.dumps(description, indent=1, sort_keys=True))
        os.replace(temporary, final)  # last: the final name exists only for a complete file
    finally:
        for file in files:
            file.close()
        if temporary.exists():
            temporary.unlink()
    return _read(final, description, scan=False)  # scanned just above


def _read(path, description, scan=True) -> np.ndarray:
    """The cache file at ``path`` as a read-only memmap; dtype, shape and (``scan``) values checked."""
    try:
        features = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{path}: unreadable feature cache ({error}); delete the file to recompute it."
        ) from error
    expected = (len(description["variants"]), description["frames"], *description["output_shape"])
    dtype = stored_dtype(description)
    if features.dtype != dtype or tuple(features.shape) != expected:
        raise ValueError(
            f"{path}: feature cache holds {features.dtype} {tuple(features.shape)}, expected "
            f"{dtype} {expected}; delete the file to recompute it."
        )
    bad, first = _non_finite_rows(path, int(features.offset), features.shape, dtype) if scan else (0, None)
    if bad:
        rows = features.shape[0] * features.shape[1]
        raise ValueError(
            f"{path}: feature cache holds NaN/inf in {bad} of {rows} rows "
            f"({_row_name(first, features.shape)}); delete the file to recompute it."
        )
    return features


def _row_name(row: int, shape) -> str:
    return f"first: variant {row // shape[1]}, frame row {row % shape[1]}"


def stored_dtype(description) -> np.dtype:
    """The dtype a cache file holds: float32 features, or what ``description["dtype"]`` says (raw frames)."""
    return np.dtype(description.get("dtype", "float32"))


def _non_finite_rows(path, offset: int, shape, dtype=np.float32) -> tuple:
    """``(rows holding NaN/inf, first such row)`` of a ``(variants, frames, ...)`` float32 body at ``offset``.

    The file is read once, ``SCAN_BYTES`` at a time with ``os.preadv`` (no memory map: memory stays
    bounded). Measured on a 1 GiB file on this machine (2 vCPUs): 0.44-0.51 s from the page cache
    (0.22 s of it ``np.isfinite``), 0.8-1.7 s once evicted; seconds per GB against the minutes the
    features took to compute. Checking each batch's rows as training reads them would cost nothing
    up front, but would find a bad row only mid-training, and only a row some batch happens to use.
    """
    variants, frames = int(shape[0]), int(shape[1])
    row_values = int(np.prod(shape[2:], dtype=np.int64))
    total = variants * frames
    if not total * row_values or not np.issubdtype(dtype, np.floating):  # integers are always finite
        return 0, None
    rows_per_read = max(1, SCAN_BYTES // (4 * row_values))
    buffer = np.empty((min(rows_per_read, total), row_values), np.float32)
    bad, first = 0, None
    fd = os.open(path, os.O_RDONLY)
    try:
        for start in range(0, total, rows_per_read):
            chunk = buffer[: min(rows_per_read, total - start)]
            got = os.preadv(fd, [memoryview(chunk).cast("B")], offset + start * 4 * row_values)
            if got != chunk.nbytes:
                raise ValueError(
                    f"{path}: feature cache truncated at row {start + got // (4 * row_values)}; "
                    "delete the file to recompute it."
                )
            finite = np.isfinite(chunk).all(axis=1)
            if not finite.all():
                bad += int(len(chunk) - finite.sum())
                if first is None:
                    first = start + int(np.argmin(finite))
    finally:
        os.close(fd)
    return bad, first


class _RowWriter:
    """``writer[v, start:stop] = rows`` into a new ``.npy`` of ``shape`` and ``dtype``, with plain writes."""

    def __init__(self, path, shape, dtype=np.float32):
        header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)  # sparse body
        self.offset = header.offset
        del header
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape[2:], dtype=np.int64)) * self.dtype.itemsize
        self.fd = os.open(path, os.O_WRONLY)

    def __setitem__(self, index, rows):
        variant, frames = index
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        at = self.offset + (variant * self.shape[1] + frames.start) * self.row_bytes
        written = os.pwrite(self.fd, rows.tobytes(), at)
        if written != rows.nbytes:
            raise OSError(f"short write to the feature cache: {written} of {rows.nbytes} bytes")

    def close(self, sync=False):
        if self.fd is not None:
            if sync:
                os.fsync(self.fd)  # on disk before the rename makes the file visible
            os.close(self.fd)
            self.fd = None


class DiskFeatures:
    """A cached ``(variants, frames, *row_shape)`` array left on disk; ``read`` fetches rows on demand."""

    def __init__(self, array: np.memmap):
        self.path, self.offset = str(array.filename), int(array.offset)
        self.shape, self.dtype = tuple(array.shape), array.dtype
        self.row_shape = self.shape[2:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._fd = os.open(self.path, os.O_RDONLY)

    def __repr__(self):
        return f"DiskFeatures({self.path}, shape={self.shape})"

    def read(self, variants, rows) -> np.ndarray:
        """``(*rows.shape, *row_shape)`` in the file's dtype: row ``rows[i]`` of variant ``variants[i]``."""
        variants, rows = np.asarray(variants, np.int64), np.asarray(rows, np.int64)
        for name, values, bound in (("variant", variants, self.shape[0]), ("row", rows, self.shape[1])):
            if values.size and (values.min() < 0 or values.max() >= bound):
                raise IndexError(
                    f"{self.path}: {name} out of range 0..{bound - 1}. "
                    f"Received: {values.min()}..{values.max()}"
                )
        flat = np.broadcast_to(variants, rows.shape).ravel() * self.shape[1] + rows.ravel()
        distinct, inverse = np.unique(flat, return_inverse=True)
        out = np.empty((len(distinct), *self.row_shape), self.dtype)
        for i, index in enumerate(distinct):
            got = os.preadv(
                self._fd, [memoryview(out[i]).cast("B")], self.offset + int(index) * self.row_bytes
            )
            if got != self.row_bytes:
                raise ValueError(
                    f"{self.path}: feature cache truncated at row {index}; delete it to recompute."
                )
        return out[inverse.ravel()].reshape(*rows.shape, *self.row_shape)

    def close(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except OSError:
            pass
