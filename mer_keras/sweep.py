"""A sweep over the window length N (the paper's Table 3): a run per experiment, N (and seed), one table.

Every run is a normal run in ``OUT/<exp>-n<N>`` (with seeds, ``OUT/<exp>-n<N>/seed_<S>``); all of them
share one frame cache (``pipeline.shared_frames``): the frames any N needs, computed once per
encoder. With ``--resume`` a finished run is kept as it is (its options compared as ``--resume``
does) and an unfinished one continues; then ``table3.md`` and ``table3.json`` are written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from mer_keras.config import ConfigError, RunConfig
from mer_keras.dataset_plan import find_faces, plan_dataset
from mer_keras.experiment import run_experiment
from mer_keras.files import read_json, write_json, write_text
from mer_keras.metrics import SCORES
from mer_keras.pipeline.shared_frames import SharedFrames
from mer_keras.pipeline.windows import build_frame_table
from mer_keras.repeats import run_seeds, seed_config
from mer_keras.reports import PAPER_TABLE3
from mer_keras.uncertainty import seed_summary

RESULTS = "results.json"  # written last by a run: its presence marks a finished run


@dataclass(frozen=True)
class SweepRun:
    """One (experiment, N) of the sweep; ``config.out`` is its folder (holding seed_<S>/ with seeds)."""

    experiment: str
    n: int
    config: RunConfig


def run_folder(out, experiment: str, n: int) -> Path:
    return Path(out) / f"{experiment}-n{n}"


def run_sweep(runs, out, seeds=None, callbacks=()) -> dict:
    """Train every run not finished yet, all on one shared frame cache; returns what table3.json holds."""
    out = Path(out)
    resume = runs[0].config.resume
    if not resume and out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"{out} already holds a sweep; pass --resume to continue it (finished runs are kept) "
            f"or choose another --out. Received: --out {out}"
        )
    shared = {}  # DataConfig -> SharedFrames over every N of the sweep on that data
    outcomes = []
    for run in runs:
        configs = [run.config] if not seeds else [seed_config(run.config, s) for s in seeds]
        results = [finished_results(config) for config in configs]
        to_train = [config for config, result in zip(configs, results) if result is None]
        if to_train:
            if run.config.data not in shared:  # made once, and only if something is trained
                shared[run.config.data] = sweep_frames(runs, run.config, out)
            frames = shared[run.config.data]
            if seeds:
                unfinished = [s for s, r in zip(seeds, results) if r is None]
                run_seeds(run.config, seeds, callbacks, only=unfinished, frame_cache=frames)
            else:
                config = dataclasses.replace(run.config, resume=resume and _started(run.config))
                run_experiment(config, callbacks, frame_cache=frames)
            results = [read_json(Path(config.out) / RESULTS) for config in configs]
        outcomes.append(results)
    table = table3(runs, outcomes, seeds)
    # what this invocation computed (nothing where every run was finished already)
    table["frame_cache_computed"] = [c for frames in shared.values() for c in frames.computed]
    write_json(out / "table3.json", table)
    markdown = table3_markdown(table)
    write_text(out / "table3.md", markdown)
    print(markdown)
    return table


def _started(config: RunConfig) -> bool:
    return (Path(config.out) / "config.json").exists()


def finished_results(config: RunConfig) -> dict | None:
    """The results of the finished run in ``config.out`` (options checked as ``--resume`` does), or None."""
    path = Path(config.out) / RESULTS
    if not config.resume or not path.exists():
        return None
    changed = config.differences(RunConfig.from_json(config.out))
    if changed:
        raise ConfigError(
            f"{Path(config.out) / 'config.json'}: --resume with options that change the run: "
            f"{'; '.join(changed)}."
        )
    return read_json(path)


def sweep_frames(runs, config: RunConfig, out: Path) -> SharedFrames:
    """The shared frame cache of the runs on ``config.data``: the frame tables of all their N united.

    ``--face crop|align``: the faces are found once, into ``OUT/faces.json``, on the clips of the
    shortest N (with ``--short-clips drop`` the longer N keep fewer clips).
    """
    ns = sorted({run.n for run in runs if run.config.data == config.data})
    plans = [plan_dataset(config.data, n) for n in ns]
    faces, _ = find_faces(plans[0], config.data, out)
    return SharedFrames([build_frame_table(plan.planned, faces) for plan in plans])


def _scores(result: dict) -> dict:
    return {
        k: {"value": result[k], "ci_low": result["ci"][k]["low"], "ci_high": result["ci"][k]["high"]}
        for k in SCORES
    }


def table3(runs, outcomes, seeds=None) -> dict:
    """Table 3's rows (pattern, f_N, data number, pooled scores with CIs; with seeds: each seed and
    the mean ± std over seeds) beside the paper's rows."""
    rows = []
    for run, results in zip(runs, outcomes):
        first = results[0]
        row = {
            "experiment": run.experiment,
            "pattern": run.config.pattern,
            "n": run.n,
            "data_number": first["data_number"],
            "run": run.config.out,
        }
        if seeds:
            row["seeds"] = [{"seed": s, **_scores(r)} for s, r in zip(seeds, results)]
            spread = seed_summary(results, seeds=list(seeds))
            row["over_seeds"] = {k: spread[k] for k in SCORES} | {"std_ddof": spread["std_ddof"]}
        else:
            row.update(_scores(first))
        rows.append(row)
    config, ci = runs[0].config, outcomes[0][0]["ci"]
    return {
        "dataset": "synthetic SMIC-like" if config.data.synthetic else config.data.path,
        "protocol": config.protocol.protocol,
        "folds": outcomes[0][0]["n_folds"],
        "clips": outcomes[0][0]["n"],
        "ci": {"resamples": ci["resamples"], "n_subjects": ci["n_subjects"], "level": ci["level"]},
        "seeds": list(seeds) if seeds else None,
        "rows": rows,
        "paper": [
            {"pattern": p, "n": n, "data_number": d, "accuracy": s, "source": "Bai & Goecke 2020, Table 3"}
            for p, n, d, s in PAPER_TABLE3
        ],
    }


