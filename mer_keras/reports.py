"""Writing a run's results: predictions CSV, figures, results.md and the console summary (atomically)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mer_keras.files import save_figure, write_json, write_text
from mer_keras.plots import confusion_figure, curves_figure

# Accuracy the paper reports on SMIC-HS, 4 classes (negative, positive, surprise, non-micro).
PAPER_TABLE3 = [  # pattern, f_N, data number, score
    ("3-Layer-LSTM", 13, 11276, 0.5758),
    ("3-Layer-LSTM", 15, 9114, 0.5607),
    ("Bi-LSTM", 13, 11276, 0.6060),
    ("Bi-LSTM", 15, 9114, 0.4607),
]
PAPER_TABLE4 = [  # method, accuracy
    ("VGGFace2 (Exp-I)", 0.302),
    ("VGGFace2+LSTM (Exp-II)", 0.5909),
    ("VGGFace2+Bi-LSTM (Exp-III)", 0.6006),
]
_SUMMARY_KEYS = (
    "accuracy",
    "uf1",
    "uar",
    "n",
    "classes",
    "per_class",
    "confusion",
    "n_folds",
    "fold_mean",
    "fold_std",
    "folds",
)


def plot_confusion(path, confusion, classes, title: str = "") -> Path:
    """confusion.png like the paper's Figure 3: counts and row-normalised % per cell."""
    return save_figure(path, confusion_figure(confusion, classes, title))


def plot_curves(path, histories: Mapping) -> Path:
    """curves.png: loss and accuracy per epoch for each fold, train and validation."""
    return save_figure(path, curves_figure(histories))


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def _mean_std(summary, key) -> str:
    return f"{100 * summary['fold_mean'][key]:.2f} ± {100 * summary['fold_std'][key]:.2f} %"


def _row(*cells) -> str:
    return "| " + " | ".join("—" if c is None else str(c).replace("|", "\\|") for c in cells) + " |"


def _table(header, rows) -> list[str]:
    return [_row(*header), _row(*["---"] * len(header))] + [_row(*r) for r in rows]


def _check_summary(summary) -> None:
    missing = [k for k in _SUMMARY_KEYS if k not in summary]
    if missing:
        raise ValueError(
            f"summary must come from metrics.summarize_folds; it lacks {missing}. "
            f"Received keys: {list(summary)}"
        )


def results_markdown(summary, *, experiment, pattern, n, data_number, method_name, dataset, protocol) -> str:
    """results.md: tables shaped like the paper's Tables 3 and 4, per class, confusion, per fold.

    ``n`` is f_N (frames per window, None for Exp-I); ``data_number`` the training windows
    or frames (the paper's "Data Number").
    """
    _check_summary(summary)
    classes = [str(c) for c in summary["classes"]]
    folds = summary["n_folds"]
    t3 = [(pattern, n, data_number, _pct(summary["accuracy"]), "this run, pooled accuracy")]
    t3 += [(p, fn, dn, _pct(s), "paper, Table 3") for p, fn, dn, s in PAPER_TABLE3]
    ci = summary.get("ci")
    t4 = [
        (
            method_name,
            *(_with_ci(summary, k) for k in ("accuracy", "uf1", "uar")),
            "this run, pooled" + (" [95 % CI]" if ci else ""),
        ),
        (
            method_name,
            *(_mean_std(summary, k) for k in ("accuracy", "uf1", "uar")),
            f"this run, mean ± std over {folds} folds",
        ),
    ]
    t4 += [(m, _pct(a), None, None, "paper, Table 4") for m, a in PAPER_TABLE4]
    per_class = [
        (c, _pct(v["precision"]), _pct(v["recall"]), _pct(v["f1"]), v["support"])
        for c, v in summary["per_class"].items()
    ]
    confusion = [(c, *row) for c, row in zip(classes, summary["confusion"])]
    per_fold = [
        (f.get("fold", i + 1), f.get("n"), _pct(f["accuracy"]), _pct(f["uf1"]), _pct(f["uar"]))
        for i, f in enumerate(summary["folds"])
    ]
    lines = [
        f"# Results: {experiment}, {method_name}",
        "",
        f"Dataset: {dataset}. Protocol: {protocol}. Clips: {summary['n']}. Classes: {', '.join(classes)}.",
        "",
        "Clip-level scores. *Pooled*: over the predictions of all folds together (MEGC2019 UF1 and "
        f"UAR). *Mean ± std*: over the {folds} folds, population std (ddof=0); a fold missing a class "
        "averages UF1/UAR over the classes defined in it.",
        *(
            []
            if not ci
            else [
                "",
                f"[95 % CI]: percentile interval of a bootstrap over subjects ({ci['resamples']} "
                f"resamples of the {ci['n_subjects']} subjects with replacement, all clips of a drawn "
                f"subject kept; seed {ci['seed']}). With few subjects read it as a lower bound on the "
                "uncertainty.",
            ]
        ),
        "",
        "## Table 3 shape: sequence length",
        "",
        *_table(("Pattern", "f_N", "Data Number", "Score", "Source"), t3),
        "",
        "## Table 4 shape: methods",
        "",
        *_table(("Method", "Accuracy", "UF1", "UAR", "Source"), t4),
        "",
        "The paper's figures are for SMIC-HS with 4 classes (negative, positive, surprise, "
        "non-micro) and 5-fold subject-wise cross-validation, accuracy only; they compare with "
        "ours only on that dataset and protocol. The paper is inconsistent with itself: Table 3 "
        "gives 57.58 % (LSTM) and 60.60 % (Bi-LSTM) at N=13, Table 4 gives 59.09 % and 60.06 % "
        "for the same models. Both are listed.",
        "",
        "## Per class (pooled)",
        "",
        *_table(("Class", "Precision", "Recall", "F1", "Support"), per_class),
        "",
        "## Confusion matrix (pooled; rows = true, columns = predicted)",
        "",
        *_table(("true \\ predicted", *classes), confusion),
        "",
        "## Per fold",
        "",
        *_table(("Fold", "Clips", "Accuracy", "UF1", "UAR"), per_fold),
        "",
        *oracle_markdown(summary.get("oracle")),
    ]
    return "\n".join(lines)


