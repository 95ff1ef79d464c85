"""Cross-validation, pooled results and the final exported model of one experiment run."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from mer_keras import metrics, reports
from mer_keras.experiment import PATTERN, Run
from mer_keras.pipeline.windows import balanced_indices
from mer_keras.provenance import deviations, versions

log = logging.getLogger("mer_keras")


def fold_counts(run) -> list:
    """Clips, frames and windows per class in every part of every fold (for config.json)."""
    counts = []
    for fold in run.folds:
        entry = {"fold": fold.index}
        for part in ("train", "validation", "test"):
            clips = getattr(fold, part)
            if not clips:
                entry[part] = {"clips": 0}
                continue
            windows = run.windows(clips)
            entry[part] = {
                "subjects": fold.subjects(part),
                "clips": {k: sum(c.label == k for c in clips) for k in run.classes},
                "frames": {k: sum(len(c) for c in clips if c.label == k) for k in run.classes},
                "windows": windows.counts(run.classes),
            }
            if part == "train" and run.options.balance:
                picked = balanced_indices(windows.labels, len(run.classes), np.random.default_rng(0))
                entry[part]["windows_after_balancing"] = {
                    k: int(np.sum(windows.labels[picked] == i)) for i, k in enumerate(run.classes)}
        counts.append(entry)
    return counts


def write_config(run) -> dict:
    config = {
        "options": vars(run.options),
        "versions": versions(),
        "data": {"root": run.data_root, "synthetic": run.synthetic, "clips": len(run.clips),
                 "subjects": len({c.subject for c in run.clips}), "classes": run.classes},
        "weights": run.weights,
        "precision": run.precision,
        "seeds": {"folds": run.options.seed, "training": run.options.seed,
                  "note": "fold k trains with seed + k; keras.utils.set_random_seed(seed) at start"},
        "backbone_split": {"retrain_from": run.retrain_from, "auto": run.retrain_choice, "train_batchnorm": False},
        "short_clips": run.short_report,
        "frame_cache": {"distinct_frames": len(run.table), "interpolated_frames": run.table.interpolated,
                        "variants": list(run.variants), "feature_shape": list(run.frame_shape),
                        "seconds": round(run.cache_seconds, 1), "bytes": run.cache_bytes,
                        "storage": "memory" if run.cache_dir is None else str(run.cache_dir)},
        "folds": fold_counts(run),
        "deviations_from_paper": deviations(run),
    }
    reports.write_json(run.out / "config.json", config)
    return config


def _prediction_rows(clips, probs, classes, fold):
    predicted = metrics.probs_to_labels(probs, classes)
    return [{"clip": c.key, "subject": c.subject, "true": c.label, "predicted": p, "probs": list(q),
             "fold": fold} for c, p, q in zip(clips, predicted, probs)]


def run_fold(run, fold) -> dict:
    """Train, select on validation, test; ``metrics.json`` is written last and marks the fold done."""
    folder = run.out / f"fold_{fold.index}"
    done = folder / "metrics.json"
    if done.exists():
        log.info("fold %d already finished: kept as it is", fold.index)
        return reports.read_json(done)
    started = time.perf_counter()
    model, history, samples = run.train(fold.train, fold.validation, folder, run.options.seed + fold.index)
    clips, probs = run.predict(model, list(fold.test))
    rows = _prediction_rows(clips, probs, run.classes, fold.index)
    reports.write_predictions_csv(folder / "predictions.csv", rows, run.classes)
    result = {
        "fold": fold.index,
        "test_subjects": fold.subjects("test"),
        "metrics": metrics.clip_metrics([r["true"] for r in rows], [r["predicted"] for r in rows], run.classes),
        "training_samples_per_epoch": samples,
        "epochs_run": len(history.get("loss", [])),
        "selected_epoch": _selected_epoch(history),
        "history": history,
        "seconds": round(time.perf_counter() - started, 1),
    }
    reports.write_json(done, result)
    return result


def _selected_epoch(history) -> int | None:
    key = "val_loss" if "val_loss" in history else "loss"
    values = history.get(key) or []
    return int(np.nanargmin(values)) + 1 if values else None


def train_final(run) -> dict:
    """One model on all subjects (validation carved from them), exported for use on new clips."""
    from mer_keras.export import cached_inputs, inference_model, sample_inputs, save_and_export
    from mer_keras.protocols import carve_validation

    folder = run.out / "final"
    if (folder / "export.json").exists():
        return reports.read_json(folder / "export.json")
    train, validation = carve_validation(run.clips, run.options.validation_fraction, run.options.seed)
    model, _, _ = run.train(train, validation, folder, run.options.seed + 1000)
    full = inference_model(run, model)
    clips = list(validation or train)
    reference = model(cached_inputs(run, clips), training=False)  # one call: frames and index stay together
    return save_and_export(full, folder, sample_inputs(run, clips), reference)


def per_dataset_metrics(predictions: pd.DataFrame, run) -> dict:
    """Pooled metrics of each source dataset of a composite (as MEGC2019 reports); {} for one source."""
    source = {c.key: c.dataset for c in run.clips}
    datasets = predictions["clip"].map(source)
    if datasets.nunique() < 2:
        return {}
    return {name: metrics.clip_metrics(part["true"].tolist(), part["predicted"].tolist(), run.classes)
            for name, part in predictions.groupby(datasets, sort=True)}


def run_experiment(options) -> dict:
    """Run one experiment as the command line describes it; returns the results summary."""
    started = time.perf_counter()
    run = Run(options)
    config = write_config(run)
    fold_results = [run_fold(run, fold) for fold in run.folds]
    predictions = pd.concat([pd.read_csv(run.out / f"fold_{r['fold']}" / "predictions.csv")
                             for r in fold_results], ignore_index=True)
    reports.write_text(run.out / "predictions.csv", predictions.to_csv(index=False))
    pooled = metrics.clip_metrics(predictions["true"].tolist(), predictions["predicted"].tolist(), run.classes)
    summary = metrics.summarize_folds([r["metrics"] for r in fold_results], pooled)
    summary["per_dataset"] = per_dataset_metrics(predictions, run)
    reports.plot_confusion(run.out / "confusion.png", pooled["confusion"], run.classes,
                           title=f"{options.experiment} pooled over {len(fold_results)} folds")
    reports.plot_curves(run.out / "curves.png", {f"fold {r['fold']}": r["history"] for r in fold_results})
    data_number = int(sum(len(run.windows([c])) for c in run.clips))
    summary["export"] = train_final(run) if options.final else None
    summary["data_number"] = data_number
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["deviations_from_paper"] = config["deviations_from_paper"]
    reports.write_json(run.out / "results.json", summary)
    kind = run.kind
    markdown = reports.results_markdown(
        summary, experiment=options.experiment, pattern=PATTERN[kind], n=run.n if kind != "frame" else None,
        data_number=data_number, method_name=f"VGGFace2{'' if kind == 'frame' else '+' + PATTERN[kind]} (ours)",
        dataset="synthetic SMIC-like" if run.synthetic else run.data_root, protocol=options.protocol)
    if summary["per_dataset"]:
        markdown += "\n" + reports.per_dataset_markdown(summary["per_dataset"])
    reports.write_text(run.out / "results.md", markdown)
    print(markdown)
    print(reports.results_text(summary))
    print(f"run folder: {run.out}")
    return summary
