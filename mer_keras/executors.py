"""Where a run's folds train (``--executor``): one after the other in this process, or one Ray task each.

The driver makes the frame cache once (``prepare_run``); each Ray task gets the run's config, the
cache (in-memory features through Ray's object store, on-disk ones by path) and the starting weights
of the trainable backbone suffix, rebuilds the ``Trainer`` from them (no Keras model is pickled) and
trains its fold with ``crossval.train_fold``, the code a local run uses, into ``fold_K/`` of the run
folder. So on a cluster ``--out`` and ``--cache-dir`` must be on a filesystem every node sees. The
driver holds each fold's lock while its task runs and collects the results as they arrive; a killed
driver resumes with ``--resume`` as a local run does (finished folds kept, a killed fold continues).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from mer_keras.config import ConfigError, RunConfig
from mer_keras.crossval import Trainer, cross_validate, finished, train_fold
from mer_keras.files import write_json
from mer_keras.fold_lock import acquire, release
from mer_keras.pipeline.feature_store import DiskFeatures
from mer_keras.pipeline.frame_cache import FrameCache

log = logging.getLogger("mer_keras")
INSTALL = "pip install mer_keras[cluster]"
CONNECT_TIMEOUT = 5.0  # seconds to reach --ray-address HOST:PORT before it counts as unreachable


def fold_executor(config: RunConfig):
    """The executor of ``config.executor``; for Ray it connects now, so a missing Ray or an
    unreachable ``--ray-address`` fails before the long caching."""
    return LocalFolds() if config.executor == "local" else RayFolds.connect(config)


class LocalFolds:
    """The folds one after the other in this process (``crossval.cross_validate``)."""

    def __call__(self, run, callbacks=(), only=None) -> list:
        _record(run, {"executor": "local"})
        return cross_validate(run.trainer, run.folds, run.out, callbacks, only=only)


def import_ray():
    """The ``ray`` module, or a ``ConfigError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def connect(ray, address: str | None) -> None:
    """``ray.init``: a new local Ray with this machine's cores (``address`` None), or the cluster at
    ``address`` (``auto`` or ``HOST:PORT``); an address that cannot be reached is a ``ConfigError``."""
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
        return
    if address != "auto":
        host, _, port = address.rpartition(":")  # checked by RunConfig
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
        except OSError as error:
            raise ConfigError(
                f"--ray-address {address}: no Ray cluster reachable there ({error.strerror or error}); "
                "start one with `ray start --head` on that machine or fix the address"
            ) from None
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ConfigError(f"--ray-address {address}: cannot connect to Ray ({error})") from None


@dataclass(frozen=True)
class FoldInputs:
    """What a fold's task rebuilds the run's ``Trainer`` from: plain data, no Keras or TensorFlow objects."""

    config: RunConfig
    classes: tuple
    cache: FrameCache  # with features=None: they come through the object store, or from ``disk``
    disk: str | None  # the on-disk features' .npy file (None: in memory)
    retrain_from: str
    suffix_weights: tuple

    @classmethod
    def of(cls, run) -> tuple[FoldInputs, object]:
        """``(inputs, in-memory features as a NumPy array or None)`` of a prepared run."""
        trainer, features = run.trainer, run.trainer.cache.features
        disk = features.path if isinstance(features, DiskFeatures) else None
        inputs = cls(
            trainer.config,
            tuple(trainer.classes),
            dataclasses.replace(trainer.cache, features=None),
            disk,
            run.record["backbone_split"]["retrain_from"],
            tuple(trainer.suffix_weights),
        )
        return inputs, None if disk else features.numpy()

    def trainer(self, features) -> Trainer:
        """The ``Trainer`` the driver has, made in this process: same config, cache and starting weights."""
        import keras
        import numpy as np
        import tensorflow as tf

        config = self.config
        if config.training.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.mixed_precision.set_global_policy(config.training.precision)
        if self.disk is not None:
            if not Path(self.disk).is_file():
                raise FileNotFoundError(
                    f"{self.disk}: the run's feature cache is not on Ray node {socket.gethostname()}; "
                    "on a cluster, --cache-dir must be a folder every node sees (a shared filesystem)"
                )
            features = DiskFeatures(np.load(self.disk, mmap_mode="r"))
        else:
            features = tf.constant(features)
        suffix = None
        if self.suffix_weights:  # the architecture only: the suffix is set to suffix_weights per fold
            from mer_keras.backbone import split_backbone
            from mer_keras.backbone.build import build_backbone

            model = config.model
            backbone, _ = build_backbone(
                model.backbone, "none", config.data.image_size, config.data.synthetic, model.head.pooling
            )
            suffix = split_backbone(backbone, self.retrain_from)[1]
        cache = dataclasses.replace(self.cache, features=features)
        return Trainer(config, self.classes, cache, suffix, self.suffix_weights)


