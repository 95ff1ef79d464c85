"""--preset paper|fast, --augment online on the raw uint8 frame cache, --balance-scale, --jit: the parts."""

import cv2
import keras
import numpy as np
import pytest
from tiny_runs import assert_refused_in_one_line, tiny_config

from mer_keras.backbone import split_backbone, vggface_resnet50
from mer_keras.backbone.build import TINY
from mer_keras.cli import parse_config
from mer_keras.datasets import Clip
from mer_keras.datasets.frames import read_frame
from mer_keras.datasets.short_clips import apply_policy
from mer_keras.models import HeadSpec, build_head
from mer_keras.online_model import ClipAugmentation, augmentation, online_model, raw_frame_encoder
from mer_keras.pipeline.raw_frames import build_raw_frame_cache
from mer_keras.pipeline.tfdata import make_dataset, make_deduplicated_dataset
from mer_keras.pipeline.windows import balanced_indices, build_frame_table, window_set
from mer_keras.presets import preset_options, preset_record
from mer_keras.training import compile_model

from conftest import write_frames

SIZE = 32


def _config(experiment, *argv):
    return parse_config(experiment, ["--out", "unused", *argv])[0]


@pytest.mark.parametrize("experiment", ["exp1", "exp2", "exp3"])
def test_the_paper_preset_sets_the_papers_options_and_records_all_of_them(experiment):
    config = _config(experiment, "--preset", "paper")
    assert config.preset == "paper" and config.to_dict()["preset"] == "paper"
    assert (config.data.image_size, config.model.retrain_from, config.data.augment) == (224, "auto", "online")
    assert config.data.flip and config.data.rotation == 10.0 and config.data.balance
    assert not config.model.head.standardize
    if experiment == "exp1":
        assert config.data.balance_scale == 3.0
    else:
        assert (config.model.head.clip_features, config.model.n) == ("raw", 13)
    record = preset_record(config)
    assert record["overridden"] == []
    assert set(record["set"]) == {"--" + k.replace("_", "-") for k in preset_options("paper", experiment)}


def test_fast_is_todays_defaults():
    assert _config("exp2", "--preset", "fast") == _config("exp2")
    config = _config("exp2")
    assert (config.preset, config.data.augment, config.model.head.clip_features) == (
        "fast",
        "cached",
        "motion",
    )
    assert preset_record(config) == {"name": "fast", "set": {}, "overridden": []}


def test_explicit_options_override_the_preset_and_are_recorded_as_overridden():
    config = _config(
        "exp2", "--preset", "paper", "--image-size", "48", "--no-flip", "--clip-features", "motion"
    )
    assert (config.data.image_size, config.data.flip, config.model.head.clip_features) == (
        48,
        False,
        "motion",
    )
    assert config.data.rotation == 10.0  # not given: the preset's
    record = preset_record(config)
    assert sorted(record["overridden"]) == ["--clip-features", "--flip", "--image-size"]
    assert "--image-size" not in record["set"] and record["set"]["--rotation"] == 10.0
    # an explicit value equal to the fast default still wins over the preset
    assert _config("exp2", "--preset", "paper", "--augment", "cached").data.augment == "cached"


def test_an_unknown_preset_is_an_argparse_error_listing_the_presets(capsys):
    with pytest.raises(SystemExit):
        parse_config("exp2", ["--preset", "papers"])
    assert "invalid choice: 'papers' (choose from 'fast', 'paper')" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--preset", "paper", "--rotation", "46"], "--rotation must be between 0 and 45 degrees"),
        (["--rotation", "-1"], "--rotation must be between 0 and 45 degrees. Received: --rotation -1.0"),
        (["--preset", "paper", "--image-size", "31"], "--image-size must be between 32 and 1024"),
        (["--preset", "paper", "--jit", "--no-deterministic"], "--jit cannot compile --augment online"),
        (["--jit"], "--jit needs --no-deterministic: Keras compiles nothing with XLA while TensorFlow op"),
        (["--augment", "online"], "--augment must be cached unless --flip or --rotation is on"),
        (["--balance-scale", "0.5"], "--balance-scale must be between 1 and 100"),
        (["--no-balance", "--balance-scale", "3"], "--balance-scale must be 1 with --no-balance"),
    ],
)
def test_bad_paper_options_are_refused_by_name_in_one_line(tmp_path, capsys, argv, message):
    assert_refused_in_one_line(tmp_path, capsys, argv, message)


def test_balance_scale_multiplies_every_class_up_to_that_many_times_the_largest():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 1)
    picked = balanced_indices(labels, 3, np.random.default_rng(0), scale=3.0)
    assert np.bincount(labels[picked]).tolist() == [30, 30, 30]
    assert np.bincount(picked[labels[picked] == 0], minlength=10).tolist() == [3] * 10  # each frame 3 times


@pytest.fixture
def table(tmp_path):
    """Two clips of random 40x36 frames; the 3-frame one is interpolated to 4 (rows with t > 0)."""
    clips = []
    for name, numbers in (("a", range(100, 103)), ("bb", range(7, 13))):
        paths = write_frames(tmp_path / "frames" / name, numbers, size=(40, 36))
        for i, path in enumerate(paths):
            rng = np.random.default_rng(i + 10 * len(name))
            cv2.imwrite(str(path), rng.integers(0, 255, (40, 36, 3), dtype=np.uint8))
        clips.append(Clip("smic", "s1", name, "negative", tuple(str(p) for p in paths), 100.0))
    return build_frame_table(apply_policy(clips, 4)[0]), clips


