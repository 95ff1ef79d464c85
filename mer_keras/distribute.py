"""Data-parallel training within one fit (``--strategy``): the tf.distribute strategy, who writes, the record.

``none``: one device. ``mirrored``: ``tf.distribute.MirroredStrategy`` over this machine's GPUs (without
GPUs: over the logical CPU devices configured, see ``split_cpu``). ``multiworker``:
``tf.distribute.MultiWorkerMirroredStrategy`` over the processes that ``TF_CONFIG`` lists. The global
batch is ``--batch-size`` whatever the number of replicas: each replica gets its share of every batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mer_keras.config import STRATEGIES, ConfigError

log = logging.getLogger("mer_keras")
WORKERS_DIR = "mer_keras_workers"  # under the temporary directory: the run folders of non-chief workers
LR_CHOICE = (
    "not scaled: the global batch is --batch-size whatever the number of replicas, so every step "
    "averages the gradient over the same samples as on one device and keeps its learning rate"
)


def split_cpu(count: int) -> list:
    """``count`` logical CPU devices (tests, benchmarks); call it before TensorFlow uses its devices."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    return tf.config.list_logical_devices("CPU")


def tf_config(environ=None) -> dict:
    """``TF_CONFIG`` (the cluster, this process's task), checked: a ``ConfigError`` naming it if unusable."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG")
    need = (
        'TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    if not text:
        raise ConfigError(
            f"--strategy multiworker needs the environment variable TF_CONFIG: {need}. "
            "Received: TF_CONFIG unset"
        )
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{need} ({error}). Received: TF_CONFIG={text!r}") from None
    cluster, task = (spec.get("cluster"), spec.get("task")) if isinstance(spec, dict) else (None, None)
    roles = cluster if isinstance(cluster, dict) else {}
    ok = (
        roles
        and set(roles) <= {"chief", "worker"}
        and all(
            isinstance(v, list) and v and all(isinstance(a, str) and ":" in a for a in v)
            for v in roles.values()
        )
        and isinstance(task, dict)
        and task.get("type") in roles
        and isinstance(task.get("index"), int)
        and 0 <= task["index"] < len(roles[task["type"]])
    )
    if not ok:
        raise ConfigError(
            f"{need}: chief/worker lists of host:port, and this process's task among them. "
            f"Received: TF_CONFIG={text!r}"
        )
    return spec


def is_chief(environ=None) -> bool:
    """The process that writes the run folder: ``chief``, or worker 0 of a cluster without one."""
    spec = tf_config(environ)
    task = spec["task"]
    return task["type"] == "chief" or ("chief" not in spec["cluster"] and task["index"] == 0)


@functools.cache
def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy of ``--strategy name`` (one per process: MultiWorkerMirroredStrategy can be made once)."""
    if name not in STRATEGIES:
        raise ConfigError(f"--strategy must be one of {STRATEGIES}. Received: --strategy {name!r}")
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "multiworker":
        tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
        d.name for d in tf.config.list_logical_devices("CPU")
    ]
    if len(devices) == 1:
        log.warning(
            "--strategy mirrored: one device (%s), so one replica and no batch split; MirroredStrategy "
            "splits batches over the GPUs of this machine (or logical CPU devices configured before "
            "TensorFlow starts, as mer_keras.distribute.split_cpu does for tests)",
            devices[0],
        )
    return tf.distribute.MirroredStrategy(devices)


def one_device(strategy) -> bool:
    """No strategy, or TensorFlow's default one: nothing is replicated."""
    return strategy is None or not isinstance(
        strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
    )


