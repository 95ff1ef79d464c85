"""One run of an experiment, start to finish, as a row of named steps.

config -> run folder -> dataset plan -> folds -> backbone (and where it is cut) -> frame cache
-> config.json -> cross-validation -> summary -> reports -> final model. Everything a run did is
in its folder; a killed run continues with ``--resume``, keeping the folds it finished.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from mer_keras import metrics, reports
from mer_keras.backbone import split_backbone, with_preprocessing
from mer_keras.backbone.build import build_backbone
from mer_keras.config import ConfigError, RunConfig, check_only_folds
from mer_keras.crossval import DONE, Trainer, cross_validate
from mer_keras.dataset_plan import DatasetPlan, find_faces, plan_dataset
from mer_keras.deviations import deviations
from mer_keras.distribute import describe as describe_strategy
from mer_keras.distribute import discard_worker_folder, make_strategy, worker_config
from mer_keras.executors import fold_executor
from mer_keras.files import read_json, write_json
from mer_keras.final_model import final_epochs, train_final
from mer_keras.flow import flow_frame_cache
from mer_keras.fold_lock import LOCK
from mer_keras.gradcam.sweep import choose_layer, choose_retrain_layer, describe_regions
from mer_keras.machine import library_versions, machine, package_commit
from mer_keras.models import FLOW_KINDS
from mer_keras.online_model import raw_frame_encoder
from mer_keras.oracle import oracle_summary
from mer_keras.pipeline.augment import variant_names
from mer_keras.pipeline.feature_store import frames_digest
from mer_keras.pipeline.frame_cache import build_frame_cache
from mer_keras.pipeline.raw_frames import build_raw_frame_cache
from mer_keras.pipeline.windows import balanced_indices, build_frame_table
from mer_keras.presets import preset_record
from mer_keras.protocols import make_folds
from mer_keras.uncertainty import bootstrap_ci

log = logging.getLogger("mer_keras")
CI_RESAMPLES = 2000  # subject-level bootstrap resamples for the 95 % intervals of pooled scores


def prepare_run_folder(config: RunConfig) -> Path:
    """The run folder: new unless ``--resume``, which needs the same result-changing options."""
    out = Path(config.out)
    previous = out / "config.json"
    if config.resume and not previous.exists() and config.only_folds is not None:
        # --only-folds --resume: jobs of one array start together, and the first one starts the run
        log.warning("%s: no run there yet; --only-folds starts it", out)
    elif config.resume:
        if not previous.exists():
            raise FileNotFoundError(f"{previous}: no run to resume in {out}.")
        changed = config.differences(RunConfig.from_json(previous))
        if changed:
            raise ConfigError(f"{previous}: --resume with options that change the run: {'; '.join(changed)}.")
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out."
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def choose_retrain_from(config: RunConfig, backbone, plan: DatasetPlan, out: Path):
    """``(retrain_from, choice)``: ``--retrain-from`` as given, or for ``auto`` the Grad-CAM choice.

    ``auto`` sweeps the untrained backbone once per run (label-free target: the mean pooled feature),
    so no fold's test results are looked at; a resumed run reuses the choice in its config.json.
    """
    if config.model.retrain_from != "auto":
        return config.model.retrain_from, None
    previous = out / "config.json"
    if config.resume and previous.exists():
        choice = read_json(previous)["record"]["backbone_split"]["auto"]
        return choice["retrain_from"], choice
    retrain_from, scores = choose_retrain_layer(
        backbone, plan.clips, config.data.image_size, classes=plan.classes, seed=config.protocol.seed
    )
    choice = {
        "retrain_from": retrain_from,
        "chosen_layer": choose_layer(scores),
        "focus_before_training": scores,
        "regions": describe_regions(plan.clips),
        "how": "Grad-CAM of the mean pooled feature on the untrained backbone, 3 frames per class; "
        "the block whose output has the best focus is the first one retrained",
    }
    print(
        f"--retrain-from auto: {choice['chosen_layer']} focuses best -> retraining from {retrain_from}",
        flush=True,
    )
    return retrain_from, choice


def fold_counts(trainer: Trainer, folds) -> list:
    """Clips, frames and windows per class in every part of every fold (for config.json)."""
    classes, counts = trainer.classes, []
    for fold in folds:
        entry = {"fold": fold.index}
        for part in ("train", "validation", "test"):
            clips = getattr(fold, part)
            if not clips:
                entry[part] = {"clips": 0}
                continue
            windows = trainer.windows(clips)
            entry[part] = {
                "subjects": fold.subjects(part),
                "clips": {k: sum(c.label == k for c in clips) for k in classes},
                "frames": {k: sum(len(c) for c in clips if c.label == k) for k in classes},
                "windows": windows.counts(classes),
            }
            if part == "train" and trainer.config.data.balance:
                scale = trainer.config.data.balance_scale
                picked = balanced_indices(windows.labels, len(classes), np.random.default_rng(0), scale=scale)
                entry[part]["windows_after_balancing"] = {
                    k: int(np.sum(windows.labels[picked] == i)) for i, k in enumerate(classes)
                }
        counts.append(entry)
    return counts


@dataclass(frozen=True)
class PreparedRun:
    """What every fold of a run shares, made before the first: folder, clips, folds, backbone, trainer."""

    out: Path
    plan: DatasetPlan
    folds: list
    backbone: keras.Model
    trainer: Trainer
    record: dict  # what config.json says the run used, besides its config


def prepare_run(config: RunConfig, frame_cache=None) -> PreparedRun:
    """Run folder, dataset plan, folds, backbone and its split, frame cache; ``config.json`` written.

    ``frame_cache``: what makes the frame cache, called as ``build_frame_cache`` (the default) is;
    a sweep passes one that computes the frames of all its runs once (``shared_frames``).
    """
    strategy = make_strategy(config.training.strategy)  # first: MultiWorkerMirroredStrategy precedes ops
    config = worker_config(config)
    out = prepare_run_folder(config)
    if config.training.deterministic:  # stays on for the rest of the process (TensorFlow has no way back)
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.protocol.seed)
    keras.mixed_precision.set_global_policy(config.training.precision)
    plan = plan_dataset(config.data, config.n)
    folds = make_folds(plan.clips, config.protocol)
    if config.only_folds is not None:
        check_only_folds(config.only_folds, len(folds))
    size, head = config.data.image_size, config.model.head
    faces, face_record = find_faces(plan, config.data, out)
    table = build_frame_table(plan.planned, faces)
    variants = variant_names(config.data.flip, config.data.rotation)
    if config.kind in FLOW_KINDS:  # the flow baselines: no backbone, one flow image per clip
        backbone, prefix, suffix, retrain_from, choice = None, None, None, "none", None
        weights = {
            "source": "none",
            "reason": f"{config.experiment} learns from the optical flow, no backbone",
        }
    else:
        # motion is measured on the unpooled maps of the backbone's last stage
        with strategy.scope():  # the variables of the trainable suffix live on every replica
            backbone, weights = build_backbone(
                config.model.backbone, config.model.weights, size, config.data.synthetic, pooling=head.pooling
            )
        retrain_from, choice = choose_retrain_from(config, backbone, plan, out)
        prefix, suffix = split_backbone(backbone, retrain_from)
    identity = run_identity(plan, folds, table, weights)
    if config.resume:
        check_same_data(out / "config.json", identity)
    online = config.data.augment == "online"
    standardized = config.model.head.standardize and suffix is None and not online
    found = deviations(
        config, weights=weights, retrain_from=retrain_from, standardized=standardized, variants=variants
    )
    record = {
        "versions": library_versions(),
        "machine": machine(),
        "code": package_commit(),
        "data": {
            "root": plan.root,
            "synthetic": config.data.synthetic,
            "clips": len(plan.clips),
            "subjects": len({c.subject for c in plan.clips}),
            "classes": list(plan.classes),
            "fps": sorted({float(c.fps) for c in plan.clips}),
        },
        "weights": weights,
        "seeds": {
            "folds": config.protocol.seed,
            "training": config.protocol.seed,
            "note": "fold k trains with seed + k, the final model with seed + 1000; "
            "keras.utils.set_random_seed(seed) at start",
        },
        "backbone_split": {"retrain_from": retrain_from, "auto": choice},
        "short_clips": plan.short_report,
        "faces": face_record,
        "identity": identity,
        "preset": preset_record(config),
        "deviations_from_paper": found,
        "distribute": describe_strategy(strategy, config.training),
    }
    write_json(out / "config.json", {"config": config.to_dict(), "record": record})  # before the long caching
    encoder = None
    if backbone is None:
        cache, record["flow"] = flow_frame_cache(
            plan.clips, config.data.flow_size, config.data.apex, progress=config.verbose > 0
        )
    elif online:  # uint8 frames; the training model augments them, then runs the whole backbone
        if suffix is None:
            log.warning(
                "--augment online with the whole backbone frozen (--retrain-from none): every training "
                "step runs the frozen backbone on every frame it augments, which is slow; --augment "
                "cached runs it once per frame and variant"
            )
        cache = build_raw_frame_cache(table, size, cache_dir=config.cache_dir, progress=config.verbose > 0)
        encoder = raw_frame_encoder(prefix, suffix, size)
    else:
        cache = (frame_cache or build_frame_cache)(
            table,
            with_preprocessing(prefix, size),
            size,
            variants,
            cache_dir=config.cache_dir,
            weights=weights,
            progress=config.verbose > 0,
        )
    encoder = encoder or suffix
    trainer = Trainer(
        config,
        plan.classes,
        cache,
        encoder,
        tuple(encoder.get_weights()) if encoder else (),
        strategy=strategy,
        online=online,
    )
    record.update({"frame_cache": cache.record(), "folds": fold_counts(trainer, folds)})
    write_json(out / "config.json", {"config": config.to_dict(), "record": record})
    return PreparedRun(out, plan, folds, backbone, trainer, record)


def run_identity(plan: DatasetPlan, folds, table, weights) -> dict:
    """What the run computes on besides its options: the clips, their frame files, the folds, the weights."""
    return {
        "clips": [f"{c.key}|{c.label}|{len(c)}" for c in plan.clips],
        "frames_sha256": frames_digest(table),
        "folds": [fold.subjects("test") for fold in folds],
        "weights_sha256": weights.get("sha256"),
    }


def check_same_data(previous_path: Path, identity: dict) -> None:
    """``--resume`` on changed data (clips, labels, frame files, folds, weights) is refused."""
    before = read_json(previous_path)["record"].get("identity")
    if before is None:  # killed before its record was written: nothing to compare, nothing trained yet
        return
    problems = []
    old, new = set(before["clips"]), set(identity["clips"])
    if old != new:
        gone, added = sorted(old - new), sorted(new - old)
        problems.append(
            f"clips differ ({len(gone)} gone or changed, e.g. {gone[:3]}; {len(added)} new or changed, "
            f"e.g. {added[:3]})"
        )
    elif before["frames_sha256"] != identity["frames_sha256"]:
        problems.append("frame files changed (paths, sizes or modification times)")
    if before["folds"] != identity["folds"]:
        problems.append("the folds' test subjects differ")
    if before["weights_sha256"] != identity["weights_sha256"]:
        problems.append(f"weights differ (sha256 {before['weights_sha256']} -> {identity['weights_sha256']})")
    if problems:
        raise ConfigError(
            f"{previous_path}: --resume on data that changed since the run began: {'; '.join(problems)}. "
            "Start a new run folder."
        )


def run_experiment(config: RunConfig, callbacks=(), frame_cache=None) -> dict:
    """Run one experiment as ``config`` describes it; returns the results summary.

    With ``--only-folds`` only those folds are trained; while a fold of the run is missing nothing
    pooled is written and the summary is ``{"complete": False, "finished": [...], "missing": [...]}``.
    ``callbacks`` are extra Keras callbacks for every fit (e.g. to stop a run in a test);
    ``frame_cache``: see ``prepare_run``.
    """
    started = time.perf_counter()
    executor = fold_executor(config)  # before the caching: a missing Ray or a bad address fails at once
    run = prepare_run(config, frame_cache)
    done_before = {f.index for f in run.folds if (run.out / f"fold_{f.index}" / DONE).exists()}
    results = executor(run, callbacks, only=config.only_folds)
    asked = [f.index for f in run.folds if config.only_folds is None or f.index in config.only_folds]
    finished = [f.index for f, r in zip(run.folds, results) if r is not None]
    missing = [f.index for f, r in zip(run.folds, results) if r is None]
    record_invocation(
        run.out,
        "train",
        only_folds=config.only_folds,
        trained=[k for k in asked if k in finished and k not in done_before],
        skipped=[k for k in asked if k in missing],
        missing=missing,
    )
    if missing:
        print(
            f"run folder: {run.out}\nfinished folds: {_listed(finished)}; missing folds: {_listed(missing)}."
            f"\nOnce every fold is there: python -m experiments.collect {run.out}",
            flush=True,
        )
        return {"complete": False, "finished": finished, "missing": missing}
    summary = finish_run(config, run, results, started, callbacks)
    discard_worker_folder(run.out)
    return summary


def finish_run(config: RunConfig, run: PreparedRun, results, started: float, callbacks=()) -> dict:
    """Pool every fold's results into the summary, CIs, oracle, final model (``config.final``) and reports."""
    out, plan, trainer = run.out, run.plan, run.trainer
    predictions = pd.concat([r.predictions for r in results], ignore_index=True)
    summary = metrics.summarize(results, plan.classes, {c.key: c.dataset for c in plan.clips})
    summary["ci"] = bootstrap_ci(
        predictions, list(plan.classes), resamples=CI_RESAMPLES, seed=config.protocol.seed
    )
    summary["oracle"] = oracle_summary(results, plan.classes)
    summary["export"] = (
        train_final(trainer, plan.clips, run.backbone, out, final_epochs(results), callbacks)
        if config.final
        else None
    )
    summary["data_number"] = int(sum(len(trainer.windows([c])) for c in plan.clips))
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["deviations_from_paper"] = run.record["deviations_from_paper"]
    markdown = reports.write_reports(out, config, summary, results, predictions, plan.root)
    print(markdown)
    print(reports.results_text(summary))
    print(f"run folder: {out}")
    return summary


