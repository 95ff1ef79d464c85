"""The final model: trained on all subjects, exported with the whole backbone in front (raw RGB frames in).

It trains for as many epochs as validation selected in the folds (their median, rounded up), with
no subject held out: the folds already chose the budget on their own training subjects, so every
subject goes into the model a user runs on new recordings.

The exported model is composed from the trained head and the backbone (whose trainable suffix is
the one just trained): the same layer objects, so nothing is copied. ``export.json`` records how
closely the SavedModel answers like ``model.keras``, and both like the model trained on cached features.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mer_keras.backbone import with_preprocessing
from mer_keras.crossval import Trainer
from mer_keras.files import read_json, write_json
from mer_keras.models import compose
from mer_keras.pipeline.frame_cache import load_frame

EXPORT = "export.json"  # written last: its presence marks a finished final model


def exported_model(head: keras.Model, backbone: keras.Model, size: int, name: str) -> keras.Model:
    """Raw RGB frames -> VGGFace2 preprocessing -> ``backbone`` -> ``head``: the deployable model."""
    return compose(
        head,
        with_preprocessing(backbone, size, name="frame_encoder_model"),
        (size, size, 3),
        name=name,
        check_input=True,
    )


def final_epochs(fold_results) -> dict:
    """The final model's budget: ``{epochs, selected_in_folds}``, the median (rounded up) of the
    epochs the folds kept (lowest validation loss; the last epoch of a fold without validation)."""
    selected = [r.selected_epoch for r in fold_results if r.selected_epoch is not None]
    if not selected:
        raise ValueError("No fold trained an epoch: the final model has no epoch budget to take from them.")
    return {"epochs": int(np.ceil(np.median(selected))), "selected_in_folds": selected}


def train_final(trainer: Trainer, clips, backbone, out, budget: dict, callbacks=()) -> dict:
    """One model on all subjects for ``budget["epochs"]`` (``final_epochs``), exported to ``out/final``.

    Without a backbone (the flow baselines) the exported model is the network itself: it takes the
    u, v, strain images of ``mer_keras.flow.flow_images`` (onset and apex frame of a clip).
    """
    config = trainer.config
    folder = Path(out) / "final"
    if (folder / EXPORT).exists():
        return read_json(folder / EXPORT)
    seed = config.protocol.seed + 1000
    model, head, _, _ = trainer.train(clips, None, folder, seed, callbacks, epochs=budget["epochs"])
    cached = cached_inputs(trainer, clips)
    reference = model(cached, training=False)  # one call: frames and index together
    if backbone is None:
        exported = compose(
            head, None, trainer.cache.feature_shape, name=f"mer_{config.experiment}", check_input=True
        )
        inputs = cached
    else:
        exported = exported_model(head, backbone, config.data.image_size, name=f"mer_{config.experiment}")
        inputs = sample_inputs(trainer, clips)
    return save_and_export(exported, folder, inputs, reference, {"trained_on": "all subjects", **budget})


def _first_windows(trainer: Trainer, clips, count):
    return np.stack([trainer.cache.table.clip_rows[clip.key][: trainer.config.n] for clip in clips[:count]])


def sample_inputs(trainer: Trainer, clips, count=4) -> np.ndarray:
    """Raw float32 frames of the first window of up to ``count`` clips, as the exported model takes them.

    ``--augment online``: the frames of the raw uint8 cache the model trained on (interpolated frames
    are rounded there), so the exported model sees the very pixels of its reference.
    """
    size, table = trainer.config.data.image_size, trainer.cache.table
    if trainer.online:
        rows = _first_windows(trainer, clips, count)
        windows = trainer.cache.frames(rows.ravel()).reshape(*rows.shape, size, size, 3)
        return (windows[:, 0] if trainer.config.model.head.single else windows).astype(np.float32)
    windows = np.stack(
        [
            [load_frame(table.frames[r], size, table.face(r)) for r in rows]
            for rows in _first_windows(trainer, clips, count)
        ]
    )
    return (windows[:, 0] if trainer.config.model.head.single else windows).astype(np.float32)


def cached_inputs(trainer: Trainer, clips, count=4):
    """What the model trained on cached features takes for the windows of ``sample_inputs``."""
    rows = _first_windows(trainer, clips, count)  # (samples, n)
    shape = trainer.cache.feature_shape
    features = trainer.cache.frames(rows.ravel()).reshape(*rows.shape, *shape)
    if trainer.config.model.head.single:
        return features[:, 0]
    if trainer.deduplicate:  # every frame of every window, each its own distinct frame
        index = np.arange(rows.size, dtype=np.int32).reshape(rows.shape)
        if trainer.online:  # and its augmentation group (the identity at inference)
            return features.reshape(-1, *shape), index, np.zeros(rows.size, np.int32)
        return features.reshape(-1, *shape), index
    return features


def save_and_export(model: keras.Model, folder, samples: np.ndarray, reference=None, training=None) -> dict:
    """``model.keras`` plus a SavedModel, and how closely the SavedModel answers like the .keras file.

    ``reference``: what the model trained on cached features answered for the same windows; the
    exported model (whole backbone in front) must answer the same. ``training``: how the model was
    trained, recorded beside the check.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras_path, saved_path = folder / "model.keras", folder / "saved_model"
    model.save(keras_path)
    model.export(str(saved_path), verbose=False)
    reloaded = keras.saving.load_model(keras_path)
    # direct calls, not predict(): a handful of samples, and predict would trace a function per model
    expected = np.asarray(reloaded(samples, training=False), np.float32)
    serving = tf.saved_model.load(str(saved_path)).signatures["serving_default"]
    answered = np.asarray(next(iter(serving(tf.constant(samples)).values())), np.float32)
    check = {
        "keras": str(keras_path),
        "saved_model": str(saved_path),
        "signature": "serving_default",
        "input_shape": [None, *samples.shape[1:]],
        "samples": int(len(samples)),
        "max_abs_difference": float(np.max(np.abs(expected - answered))),
        "original_vs_reloaded_keras": float(
            np.max(np.abs(np.asarray(model(samples, training=False), np.float32) - expected))
        ),
    }
    if reference is not None:
        check["trained_vs_exported"] = float(np.max(np.abs(np.asarray(reference, np.float32) - expected)))
    if training is not None:
        check["training"] = training
    write_json(folder / EXPORT, check)
    return check
