"""The MEGC2019 composite: SMIC-HS, CASME II and SAMM relabelled to negative/positive/surprise.

The official composite is a list of 442 clips (:func:`load_megc2019`); the label mapping alone
(:func:`load_megc2019_mapped`) takes 5 CASME II clips more from the 2019-07-01 sheet. Clips keep
their source in ``dataset``; subjects get the source as prefix (``casme2_sub01``, ``samm_006``,
``smic_s1``) so no two datasets share a subject in leave-one-subject-out folds.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
from collections import Counter
from pathlib import Path

import pandas as pd

from mer_keras.datasets import casme2, samm
from mer_keras.datasets.casme2 import load_casme2
from mer_keras.datasets.clip import DatasetError
from mer_keras.datasets.official_lists import MEGC2019_CLASSES, MEGC2019_LIST, read_sample_list
from mer_keras.datasets.samm import load_samm
from mer_keras.datasets.sheets import check_options, note
from mer_keras.datasets.smic import load_smic

logger = logging.getLogger("mer_keras.datasets")

__all__ = [
    "MEGC2019_CLASSES",
    "MEGC2019_MAPPING",
    "compare_to_list",
    "load_megc2019",
    "load_megc2019_folder",
    "load_megc2019_mapped",
    "load_megc2019_mapped_folder",
    "load_sources",
    "route_sheets",
    "select_listed",
]

# source dataset -> {its label: composite label}; labels not listed are dropped.
MEGC2019_MAPPING = {
    "smic": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
    "casme2": {
        "disgust": "negative",
        "repression": "negative",
        "happiness": "positive",
        "surprise": "surprise",
    },
    "samm": {
        "anger": "negative",
        "contempt": "negative",
        "disgust": "negative",
        "fear": "negative",
        "sadness": "negative",
        "happiness": "positive",
        "surprise": "surprise",
    },
}
# How many missing clips an error names before it only counts the rest.
_NAMED_IN_ERRORS = 20


_SHEET_PATTERNS = {"casme2": casme2.SHEET_PATTERN, "samm": samm.SHEET_PATTERN}


def route_sheets(sheet, datasets=("casme2", "samm")) -> dict:
    """``{dataset: path}`` of ``sheet`` (one path, a list of paths or None), each by its file name.

    The composite reads two coding sheets through one ``--sheet`` option, so each path goes to the
    dataset whose sheet name pattern (``CASME2-coding-*.xlsx``, ``SAMM_Micro_FACS_Codes*.xlsx``)
    it matches; datasets not given one are absent (their sheet is found beside the data).
    """
    if sheet is None:
        return {}
    paths = [sheet] if isinstance(sheet, (str, os.PathLike)) else list(sheet)
    routed = {}
    for path in paths:
        name = Path(path).name
        matches = [d for d in datasets if fnmatch.fnmatch(name, _SHEET_PATTERNS[d])]
        if not matches:
            expected = " or ".join(f"{_SHEET_PATTERNS[d]!r} ({d})" for d in datasets)
            raise DatasetError(
                f"{path}: not a coding sheet name this run reads (expected {expected}): "
                f"keep the released file name. Received: --sheet {path}"
            )
        if matches[0] in routed:
            raise DatasetError(
                f"{routed[matches[0]]} and {path}: two {matches[0]} coding sheets given; "
                f"pass one. Received: --sheet {sheet}"
            )
        routed[matches[0]] = Path(path)
    return routed


def load_sources(
    smic_root, casme2_root, samm_root, frames="onset-offset", report=None, missing="error", sheet=None
) -> dict:
    """``{"smic": [...], "casme2": [...], "samm": [...]}``: SMIC-HS micro clips and the coded clips.

    Labels are the sources' own; ``frames`` and ``missing`` apply to the sheet loaders, ``sheet``
    (one or two paths, see :func:`route_sheets`) chooses their coding sheets.
    """
    sheets = route_sheets(sheet)
    return {
        "smic": load_smic(smic_root, modality="HS", non_micro=False),
        "casme2": load_casme2(
            casme2_root, sheet=sheets.get("casme2"), frames=frames, report=report, missing=missing
        ),
        "samm": load_samm(samm_root, sheet=sheets.get("samm"), frames=frames, report=report, missing=missing),
    }


def _composite(clip, label):
    return dataclasses.replace(clip, subject=f"{clip.dataset}_{clip.subject}", label=label)


def load_megc2019_mapped(
    smic_root, casme2_root, samm_root, frames="onset-offset", report=None, sheet=None
) -> list:
    """The composite by label mapping alone (:data:`MEGC2019_MAPPING`): SMIC-HS, CASME II, SAMM.

    Not the official set (see :func:`load_megc2019`). Clips whose label has no composite class
    are dropped; each drop goes to ``report`` and the counts per source and label to the log.
    ``sheet``: the coding sheets to read, see :func:`route_sheets`.
    """
    check_options(frames, report)
    composite = []
    sources = load_sources(smic_root, casme2_root, samm_root, frames, report, sheet=sheet)
    for dataset, clips in sources.items():
        mapping, dropped = MEGC2019_MAPPING[dataset], Counter()
        for clip in clips:
            if clip.label not in mapping:
                dropped[clip.label] += 1
                note(
                    report,
                    None,
                    None,
                    clip.key,
                    f"label {clip.label!r} is not a MEGC2019 class: dropped",
                    level=logging.DEBUG,
                )
                continue
            composite.append(_composite(clip, mapping[clip.label]))
        if dropped:
            counts = ", ".join(f"{label} {n}" for label, n in sorted(dropped.items()))
            logger.info(
                "MEGC2019: dropped %d %s clips outside the 3 classes (%s)",
                sum(dropped.values()),
                dataset,
                counts,
            )
    return composite


def compare_to_list(sources: dict, samples: pd.DataFrame) -> pd.DataFrame:
    """Each clip of ``sources`` and of the list's rows for those datasets, side by side.

    Columns: ``dataset, subject, clip`` (source names), ``line`` (in the list, or NA), ``official``
    (the list's class, or None), ``coded`` (the source's own label, or None when not on disk),
    ``found`` (its composite class, None when the mapping has none) and ``status``: ``equal``,
    ``class differs``, ``missing`` (listed, not on disk), ``extra`` (a composite class, not listed)
    or ``unmapped`` (no composite class, not listed). Clips on disk first, in the sources' order,
    then the missing ones in list order.
    """
    keys = ["dataset", "subject", "clip"]
    found = pd.DataFrame(
        [
            (c.dataset, c.subject, c.clip_id, c.label, MEGC2019_MAPPING[c.dataset].get(c.label))
            for clips in sources.values()
            for c in clips
        ],
        columns=[*keys, "coded", "found"],
        dtype=object,
    )
    found["_position"] = range(len(found))
    listed = samples[samples["dataset"].isin(list(sources))].rename(columns={"label": "official"})
    listed = listed.rename_axis("line").reset_index()
    table = found.merge(listed, on=keys, how="outer", sort=False, indicator=True)
    status = pd.Series("equal", index=table.index, dtype=object)
    status[table["_merge"] == "right_only"] = "missing"
    status[(table["_merge"] == "left_only") & table["found"].notna()] = "extra"
    status[(table["_merge"] == "left_only") & table["found"].isna()] = "unmapped"
    status[(table["_merge"] == "both") & (table["found"] != table["official"])] = "class differs"
    table["status"] = status
    table["line"] = table["line"].astype("Int64")
    for column in ("official", "coded", "found"):
        table[column] = table[column].astype(object).where(table[column].notna(), None)
    table["_missing"] = table["_merge"] == "right_only"
    table["_order"] = table["dataset"].map({"smic": 0, "casme2": 1, "samm": 2})
    table = table.sort_values(["_missing", "_order", "_position", "line"], kind="stable")
    return table[[*keys, "line", "official", "coded", "found", "status"]].reset_index(drop=True)


def _sheet_label(row) -> str:
    composite = row["found"] or "no MEGC2019 class"
    return f"{row['coded']!r} ({composite})"


def load_megc2019(
    smic_root, casme2_root, samm_root, frames="onset-offset", report=None, missing="error", sheet=None
) -> list:
    """The official MEGC2019 composite: exactly the 442 listed clips, SMIC-HS, CASME II, SAMM.

    A clip's class is the list's. A listed clip the source labels differently (through
    :data:`MEGC2019_MAPPING`) keeps the list's class and is reported; clips the list leaves out
    are dropped and reported. Listed clips not on disk are an error naming them, or with
    ``missing="warn"`` a warning and one report entry each. Report entries about a list row name
    the list as ``sheet`` and its CSV line as ``row``. ``frames`` applies to CASME II and SAMM, and
    ``sheet`` chooses their coding sheets (see :func:`route_sheets`).
    """
    check_options(frames, report, missing)
    samples = read_sample_list()
    sources = load_sources(smic_root, casme2_root, samm_root, frames, report, missing="warn", sheet=sheet)
    table = compare_to_list(sources, samples)
    absent = table[table["status"] == "missing"]
    if missing == "error" and len(absent):
        names = [f"{r.dataset}/{r.subject}/{r.clip}" for r in absent.itertuples()]
        shown = ", ".join(names[:_NAMED_IN_ERRORS])
        more = f" and {len(names) - _NAMED_IN_ERRORS} more" if len(names) > _NAMED_IN_ERRORS else ""
        raise DatasetError(
            f"{len(names)} clip(s) of the official MEGC2019 list ({MEGC2019_LIST}) are not on disk "
            f"(SMIC {smic_root}, CASME II {casme2_root}, SAMM {samm_root}): {shown}{more}. "
            f"Pass missing='warn' to load the others and report these."
        )
    return select_listed(sources, table, report)


def select_listed(sources: dict, table: pd.DataFrame, report=None) -> list:
    """The listed clips of ``sources`` with the list's classes; ``table`` from :func:`compare_to_list`.

    What differs from the list goes to ``report`` and the log (see :func:`load_megc2019`).
    """
    absent = table[table["status"] == "missing"]
    rows = {(r.dataset, r.subject, r.clip): r for r in table.itertuples(index=False)}
    composite, dropped = [], Counter()
    for dataset, clips in sources.items():
        for clip in clips:
            row = rows[(dataset, clip.subject, clip.clip_id)]._asdict()
            if row["status"] in ("extra", "unmapped"):
                dropped[dataset] += 1
                issue = (
                    f"labelled {_sheet_label(row)}, not in the official MEGC2019 list: dropped"
                    if row["status"] == "extra"
                    else f"label {clip.label!r} is not a MEGC2019 class: dropped"
                )
                note(
                    report,
                    None,
                    None,
                    clip.key,
                    issue,
                    level=logging.INFO if row["status"] == "extra" else logging.DEBUG,
                )
                continue
            if row["status"] == "class differs":
                note(
                    report,
                    MEGC2019_LIST,
                    int(row["line"]),
                    clip.key,
                    f"the source labels it {_sheet_label(row)}, the official list "
                    f"{row['official']!r}: the list's class is used",
                )
            composite.append(_composite(clip, row["official"]))
    for row in absent.itertuples():
        note(
            report,
            MEGC2019_LIST,
            int(row.line),
            f"{row.dataset}/{row.subject}/{row.clip}",
            f"listed ({row.official}) but not on disk: left out",
        )
    kept = Counter(c.dataset for c in composite)
    logger.info(
        "MEGC2019 (official list): %s; dropped %s clips the list leaves out%s",
        ", ".join(f"{d} {kept[d]}" for d in sources),
        ", ".join(f"{d} {dropped[d]}" for d in sources),
        f"; {len(absent)} listed clips not on disk" if len(absent) else "",
    )
    return composite


def load_megc2019_folder(root, frames="onset-offset", report=None, missing="error", sheet=None) -> list:
    """The official composite from one folder holding the three datasets (and sheets) side by side."""
    return load_megc2019(root, root, root, frames=frames, report=report, missing=missing, sheet=sheet)


def load_megc2019_mapped_folder(root, frames="onset-offset", report=None, sheet=None) -> list:
    """The mapping-only composite from one folder holding the three datasets side by side."""
    return load_megc2019_mapped(root, root, root, frames=frames, report=report, sheet=sheet)
