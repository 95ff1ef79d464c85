"""The deployable model: whole backbone + trained head, raw RGB frames in, probabilities out."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mer_keras import reports
from mer_keras.backbone import VGGFacePreprocess
from mer_keras.models import build_model, copy_weights_by_name
from mer_keras.pipeline.cache import load_frame
from mer_keras.pipeline.tfdata import training_frames


def inference_model(run, trained: keras.Model) -> keras.Model:
    """``trained`` (on cached features) rebuilt on the full backbone, weights copied by name."""
    size = run.size
    frames = keras.Input((size, size, 3), name="rgb_frames")
    encoder = keras.Model(frames, run.backbone(VGGFacePreprocess(name="vggface_preprocess")(frames)),
                          name="frame_encoder_model")
    model = build_model(run.kind, len(run.classes), (size, size, 3), run.n, encoder,
                        name=f"mer_{run.options.experiment}", **run.head_options())
    copy_weights_by_name(trained, model)
    return model


def sample_inputs(run, clips, count=4) -> np.ndarray:
    """Raw float32 frames of the first window of up to ``count`` clips, as the model takes them."""
    samples = []
    for clip in clips[:count]:
        rows = run.table.clip_rows[clip.key][: run.n]
        frames = np.stack([load_frame(run.table.frames[r], run.size) for r in rows])
        samples.append(frames[0] if run.kind == "frame" else frames)
    return np.stack(samples).astype(np.float32)


def cached_inputs(run, clips, count=4):
    """What the model trained on cached features takes for the windows of ``sample_inputs``."""
    rows = np.stack([run.table.clip_rows[clip.key][: run.n] for clip in clips[:count]])  # (samples, n)
    features = np.asarray(training_frames(run.features, rows.ravel())).reshape(*rows.shape, *run.frame_shape)
    if run.kind == "frame":
        return features[:, 0]
    if run.deduplicate:  # every frame of every window, each its own distinct frame
        return features.reshape(-1, *run.frame_shape), np.arange(rows.size, dtype=np.int32).reshape(rows.shape)
    return features


def save_and_export(model: keras.Model, folder, samples: np.ndarray, reference=None) -> dict:
    """``model.keras`` plus a SavedModel, and how closely the SavedModel answers like the .keras file.

    ``reference``: what the model trained on cached features answered for the same windows; the
    exported model (whole backbone in front) must answer the same.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras_path, saved_path = folder / "model.keras", folder / "saved_model"
    model.save(keras_path)
    model.export(str(saved_path), verbose=False)
    reloaded = keras.saving.load_model(keras_path)
    expected = np.asarray(reloaded.predict(samples, verbose=0), np.float32)
    serving = tf.saved_model.load(str(saved_path)).signatures["serving_default"]
    answered = serving(tf.constant(samples))
    answered = np.asarray(next(iter(answered.values())), np.float32)
    check = {
        "keras": str(keras_path), "saved_model": str(saved_path),
        "signature": "serving_default", "input_shape": [None, *samples.shape[1:]],
        "samples": int(len(samples)),
        "max_abs_difference": float(np.max(np.abs(expected - answered))),
        "original_vs_reloaded_keras": float(np.max(np.abs(
            np.asarray(model.predict(samples, verbose=0), np.float32) - expected))),
    }
    if reference is not None:
        check["trained_vs_exported"] = float(np.max(np.abs(np.asarray(reference, np.float32) - expected)))
    reports.write_json(folder / "export.json", check)
    return check
