"""The on-disk frozen-feature cache: same features, reused without the encoder, invalidated by changes."""

import os

import cv2
import keras
import numpy as np
import pytest

from mer_keras.cli import parse_config
from mer_keras.datasets import Clip
from mer_keras.datasets.short_clips import apply_policy
from mer_keras.pipeline.frame_cache import compute_features
from mer_keras.pipeline.windows import build_frame_table

from conftest import write_frames

VARIANTS = ("identity", "flip")
RECORD = {"source": "file", "path": "/w/rcmalli_vggface_tf_notop_resnet50.h5", "sha256": "ab" * 32}


@pytest.fixture
def encoder():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(5, 3, name="conv")(inputs / 255.0)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(x))
    model.calls = 0
    predict = model.predict_on_batch

    def counted(batch):
        model.calls += 1
        return predict(batch)

    model.predict_on_batch = counted
    return model


@pytest.fixture
def table(tmp_path):
    clips = []
    for name, numbers in (("a", range(100, 103)), ("bb", range(7, 12))):
        paths = write_frames(tmp_path / "frames" / name, numbers, size=(8, 8))
        for i, path in enumerate(paths):
            image = np.random.default_rng(i + 10 * len(name)).integers(0, 255, (8, 8, 3), dtype=np.uint8)
            cv2.imwrite(str(path), image)
        clips.append(Clip("smic", "s1", name, "negative", tuple(str(p) for p in paths), 100.0))
    return build_frame_table(apply_policy(clips, 4)[0])  # clip "a" interpolated: t > 0 frames too


def _cached(encoder, table, cache, weights=RECORD):
    return compute_features(
        encoder, table, 8, VARIANTS, batch_size=4, progress=False, cache_dir=cache, weights=weights
    )


def _npy(cache):
    return sorted(p.name for p in cache.glob("features-*.npy"))


def test_same_features_with_and_without_the_cache_and_second_call_reads_disk(tmp_path, encoder, table):
    plain = compute_features(encoder, table, 8, VARIANTS, batch_size=4, progress=False)
    calls_plain = encoder.calls
    cache = tmp_path / "cache"
    first = _cached(encoder, table, cache)
    assert encoder.calls == 2 * calls_plain  # computed once more, now into the cache
    np.testing.assert_array_equal(first, plain)
    second = _cached(encoder, table, cache)
    assert encoder.calls == 2 * calls_plain  # the encoder was not called again
    assert isinstance(second, np.memmap) and not second.flags.writeable
    np.testing.assert_array_equal(second, plain)
    assert len(_npy(cache)) == 1 and not list(cache.glob(".*tmp*"))


def test_a_rewritten_frame_file_invalidates_the_cache(tmp_path, encoder, table):
    cache = tmp_path / "cache"
    before = np.array(_cached(encoder, table, cache))
    path = table.frames[-1][0]
    stat = os.stat(path)
    cv2.imwrite(path, np.full((8, 8, 3), 200, np.uint8))  # other pixels, same file size
    os.utime(
        path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9)
    )  # as a later write would, whatever the clock
    assert os.stat(path).st_size == stat.st_size
    calls = encoder.calls
    after = _cached(encoder, table, cache)
    assert encoder.calls > calls and len(_npy(cache)) == 2
    np.testing.assert_array_equal(after, compute_features(encoder, table, 8, VARIANTS, progress=False))
    assert not np.allclose(after[:, -1], before[:, -1])
    np.testing.assert_array_equal(after[:, :-1], before[:, :-1])


def test_other_weights_invalidate_the_cache(tmp_path, encoder, table):
    cache = tmp_path / "cache"
    _cached(encoder, table, cache)
    calls = encoder.calls
    _cached(encoder, table, cache, weights={**RECORD, "sha256": "cd" * 32})  # another weights file
    assert encoder.calls > calls and len(_npy(cache)) == 2
    _cached(encoder, table, cache, weights={**RECORD, "path": "/elsewhere/same.h5"})  # same file, moved
    assert len(_npy(cache)) == 2
    random = {"source": "random", "reason": "--weights none"}
    _cached(encoder, table, cache, weights=random)
    assert len(_npy(cache)) == 3
    encoder.get_layer("conv").kernel.assign(encoder.get_layer("conv").kernel * 2.0)  # other random weights
    calls = encoder.calls
    changed = _cached(encoder, table, cache, weights=random)
    assert encoder.calls > calls and len(_npy(cache)) == 4
    np.testing.assert_array_equal(changed, compute_features(encoder, table, 8, VARIANTS, progress=False))


