"""Folders of a dataset tree, listed by one set of rules that every loader shares.

Hidden entries (``.DS_Store``, ``._image1.bmp``, ``.thumbnails/``) are junk and left out; a broken
symbolic link is an error naming the link and its target, never skipped (a clip folder linked to an
unmounted disk would vanish). A folder holding image files is a clip folder; a folder holding only
subfolders is a grouping level; a clip folder that also holds a subfolder with images is an error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mer_keras.datasets.clip import DatasetError

IMAGE_EXTENSIONS = frozenset({".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff"})


def is_image(path) -> bool:
    """True for image files by extension; junk such as ``Thumbs.db`` or ``.DS_Store`` is not."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def check_link(path) -> None:
    """A dangling symbolic link at ``path`` is an error naming it and where it points."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise DatasetError(
            f"{path}: broken symbolic link to {os.readlink(path)} (its target does not exist: an "
            "unmounted disk, a moved copy or a link loop?); mount or fix it, or remove the link."
        )


def dataset_root(root, what: str) -> Path:
    """``root`` as a Path, checked to be a folder; ``what`` names it in the error (``"SMIC root"``)."""
    root = Path(root)
    check_link(root)
    if not root.exists():
        raise DatasetError(f"{root}: {what} not found.")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, not a dataset folder; pass the folder holding the dataset.")
    return root


def entries(folder) -> list:
    """The entries of ``folder`` in name order, hidden ones left out; a broken link is an error."""
    found = sorted((p for p in Path(folder).iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    for path in found:
        check_link(path)
    return found


def subfolders(folder) -> list:
    """The subfolders of ``folder`` in name order (see :func:`entries`)."""
    return [p for p in entries(folder) if p.is_dir()]


def images(folder) -> list:
    """The image files directly in ``folder`` (see :func:`entries`)."""
    return [p for p in entries(folder) if p.is_file() and is_image(p)]


def first_image_below(folder, _seen=None):
    """An image file anywhere inside ``folder`` (itself or deeper), or None; link loops are visited once."""
    seen = set() if _seen is None else _seen
    real = os.path.realpath(folder)
    if real in seen:
        return None
    seen.add(real)
    children = entries(folder)
    found = next((p for p in children if p.is_file() and is_image(p)), None)
    if found is not None:
        return found
    for child in children:
        if child.is_dir():
            found = first_image_below(child, seen)
            if found is not None:
                return found
    return None


def nested_image_folder(folder):
    """``(subfolder, image)``: the first subfolder of ``folder`` that holds images (at any depth), or None."""
    for child in subfolders(folder):
        image = first_image_below(child)
        if image is not None:
            return child, image
    return None


def clip_folders(folder) -> list:
    """The clip folders below ``folder``, in name order, grouping levels looked into.

    ``folder`` is a known level of the layout (a class folder, ``non_micro/``), so files in it are
    no frames (the synthetic dataset keeps ``<clip>_mask.png`` there). Below it, a folder holding
    image files is a clip folder (the frame listing checks it holds no subfolder with images), one
    holding only subfolders a grouping level (``non_micro/<group>/<clip>/``); an empty one is
    returned as a clip folder, so listing its frames names it.
    """
    folder = Path(folder)
    return _clip_folders(folder, {os.path.realpath(folder)})


def _clip_folders(folder: Path, seen: set) -> list:
    found = []
    for child in subfolders(folder):
        real = os.path.realpath(child)
        if real in seen:
            continue  # a link back up the tree
        groups = subfolders(child)
        if images(child) or not groups:
            found.append(child)
        else:
            found += _clip_folders(child, seen | {real})
    return found


def numbered_subjects(folder, pattern: re.Pattern) -> dict:
    """``{number: folder}`` of the subject folders in ``folder`` whose names ``pattern`` matches.

    ``pattern``'s first group is the subject number; two folders with one number (``s1`` and ``s01``)
    are an error naming both, since a loader would take them for two subjects.
    """
    subjects = {}
    for child in subfolders(folder):
        match = pattern.fullmatch(child.name)
        if match is None:
            continue
        number = int(match.group(1))
        if number in subjects:
            other = subjects[number]
            raise DatasetError(
                f"{folder}: folders {other.name!r} and {child.name!r} are both subject {number}; merge them "
                f"or remove one. Received: {other} and {child}"
            )
        subjects[number] = child
    return dict(sorted(subjects.items()))
