"""The record every loader returns: one clip of one subject, its label and its frames."""

from __future__ import annotations

from dataclasses import dataclass


class DatasetError(ValueError):
    """A dataset on disk is not what a loader expects; the message names the path."""


@dataclass(frozen=True, repr=False)
class Clip:
    """One labelled clip: frame paths in temporal order plus where they came from.

    ``onset``/``apex``/``offset`` are indices into ``frames`` when the dataset codes them.
    """

    dataset: str
    subject: str
    clip_id: str
    label: str
    frames: tuple
    fps: float
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None

    def __post_init__(self):
        if not isinstance(self.frames, tuple):
            object.__setattr__(self, "frames", tuple(str(f) for f in self.frames))
        if not self.frames:
            raise DatasetError(f"Clip {self.clip_id!r} of subject {self.subject!r} has no frames.")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def key(self) -> str:
        """A name unique across datasets: ``dataset/subject/clip_id``."""
        return f"{self.dataset}/{self.subject}/{self.clip_id}"

    def __repr__(self) -> str:
        coded = "".join(
            f", {name}={getattr(self, name)}"
            for name in ("onset", "apex", "offset")
            if getattr(self, name) is not None
        )
        return (
            f"Clip({self.dataset}/{self.subject}/{self.clip_id}, label={self.label!r}, "
            f"{len(self.frames)} frames @ {self.fps:g} fps{coded})"
        )
