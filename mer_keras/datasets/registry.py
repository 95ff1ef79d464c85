"""Which loader reads which folder: by name, or recognised from the folder's layout."""

from __future__ import annotations

from mer_keras.datasets import casme2, samm
from mer_keras.datasets.clip import DatasetError
from mer_keras.datasets.folders import dataset_root
from mer_keras.datasets.megc2019 import load_megc2019_folder, load_megc2019_mapped_folder
from mer_keras.datasets.smic import find_modality_folder, load_smic

# name -> (loader, layout test). Loaders take the root folder as their first argument.
LOADERS = {
    "smic": (load_smic, lambda root: _finds(find_modality_folder, root)),
    "casme2": (casme2.load_casme2, lambda root: _finds(casme2.find_release_folder, root)),
    "samm": (samm.load_samm, lambda root: _finds(samm.find_release_folder, root)),
    # A folder holding SMIC, CASME II and SAMM side by side; never guessed from a layout
    # (such a folder is also a SMIC, CASME II and SAMM root): ask for it by name.
    # megc2019: the official 442-clip list; megc2019-mapping: the label mapping alone.
    "megc2019": (load_megc2019_folder, lambda root: False),
    "megc2019-mapping": (load_megc2019_mapped_folder, lambda root: False),
}
# The loaders that read coding sheets, so take `sheet=` (--sheet).
SHEET_LOADERS = ("casme2", "samm", "megc2019", "megc2019-mapping")


def _finds(finder, root) -> bool:
    try:
        finder(root)
        return True
    except DatasetError:
        return False


def detect_dataset(root) -> str:
    """The name of the dataset whose layout ``root`` has; an error lists what was tried.

    Several layouts in one folder (SMIC beside CASME II, say) are an error naming them: which one a
    run reads is the user's choice (``--dataset``), never a silent pick.
    """
    root = dataset_root(root, "dataset folder")
    found = [name for name, (_, recognises) in LOADERS.items() if recognises(root)]
    if len(found) > 1:
        composite = ""
        if set(found) >= {"smic", "casme2", "samm"}:
            composite = "; megc2019 or megc2019-mapping reads SMIC, CASME II and SAMM side by side"
        raise DatasetError(
            f"{root}: holds the layouts of several datasets ({', '.join(found)}); pass --dataset NAME "
            f"(dataset= in Python) to choose which one to read{composite}."
        )
    if not found:
        raise DatasetError(f"{root}: not a known dataset layout (tried {', '.join(LOADERS)}).")
    return found[0]


def load_dataset(root, dataset="auto", sheet=None, **options) -> list:
    """Clips of ``root`` read by the loader named ``dataset`` (``"auto"``: recognised from layout).

    ``sheet`` (``--sheet``) is the coding sheet to read instead of the one found beside the data:
    for casme2 and samm one path; for megc2019 one path or several, each going to the dataset
    whose sheet name pattern it matches.
    """
    name = detect_dataset(root) if dataset == "auto" else dataset
    if name not in LOADERS:
        raise ValueError(f"`dataset` must be 'auto' or one of {list(LOADERS)}. Received: {dataset!r}")
    if sheet is not None:
        if name not in SHEET_LOADERS:
            raise ValueError(
                f"--sheet (sheet=) names a coding sheet, and {name} reads none (only "
                f"{', '.join(SHEET_LOADERS)} do). Received: --sheet {sheet}"
            )
        options["sheet"] = sheet
    return LOADERS[name][0](root, **options)
