"""One experiment run, start to finish: data -> folds -> cached features -> training -> results.

Used by ``experiments/exp1.py``, ``exp2.py`` and ``exp3.py``; everything a run did is written
to its folder (see ``write_config``), and a killed run continues with ``--resume``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mer_keras import metrics, reports
from mer_keras.backbone import VGGFacePreprocess, split_backbone
from mer_keras.datasets import load_dataset
from mer_keras.datasets.short_clips import apply_policy, timeline
from mer_keras.models import EXPERIMENT_KIND, backbone_pooling, build_deduplicated_model, build_model
from mer_keras.pipeline.augment import variant_names
from mer_keras.pipeline.cache import compute_features
from mer_keras.pipeline.cache_store import DiskFeatures, choose_storage
from mer_keras.pipeline.tfdata import make_dataset, make_deduplicated_dataset, training_frames
from mer_keras.pipeline.windows import build_frame_table, window_set
from mer_keras.protocols import loso, subject_kfold
from mer_keras.provenance import resolve_backbone, resolve_precision
from mer_keras.training import compile_model, fit

log = logging.getLogger("mer_keras")
CLASS_ORDER = ("negative", "positive", "surprise", "non_micro")
PATTERN = {"frame": "VGGFace2 (frames)", "lstm": "3-Layer-LSTM", "bilstm": "Bi-LSTM"}


def class_names(clips) -> list:
    """Labels in the paper's order where known, any others after them alphabetically."""
    labels = {c.label for c in clips}
    return [c for c in CLASS_ORDER if c in labels] + sorted(labels - set(CLASS_ORDER))


def prepare_out_dir(options) -> Path:
    """The run folder: new unless ``--resume``; an existing run is never overwritten."""
    if options.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        options.out = str(Path("runs") / f"{options.experiment}-n{options.n}-{stamp}")
    out = Path(options.out)
    if options.resume:
        previous = out / "config.json"
        if not previous.exists():
            raise FileNotFoundError(f"{previous}: no run to resume in {out}.")
        before = legacy_options(reports.read_json(previous)["options"])
        for key in _RUN_DEFINING:  # options left to their run-time default take the run's value
            if getattr(options, key, None) is None and before.get(key) is not None:
                setattr(options, key, before[key])
        _check_same_run(before, vars(options), previous)
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def legacy_options(options: dict) -> dict:
    """Options of a run written before ``--clip-features``: its boolean ``relative`` translated."""
    if "relative" not in options or "clip_features" in options:
        return options
    return {**{k: v for k, v in options.items() if k != "relative"},
            "clip_features": "relative" if options["relative"] else "raw"}


def clip_features_of(options) -> str:
    """What the run's model sees per frame: frame models, and runs from before the option, the pooled features."""
    if EXPERIMENT_KIND[options.experiment] == "frame":
        return "raw"
    return getattr(options, "clip_features", "raw")


def head_sizes(options) -> dict:
    """Layer sizes, dropout and clip features of a run's head, as its command line set them."""
    if EXPERIMENT_KIND[options.experiment] == "frame":
        sizes = {"fc_units": tuple(options.fc_units)}
    else:
        sizes = {"lstm_units": tuple(options.lstm_units), "bilstm_units": options.bilstm_units,
                 "clip_features": clip_features_of(options)}
    return {**sizes, "dropout": options.dropout}


_RUN_DEFINING = ("experiment", "data", "dataset", "n", "short_clips", "image_size", "protocol", "folds",
                 "seed", "weights", "retrain_from", "backbone", "flip", "rotation", "balance", "standardize",
                 "clip_features")


def _check_same_run(before: dict, now: dict, path) -> None:
    changed = [f"--{k.replace('_', '-')} {before.get(k)!r} -> {now.get(k)!r}"
               for k in _RUN_DEFINING if before.get(k) != now.get(k)]
    if changed:
        raise ValueError(f"{path}: --resume with options that change the run: {'; '.join(changed)}.")


def load_clips(options):
    """Clips of ``--data`` and whether they are the built-in synthetic dataset (by its manifest)."""
    if options.data == "synthetic":
        from mer_keras.datasets.synthetic import ensure_synthetic_smic

        root = ensure_synthetic_smic(seed=0, subjects=options.synthetic_subjects)
        return load_dataset(root, "smic"), True, str(root)
    root = Path(options.data)
    synthetic = any((root / sub / "synthetic_manifest.json").exists() for sub in ("", "SMIC_all_raw", ".."))
    return load_dataset(root, options.dataset), synthetic, str(root)