def scope(strategy):
    """``strategy.scope()``, or nothing for no strategy."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def _multiworker(strategy) -> bool:
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._num_workers > 1
    )


def for_strategy(model, strategy):
    """The model to compile and fit under ``strategy``; call it outside the scope its layers were built in.

    Under MultiWorkerMirroredStrategy Keras 3.15 fails twice (keras-team/keras#20585): it averages a batch
    of data over workers to build a model made inside a scope, and each step's scalar logs with
    ``strategy.reduce("MEAN", v, axis=0)``. So there the model is made outside the scope (it then takes
    the strategy of the scope ``fit`` runs in, and builds its metrics and optimizer in the first step)
    and its steps return 1-element logs, which that reduction averages into the same scalars.
    """
    if not _multiworker(strategy):
        return model
    if tf.distribute.has_strategy():
        raise RuntimeError("for_strategy: call it outside the strategy's scope")
    model = keras.Model(model.inputs, model.outputs, name=f"{model.name}_multiworker")
    for name in ("train_step", "test_step"):
        step = getattr(model, name)
        setattr(model, name, lambda data, step=step: {k: tf.reshape(v, [1]) for k, v in step(data).items()})
    return model


class _StartClock(keras.callbacks.Callback):
    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_train_begin(self, logs=None):
        self.clock.started = True


def epoch_clock(strategy, first_epoch: int, callbacks=()):
    """``(EpochClock, callbacks)`` for a fit under ``strategy`` starting at ``first_epoch``.

    Keras builds a model made in a strategy's scope from one batch that it reads before training: that
    pass over the training data must not count as an epoch, so the clock starts with the training.
    """
    from mer_keras.pipeline.tfdata import EpochClock

    reads_first = not one_device(strategy) and not _multiworker(strategy)
    clock = EpochClock(first_epoch, started=not reads_first)
    return clock, [*callbacks, _StartClock(clock)] if reads_first else list(callbacks)


def shard_by_data(dataset: tf.data.Dataset, strategy) -> tf.data.Dataset:
    """``dataset`` with the DATA auto-shard policy under a strategy: every worker runs the whole (in-memory)
    pipeline and keeps its share of each batch; FILE sharding has no files to split here."""
    if one_device(strategy):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def worker_config(config):
    """``config`` for this process: under multiworker a non-chief worker writes a temporary run folder.

    Every worker runs the whole run (they train together); only the chief writes ``config.out``, as
    TensorFlow's multi-worker guide advises. The worker's folder is kept until the run is complete, so
    that a ``--resume`` on the same machines continues every worker at the same epoch.
    """
    if config.training.strategy != "multiworker" or is_chief():
        return config
    root = Path(tempfile.gettempdir()) / WORKERS_DIR
    if Path(config.out).resolve().is_relative_to(root.resolve()):
        return config  # already this worker's folder
    task = tf_config()["task"]
    digest = hashlib.sha1(str(Path(config.out).resolve()).encode()).hexdigest()[:12]
    out = root / f"{task['type']}{task['index']}-{digest}"
    if not config.resume and out.exists():  # a stale folder of an earlier run with the same --out
        shutil.rmtree(out)
    return dataclasses.replace(config, out=str(out))


def discard_worker_folder(out) -> None:
    """Deletes a non-chief worker's temporary run folder once its run is complete."""
    root = (Path(tempfile.gettempdir()) / WORKERS_DIR).resolve()
    if Path(out).resolve().is_relative_to(root):
        shutil.rmtree(out, ignore_errors=True)


def check_in_step(strategy, folder, epoch: int, done: bool) -> None:
    """Under multiworker, refuses to start a fit unless every worker starts the same one at the same epoch.

    Workers that disagree (a worker's temporary folder lost, a fold finished on the chief only) would
    otherwise train different folds or epochs together, or wait for each other forever.
    """
    if not _multiworker(strategy):
        return
    state = tf.constant([[zlib.crc32(Path(folder).name.encode()), int(epoch), int(done)]], tf.int64)
    states = strategy.gather(strategy.run(lambda: tf.identity(state)), axis=0).numpy()  # one row a replica
    if not (states == states[0]).all():
        raise ConfigError(
            f"{folder}: the workers are not at the same fit (this worker: {Path(folder).name}, epoch "
            f"{epoch}, finished {done}); a worker's run folder differs from the chief's (lost, or "
            "another run). Start a new run folder."
        )


def describe(strategy, training) -> dict:
    """What config.json records: strategy, replicas, the batch each gets, the learning rate used."""
    replicas = 1 if one_device(strategy) else strategy.num_replicas_in_sync
    shares = [len(part) for part in np.array_split(np.arange(training.batch_size), replicas)]
    record = {
        "strategy": training.strategy,
        "replicas": replicas,
        "devices": [] if one_device(strategy) else list(strategy.extended.worker_devices),  # this worker's
        "global_batch": training.batch_size,
        "per_replica_batch": shares[0] if len(set(shares)) == 1 else shares,
        "learning_rate": training.lr,
        "learning_rate_scaled_with_replicas": False,
        "learning_rate_choice": LR_CHOICE,
    }
    if training.strategy == "multiworker":
        spec = tf_config()
        record.update({"cluster": spec["cluster"], "task": spec["task"], "chief": is_chief()})
    return record
