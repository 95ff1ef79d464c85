"""Cross-validation: per fold, a fresh model trained on the frame cache, selected on validation, tested.

``Trainer`` holds what every fold shares (the frame cache, the trainable backbone suffix and its
starting weights) and builds, fits and applies one fold's model; ``cross_validate`` runs the
folds into ``fold_K/`` and returns their ``FoldResult``; a finished fold is read back, never redone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from mer_keras import metrics
from mer_keras.config import RunConfig
from mer_keras.distribute import check_in_step, epoch_clock, for_strategy, one_device, scope, shard_by_data
from mer_keras.files import read_json, write_json, write_text
from mer_keras.fold_lock import acquire, release
from mer_keras.models import build_head, compose, deduplicated
from mer_keras.online_model import augmentation, online_model
from mer_keras.oracle import EPOCH_PREDICTIONS, EpochPredictions, read_epoch_predictions
from mer_keras.pipeline.frame_cache import FrameCache
from mer_keras.pipeline.tfdata import make_dataset, make_deduplicated_dataset, prefetch_to_device
from mer_keras.pipeline.windows import window_set
from mer_keras.training import FIT_DONE, compile_model, fit, read_history, resume_epoch

log = logging.getLogger("mer_keras")
DONE = "metrics.json"  # written last: its presence marks a finished fold
_JIT_WARNED = set()  # runs (their folder) already told that Keras turned --jit off


@dataclass(frozen=True)
class Trainer:
    """Builds, trains and applies one fold's model on the cached features of the frozen backbone prefix."""

    config: RunConfig
    classes: tuple
    cache: FrameCache
    suffix: keras.Model | None = None  # the trainable part of the backbone, None when all of it is frozen
    suffix_weights: tuple = ()  # what the suffix starts every fold from
    strategy: object = None  # tf.distribute strategy of --strategy (None: one device)
    compiled: dict = field(default_factory=dict, compare=False, repr=False)  # see new_model
    # --augment online: the cache holds uint8 frames and ``suffix`` is the whole backbone from them
    # (online_model.raw_frame_encoder); the training model augments before it
    online: bool = False

    @property
    def standardize(self) -> bool:
        """Feature standardization only where features are fixed: a wholly frozen backbone."""
        return self.config.model.head.standardize and self.suffix is None

    @property
    def deduplicate(self) -> bool:
        """A trainable suffix under a clip head runs once per distinct frame of a batch."""
        return self.suffix is not None and not self.config.model.head.single and self.config.model.deduplicate

    def windows(self, clips):
        return window_set(clips, self.cache.table, self.config.n, self.classes)

    def dataset(self, windows, training: bool, seed: int = 0, clock=None):
        """``(tf.data.Dataset, samples per epoch)`` of ``windows`` from the cache (``clock``: ``tfdata``)."""
        data = self.config.data
        common = {"training": training, "seed": seed, "balance": data.balance, "clock": clock}
        common["balance_scale"] = data.balance_scale
        args = (self.cache.features, windows, len(self.classes), self.config.training.batch_size)
        if self.deduplicate:
            dataset, count = make_deduplicated_dataset(*args, groups=self.online, **common)
        else:
            dataset, count = make_dataset(*args, squeeze_time=self.config.model.head.single, **common)
        dataset = shard_by_data(dataset, self.strategy)
        return (prefetch_to_device(dataset) if self.online else dataset), count

    def new_model(self, train_windows) -> tuple[keras.Model, keras.Model]:
        """``(training model, head)``: a fresh head (standardized on ``train_windows`` only) on the cache.

        The suffix, shared by all folds, is put back to its starting weights first. The model is
        compiled once per run: later folds get the first fold's model with every variable of a freshly
        built head copied in and the optimizer back at its start, so the fit is the same computation
        as on a new model while Keras traces its train, test and predict functions once, not per fold.
        """
        standardize_on = None
        if self.standardize:
            if self.config.model.head.clip_features == "motion":
                standardize_on = self.dataset(train_windows, False)[0]
            else:
                standardize_on = self.cache.frames(np.unique(train_windows.rows))
        if self.suffix is not None:
            self.suffix.set_weights(self.suffix_weights)
        features = self.cache.feature_shape if self.suffix is None else self.suffix.outputs[0].shape[1:]
        with scope(self.strategy):  # variables on every replica
            head = build_head(
                self.config.head(self.standardize),
                len(self.classes),
                features,
                self.config.n,
                standardize_on=standardize_on,
            )
            if self._reusable():
                return self._reinitialized(head)
            if self.online:  # a fresh augmentation layer per fold: its seed follows the fold's
                augment = augmentation(self.config.data.flip, self.config.data.rotation)
                model = online_model(head, self.suffix, augment, self.deduplicate)
            elif self.deduplicate:
                model = deduplicated(head, self.suffix, self.cache.feature_shape)
            else:
                model = compose(head, self.suffix, self.cache.feature_shape)
        model = for_strategy(model, self.strategy)
        jit = True if self.config.training.jit else "auto"
        with scope(self.strategy):
            compile_model(model, self.config.training.lr, jit_compile=jit)
        if jit is True and not model.jit_compile and self.config.out not in _JIT_WARNED:
            _JIT_WARNED.add(self.config.out)
            blocking = sorted({layer.name for layer in model._flatten_layers() if not layer.supports_jit})
            log.warning(
                "--jit: Keras compiles this model without XLA; layers it cannot jit-compile: %s "
                "(an LSTM/GRU on a GPU uses cuDNN, which XLA cannot compile)",
                ", ".join(blocking) or "none (TensorFlow op determinism is on in this process)",
            )
        # reused by later folds on one device; under a strategy (mirrored variables) and with online
        # augmentation (its layer's seed state is outside the head) every fold compiles its own
        if one_device(self.strategy) and not self.online:
            model.optimizer.build(model.trainable_variables)
            self.compiled.update(
                owner=self._owner(),
                model=model,
                head=head,
                optimizer_start=[np.array(v) for v in model.optimizer.variables],
            )
        return model, head

    def _owner(self) -> tuple:
        return (self.config, self.suffix, self.strategy, self.online)

    def _reusable(self) -> bool:
        """Whether ``compiled`` holds this trainer's model (``dataclasses.replace`` shares the dict)."""
        owner = self.compiled.get("owner")
        return owner is not None and all(a is b or a == b for a, b in zip(owner, self._owner(), strict=True))

    def _reinitialized(self, head) -> tuple[keras.Model, keras.Model]:
        """The compiled model, its head's variables (weights, statistics, seed states) taken from ``head``."""
        model, compiled_head = self.compiled["model"], self.compiled["head"]
        pairs = list(zip(compiled_head.variables, head.variables, strict=True))
        for target, source in pairs:
            if tuple(target.shape) != tuple(source.shape):
                raise RuntimeError(f"head variable {target.path}: {target.shape} != {source.shape}")
        for target, source in pairs:
            target.assign(source)
        for variable, start in zip(model.optimizer.variables, self.compiled["optimizer_start"], strict=True):
            variable.assign(start)
        return model, compiled_head

    def train(self, train_clips, validation_clips, folder, seed: int, callbacks=(), epochs=None):
        """``(model, head, history, samples)``: fitted on ``train_clips``, selected on ``validation_clips``
        (none: the last of ``epochs``, default ``--epochs``).

        Everything random in the fit derives from ``seed`` and the epoch (initial weights, dropout,
        batches), so a fold resumed in another process continues exactly where it stopped.
        """
        keras.utils.set_random_seed(seed)  # initial weights and dropout seeds from this fold's seed alone
        train_windows = self.windows(train_clips)
        # batches from (seed, epoch): a resumed fit continues the same path
        clock, callbacks = epoch_clock(self.strategy, resume_epoch(folder), callbacks)
        train_data, samples = self.dataset(train_windows, True, seed, clock)
        validation = self.dataset(self.windows(validation_clips), False)[0] if validation_clips else None
        model, head = self.new_model(train_windows)
        t = self.config.training
        check_in_step(self.strategy, folder, clock.epoch, (Path(folder) / FIT_DONE).exists())
        with scope(self.strategy):
            history = fit(
                model,
                train_data,
                validation,
                folder,
                epochs=t.epochs if epochs is None else epochs,
                early_stopping=t.early_stopping,
                verbose=self.config.verbose,
                callbacks=callbacks,
            )
        return model, head, history, samples

    def predictor(self, clips, fold=None):
        """``predict(model)``: one row per clip of ``clips`` (clip, subject, true, predicted,
        ``p_<class>`` = the mean over its windows, fold). The windows and their pipeline are made
        once: a fold's test clips are predicted after every epoch for the oracle, then once more."""
        windows = self.windows(clips)
        data = self.dataset(windows, False)[0]
        by_key = {c.key: c for c in clips}
        window_clips = [clips[i].key for i in windows.clip_index]

        def predict(model) -> pd.DataFrame:
            with scope(self.strategy):
                probs = model.predict(data, verbose=0)
            table = clip_probabilities(probs, window_clips, self.classes, where=f"fold {fold}")
            table.insert(1, "subject", [by_key[k].subject for k in table["clip"]])
            table.insert(2, "true", [by_key[k].label for k in table["clip"]])
            if fold is not None:
                table["fold"] = fold
            return table

        return predict