def test_an_interrupted_computation_leaves_nothing_that_is_read_later(tmp_path, encoder, table):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / ".features-0123.npy.tmp-1").write_bytes(b"partial")  # left by another, killed process
    predict = encoder.predict_on_batch

    def dies_on_second_batch(batch):
        if encoder.calls == 1:
            raise KeyboardInterrupt
        return predict(batch)

    encoder.predict_on_batch = dies_on_second_batch
    with pytest.raises(KeyboardInterrupt):
        _cached(encoder, table, cache)
    assert _npy(cache) == [] and [p.name for p in cache.glob(".*tmp*")] == [".features-0123.npy.tmp-1"]
    encoder.predict_on_batch = predict
    calls = encoder.calls
    np.testing.assert_array_equal(
        _cached(encoder, table, cache), compute_features(encoder, table, 8, VARIANTS, progress=False)
    )
    assert encoder.calls > calls


def test_a_damaged_cache_file_is_an_error_naming_it(tmp_path, encoder, table):
    cache = tmp_path / "cache"
    _cached(encoder, table, cache)
    (name,) = _npy(cache)
    np.save(cache / name, np.zeros((1, 2, 3), np.float32))
    with pytest.raises(ValueError, match=rf"{name}: feature cache holds .*delete the file"):
        _cached(encoder, table, cache)


def test_the_command_line_has_a_cache_dir_option():
    assert parse_config("exp2", [])[0].cache_dir is None
    assert parse_config("exp2", ["--cache-dir", "/tmp/c"])[0].cache_dir == "/tmp/c"


def test_disk_features_read_the_rows_that_memory_holds(tmp_path, encoder, table):
    from mer_keras.pipeline.feature_store import DiskFeatures

    in_memory = compute_features(encoder, table, 8, VARIANTS, progress=False)
    disk = DiskFeatures(_cached(encoder, table, tmp_path / "cache"))
    assert disk.shape == in_memory.shape
    variants, rows = np.array([[1, 0, 1], [0, 0, 1]]), np.array([[3, 3, 0], [len(table) - 1, 2, 3]])
    np.testing.assert_array_equal(disk.read(variants, rows), in_memory[variants, rows])