def _pct(value) -> str:
    return f"{100 * value:.2f} %"


def _with_ci(score: dict) -> str:
    return f"{_pct(score['value'])} [{100 * score['ci_low']:.1f}, {100 * score['ci_high']:.1f}]"


def _spread(score: dict) -> str:
    return _pct(score["mean"]) + " ± " + ("—" if score["std"] is None else f"{100 * score['std']:.2f}")


def table3_markdown(table: dict) -> str:
    """table3.md: the sweep's rows and the paper's, in the shape of the paper's Table 3."""
    lines = [
        "# Table 3: window length N",
        "",
        f"Dataset: {table['dataset']}. Protocol: {table['protocol']}, {table['folds']} folds, "
        f"{table['clips']} clips. Score: pooled clip accuracy over the folds; UF1 and UAR pooled likewise "
        f"(MEGC2019). [95 % CI]: bootstrap over the {table['ci']['n_subjects']} subjects "
        f"({table['ci']['resamples']} resamples). Data Number: windows of N frames over all clips (the "
        "paper's AugII count, before class balancing)."
        + (
            f" One row per seed, then the mean ± std over the {len(table['seeds'])} seeds (ddof=1)."
            if table["seeds"]
            else ""
        ),
        "",
        "| Pattern | f_N | Data Number | Score | UF1 | UAR | Source |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table["rows"]:
        head = f"| {row['pattern']} | {row['n']} | {row['data_number']} | "
        name = Path(row["run"]).name
        for seed in row.get("seeds", [row]):
            cells = " | ".join(_with_ci(seed[k]) for k in SCORES)
            where = f"{name}, seed {seed['seed']}" if "seed" in seed else name
            lines.append(f"{head}{cells} | this sweep, {where} |")
        if "over_seeds" in row:
            cells = " | ".join(_spread(row["over_seeds"][k]) for k in SCORES)
            lines.append(f"{head}{cells} | this sweep, {name}, mean ± std over seeds |")
    for paper in table["paper"]:
        lines.append(
            f"| {paper['pattern']} | {paper['n']} | {paper['data_number']} | {_pct(paper['accuracy'])} "
            "| — | — | paper, Table 3 |"
        )
    lines += [
        "",
        "The paper's rows are SMIC-HS, 4 classes (negative, positive, surprise, non-micro), 5-fold "
        "subject-wise cross-validation, accuracy only: they compare with ours only on that dataset and "
        "protocol.",
    ]
    return "\n".join(lines) + "\n"
