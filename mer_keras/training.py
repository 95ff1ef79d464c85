"""Fitting one fold with Keras callbacks: checkpoint on validation, backup/restore, logs.

Model selection only ever looks at the validation split carved from the training subjects.
A killed fit continues where it stopped (BackupAndRestore); the best-so-far validation loss is
re-read from the CSV log so a resumed checkpoint never overwrites a better one.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import keras
import numpy as np
import pandas as pd

CHECKPOINT = "best.weights.h5"
BACKUP = "backup"
FIT_DONE = "fit.done"  # a finished fit: its checkpoint is reused, never refitted


class CheckpointError(ValueError):
    """A fold's checkpoint or backup cannot be read (a run killed while writing it, a disk gone bad)."""


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    fold = path.parent.parent if path.parent.name == BACKUP else path.parent
    return CheckpointError(
        f"{path}: cannot be read ({type(error).__name__}: {error}); it was probably cut short when a run "
        f"was killed. Delete the folder {fold} to train that fold again, then run with --resume."
    )


def load_checkpoint(model: keras.Model, path) -> None:
    """``model.load_weights(path)``, or a ``CheckpointError`` naming the file that cannot be read."""
    path = Path(path)
    try:
        with h5py.File(path, "r"):
            pass
    except OSError as error:
        raise _unreadable(path, error) from error
    model.load_weights(str(path))


def _check_backup(folder: Path) -> None:
    """Refuses, naming the file, a BackupAndRestore backup that Keras could not restore from."""
    backup = folder / BACKUP
    weights, metadata = backup / "latest.weights.h5", backup / "training_metadata.json"
    if weights.exists() and not Path(f"{weights}.bkp").exists():  # Keras falls back to a .bkp copy
        try:
            with h5py.File(weights, "r"):
                pass
        except OSError as error:
            raise _unreadable(weights, error) from error
    if metadata.exists():
        try:
            int(json.loads(metadata.read_text())["epoch"])
        except (ValueError, KeyError, TypeError) as error:
            raise _unreadable(metadata, error) from error


def _best_logged(history_csv: Path, monitor: str):
    if not history_csv.exists() or history_csv.stat().st_size == 0:  # killed before its first epoch ended
        return None
    values = read_history(history_csv).get(monitor, pd.Series(dtype=float)).to_numpy(float)
    values = values[np.isfinite(values)]
    return float(values.min()) if values.size else None


class EpochSeeds(keras.callbacks.Callback):
    """Puts every random layer's seed state at (its seed, epoch) when an epoch begins.

    Dropout masks are then a function of the epoch and the step within it, so a fit resumed by
    ``BackupAndRestore`` (which restores weights and optimizer, not seed states) draws the masks an
    uninterrupted fit draws.
    """

    STRIDE = 1 << 20  # steps an epoch may take before its counters reach the next epoch's

    def on_epoch_begin(self, epoch, logs=None):
        for layer in self.model._flatten_layers():  # Keras tracks seed generators per layer
            for generator in getattr(layer, "_seed_generators", ()):
                state = generator.state.numpy()
                generator.state.assign(np.array([state[0], epoch * self.STRIDE], dtype=state.dtype))


def compile_model(model: keras.Model, learning_rate: float, jit_compile="auto") -> keras.Model:
    """Adam and categorical cross-entropy, the paper's training setup."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model


def fit(
    model,
    train_data,
    validation_data,
    folder,
    *,
    epochs: int,
    early_stopping: int = 0,
    verbose=2,
    tensorboard=True,
    callbacks=(),
) -> dict:
    """Train ``model`` in ``folder`` and load the weights selected on ``validation_data``.

    Without validation data (a fold with one training subject) the model trains for the fixed budget
    of ``epochs`` and the last epoch is kept. Returns the whole history read back from the CSV log
    (so a resumed fit reports every epoch, not only those after the restart).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / FIT_DONE
    if done.exists():  # finished before a restart: reuse, never refit
        load_checkpoint(model, folder / CHECKPOINT)
        return read_history(folder / "history.csv")
    _check_backup(folder)
    validated = validation_data is not None
    checkpoint = folder / CHECKPOINT
    history_csv = folder / "history.csv"
    callbacks_extra, callbacks = (
        list(callbacks),
        [
            keras.callbacks.BackupAndRestore(str(folder / BACKUP)),
            keras.callbacks.ModelCheckpoint(  # without validation: every epoch, so the last one is kept
                str(checkpoint),
                monitor="val_loss" if validated else "loss",
                mode="min",
                save_best_only=validated,
                save_weights_only=True,
                initial_value_threshold=_best_logged(history_csv, "val_loss") if validated else None,
            ),
            keras.callbacks.CSVLogger(str(history_csv), append=True),
            EpochSeeds(),
        ],
    )
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(folder / "tensorboard"), write_graph=False))
    if early_stopping and validated:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=early_stopping))
    callbacks.extend(callbacks_extra)
    model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
    )  # the tf.data pipeline shuffles (and balances) itself
    if not checkpoint.exists():  # no epoch improved on a threshold logged before a restart
        model.save_weights(str(checkpoint))
    load_checkpoint(model, checkpoint)
    done.write_text(
        "fit finished; weights " + ("selected on val_loss" if validated else "of the last epoch") + "\n"
    )
    return read_history(history_csv)


def resume_epoch(folder) -> int:
    """The epoch a fit in ``folder`` starts at: 0, or where its ``BackupAndRestore`` backup left off."""
    folder = Path(folder)
    metadata = folder / BACKUP / "training_metadata.json"  # BackupAndRestore's own record
    if not metadata.is_file():
        return 0
    _check_backup(folder)
    return int(json.loads(metadata.read_text())["epoch"])


def read_history(history_csv) -> pd.DataFrame:
    """A CSVLogger file, one row per epoch (Keras's ``NA`` for a missing value is read as NaN).

    An empty file (a fit killed during its first epoch) is an empty history.
    """
    if Path(history_csv).stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(history_csv, float_precision="round_trip")
