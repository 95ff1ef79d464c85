"""The MEGC2019 composite: SMIC-HS, CASME II and SAMM relabelled to negative/positive/surprise.

Clips keep their source in ``dataset``; subjects get the source as prefix (``casme2_sub01``,
``samm_006``, ``smic_s1``) so no two datasets share a subject in leave-one-subject-out folds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter

from mer_keras.datasets.casme2 import load_casme2
from mer_keras.datasets.samm import load_samm
from mer_keras.datasets.sheets import check_options, note
from mer_keras.datasets.smic import load_smic

logger = logging.getLogger("mer_keras.datasets")

MEGC2019_CLASSES = ("negative", "positive", "surprise")
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


def load_megc2019(smic_root, casme2_root, samm_root, frames="onset-offset", report=None) -> list:
    """The composite's clips: SMIC-HS micro clips, then CASME II, then SAMM.

    Clips whose label has no composite class are dropped; each drop goes to ``report`` and the
    counts per source and label to the log. ``frames`` applies to CASME II and SAMM.
    """
    check_options(frames, report)
    sources = {
        "smic": load_smic(smic_root, modality="HS", non_micro=False),
        "casme2": load_casme2(casme2_root, frames=frames, report=report),
        "samm": load_samm(samm_root, frames=frames, report=report),
    }
    composite = []
    for dataset, clips in sources.items():
        mapping, dropped = MEGC2019_MAPPING[dataset], Counter()
        for clip in clips:
            if clip.label not in mapping:
                dropped[clip.label] += 1
                note(report, None, None, clip.key,
                     f"label {clip.label!r} is not a MEGC2019 class: dropped", level=logging.DEBUG)
                continue
            composite.append(dataclasses.replace(
                clip, subject=f"{dataset}_{clip.subject}", label=mapping[clip.label]))
        if dropped:
            counts = ", ".join(f"{label} {n}" for label, n in sorted(dropped.items()))
            logger.info("MEGC2019: dropped %d %s clips outside the 3 classes (%s)",
                        sum(dropped.values()), dataset, counts)
    return composite


def load_megc2019_folder(root, frames="onset-offset", report=None) -> list:
    """The composite from one folder holding the three datasets (and their sheets) side by side."""
    return load_megc2019(root, root, root, frames=frames, report=report)