def collect_run(run_dir, final: bool = False, callbacks=()) -> dict:
    """Pool a run whose folds were trained by several invocations (``--only-folds``); trains no fold.

    Refuses (``ConfigError`` naming the missing folds, nothing written) unless every fold is
    finished; checks options and data as ``--resume`` does; trains the final model with ``final``.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists() and any(run_dir.glob("seed_*/config.json")):
        raise ConfigError(f"{run_dir}: a --seeds folder; collect one seed_K folder at a time.")
    config = RunConfig.from_json(run_dir)
    folds = read_json(run_dir / "config.json").get("record", {}).get("identity", {}).get("folds")
    if folds is None:
        raise ConfigError(
            f"{run_dir / 'config.json'}: the run stopped before its folds were made; no fold to collect."
        )
    missing = [k for k in range(len(folds)) if not (run_dir / f"fold_{k}" / DONE).exists()]
    if missing:
        busy = [k for k in missing if (run_dir / f"fold_{k}" / LOCK).exists()]
        raise ConfigError(
            f"{run_dir}: {'fold' if len(missing) == 1 else 'folds'} {_listed(missing)} of {len(folds)} "
            f"{'is' if len(missing) == 1 else 'are'} not finished (no fold_K/{DONE})"
            + (f", {_listed(busy)} being trained (fold_K/{LOCK})" if busy else "")
            + f"; train them with --only-folds {','.join(map(str, missing))} --resume, then collect again."
        )
    config = dataclasses.replace(config, out=str(run_dir), resume=True, only_folds=(), final=final)
    run = prepare_run(config)
    results = cross_validate(run.trainer, run.folds, run.out, callbacks, only=())
    if any(r is None for r in results):  # the folds were made anew and differ: check_same_data refuses first
        raise ConfigError(f"{run_dir}: the folds of the data differ from the run's.")
    record_invocation(run_dir, "collect", final=final)
    return finish_run(config, run, results, started, callbacks)


INVOCATIONS = "invocations.jsonl"


def record_invocation(out: Path, command: str, **facts) -> None:
    """Append one line to ``OUT/invocations.jsonl``: what this invocation did, where and when.

    A line per invocation (one ``O_APPEND`` write), since invocations on other machines may run at
    once and every one rewrites ``config.json``.
    """
    line = {
        "command": command,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        **{k: list(v) if isinstance(v, tuple) else v for k, v in facts.items()},
    }
    fd = os.open(out / INVOCATIONS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def _listed(folds) -> str:
    return ", ".join(map(str, folds)) or "none"
