"""One experiment repeated over seeds: a run per seed in ``OUT/seed_<SEED>/``, and the spread over seeds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mer_keras.config import RunConfig
from mer_keras.experiment import run_experiment
from mer_keras.files import write_json, write_text
from mer_keras.uncertainty import seed_summary


def seed_config(config: RunConfig, seed: int) -> RunConfig:
    """``config`` with another seed, in its own sub-folder of ``config.out``."""
    return dataclasses.replace(
        config,
        protocol=dataclasses.replace(config.protocol, seed=seed),
        out=str(Path(config.out) / f"seed_{seed}"),
    )


def run_seeds(config: RunConfig, seeds, callbacks=()) -> dict:
    """Every seed's run (a finished one is kept with ``--resume``), then ``seeds.json`` and ``seeds.md``."""
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(
            f"--seeds must be distinct seeds >= 0. Received: --seeds {' '.join(map(str, seeds))}"
        )
    results = [run_experiment(seed_config(config, seed), callbacks) for seed in seeds]
    summary = seed_summary(results, seeds=list(seeds))
    summary["runs"] = [str(Path(config.out) / f"seed_{seed}") for seed in seeds]
    write_json(Path(config.out) / "seeds.json", summary)
    write_text(Path(config.out) / "seeds.md", seeds_markdown(config, summary, results))
    print(seeds_markdown(config, summary, results))
    return summary


def seeds_markdown(config: RunConfig, summary: dict, results) -> str:
    """A table of each seed's pooled scores with their 95 % CIs, and the mean ± std over seeds."""

    def pct(value):
        return f"{100 * value:.2f} %"

    def with_ci(result, key):
        ci = result["ci"][key]
        return f"{pct(result[key])} [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]"

    lines = [
        f"# {config.experiment} over {summary['n_seeds']} seeds",
        "",
        "Pooled over folds per seed, with the 95 % subject-bootstrap CI; then mean ± std over seeds "
        f"(ddof={summary['std_ddof']}).",
        "",
        "| seed | accuracy | UF1 | UAR |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {seed} | " + " | ".join(with_ci(r, k) for k in ("accuracy", "uf1", "uar")) + " |"
        for seed, r in zip(summary["seeds"], results)
    ]

    def spread(key):
        mean, std = summary[key]["mean"], summary[key]["std"]
        return pct(mean) + " ± " + ("—" if std is None else f"{100 * std:.2f}")

    lines.append("| mean ± std | " + " | ".join(spread(k) for k in ("accuracy", "uf1", "uar")) + " |")
    return "\n".join(lines) + "\n"