def clip_probabilities(window_probs, window_clips, classes, where="predictions") -> pd.DataFrame:
    """A clip's probabilities = the mean of its windows' (our protocol choice), clips in order of appearance.

    Columns ``clip``, ``predicted`` (the most probable class; ties to the earlier one), ``p_<class>``.
    """
    probs = np.asarray(window_probs, np.float64)
    if probs.ndim != 2 or probs.shape != (len(window_clips), len(classes)):
        raise ValueError(
            f"{where}: need one row of {len(classes)} probabilities per window. "
            f"Received: shape {probs.shape} for {len(window_clips)} windows"
        )
    if not np.all(np.isfinite(probs)):
        raise FloatingPointError(
            f"{where}: the model gave NaN or infinite probabilities (diverged training or "
            "non-finite features); lower --lr or check the data and weights."
        )
    means = (
        pd.DataFrame(probs, columns=[f"p_{c}" for c in classes])
        .groupby(pd.Series(list(window_clips), name="clip"), sort=False)
        .mean()
    )
    predicted = [classes[i] for i in means.to_numpy().argmax(axis=1)]
    return pd.concat(
        [pd.DataFrame({"clip": means.index, "predicted": predicted}), means.reset_index(drop=True)], axis=1
    )


@dataclass(frozen=True)
class FoldResult:
    """One fold's test predictions (one row per clip), scores, training history and what training took."""

    fold: int
    test_subjects: list
    predictions: pd.DataFrame
    metrics: dict
    history: pd.DataFrame
    training_samples_per_epoch: int
    seconds: float
    epoch_predictions: pd.DataFrame | None = None  # test predictions after every epoch (oracle report only)

    @property
    def validated(self) -> bool:
        """Whether the checkpoint was chosen on validation subjects (not: one training subject)."""
        return "val_loss" in self.history and bool(self.history["val_loss"].notna().any())

    @property
    def selected_epoch(self) -> int | None:
        """The epoch whose weights were kept (1-based): lowest validation loss, else the last epoch."""
        if self.validated:
            return int(np.nanargmin(self.history["val_loss"].to_numpy(float))) + 1
        return len(self.history) or None

    def save(self, folder) -> None:
        folder = Path(folder)
        write_text(folder / "predictions.csv", self.predictions.to_csv(index=False))
        write_json(
            folder / DONE,
            {
                "fold": self.fold,
                "test_subjects": self.test_subjects,
                "metrics": self.metrics,
                "training_samples_per_epoch": self.training_samples_per_epoch,
                "epochs_run": len(self.history),
                "selected_epoch": self.selected_epoch,
                "selected_by": "lowest validation loss"
                if self.validated
                else "no validation subjects (one training subject): last epoch of the fixed budget",
                "seconds": self.seconds,
            },
        )

    @classmethod
    def load(cls, folder) -> FoldResult:
        folder = Path(folder)
        done = read_json(folder / DONE)
        return cls(
            done["fold"],
            done["test_subjects"],
            pd.read_csv(folder / "predictions.csv", float_precision="round_trip"),
            done["metrics"],
            read_history(folder / "history.csv"),
            done["training_samples_per_epoch"],
            done["seconds"],
            read_epoch_predictions(folder / EPOCH_PREDICTIONS),
        )


