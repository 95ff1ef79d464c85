"""One experiment repeated over seeds: a run per seed in ``OUT/seed_<SEED>/``, and the spread over seeds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mer_keras.config import RunConfig
from mer_keras.experiment import run_experiment
from mer_keras.files import read_json, write_json, write_text
from mer_keras.uncertainty import seed_summary


def seed_config(config: RunConfig, seed: int) -> RunConfig:
    """``config`` with another seed, in its own sub-folder of ``config.out``.

    With ``--resume``, a seed whose folder holds no run yet starts afresh (nothing of it to resume).
    """
    out = Path(config.out) / f"seed_{seed}"
    return dataclasses.replace(
        config,
        protocol=dataclasses.replace(config.protocol, seed=seed),
        out=str(out),
        resume=config.resume and (out / "config.json").exists(),
    )


def run_seeds(config: RunConfig, seeds, callbacks=(), only=None, frame_cache=None) -> dict:
    """Every seed's run (a finished one is kept with ``--resume``), then ``seeds.json`` and ``seeds.md``.

    ``only`` (``--only-seeds``): run just these seeds; the others' ``seed_K/results.json`` are read,
    and while a seed's run is not complete nothing is pooled (``{"complete": False, "missing": [...]}``).
    ``frame_cache``: see ``experiment.prepare_run``.
    """
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(
            f"--seeds must be distinct seeds >= 0. Received: --seeds {' '.join(map(str, seeds))}"
        )
    ran = {
        seed: run_experiment(seed_config(config, seed), callbacks, frame_cache)
        for seed in seeds
        if only is None or seed in only
    }
    results = [ran[seed] if seed in ran else _finished(config, seed) for seed in seeds]
    missing = [seed for seed, r in zip(seeds, results) if r is None or r.get("complete") is False]
    if missing:
        print(
            f"seeds not complete yet: {' '.join(map(str, missing))}; seeds.json is written by the "
            "invocation that completes the last one.",
            flush=True,
        )
        return {"complete": False, "missing": missing}
    summary = seed_summary(results, seeds=list(seeds))
    summary["runs"] = [str(Path(config.out) / f"seed_{seed}") for seed in seeds]
    write_json(Path(config.out) / "seeds.json", summary)
    write_text(Path(config.out) / "seeds.md", seeds_markdown(config, summary, results))
    print(seeds_markdown(config, summary, results))
    return summary


def _finished(config: RunConfig, seed: int) -> dict | None:
    """A seed's results summary read from its finished run folder, None if it is not finished."""
    results = Path(seed_config(config, seed).out) / "results.json"
    return read_json(results) if results.exists() else None


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
