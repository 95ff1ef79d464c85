"""Is a copy the official one? Counts per class and subject, clip by clip, against the official list.

``describe ROOT --check megc2019`` (or ``smic-hs``, ``casme2``, ``samm``): the official counts are
those of the MEGC2019 list (``official/megc2019_composite_442.csv``), for the whole composite or
one source's part of it. A mismatch is a listed clip missing on disk or labelled differently by
the copy; clips the copy has and the list leaves out are listed too, but are no mismatch (the list
is the official selection; :func:`~mer_keras.datasets.load_megc2019` drops them).
"""

from __future__ import annotations

import re

import pandas as pd

from mer_keras.datasets import casme2, samm
from mer_keras.datasets.clip import DatasetError
from mer_keras.datasets.megc2019 import compare_to_list, load_sources, route_sheets, select_listed
from mer_keras.datasets.official_lists import (
    MEGC2019_CLASSES,
    MEGC2019_LIST,
    identify_sheet,
    read_sample_list,
)
from mer_keras.datasets.sheets import sheet_path
from mer_keras.datasets.smic import load_smic

# check name -> (datasets of the list it compares, loader name of the registry, title)
CHECKS = {
    "megc2019": (("smic", "casme2", "samm"), "megc2019", "the MEGC2019 composite"),
    "smic-hs": (("smic",), "smic", "SMIC-HS (micro clips) as in the MEGC2019 list"),
    "casme2": (("casme2",), "casme2", "CASME II as in the MEGC2019 list"),
    "samm": (("samm",), "samm", "SAMM as in the MEGC2019 list"),
}
_CODED = {"casme2": casme2.CASME2, "samm": samm.SAMM}
MISMATCHES = ("missing", "class differs")


def check_copy(root, check, frames="onset-offset", sheet=None) -> tuple:
    """``(clips, result)``: the clips as ``describe`` shows them and the comparison as a dict.

    ``clips`` is the official selection for ``megc2019`` and the source's clips otherwise; listed
    clips missing on disk are reported in ``result``, never an error. ``sheet`` (``--sheet``): the
    coding sheet(s) to read instead of those found beside the data.
    """
    if check not in CHECKS:
        raise ValueError(f"`check` must be one of {list(CHECKS)}. Received: check={check!r}")
    datasets, _, title = CHECKS[check]
    if sheet is not None and not set(datasets) & set(_CODED):
        raise DatasetError(
            f"--sheet names a coding sheet, and --check {check} reads none. Received: --sheet {sheet}"
        )
    sheets = route_sheets(sheet) if check == "megc2019" else {check: sheet}
    report = []
    if check == "megc2019":
        sources = load_sources(root, root, root, frames, report, missing="warn", sheet=sheet)
    elif check == "smic-hs":
        sources = {"smic": load_smic(root, modality="HS", non_micro=False)}
    else:
        loader = casme2.load_casme2 if check == "casme2" else samm.load_samm
        sources = {check: loader(root, sheet=sheet, frames=frames, report=report, missing="warn")}
    table = compare_to_list(sources, read_sample_list())
    if check == "megc2019":
        clips = select_listed(sources, table, report)
    else:
        clips = sources[datasets[0]]
    result = {
        "check": check,
        "title": title,
        "official_list": MEGC2019_LIST,
        "sheets": [
            identify_sheet(sheet_path(_CODED[d], root, sheets.get(d)), d) for d in datasets if d in _CODED
        ],
        **_counts(table, prefixed=check == "megc2019"),
        "differences": _clip_rows(table[table["status"].isin(MISMATCHES)]),
        "not_listed": _clip_rows(table[table["status"] == "extra"]),
    }
    counts = [*result["classes"].values(), *(n for s in result["subjects"].values() for n in s.values())]
    result["equal"] = not result["differences"] and all(c["official"] == c["found"] for c in counts)
    return clips, result


def _subject_order(name: str) -> tuple:
    """``smic_s2`` before ``smic_s11``: sources in the composite's order, then by number."""
    dataset = next((i for i, d in enumerate(("smic", "casme2", "samm")) if name.startswith(f"{d}_")), -1)
    digits = re.findall(r"\d+", name)
    return dataset, int(digits[-1]) if digits else -1, name