def _with_ci(summary, key) -> str:
    ci = (summary.get("ci") or {}).get(key)
    return _pct(summary[key]) + ("" if not ci else f" [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]")


def oracle_markdown(oracle) -> list:
    """The honest figure (what we report) beside the oracle one (best test epoch per fold) and the gap."""
    if not oracle:
        return []
    rows = [
        (name, *(_pct(oracle[name][k]) for k in ("accuracy", "uf1", "uar")), note)
        for name, note in (
            ("honest", "checkpoint selected on validation subjects: quote this"),
            ("oracle", "best epoch per test fold, chosen on the test subjects: do not quote"),
        )
    ]
    rows.append(("gap", *(f"{100 * oracle['gap'][k]:+.2f} points" for k in ("accuracy", "uf1", "uar")), ""))
    epochs = [
        (
            f["fold"],
            f["honest_epoch"],
            _pct(f["honest_accuracy"]),
            f["oracle_epoch"],
            _pct(f["oracle_accuracy"]),
        )
        for f in oracle["folds"]
    ]
    return [
        "## Honest and oracle (pooled)",
        "",
        f"Oracle: {oracle['how']}.",
        "",
        *_table(("Figure", "Accuracy", "UF1", "UAR", ""), rows),
        "",
        *_table(("Fold", "Honest epoch", "Honest accuracy", "Oracle epoch", "Oracle accuracy"), epochs),
        "",
    ]


def results_text(summary) -> str:
    """A few lines for the console at the end of a run."""
    _check_summary(summary)
    scores = ("accuracy", "uf1", "uar")
    names = {"accuracy": "accuracy", "uf1": "UF1", "uar": "UAR"}
    f1 = ", ".join(f"{c} {_pct(v['f1'])}" for c, v in summary["per_class"].items())
    return "\n".join(
        [
            f"Pooled over {summary['n_folds']} folds, {summary['n']} clips: "
            + ", ".join(f"{names[k]} {_with_ci(summary, k)}" for k in scores)
            + (" (95 % CI, bootstrap over subjects)" if summary.get("ci") else ""),
            "Per-fold mean ± std (ddof=0): "
            + ", ".join(f"{names[k]} {_mean_std(summary, k)}" for k in scores),
            f"Per-class F1: {f1}",
        ]
    )


def per_dataset_markdown(per_dataset) -> str:
    """A table of pooled scores per source dataset of a composite (MEGC2019 style)."""
    lines = ["## Per source dataset (pooled)", ""]
    lines += _table(
        ["Dataset", "Clips", "Accuracy", "UF1", "UAR"],
        [
            [name, m["n"], _pct(m["accuracy"]), _pct(m["uf1"]), _pct(m["uar"])]
            for name, m in per_dataset.items()
        ],
    )
    return "\n".join(lines) + "\n"


def write_reports(out, config, summary, fold_results, predictions, dataset_root) -> str:
    """The run's pooled ``predictions.csv``, ``results.json``, ``results.md``, figures; returns results.md."""
    out = Path(out)
    write_text(out / "predictions.csv", predictions.to_csv(index=False))
    write_json(out / "results.json", summary)
    plot_confusion(
        out / "confusion.png",
        summary["confusion"],
        summary["classes"],
        title=f"{config.experiment} pooled over {len(fold_results)} folds",
    )
    plot_curves(out / "curves.png", {f"fold {r.fold}": r.history.to_dict("list") for r in fold_results})
    single = config.model.head.single
    method = {
        "frame": "VGGFace2 (ours)",
        "ststnet": "STSTNet (ours, honest)",
        "offapexnet": "OFF-ApexNet (ours, honest)",
    }.get(config.kind, f"VGGFace2+{config.pattern} (ours)")
    markdown = results_markdown(
        summary,
        experiment=config.experiment,
        pattern=config.pattern,
        n=None if single else config.n,
        data_number=summary["data_number"],
        method_name=method,
        dataset="synthetic SMIC-like" if config.data.synthetic else dataset_root,
        protocol=config.protocol.protocol,
    )
    if summary["per_dataset"]:
        markdown += "\n" + per_dataset_markdown(summary["per_dataset"])
    write_text(out / "results.md", markdown)
    return markdown