def fold_task(inputs: FoldInputs, features, fold, folder: str, callbacks) -> object:
    """One fold, in a Ray worker: the run's ``Trainer`` rebuilt, the fold trained into ``folder``."""
    return train_fold(inputs.trainer(features), fold, Path(folder), callbacks)


class RayFolds:
    """Every fold to train as a Ray task at once; the driver holds the folds' locks and keeps the results."""

    def __init__(self, ray, config: RunConfig, started: bool):
        self.ray, self.config, self.started = ray, config, started

    @classmethod
    def connect(cls, config: RunConfig) -> RayFolds:
        ray = import_ray()
        if ray.is_initialized():  # e.g. a test's Ray, or the previous seed's: used as it is
            return cls(ray, config, started=False)
        connect(ray, config.ray_address)
        return cls(ray, config, started=True)

    def record(self) -> dict:
        """What config.json says of where the folds ran."""
        ray = self.ray
        cpus = ray.cluster_resources().get("CPU", 0)
        return {
            "executor": "ray",
            "ray_version": ray.__version__,
            "address": self.config.ray_address
            or ("a local Ray started by the run" if self.started else "the Ray this process had started"),
            "gcs_address": ray.get_runtime_context().gcs_address,
            "nodes": sum(1 for node in ray.nodes() if node.get("Alive")),
            "cluster_cpus": cpus,
            "cpus_per_fold": self.config.cpus_per_fold,
            "folds_at_once": int(cpus // self.config.cpus_per_fold),
        }

    def __call__(self, run, callbacks=(), only=None) -> list:
        try:
            _record(run, self.record())
            return self._cross_validate(run, tuple(callbacks), only)
        finally:
            if self.started:
                self.ray.shutdown()

    def _cross_validate(self, run, callbacks, only) -> list:
        """Like ``crossval.cross_validate``: every fold's result in fold order, None for one not finished."""
        ray = self.ray
        inputs, features = FoldInputs.of(run)
        inputs, features = ray.put(inputs), None if features is None else ray.put(features)
        task = ray.remote(fold_task).options(num_cpus=self.config.cpus_per_fold)
        results, pending = {}, {}
        try:
            for fold in run.folds:
                if only is not None and fold.index not in only:
                    continue
                lock = None
                done = finished(run.out, fold)
                if done is None:
                    folder = (run.out / f"fold_{fold.index}").resolve()
                    lock = acquire(folder, f"fold {fold.index}")
                    done = None if lock is None else finished(run.out, fold)  # finished meanwhile
                if done is not None or lock is None:
                    results[fold.index] = done
                    if lock is not None:
                        release(lock)
                    continue
                ref = task.remote(inputs, features, fold, str(folder), callbacks)
                pending[ref] = (fold.index, lock)
            total = len(pending)
            while pending:
                [ready], _ = ray.wait(list(pending), num_returns=1)
                index, lock = pending.pop(ready)
                try:
                    results[index] = _get(ray, ready)
                finally:
                    release(lock)
                if self.config.verbose:
                    print(
                        f"fold {index} finished on Ray ({total - len(pending)} of {total}, "
                        f"{results[index].seconds:.0f} s)",
                        flush=True,
                    )
        finally:
            _cancel(ray, pending)
        return [results[f.index] if f.index in results else finished(run.out, f) for f in run.folds]


def _get(ray, ref):
    """The task's result; a fold's own error is raised as itself (one line from the command line)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from error
        raise


def _cancel(ray, pending: dict) -> None:
    """Stop the tasks still running (after an error or an interrupt), then release their folds' locks."""
    if not pending:
        return
    for ref in pending:
        ray.cancel(ref, force=True)
    ray.wait(list(pending), num_returns=len(pending), timeout=60)  # the workers are gone before the locks
    for _, lock in pending.values():
        release(lock)


def _record(run, execution: dict) -> None:
    """``execution`` into config.json's record: where and how the folds ran (not part of the identity)."""
    run.record["execution"] = execution
    write_json(run.out / "config.json", {"config": run.trainer.config.to_dict(), "record": run.record})
