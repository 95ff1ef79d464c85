"""Which two frames of a clip the apex-frame networks see: the onset and the apex.

Rules, per clip (``choose_onset_apex``):

- A clip of one frame has no motion to see: refused (``DatasetError`` naming the clip).
- Onset: the coded onset (CASME II, SAMM) if it is a frame of the clip before its last, else
  frame 0 (SMIC codes none; an onset outside the clip or at its last frame is reported).
- Apex: the coded apex if it lies after the onset and inside the clip. Otherwise it is estimated
  (``estimate``): an uncoded apex silently, a coded one that is not after the onset (onset after
  the apex, or equal to it) or lies outside the clip — sheet quirks SAMM has — with the clip and
  the problem reported. The coded onset is kept in that case: which of the two cells is wrong
  cannot be told, and an estimate after the onset is always a valid pair.
- ``estimate="flow"`` (the default): the frame after the onset whose motion from the onset is
  largest. ``estimate="middle"``: the middle frame between the onset and the last frame.

The sheet loaders (``datasets/sheets.py``) already unset, and report, a coded apex outside the
coded onset..offset; such a clip reaches these rules with no apex and gets an estimate. The checks
here cover clips made any other way.

The motion search uses Farneback flow (cheap) on frames shrunk to ``ApexSearch.width`` pixels;
only the chosen pair then gets TV-L1, at the frames' own size. On the built-in synthetic dataset (121 micro
clips of 11-60 frames, 128x128; ``python -m benchmarks.apex``), the share of estimates within 3
frames of the true apex: this search 0.89 (about 50 ms a clip), the same scored by the mean 0.80,
the middle frame 0.68. Tried the same way while choosing: plain mean |flow| 0.50; TV-L1 as the
search at 32 or 64 px 0.26-0.41 at 1-5 s a clip; DIS 0.31-0.68. The median removes the head's
translation, and a high percentile follows the local facial motion that a whole-frame mean dilutes.
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from mer_keras.datasets.clip import DatasetError
from mer_keras.datasets.frames import read_frame
from mer_keras.flow.optical_flow import apply_transform, resize_image, to_grey

APEX_ESTIMATES = ("flow", "middle")
SOURCES = ("coded", "flow", "middle")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApexSearch:
    """How ``estimate="flow"`` searches: frames shrunk to ``width`` px (height keeps the aspect
    ratio), Farneback flow from the onset to every ``stride``-th frame and then to the frames
    around the best one, scored by the ``percentile`` of |flow - median flow| (None: the mean)."""

    width: int = 64
    stride: int = 1
    percentile: float | None = 95.0
    # cv2.calcOpticalFlowFarneback: pyramid scale, levels, window size, iterations, poly_n, poly_sigma
    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2

    def __post_init__(self):
        for name in ("width", "stride", "levels", "winsize", "iterations", "poly_n"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"ApexSearch `{name}` must be a positive int. Received: {name}={value!r}")
        if self.width < 8:
            raise ValueError(f"ApexSearch `width` must be at least 8 pixels. Received: width={self.width!r}")
        if self.percentile is not None and (
            isinstance(self.percentile, bool)
            or not isinstance(self.percentile, numbers.Real)
            or not 0 <= self.percentile <= 100
        ):
            raise ValueError(
                "ApexSearch `percentile` must be None or a number in [0, 100]. "
                f"Received: percentile={self.percentile!r}"
            )
        if not 0 < self.pyr_scale < 1 or not self.poly_sigma > 0:
            raise ValueError(
                "ApexSearch needs 0 < pyr_scale < 1 and poly_sigma > 0. "
                f"Received: pyr_scale={self.pyr_scale!r}, poly_sigma={self.poly_sigma!r}"
            )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class OnsetApex:
    """The pair chosen for one clip: frame indices, where the apex came from and any sheet quirk."""

    clip: str
    onset: int
    apex: int
    source: str  # "coded", "flow" or "middle"
    issue: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def require_flow_clip(clip) -> None:
    """Refuse a clip with fewer than two frames (no onset-apex pair), naming it."""
    if len(clip) < 2:
        raise DatasetError(
            f"Clip {clip.key} has {len(clip)} frame: flow models need an onset and a later "
            f"apex frame. Received: frames={list(clip.frames)!r}"
        )


def middle_frame(onset: int, n_frames: int) -> int:
    """The middle frame between ``onset`` and the last frame, rounded up (so always after the onset)."""
    if not 0 <= onset < n_frames - 1:
        raise ValueError(f"`onset` must be a frame before the last of {n_frames}. Received: onset={onset!r}")
    return (onset + n_frames) // 2


def _search_frame(path, transform, width):
    grey = apply_transform(to_grey(read_frame(path)), transform)
    height = max(8, round(grey.shape[0] * width / grey.shape[1]))
    return resize_image(grey, (height, width))


def motion_score(flow, percentile=95.0) -> float:
    """How much a flow field moves, head translation removed: a percentile (None: the mean) of
    the magnitude of ``flow - median(flow)``."""
    flat = np.asarray(flow, np.float32).reshape(-1, 2)
    magnitude = np.hypot(*(flat - np.median(flat, axis=0)).T)
    return float(magnitude.mean() if percentile is None else np.percentile(magnitude, percentile))


def motion_scores(clip, onset=0, search: ApexSearch | None = None, transform=None, indices=None) -> dict:
    """``{frame index: motion_score}`` of the Farneback flow from ``onset`` to each of ``indices``
    (default: every frame after the onset)."""
    search = search or ApexSearch()
    indices = range(onset + 1, len(clip)) if indices is None else indices
    first = _search_frame(clip.frames[onset], transform, search.width)
    scores = {}
    for index in indices:
        flow = cv2.calcOpticalFlowFarneback(
            first,
            _search_frame(clip.frames[index], transform, search.width),
            None,
            search.pyr_scale,
            search.levels,
            search.winsize,
            search.iterations,
            search.poly_n,
            search.poly_sigma,
            0,
        )
        scores[int(index)] = motion_score(flow, search.percentile)
    return scores


def estimate_apex(clip, onset=0, search: ApexSearch | None = None, transform=None) -> int:
    """The frame after ``onset`` whose motion from the onset is largest (ties: the earliest).

    With ``search.stride`` k > 1, every k-th frame (and the last) is scored first, then the k - 1
    frames either side of the best: about n / k + 2k flows instead of n.
    """
    require_flow_clip(clip)
    search = search or ApexSearch()
    if not 0 <= onset < len(clip) - 1:
        raise ValueError(
            f"Clip {clip.key}: `onset` must be a frame before the last of {len(clip)}. "
            f"Received: onset={onset!r}"
        )
    last = len(clip) - 1
    candidates = list(range(onset + 1, last + 1, search.stride))
    if candidates[-1] != last:
        candidates.append(last)  # the last frame is always looked at
    scores = motion_scores(clip, onset, search, transform, candidates)
    if search.stride > 1:
        best = max(scores, key=lambda i: (scores[i], -i))
        low, high = max(onset + 1, best - search.stride + 1), min(last, best + search.stride - 1)
        around = [i for i in range(low, high + 1) if i not in scores]
        scores.update(motion_scores(clip, onset, search, transform, around))
    return max(scores, key=lambda i: (scores[i], -i))


def _note(report, clip, issue):
    logger.warning("%s: %s", clip.key, issue)
    if report is not None:
        report.append({"clip": clip.key, "issue": issue})


def choose_onset_apex(
    clip, estimate="flow", use_coded_apex=True, search: ApexSearch | None = None, transform=None, report=None
) -> OnsetApex:
    """The onset and apex frame of ``clip`` by the rules of the module docstring.

    Sheet quirks are logged and, if ``report`` is a list, appended to it as
    ``{"clip": clip.key, "issue": ...}``. ``use_coded_apex=False`` estimates every apex (to
    measure an estimator against the coded one).
    """
    if estimate not in APEX_ESTIMATES:
        raise ValueError(f"`estimate` must be one of {APEX_ESTIMATES}. Received: estimate={estimate!r}")
    if report is not None and not isinstance(report, list):
        raise ValueError(f"`report` must be None or a list. Received: report={report!r}")
    require_flow_clip(clip)
    n, issues = len(clip), []
    onset = 0
    if clip.onset is not None:
        if 0 <= clip.onset < n - 1:
            onset = int(clip.onset)
        else:
            issues.append(
                f"coded onset {clip.onset} is not a frame before the last of the clip's "
                f"frames 0..{n - 1}: onset set to 0"
            )
    apex, source = None, estimate
    if use_coded_apex and clip.apex is not None:
        if not 0 <= clip.apex < n:
            issues.append(
                f"coded apex {clip.apex} is outside the clip's frames 0..{n - 1}: apex estimated ({estimate})"
            )
        elif clip.apex <= onset:
            issues.append(
                f"coded apex {clip.apex} is not after the onset {onset}: apex estimated ({estimate})"
            )
        else:
            apex, source = int(clip.apex), "coded"
    if apex is None:
        apex = estimate_apex(clip, onset, search, transform) if estimate == "flow" else middle_frame(onset, n)
    for issue in issues:
        _note(report, clip, issue)
    return OnsetApex(clip.key, onset, apex, source, "; ".join(issues) or None)
