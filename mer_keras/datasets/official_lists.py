"""Official sample lists shipped with the package, and the coding-sheet versions we know.

The MEGC2019 composite is defined by a list of clips (``official/megc2019_composite_442.csv``,
provenance in ``official/README.md``), not by the label mapping alone; loaders and the copy check
read it from here, through :mod:`importlib.resources` so it works from an installed wheel too.
"""

from __future__ import annotations

import hashlib
import io
import re
from importlib import resources
from pathlib import Path

import pandas as pd

from mer_keras.datasets.clip import DatasetError

MEGC2019_CLASSES = ("negative", "positive", "surprise")
MEGC2019_LIST = "megc2019_composite_442.csv"
LIST_COLUMNS = ("dataset", "subject", "clip", "label")
# dataset -> how its subject folders are spelled (the loaders' folder names).
SUBJECT_NAMES = {
    "smic": (re.compile(r"s[1-9]\d*"), "s1, s2, …, not zero-padded"),
    "casme2": (re.compile(r"sub\d{2,}"), "sub01, sub02, …"),
    "samm": (re.compile(r"\d{3}"), "006, 007, …"),
}

# sha256 -> (dataset, file name as released, version). Only files we have held are listed.
KNOWN_SHEETS = {
    "6004a3ea87055ef9e6319d59b7940b337dc08e18ac785429c9b851587aa5e090": (
        "casme2",
        "CASME2-coding-20190701.xlsx",
        "CASME II coding sheet of 2019-07-01",
    ),
    "50caea8961cbb8d005669971b87396ac4759bdf45c96637a382c5d9d0894a4a4": (
        "samm",
        "SAMM_Micro_FACS_Codes_v2.xlsx",
        "SAMM Micro FACS Codes v2",
    ),
}
# Versions known by file name only: we never held a copy, so their hash is not known.
NAMED_SHEETS = {
    "CASME2-coding-20140508.xlsx": ("casme2", "CASME II coding sheet of 2014-05-08 (first release)"),
}


def read_sample_list(path=None) -> pd.DataFrame:
    """A sample list as a table ``dataset, subject, clip, label`` indexed by its CSV line number.

    ``path`` None reads the official MEGC2019 list shipped with the package. Every cell is
    checked (known dataset, subject spelled as its folders are, a MEGC2019 class, no clip twice);
    errors name the file and line.
    """
    if path is None:
        name = MEGC2019_LIST
        text = resources.files("mer_keras.datasets").joinpath("official", MEGC2019_LIST).read_bytes()
    else:
        name = str(path)
        if not Path(path).is_file():
            raise DatasetError(f"{name}: sample list not found.")
        text = Path(path).read_bytes()
    try:
        table = pd.read_csv(io.BytesIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DatasetError(f"{name}: cannot read the sample list as CSV ({error}).") from error
    table.columns = [str(c).strip() for c in table.columns]
    absent = [c for c in LIST_COLUMNS if c not in table.columns]
    if absent:
        raise DatasetError(
            f"{name} line 1: no column {', '.join(map(repr, absent))}; the sample list "
            f"needs {', '.join(LIST_COLUMNS)}. Received: columns {list(table.columns)}"
        )
    table = table[list(LIST_COLUMNS)].apply(lambda column: column.str.strip())
    table.index = table.index + 2  # line 1 is the header
    first_line = {}
    for line, row in table.iterrows():
        _check_row(name, line, row)
        key = (row["dataset"], row["subject"], row["clip"])
        if key in first_line:
            raise DatasetError(
                f"{name} line {line}: clip {'/'.join(key)} is listed twice (also on line {first_line[key]})."
            )
        first_line[key] = line
    if table.empty:
        raise DatasetError(f"{name}: the sample list holds no clips.")
    return table


def _check_row(name, line, row) -> None:
    where = f"{name} line {line}"
    for column in LIST_COLUMNS:
        if not row[column]:
            raise DatasetError(f"{where}: {column} is empty. Received: {dict(row)}")
    if row["dataset"] not in SUBJECT_NAMES:
        raise DatasetError(
            f"{where}: unknown dataset; expected one of {', '.join(SUBJECT_NAMES)}. "
            f"Received: dataset={row['dataset']!r}"
        )
    pattern, spelling = SUBJECT_NAMES[row["dataset"]]
    if not pattern.fullmatch(row["subject"]):
        raise DatasetError(
            f"{where}: {row['dataset']} subjects are written as their folders are "
            f"({spelling}). Received: subject={row['subject']!r}"
        )
    if row["label"] not in MEGC2019_CLASSES:
        raise DatasetError(
            f"{where}: unknown label; expected one of {', '.join(MEGC2019_CLASSES)}. "
            f"Received: label={row['label']!r}"
        )


def sha256_of(path) -> str:
    """The sha256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identify_sheet(path, dataset) -> dict:
    """Which version of ``dataset``'s coding sheet ``path`` is: by sha256, else by file name.

    ``known`` is ``"sha256"`` (a version we hold), ``"file name"`` (a version we know of but never
    held, so its hash is not known) or ``"unknown"``.
    """
    path = Path(path)
    digest = sha256_of(path)
    entry = {"dataset": dataset, "file": str(path), "sha256": digest}
    if digest in KNOWN_SHEETS and KNOWN_SHEETS[digest][0] == dataset:
        _, released_as, version = KNOWN_SHEETS[digest]
        return {**entry, "known": "sha256", "version": version, "released_as": released_as}
    if path.name in NAMED_SHEETS and NAMED_SHEETS[path.name][0] == dataset:
        version = NAMED_SHEETS[path.name][1]
        return {
            **entry,
            "known": "file name",
            "released_as": path.name,
            "version": f"{version}, by its file name; its sha256 is not known here",
        }
    return {
        **entry,
        "known": "unknown",
        "released_as": None,
        "version": f"unknown version (sha256 matches no {dataset} sheet known here)",
    }