def make_folds(clips, options):
    if options.protocol == "loso":
        return loso(clips, seed=options.seed, validation_fraction=options.validation_fraction)
    return subject_kfold(clips, k=options.folds, seed=options.seed,
                         validation_fraction=options.validation_fraction)


def resolve_retrain_from(run):
    """``(retrain_from, choice)``: ``--retrain-from`` as given, or for ``auto`` the Grad-CAM choice.

    ``auto`` runs the layer sweep once per run on the untrained backbone (label-free target: the
    mean pooled feature), so it cannot look at any fold's test results; a resumed run reuses the
    choice written in its config.json.
    """
    if run.options.retrain_from != "auto":
        return run.options.retrain_from, None
    previous = run.out / "config.json"
    if run.options.resume and previous.exists():
        choice = reports.read_json(previous).get("backbone_split", {}).get("auto")
        if choice:
            return choice["retrain_from"], choice
    try:
        from mer_keras.gradcam.sweep import choose_layer, choose_retrain_layer, describe_regions
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("tf_keras_vis"):
            raise
        raise ImportError("--retrain-from auto needs tf-keras-vis: pip install 'mer_keras[gradcam]'") from error
    retrain_from, scores = choose_retrain_layer(run.backbone, run.clips, run.size, classes=run.classes,
                                                seed=run.options.seed)
    choice = {"retrain_from": retrain_from, "chosen_layer": choose_layer(scores),
              "focus_before_training": scores, "regions": describe_regions(run.clips),
              "how": "Grad-CAM of the mean pooled feature on the untrained backbone, 3 frames per class; "
                     "the block whose output has the best focus is the first one retrained"}
    print(f"--retrain-from auto: {choice['chosen_layer']} focuses best -> retraining from {retrain_from}",
          flush=True)
    return retrain_from, choice


def frame_encoder(prefix, size) -> keras.Model:
    """Raw RGB frames in, frozen-prefix features out: what the cache stores."""
    inputs = keras.Input((size, size, 3), name="rgb_frames")
    return keras.Model(inputs, prefix(VGGFacePreprocess(name="vggface_preprocess")(inputs)))