def run_fold(trainer: Trainer, fold, out, callbacks=()) -> FoldResult | None:
    """Train, select on validation, test; a fold finished before is read back as it is.

    Training holds ``fold_K/train.lock``; a fold whose lock another live process holds is skipped
    (None), so invocations sharing a run folder never train the same fold.
    """
    done = finished(out, fold)
    if done is not None:
        log.info("fold %d already finished: kept as it is", fold.index)
        return done
    folder = Path(out) / f"fold_{fold.index}"
    lock = acquire(folder, f"fold {fold.index}")
    if lock is None:
        return None
    try:
        done = finished(out, fold)  # finished by another process between the check and the lock
        return done if done is not None else train_fold(trainer, fold, folder, callbacks)
    finally:
        release(lock)


def train_fold(trainer: Trainer, fold, folder: Path, callbacks=()) -> FoldResult:
    """Train and test ``fold`` into ``folder`` (``fold_K/``); the caller holds the fold's lock."""
    started = time.perf_counter()
    callbacks = list(callbacks)
    predict = trainer.predictor(list(fold.test), fold.index)
    if trainer.config.training.oracle:  # scored for the report only; selection stays on validation subjects
        callbacks.append(EpochPredictions(predict, folder / EPOCH_PREDICTIONS))
    model, _, history, samples = trainer.train(
        fold.train, fold.validation, folder, trainer.config.protocol.seed + fold.index, callbacks
    )
    predictions = predict(model)
    scores = metrics.clip_metrics(
        predictions["true"].tolist(), predictions["predicted"].tolist(), trainer.classes
    )
    result = FoldResult(
        fold.index,
        fold.subjects("test"),
        predictions,
        scores,
        history,
        samples,
        round(time.perf_counter() - started, 1),
        read_epoch_predictions(folder / EPOCH_PREDICTIONS),
    )
    result.save(folder)
    return result


def cross_validate(trainer: Trainer, folds, out, callbacks=(), only=None) -> list:
    """Every fold's ``FoldResult`` in fold order, None for a fold not finished; ``callbacks`` go to every fit.

    ``only`` (``--only-folds``): the folds trained; the others are read back if finished, else None,
    looked at after the training so that folds other invocations finished meanwhile count.
    """
    trained = {
        f.index: run_fold(trainer, f, out, callbacks) for f in folds if only is None or f.index in only
    }
    return [trained[f.index] if f.index in trained else finished(out, f) for f in folds]


def finished(out, fold) -> FoldResult | None:
    """The fold's result if ``fold_K/`` holds a finished fold, else None."""
    folder = Path(out) / f"fold_{fold.index}"
    return FoldResult.load(folder) if (folder / DONE).exists() else None
