"""Which loader reads which folder: by name, or recognised from the folder's layout."""

from __future__ import annotations

from pathlib import Path

from mer_keras.datasets import casme2, samm
from mer_keras.datasets.clip import DatasetError
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


def _finds(finder, root) -> bool:
    try:
        finder(root)
        return True
    except DatasetError:
        return False


def detect_dataset(root) -> str:
    """The name of the dataset whose layout ``root`` has; an error lists what was tried."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found.")
    for name, (_, recognises) in LOADERS.items():
        if recognises(root):
            return name
    raise DatasetError(f"{root}: not a known dataset layout (tried {', '.join(LOADERS)}).")


def load_dataset(root, dataset="auto", **options) -> list:
    """Clips of ``root`` read by the loader named ``dataset`` (``"auto"``: recognised from layout)."""
    name = detect_dataset(root) if dataset == "auto" else dataset
    if name not in LOADERS:
        raise ValueError(f"`dataset` must be 'auto' or one of {list(LOADERS)}. Received: {dataset!r}")
    return LOADERS[name][0](root, **options)