@pytest.mark.parametrize("on_disk", [False, True])
def test_the_raw_frame_cache_holds_uint8_and_its_windows_are_the_decoded_frames(tmp_path, table, on_disk):
    table, clips = table
    cache = build_raw_frame_cache(
        table, SIZE, cache_dir=tmp_path / "cache" if on_disk else None, progress=False
    )
    assert (
        cache.dtype == "uint8" and cache.feature_shape == (SIZE, SIZE, 3) and cache.variants == ("identity",)
    )
    assert cache.record()["storage"] == (str(tmp_path / "cache") if on_disk else "memory")
    windows = window_set(clips, table, 4, ("negative",))
    (x, _), *_ = make_dataset(cache.features, windows, 2, 64, training=False)[0]
    assert x.dtype == "uint8" and tuple(x.shape) == (len(windows), 4, SIZE, SIZE, 3)
    bb = list(windows.clip_index).index(1)  # clip "bb": real frames only, no interpolation
    for w in range(bb, len(windows)):
        direct = np.stack([read_frame(table.frames[r][0], SIZE) for r in windows.rows[w]])
        np.testing.assert_array_equal(x[w].numpy(), direct)
    interpolated = [r for r, (_, _, t) in enumerate(table.frames) if t]
    assert interpolated and np.asarray(x[0]).dtype == np.uint8
    if on_disk:  # a second cache of the same frames reads the file
        files = sorted((tmp_path / "cache").glob("features-*.npy"))
        again = build_raw_frame_cache(table, SIZE, cache_dir=tmp_path / "cache", progress=False)
        assert sorted((tmp_path / "cache").glob("features-*.npy")) == files and len(files) == 1
        np.testing.assert_array_equal(
            again.frames(np.arange(len(table))), cache.frames(np.arange(len(table)))
        )


def _clip_windows(lengths, n):
    from benchmarks import consecutive_clips

    return consecutive_clips(lengths, n)


def test_deduplicated_batches_number_each_frames_clip_and_one_draw_covers_a_clip():
    windows = _clip_windows([7, 6, 8], 3)
    frames = np.zeros((1, 21, 8, 8, 3), np.uint8)
    frames[0, :, 2:5, 1:3] = 200  # every frame alike: a draw shows only through its transform
    dataset = make_deduplicated_dataset(frames, windows, 3, 8, training=True, seed=3, groups=True)[0]
    layer = ClipAugmentation(augmentation(True, 30.0, seed=0))
    for (batch, index, group), _ in dataset:
        rows = np.asarray(index)
        group = np.asarray(group)
        assert group.shape == (len(batch),) and group.min() == 0
        assert set(np.unique(group)) == set(range(group.max() + 1))
        for w in rows:  # the frames of a window are of one clip
            assert len(set(group[w])) == 1
        out = np.asarray(layer([batch, group], training=True))
        for g in np.unique(group):
            members = out[group == g]
            assert (members == members[0]).all()  # one transform per clip of the batch
        assert np.array_equal(np.asarray(layer([batch, group], training=False)), np.asarray(batch))


def _online_step(policy, deduplicate=True):
    """The loss of one training step of the online model (tiny backbone, stage 5 retrained) on a fixed batch."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        backbone = vggface_resnet50(weights=None, input_shape=(SIZE, SIZE, 3), **TINY)
        prefix, suffix = split_backbone(backbone, "conv5_1_1x1_reduce")
        encoder = raw_frame_encoder(prefix, suffix, SIZE)
        head = build_head(HeadSpec("lstm", (8, 4), clip_features="raw"), 3, encoder.outputs[0].shape[1:], 4)
        model = compile_model(
            online_model(head, encoder, augmentation(True, 10.0, seed=1), deduplicate), 1e-3
        )
        model.run_eagerly = True  # the same step without tracing it (tens of seconds on 2 cores)
        windows = _clip_windows([6, 7], 4)
        frames = np.random.default_rng(0).integers(0, 256, (1, 13, SIZE, SIZE, 3), dtype=np.uint8)
        if deduplicate:
            dataset = make_deduplicated_dataset(frames, windows, 3, 6, training=True, groups=True)[0]
        else:
            dataset = make_dataset(frames, windows, 3, 6, training=True)[0]
        x, y = next(iter(dataset))
        return float(model.train_on_batch(x, y)[0])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_mixed_bfloat16_step_of_the_online_path_gives_float32s_loss_and_float16_runs_on_cpu():
    reference = _online_step("float32")
    assert abs(_online_step("mixed_bfloat16") - reference) <= 0.02 * reference
    assert np.isfinite(_online_step("mixed_float16", deduplicate=False))


def test_jit_compiles_the_cached_path(tiny_smic, tmp_path):
    from tensorflow.python.framework.config import is_op_determinism_enabled  # as Keras asks it

    from mer_keras.experiment import prepare_run

    run = prepare_run(tiny_config("exp2", tiny_smic, tmp_path / "jit", "--jit", "--no-deterministic"))
    model = run.trainer.new_model(run.trainer.windows(run.folds[0].train))[0]
    # op determinism, once on, stays on in a process (another test may have turned it on): then Keras
    # compiles nothing with XLA, which is why --jit is refused with --deterministic
    assert model.jit_compile is not is_op_determinism_enabled()


def test_online_with_a_wholly_frozen_backbone_warns_once_and_caches_uint8(tiny_smic, tmp_path, caplog):
    from mer_keras.experiment import prepare_run

    run = prepare_run(tiny_config("exp2", tiny_smic, tmp_path / "r", "--augment", "online", "--flip"))
    assert sum("--augment online with the whole backbone frozen" in r.message for r in caplog.records) == 1
    trainer = run.trainer
    assert trainer.online and trainer.cache.dtype == "uint8" and not trainer.standardize
    model, head = trainer.new_model(trainer.windows(run.folds[0].train))
    assert model.get_layer("clip_augmentation") is not None and model.jit_compile is False
    assert run.record["frame_cache"]["dtype"] == "uint8"