@pytest.mark.parametrize("deduplicated", [False, True])
def test_datasets_read_from_disk_give_the_same_batches(tmp_path, encoder, table, deduplicated):
    from mer_keras.pipeline.feature_store import DiskFeatures
    from mer_keras.pipeline.tfdata import make_dataset, make_deduplicated_dataset
    from mer_keras.pipeline.windows import WindowSet, sliding_windows

    in_memory = compute_features(encoder, table, 8, VARIANTS, progress=False)
    disk = DiskFeatures(_cached(encoder, table, tmp_path / "cache"))
    rows = sliding_windows(np.arange(len(table)), 3)
    windows = WindowSet(
        rows.astype(np.int32),
        np.arange(len(rows)) // 3,
        np.arange(len(rows)) % 2,
        tuple(range(len(rows) // 3 + 1)),
    )
    make = make_deduplicated_dataset if deduplicated else make_dataset
    for training in (True, False):
        batches = []
        for features in (in_memory, disk):
            batches.append(
                list(make(features, windows, 2, 2, training=training, seed=4)[0].as_numpy_iterator())
            )
        assert len(batches[0]) == len(batches[1]) > 1
        for ours, theirs in zip(*batches):
            for a, b in zip(keras.tree.flatten(ours), keras.tree.flatten(theirs)):
                np.testing.assert_array_equal(a, b)


def test_disk_features_refuse_rows_out_of_range_naming_the_file(tmp_path, encoder, table):
    from mer_keras.pipeline.feature_store import DiskFeatures

    disk = DiskFeatures(_cached(encoder, table, tmp_path / "cache"))
    for variants, rows in (([0], [len(table)]), ([2], [0]), ([0], [-1])):
        with pytest.raises(IndexError, match=r"features-.*\.npy: (row|variant) out of range"):
            disk.read(np.array(variants), np.array(rows))
    disk.close()


@pytest.mark.parametrize(
    "cache_dir, nbytes, memory, expected",
    [
        ("given", 10**12, 16 * 2**30, "given"),  # an explicit folder always wins
        (None, 3 * 2**30, 16 * 2**30, None),  # 3 GB of 16: in memory
        (None, 5 * 2**30, 16 * 2**30, "auto"),  # over a quarter: on disk, in mer_keras's cache folder
        (None, 5 * 2**30, None, None),  # memory unknown: kept in memory as asked by default
    ],
)
def test_features_too_large_for_memory_go_to_the_user_cache(
    tmp_path, monkeypatch, cache_dir, nbytes, memory, expected
):
    from mer_keras.pipeline import feature_store as cache_store

    monkeypatch.setenv("MER_KERAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache_store, "physical_memory", lambda: memory)
    given = tmp_path / "given"
    chosen = cache_store.choose_storage(given if cache_dir else None, nbytes)
    assert chosen == {"given": given, "auto": tmp_path / "cache" / "features", None: None}[expected]


def test_a_cache_file_holding_nan_is_an_error_naming_it_and_the_row(tmp_path, encoder, table):
    cache = tmp_path / "cache"
    _cached(encoder, table, cache)
    (name,) = _npy(cache)
    stored = np.load(cache / name, mmap_mode="r+")
    stored[1, 3, 2] = np.nan
    stored[1, 5, 0] = np.inf
    stored.flush()
    del stored
    expected = (
        rf"{name}: feature cache holds NaN/inf in 2 of {2 * len(table)} rows "
        r"\(first: variant 1, frame row 3\); delete the file to recompute it"
    )
    with pytest.raises(ValueError, match=expected):
        _cached(encoder, table, cache)


def test_the_finiteness_scan_reads_in_chunks(tmp_path, monkeypatch):
    from mer_keras.pipeline import feature_store

    path = tmp_path / "f.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(2, 50, 3, 2))
    array[:] = 1.0
    array[1, 49, 2, 1] = np.nan  # the very last value
    array[0, 7, 0, 0] = -np.inf
    array.flush()
    monkeypatch.setattr(feature_store, "SCAN_BYTES", 7 * 6 * 4)  # 7 rows a read: chunks cross the variants
    assert feature_store._non_finite_rows(path, int(array.offset), array.shape) == (2, 7)
    array[:] = 1.0
    array.flush()
    assert feature_store._non_finite_rows(path, int(array.offset), array.shape) == (0, None)


def test_nan_features_from_the_encoder_are_not_cached(tmp_path, encoder, table):
    cache = tmp_path / "cache"
    conv = encoder.get_layer("conv")
    conv.kernel.assign(np.full(conv.kernel.shape, np.nan, np.float32))
    with pytest.raises(
        ValueError,
        match=r"features-.*\.npy: the computed features hold NaN/inf in "
        rf"{2 * len(table)} of {2 * len(table)} rows .*nothing was cached",
    ):
        _cached(encoder, table, cache)
    assert _npy(cache) == [] and not list(cache.glob(".*tmp*"))


def _dead_pid():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_writers_are_removed_and_logged(tmp_path, encoder, table, caplog):
    import socket
    import subprocess
    import sys

    cache = tmp_path / "cache"
    cache.mkdir()
    dead = _dead_pid()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [
            cache / f".features-0a1b.npy.tmp-{dead}",
            cache / f".features-0a1c.npy.tmp-{dead}-{socket.gethostname()}",
        ]
        kept = [
            cache / f".features-0a1d.npy.tmp-{alive.pid}",  # a live writer
            cache / f".features-0a1e.npy.tmp-{dead}-other-host.example",  # other hosts' pids mean nothing
            cache / f".features-0a1f.npy.tmp-{os.getpid()}",
        ]  # this process
        for path in stale + kept:
            path.write_bytes(b"\0" * 1000)
        with caplog.at_level("WARNING", logger="mer_keras"):
            _cached(encoder, table, cache)
        assert sorted(p.name for p in cache.glob(".*tmp*")) == sorted(p.name for p in kept)
        removed = [r.getMessage() for r in caplog.records if "stale temporary" in r.getMessage()]
        assert removed == [
            f"removed the stale temporary feature file {path} (0.0 MB; its writer, "
            f"pid {dead}, is not running)"
            for path in stale
        ]
    finally:
        alive.kill()
        alive.wait()


CACHE_DIR_CASES = [
    # (what is at {tmp}/cache, the --cache-dir given, message)
    (
        "file",
        "cache",
        r"--cache-dir {tmp}/cache: is a file, not a folder; pass a folder for the feature cache\. "
        r"Received: --cache-dir {tmp}/cache$",
    ),
    (
        "file",
        "cache/features",
        r"--cache-dir {tmp}/cache/features: cannot create the folder \(Not a directory\)\. "
        r"Received: --cache-dir {tmp}/cache/features$",
    ),
    (
        "read-only folder",
        "cache",
        r"--cache-dir {tmp}/cache: the folder is not writable \(Permission denied\) and these features are not "
        r"cached there yet; pass a writable folder\. Received: --cache-dir {tmp}/cache$",
    ),
]


def _read_only(folder, monkeypatch):
    """``folder`` made read-only; as root (who may write anyway) creating files in it is refused too."""
    from mer_keras.pipeline import feature_store

    folder.chmod(0o555)
    if os.geteuid() == 0:
        real_open = os.open

        def refuse(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and os.path.dirname(os.fspath(path)) == str(folder):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(feature_store.os, "open", refuse)


@pytest.mark.parametrize(
    "there, given, message", CACHE_DIR_CASES, ids=[f"{c[0]} at {c[1]}" for c in CACHE_DIR_CASES]
)
def test_an_unusable_cache_dir_is_an_error_naming_the_option(
    tmp_path, encoder, table, monkeypatch, there, given, message
):
    from mer_keras.pipeline.feature_store import CacheDirError

    if there == "file":
        (tmp_path / "cache").write_text("not a folder")
    else:
        (tmp_path / "cache").mkdir()
        _read_only(tmp_path / "cache", monkeypatch)
    try:
        with pytest.raises(CacheDirError, match=message.replace("{tmp}", str(tmp_path))):
            _cached(encoder, table, tmp_path / given)
        assert encoder.calls == 0  # refused before computing anything
    finally:
        if there != "file":
            (tmp_path / "cache").chmod(0o755)


def test_a_read_only_cache_dir_holding_the_features_is_read(tmp_path, encoder, table, monkeypatch):
    cache = tmp_path / "cache"
    first = np.array(_cached(encoder, table, cache))
    calls = encoder.calls
    _read_only(cache, monkeypatch)
    try:
        np.testing.assert_array_equal(_cached(encoder, table, cache), first)
        assert encoder.calls == calls
    finally:
        cache.chmod(0o755)


def test_the_default_cache_folder_is_named_as_such(tmp_path, monkeypatch):
    from mer_keras.pipeline.feature_store import CacheDirError, cached_features

    monkeypatch.setenv("MER_KERAS_CACHE", str(tmp_path / "user"))
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "features").write_text("x")
    expected = (
        r"feature cache folder .*/user/features \(\$MER_KERAS_CACHE or the user cache dir; "
        r"--cache-dir chooses another\): is a file"
    )
    with pytest.raises(CacheDirError, match=expected):
        cached_features(tmp_path / "user" / "features", "0a", {}, lambda allocate: None)
