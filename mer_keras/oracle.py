"""The oracle figure: each test fold scored after every epoch, the best epoch picked on the test subjects.

Much of the literature reports this (HTNet's and MMNet's code keep, per test subject, the epoch that
scored best on it). We never select on test subjects: the checkpoint is chosen on validation
subjects carved from the training fold. The per-epoch test predictions are kept only so that the
report can show the honest figure beside the oracle one and the gap between them.
"""

from __future__ import annotations

from pathlib import Path

import keras
import pandas as pd

from mer_keras import metrics
from mer_keras.files import write_text

EPOCH_PREDICTIONS = "epoch_predictions.csv"
HOW = (
    "per fold, the epoch with the best test accuracy (ties: best test UF1, then the earliest epoch); "
    "selected on the test subjects, so optimistic: shown for comparison with published figures, never used"
)


class EpochPredictions(keras.callbacks.Callback):
    """After every epoch, the test clips' predictions appended to ``epoch_predictions.csv`` (report only)."""

    def __init__(self, predict, path):
        super().__init__()
        self.predict, self.path = predict, Path(path)

    def on_epoch_end(self, epoch, logs=None):
        table = self.predict(self.model)
        table.insert(0, "epoch", epoch + 1)
        previous = read_epoch_predictions(self.path)
        if previous is not None:  # a fit resumed by BackupAndRestore may repeat an epoch: the new one counts
            table = pd.concat([previous[previous["epoch"] != epoch + 1], table], ignore_index=True)
        write_text(self.path, table.to_csv(index=False))


def read_epoch_predictions(path):
    path = Path(path)
    return pd.read_csv(path, float_precision="round_trip") if path.is_file() else None


def oracle_epoch(epoch_predictions: pd.DataFrame, classes) -> tuple[int, pd.DataFrame]:
    """``(epoch, its predictions)``: the epoch whose test predictions score best (see ``HOW``)."""
    ranked = []
    for epoch, table in epoch_predictions.groupby("epoch", sort=True):
        scores = metrics.clip_metrics(table["true"].tolist(), table["predicted"].tolist(), classes)
        ranked.append((scores["accuracy"], scores["uf1"], -int(epoch)))
    best = -max(ranked)[2]
    chosen = epoch_predictions[epoch_predictions["epoch"] == best].drop(columns="epoch")
    return best, chosen.reset_index(drop=True)


def oracle_summary(fold_results, classes) -> dict | None:
    """Pooled oracle scores beside the honest ones, the gap, and each fold's honest and oracle epoch."""
    if not fold_results or any(r.epoch_predictions is None for r in fold_results):
        return None
    picked = [(r, *oracle_epoch(r.epoch_predictions, classes)) for r in fold_results]
    oracle = pd.concat([table for _, _, table in picked], ignore_index=True)
    honest = pd.concat([r.predictions for r in fold_results], ignore_index=True)
    scores = {
        name: metrics.clip_metrics(t["true"].tolist(), t["predicted"].tolist(), classes)
        for name, t in (("honest", honest), ("oracle", oracle))
    }
    return {
        "how": HOW,
        "honest": {k: scores["honest"][k] for k in metrics.SCORES},
        "oracle": {k: scores["oracle"][k] for k in metrics.SCORES},
        "gap": {k: scores["oracle"][k] - scores["honest"][k] for k in metrics.SCORES},
        "folds": [
            {
                "fold": r.fold,
                "honest_epoch": r.selected_epoch,
                "oracle_epoch": epoch,
                "honest_accuracy": r.metrics["accuracy"],
                "oracle_accuracy": metrics.clip_metrics(t["true"].tolist(), t["predicted"].tolist(), classes)[
                    "accuracy"
                ],
            }
            for r, epoch, t in picked
        ],
    }