def _counts(table: pd.DataFrame, prefixed: bool) -> dict:
    """Official (listed) and found (listed, on disk, with the copy's class) counts."""
    listed = table[table["official"].notna()].copy()
    listed["subject"] = (listed["dataset"] + "_" + listed["subject"]) if prefixed else listed["subject"]
    present = listed[listed["status"] != "missing"]
    # a listed clip the copy labels outside the 3 classes counts under its own label
    found_class = present["found"].where(present["found"].notna(), present["coded"])
    classes = list(MEGC2019_CLASSES) + sorted(set(found_class) - set(MEGC2019_CLASSES))

    def tally(keys, labels):
        return pd.crosstab(keys, labels).reindex(columns=classes, fill_value=0)

    subjects = sorted(set(listed["subject"]), key=_subject_order)
    official = tally(listed["subject"], listed["official"]).reindex(subjects, fill_value=0)
    found = tally(present["subject"], found_class).reindex(subjects, fill_value=0)
    per_dataset = {}
    for dataset, part in listed.groupby("dataset", sort=False):
        here = part[part["status"] != "missing"]
        per_dataset[dataset] = {
            "clips": {"official": len(part), "found": len(here)},
            "subjects": {"official": int(part["subject"].nunique()), "found": int(here["subject"].nunique())},
        }
    return {
        "totals": {
            "clips": {"official": len(listed), "found": len(present)},
            "subjects": {
                "official": int(listed["subject"].nunique()),
                "found": int(present["subject"].nunique()),
            },
        },
        "classes": {c: {"official": int(official[c].sum()), "found": int(found[c].sum())} for c in classes},
        "datasets": per_dataset,
        "subjects": {
            subject: {
                c: {"official": int(official.at[subject, c]), "found": int(found.at[subject, c])}
                for c in classes
            }
            for subject in official.index
        },
    }


def _clip_rows(rows: pd.DataFrame) -> list:
    return [
        {
            "clip": f"{r.dataset}/{r.subject}/{r.clip}",
            "issue": r.status,
            "list_line": None if pd.isna(r.line) else int(r.line),
            "official": r.official,
            "coded": r.coded,
            "found": r.found,
        }
        for r in rows.itertuples()
    ]


def _yes(equal) -> str:
    return "yes" if equal else "NO"


def format_check(result: dict) -> str:
    """The check as text: every count official vs found, then each differing clip."""
    lines = [f"check {result['check']}: {result['title']} (official list {result['official_list']})"]
    for sheet in result["sheets"]:
        lines.append(f"  {sheet['dataset']} coding sheet {sheet['file']}")
        lines.append(
            f"    sha256 {sheet['sha256']}: {sheet['version']}"
            + (" (known by sha256)" if sheet["known"] == "sha256" else "")
        )
    totals = result["totals"]
    rows = {name: {**result["classes"][name]} for name in result["classes"]}
    rows["total clips"] = totals["clips"]
    rows["subjects"] = totals["subjects"]
    table = pd.DataFrame(rows).T[["official", "found"]]
    table["equal"] = [_yes(o == f) for o, f in zip(table["official"], table["found"])]
    lines += ["per class (official vs found):", table.to_string()]
    if len(result["datasets"]) > 1:
        table = pd.DataFrame(
            {
                dataset: {
                    "clips official": c["clips"]["official"],
                    "clips found": c["clips"]["found"],
                    "subjects official": c["subjects"]["official"],
                    "subjects found": c["subjects"]["found"],
                }
                for dataset, c in result["datasets"].items()
            }
        ).T
        table["equal"] = [
            _yes(r["clips official"] == r["clips found"] and r["subjects official"] == r["subjects found"])
            for _, r in table.iterrows()
        ]
        lines += ["per dataset (official vs found):", table.to_string()]
    table = pd.DataFrame(
        {
            subject: {
                **{c: f"{n['official']}/{n['found']}" for c, n in counts.items()},
                "total": f"{sum(n['official'] for n in counts.values())}/"
                f"{sum(n['found'] for n in counts.values())}",
                "equal": _yes(all(n["official"] == n["found"] for n in counts.values())),
            }
            for subject, counts in result["subjects"].items()
        }
    ).T
    lines += ["per subject (official/found):", table.to_string()]
    differences = result["differences"]
    lines.append(f"differences from the official list: {len(differences) or 'none'}")
    for d in differences:
        if d["issue"] == "missing":
            lines.append(
                f"  missing        {d['clip']}: listed as {d['official']} "
                f"(line {d['list_line']}), not on disk"
            )
        else:
            lines.append(
                f"  class differs  {d['clip']}: listed as {d['official']} (line {d['list_line']}), "
                f"the copy labels it {d['coded']!r} ({d['found'] or 'no MEGC2019 class'})"
            )
    extra = result["not_listed"]
    if extra:
        lines.append(
            f"not in the official list (dropped by the official loader; not a mismatch): {len(extra)}"
        )
        lines += [f"  extra          {e['clip']}: labelled {e['coded']!r} ({e['found']})" for e in extra]
    lines.append(
        "result: all counts equal the official ones"
        if result["equal"]
        else f"result: the copy differs from the official list ({len(differences)} clip(s))"
    )
    return "\n".join(lines)