class Run:
    """The state shared by every fold of one run: clips, frame table, cached features, suffix."""

    def __init__(self, options):
        self.options = options
        self.callbacks = []  # extra Keras callbacks for every fit (tests use one to kill a run)
        self.kind = EXPERIMENT_KIND[options.experiment]
        self.n = 1 if self.kind == "frame" else options.n
        self.out = prepare_out_dir(options)
        keras.utils.set_random_seed(options.seed)
        self.precision = resolve_precision(options.precision)
        keras.mixed_precision.set_global_policy(self.precision)
        clips, self.synthetic, self.data_root = load_clips(options)
        if options.image_size is None:
            options.image_size = 112 if self.synthetic else 224
        self.size = options.image_size
        self.classes = class_names(clips)
        if self.n > 1:
            self.planned, self.short_report = apply_policy(clips, self.n, options.short_clips)
        else:
            self.planned = [(c, timeline(len(c), 1)) for c in clips]
            self.short_report = {"policy": "not applicable (frame level)", "shorter_than_n": 0}
        self.clips = [c for c, _ in self.planned]
        self.folds = make_folds(self.clips, options)
        self.clip_features = clip_features_of(options)
        # motion is measured on the unpooled maps of the backbone's last stage
        self.backbone, self.weights = resolve_backbone(options, self.size, self.synthetic,
                                                       pooling=backbone_pooling(self.clip_features))
        self.retrain_from, self.retrain_choice = resolve_retrain_from(self)
        prefix, self.suffix = split_backbone(self.backbone, self.retrain_from)
        self.table = build_frame_table(self.planned)
        self.variants = variant_names(options.flip, options.rotation)
        encoder = frame_encoder(prefix, self.size)
        self.cache_bytes = 4 * len(self.variants) * len(self.table) * int(np.prod(encoder.outputs[0].shape[1:]))
        asked_dir = getattr(options, "cache_dir", None)
        self.cache_dir = choose_storage(asked_dir, self.cache_bytes)
        if self.cache_dir is not None and asked_dir is None:
            log.warning("frozen features of %.1f GB would take over a quarter of this machine's memory: "
                        "kept on disk in %s (--cache-dir chooses the folder)", self.cache_bytes / 1e9, self.cache_dir)
        started = time.perf_counter()
        features = compute_features(encoder, self.table, self.size, self.variants, batch_size=32,
                                    progress=options.verbose > 0, cache_dir=self.cache_dir, weights=self.weights)
        self.cache_seconds = time.perf_counter() - started
        self.frame_shape = features.shape[2:]
        # with --cache-dir the features stay on disk and batches read their rows; otherwise in memory
        self.features = DiskFeatures(features) if isinstance(features, np.memmap) else tf.constant(features)
        del features
        # a trainable suffix under a clip model runs once per distinct frame of a batch
        self.deduplicate = self.suffix is not None and self.kind != "frame" and options.deduplicate

    def head_options(self) -> dict:
        """``head_sizes`` plus feature standardization (not in a deduplicated model)."""
        sizes = head_sizes(self.options)
        return sizes if self.deduplicate else {**sizes, "standardize": self.standardize}

    @property
    def standardize(self) -> bool:
        """Feature standardization only where features are fixed: a wholly frozen backbone."""
        return self.options.standardize and self.suffix is None

    def windows(self, clips):
        return window_set(clips, self.table, self.n, self.classes)

    def new_model(self, train_windows) -> keras.Model:
        """A fresh head (and fresh copy of the trainable suffix) on cached features.

        Feature standardization is adapted on the frames of ``train_windows`` only.
        """
        encoder = None
        if self.suffix is not None:
            encoder = keras.models.clone_model(self.suffix)
            encoder.set_weights(self.suffix.get_weights())
        build = build_deduplicated_model if self.deduplicate else build_model
        model = build(self.kind, len(self.classes), self.frame_shape, self.n, encoder, **self.head_options())
        if self.standardize:
            standardization = model.get_layer("feature_standardization")
            if self.clip_features == "motion":  # statistics of the motion of every training window
                # (its first frame's motion is 0 by definition and counts like the others)
                motion = model.get_layer("window_motion")
                standardization.adapt(self.dataset(train_windows, False)[0].map(lambda x, y: motion(x)))
            else:
                frames = training_frames(self.features, np.unique(train_windows.rows))
                standardization.adapt(frames if self.kind == "frame" else frames[:, None])  # (batch, n, features)
            # features that (almost) never move on the training frames are not blown up by 1/std
            variance = standardization.adapt_variance.numpy()
            standardization.adapt_variance.assign(np.maximum(variance, 1e-3 * variance.mean()))
            standardization.finalize_state()
        return compile_model(model, self.options.lr)

    def dataset(self, windows, training: bool, seed: int = 0):
        if self.deduplicate:
            return make_deduplicated_dataset(self.features, windows, len(self.classes), self.options.batch_size,
                                             training=training, seed=seed, balance=self.options.balance)
        return make_dataset(self.features, windows, len(self.classes), self.options.batch_size,
                            training=training, seed=seed, balance=self.options.balance,
                            squeeze_time=self.kind == "frame")

    def train(self, train_clips, validation_clips, folder, seed: int):
        """Fit a new model on ``train_clips``; checkpoint chosen on ``validation_clips``."""
        train_windows = self.windows(train_clips)
        train_data, samples = self.dataset(train_windows, True, seed)
        validation = self.dataset(self.windows(validation_clips), False)[0] if validation_clips else None
        model = self.new_model(train_windows)
        history = fit(model, train_data, validation, folder, epochs=self.options.epochs,
                      early_stopping=self.options.early_stopping, verbose=self.options.verbose,
                      callbacks=self.callbacks)
        return model, history, samples

    def predict(self, model, clips):
        """Clip probabilities: the mean of the probabilities of the clip's windows."""
        windows = self.windows(clips)
        probs = model.predict(self.dataset(windows, False)[0], verbose=0)
        keys = [clips[i].key for i in windows.clip_index]
        clip_keys, clip_probs = metrics.aggregate_windows(probs, keys)
        by_key = {c.key: c for c in clips}
        return [by_key[k] for k in clip_keys], clip_probs
