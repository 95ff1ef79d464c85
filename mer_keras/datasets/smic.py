"""SMIC loader: reads the release layout as users have it on disk.

``SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/image559700.bmp`` (and ``SMIC_all_cropped`` with
``reg_image*.bmp``); non-micro clips sit in a ``non_micro/`` folder of each subject.
"""

from __future__ import annotations

from pathlib import Path

from mer_keras.datasets.clip import Clip, DatasetError
from mer_keras.datasets.frames import list_frames

MODALITIES = ("HS", "VIS", "NIR")
MICRO_CLASSES = ("negative", "positive", "surprise")
NON_MICRO = "non_micro"
FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
_RELEASES = ("SMIC_all_raw", "SMIC_all_cropped")


def _is_subject(folder: Path) -> bool:
    return folder.is_dir() and folder.name.startswith("s") and folder.name[1:].isdigit()


def find_modality_folder(root, modality="HS") -> Path:
    """The ``HS``/``VIS``/``NIR`` folder, given it, its release folder, or the folder above."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: SMIC root not found.")
    if root.name == modality or any(_is_subject(p) for p in root.iterdir()):
        return root
    for candidate in [root / modality] + [root / r / modality for r in _RELEASES]:
        if candidate.is_dir():
            return candidate
    raise DatasetError(
        f"{root}: no SMIC {modality} folder found (looked for {modality}/ and "
        f"{'/, '.join(_RELEASES)}/{modality}/)."
    )


def _clip_folders(folder: Path):
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name)


def _subject_key(folder: Path) -> int:
    return int(folder.name[1:])


def load_smic(root, modality="HS", non_micro=True) -> list:
    """All SMIC clips of one modality as :class:`Clip` records, subjects in numeric order.

    Labels are the class folder names (``negative``, ``positive``, ``surprise``) and ``non_micro``
    for the non-micro clips (the paper's 4-class setting) when ``non_micro`` is true.
    """
    if modality not in MODALITIES:
        raise ValueError(f"`modality` must be one of {MODALITIES}. Received: modality={modality!r}")
    folder = find_modality_folder(root, modality)
    subjects = sorted((p for p in folder.iterdir() if _is_subject(p)), key=_subject_key)
    clips = []
    for subject in subjects:
        micro = subject / "micro"
        if micro.is_dir():
            for class_folder in _clip_folders(micro):
                if class_folder.name not in MICRO_CLASSES:
                    raise DatasetError(
                        f"{class_folder}: unknown class folder {class_folder.name!r}; "
                        f"expected one of {MICRO_CLASSES}."
                    )
                for clip_folder in _clip_folders(class_folder):
                    clips.append(_clip(clip_folder, subject.name, class_folder.name, modality))
        if non_micro and (subject / NON_MICRO).is_dir():
            for clip_folder in _non_micro_clip_folders(subject / NON_MICRO):
                clips.append(_clip(clip_folder, subject.name, NON_MICRO, modality))
    if not clips:
        raise DatasetError(f"{folder}: no SMIC clips found (expected s1/micro/<class>/<clip>/ folders).")
    return clips


def _non_micro_clip_folders(folder: Path):
    """Non-micro clips, directly in ``non_micro/`` or one level down."""
    for child in _clip_folders(folder):
        nested = _clip_folders(child)
        yield from (nested if nested else [child])


def _clip(folder: Path, subject: str, label: str, modality: str) -> Clip:
    return Clip(
        dataset="smic",
        subject=subject,
        clip_id=folder.name,
        label=label,
        frames=list_frames(folder),
        fps=FPS[modality],
    )
