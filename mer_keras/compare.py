"""Two finished runs compared on the same clips: difference of pooled scores, paired CI and p-value.

Refused when the runs do not predict the same clips with the same labels, or ran different
protocols (k-fold vs leave-one-subject-out) or datasets: such differences are not the model's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer_keras.config import RunConfig
from mer_keras.files import read_json
from mer_keras.uncertainty import paired_comparison


def load_finished(run_dir) -> tuple[RunConfig, dict, pd.DataFrame]:
    """``(config, record, pooled predictions)`` of a finished run folder."""
    run_dir = Path(run_dir)
    config = RunConfig.from_json(run_dir)
    predictions = run_dir / "predictions.csv"
    if not predictions.is_file():
        raise FileNotFoundError(f"{predictions}: the run has not finished (no pooled predictions.csv).")
    return config, read_json(run_dir / "config.json")["record"], pd.read_csv(predictions)


def compare_runs(run_a, run_b, *, resamples=2000, permutations=10000, seed=0) -> dict:
    """``paired_comparison`` of two runs (B - A), after checking they are comparable."""
    (config_a, record_a, a), (config_b, record_b, b) = load_finished(run_a), load_finished(run_b)
    differ = [
        f"{what}: {x!r} vs {y!r}"
        for what, x, y in (
            ("protocol", config_a.protocol.protocol, config_b.protocol.protocol),
            (
                "dataset",
                (config_a.data.path, config_a.data.dataset),
                (config_b.data.path, config_b.data.dataset),
            ),
            ("classes", record_a["data"]["classes"], record_b["data"]["classes"]),
        )
        if x != y
    ]
    if differ:
        raise ValueError(f"{run_a} and {run_b} are not comparable: {'; '.join(differ)}.")
    result = paired_comparison(
        a, b, record_a["data"]["classes"], resamples=resamples, permutations=permutations, seed=seed
    )
    result["runs"] = {"a": str(run_a), "b": str(run_b)}
    result["experiments"] = {"a": config_a.experiment, "b": config_b.experiment}
    result["seeds"] = {"a": config_a.protocol.seed, "b": config_b.protocol.seed}
    return result


def comparison_text(result: dict) -> str:
    """The comparison as a few lines for the console."""
    lines = [
        f"B - A: B = {result['runs']['b']} ({result['experiments']['b']}), "
        f"A = {result['runs']['a']} ({result['experiments']['a']}); {result['n_clips']} clips, "
        f"{result['n_subjects']} subjects"
    ]
    for key, name in (("accuracy", "accuracy"), ("uf1", "UF1"), ("uar", "UAR")):
        r = result[key]
        lines.append(
            f"  {name:>8}: A {100 * r['a']:.2f} %, B {100 * r['b']:.2f} %, difference "
            f"{100 * r['difference']:+.2f} points [95 % CI {100 * r['low']:+.1f}, {100 * r['high']:+.1f}], "
            f"p = {r['p_value']:.4g}"
        )
    lines.append(f"CI: {result['method']}; p: {result['permutation_scheme']}")
    return "\n".join(lines)
