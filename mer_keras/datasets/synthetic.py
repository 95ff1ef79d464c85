"""The built-in synthetic dataset: SMIC-HS-like clips written in SMIC's own layout.

Each subject has its own face (synthetic_faces.py). Every clip starts neutral; from the second
frame a micro-expression (action units as smooth displacement fields, 1-2 % of the face width at
apex) rises and returns to neutral, under blinks, sub-pixel head motion and sensor noise that
are the same in every class. The tree is read by :func:`load_smic` like a real copy.

    python -m mer_keras.datasets.synthetic OUT [--subjects 16] [--seed 0] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mer_keras.datasets.clip import Clip, DatasetError
from mer_keras.datasets.synthetic_faces import (
    CLASS_ACTION_UNITS,
    displacement_field,
    eyelid_alpha,
    render_face,
    sample_identity,
)
from mer_keras.paths import user_cache_base

GENERATOR_VERSION = "synthetic-smic-v1"
FPS = 100.0
SMIC_HS_SUBJECTS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 18, 19, 20)
CLASS_ABBREVIATIONS = {"negative": "ne", "positive": "po", "surprise": "sur", "non_micro": "nm"}
# Mean clips per subject (SMIC-HS: 70/51/43 micro clips over 16 subjects, scaled to ~170 in all)
# and the chance that a subject shows the class at all.
CLIPS_PER_SUBJECT = {"negative": 3.2, "positive": 2.4, "surprise": 2.0, "non_micro": 3.2}
PRESENCE = {"negative": 0.85, "positive": 0.75, "surprise": 0.7, "non_micro": 0.8}
NOISE_SIGMA = 2.0  # sensor noise, grey levels
BLINK_PROBABILITY = 0.25
COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class ClipPlan:
    """What one synthetic clip will be, decided before any pixel is drawn."""

    subject: str
    label: str
    clip_id: str
    n_frames: int
    first_frame: int


def subject_names(subjects: int) -> list:
    """SMIC-HS's own subject folders (s1-s6, s8, s9, s11-s15, s18-s20), then s21, s22, ..."""
    numbers = list(SMIC_HS_SUBJECTS[:subjects]) + list(range(21, 21 + max(0, subjects - 16)))
    return [f"s{n}" for n in numbers]


def plan_clips(subjects=16, seed=0, clips_scale=1.0, min_length=11, max_length=60) -> list:
    """Which subject shows which class how often, clip lengths and frame numbers; by seed."""
    if subjects < 1 or clips_scale <= 0 or not 6 <= min_length <= max_length:
        raise ValueError(
            "Need subjects >= 1, clips_scale > 0 and 6 <= min_length <= max_length. Received: "
            f"subjects={subjects}, clips_scale={clips_scale}, lengths {min_length}-{max_length}"
        )
    rng = np.random.default_rng([seed, 0x504C414E])
    names = subject_names(subjects)
    counts = {name: {} for name in names}
    for label, rate in CLIPS_PER_SUBJECT.items():
        present = np.flatnonzero(rng.random(subjects) < PRESENCE[label])
        needed = int(np.ceil(0.625 * subjects))  # every class in >= 10 of 16 subjects
        if present.size < needed:
            missing = rng.permutation(np.setdiff1d(np.arange(subjects), present))
            present = np.sort(np.concatenate([present, missing[: needed - present.size]]))
        total = max(present.size, int(round(rate * subjects * clips_scale)))
        extra = rng.multinomial(total - present.size, rng.dirichlet(np.full(present.size, 3.0)))
        for index, count in zip(present, extra + 1):
            counts[names[index]][label] = int(count)
    for name in names:  # every subject has at least one clip
        if not counts[name]:
            counts[name]["non_micro"] = 1
    plans = []
    for name in names:
        for label in CLIPS_PER_SUBJECT:
            for number in range(1, counts[name].get(label, 0) + 1):
                length = np.rint(min_length + rng.gamma(1.6, 10.5))
                length = int(np.clip(length, min_length, max_length))
                if rng.random() < 0.1 or not plans:  # cross 99999 -> 100000: lexical order is wrong
                    first = 100_000 - int(rng.integers(1, length))
                else:
                    first = int(rng.integers(100_000, 1_000_000 - length))
                clip_id = f"{name}_{CLASS_ABBREVIATIONS[label]}_{number:02d}"
                plans.append(ClipPlan(name, label, clip_id, length, first))
    shortest = min(range(len(plans)), key=lambda i: plans[i].n_frames)
    if plans[shortest].n_frames != min_length:  # SMIC's shortest clip is 11 frames: keep one
        p = plans[shortest]
        first = max(p.first_frame, 100_000 - min_length + 1) if p.first_frame < 100_000 else p.first_frame
        plans[shortest] = ClipPlan(p.subject, p.label, p.clip_id, min_length, first)
    return plans


def expression_envelope(n_frames: int, apex: int) -> np.ndarray:
    """0 at frames 0 and 1, smooth rise to 1 at ``apex``, back to 0 at the last frame."""
    t = np.arange(n_frames, dtype=np.float64)
    rise = np.clip((t - 1.0) / max(apex - 1.0, 1.0), 0.0, 1.0)
    fall = np.clip((t - apex) / max(n_frames - 1.0 - apex, 1.0), 0.0, 1.0)
    shape = np.where(t <= apex, 0.5 - 0.5 * np.cos(np.pi * rise), 0.5 + 0.5 * np.cos(np.pi * fall))
    return shape**2  # squared raised cosine: frames near onset/offset stay near neutral


def render_clip(face, neutral, closed, plan: ClipPlan, rng, intensity=1.0):
    """Frames (T, H, W, 3) uint8, the moving-region mask (H, W) bool and what was drawn."""
    size, T = face.size, plan.n_frames
    action_units = CLASS_ACTION_UNITS[plan.label]
    apex = max(3, int(rng.integers(round(0.3 * (T - 1)), round(0.7 * (T - 1)) + 1)))
    strength = rng.uniform(0.65, 1.1) * intensity
    envelope = expression_envelope(T, apex) * (strength if action_units else 0.0)
    dx, dy, support = displacement_field(face, action_units)

    # Nuisance, drawn identically for every class: head pose, drift, blink, lighting, noise.
    k = size / 128.0
    times = np.arange(T) / FPS
    pose = np.array([rng.normal(0, 0.4 * k), rng.normal(0, 0.4 * k), rng.normal(0, 0.0105)])
    drift_amp = np.array([0.2 * k, 0.2 * k, np.radians(0.15)]) * rng.uniform(0.3, 1.0, 3)
    drift = drift_amp[:, None] * np.sin(
        2 * np.pi * rng.uniform(0.3, 1.5, 3)[:, None] * times + rng.uniform(0, 2 * np.pi, 3)[:, None]
    )
    motion = pose[:, None] + drift  # (tx px, ty px, angle rad) per frame; 0.0105 rad = 0.6 deg
    closure = np.zeros(T)
    if rng.random() < BLINK_PROBABILITY:
        start, duration = int(rng.integers(2, T)), int(rng.integers(10, 21))
        phase = np.clip((np.arange(T) - start) / duration, 0.0, 1.0)
        closure = rng.uniform(0.6, 1.0) * np.sin(np.pi * phase) ** 2
    gain = rng.normal(1.0, 0.02) * (1.0 + rng.normal(0, 0.003, T))

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = face.center

    def pose_map(tx, ty, angle):
        """Face coordinates seen at each output pixel when the head is translated and rotated."""
        px, py = xs - cx - tx, ys - cy - ty
        c, s = np.cos(angle), np.sin(angle)
        return (c * px + s * py + cx).astype(np.float32), (-s * px + c * py + cy).astype(np.float32)

    frames = np.empty((T, size, size, 3), np.uint8)
    for t in range(T):
        base = neutral
        if closure[t] > 0.01:
            alpha = eyelid_alpha(face, closure[t])[..., None]
            base = neutral * (1 - alpha) + closed * alpha
        map_x, map_y = pose_map(*motion[:, t])
        map_x -= envelope[t] * dx  # backward map of a small forward displacement
        map_y -= envelope[t] * dy
        frame = cv2.remap(base, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        frame = frame * gain[t] + rng.normal(0, NOISE_SIGMA, frame.shape)
        frames[t] = np.clip(np.rint(frame), 0, 255)
    map_x, map_y = pose_map(*pose)
    mask = cv2.remap(support, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = mask >= 0.25
    shown = strength if action_units else 0.0
    info = {
        "action_units": list(action_units),
        "apex": apex,
        "strength": round(float(shown), 4),
        "apex_displacement_px": round(float(shown * np.hypot(dx, dy).max()), 3),
        "blink": bool(closure.max() > 0),
    }
    return frames, mask, info


def _clip_folder(smic_hs: Path, plan: ClipPlan) -> Path:
    kind = "non_micro" if plan.label == "non_micro" else f"micro/{plan.label}"
    return smic_hs / plan.subject / kind / plan.clip_id


def make_synthetic_smic(
    root, subjects=16, seed=0, size=128, clips_scale=1.0, intensity=1.0, progress=True
) -> Path:
    """Write the synthetic dataset under ``root/SMIC_all_raw/HS`` and return ``root``.

    Same arguments, same bytes. ``clips_scale`` scales the number of clips per subject and
    ``intensity`` the expression amplitude (1.0: 1-2 % of the face width at apex).
    """
    if size < 32:
        raise ValueError(f"`size` must be at least 32 pixels. Received: size={size}")
    if intensity < 0:
        raise ValueError(f"`intensity` must be >= 0. Received: intensity={intensity}")
    root = Path(root)
    release = root / "SMIC_all_raw"
    if release.exists() and any(release.iterdir()):
        raise FileExistsError(f"{release} already exists and is not empty; choose an empty folder.")
    plans = plan_clips(subjects, seed, clips_scale)
    faces = {
        name: sample_identity(np.random.default_rng([seed, i, 0xFACE]), size)
        for i, name in enumerate(subject_names(subjects))
    }
    renders = {}
    manifest = []
    bar = tqdm(plans, desc="synthetic SMIC", unit="clip", disable=not progress)
    for index, plan in enumerate(bar):
        face = faces[plan.subject]
        if plan.subject not in renders:  # clips come grouped by subject: keep one subject's renders
            renders = {plan.subject: (render_face(face), render_face(face, eyes_closed=True))}
        frames, mask, info = render_clip(
            face, *renders[plan.subject], plan, np.random.default_rng([seed, index, 0xC119]), intensity
        )
        folder = _clip_folder(release / "HS", plan)
        folder.mkdir(parents=True)
        for number, frame in enumerate(frames, start=plan.first_frame):
            cv2.imwrite(str(folder / f"image{number}.bmp"), np.ascontiguousarray(frame[..., ::-1]))
        cv2.imwrite(str(mask_path(folder)), mask.astype(np.uint8) * 255)
        manifest.append({**asdict(plan), **info})
    parameters = {
        "generator": GENERATOR_VERSION,
        "subjects": subjects,
        "seed": seed,
        "size": size,
        "clips_scale": clips_scale,
        "intensity": intensity,
        "fps": FPS,
    }
    (release / "synthetic_manifest.json").write_text(
        json.dumps({"parameters": parameters, "clips": manifest}, indent=1)
    )
    _write_readme(release / "README_SYNTHETIC.txt", parameters, plans)
    return root


def _write_readme(path: Path, parameters: dict, plans: list):
    labels = [p.label for p in plans]
    per_class = ", ".join(f"{label} {labels.count(label)}" for label in CLIPS_PER_SUBJECT)
    lengths = np.array([p.n_frames for p in plans])
    lines = [
        f"Synthetic SMIC-HS-like dataset written by mer_keras ({GENERATOR_VERSION}).",
        "Not real data: faces, expressions and nuisance are drawn by a program.",
        "Parameters: " + ", ".join(f"{k}={v}" for k, v in parameters.items()),
        f"Clips: {len(plans)} ({per_class}); frames: {lengths.sum()}; "
        f"length {lengths.min()}-{lengths.max()} (mean {lengths.mean():.1f}) at {FPS:g} fps.",
        "Classes: negative = AU4 + AU15, positive = AU12, surprise = AU1+2 + AU5,",
        "non_micro = none; blinks, head motion and sensor noise in every class.",
        "Beside each clip folder, <clip>_mask.png marks the regions its action units move.",
        "synthetic_manifest.json holds each clip's apex frame index and expression strength.",
    ]
    path.write_text("\n".join(lines) + "\n")


def mask_path(clip_or_folder) -> Path:
    """``<clip folder>_mask.png`` beside the clip folder (a :class:`Clip` or a folder path)."""
    if isinstance(clip_or_folder, Clip):
        folder = Path(clip_or_folder.frames[0]).parent
    else:
        folder = Path(clip_or_folder)
    return folder.parent / f"{folder.name}_mask.png"


def read_mask(clip, size=None) -> np.ndarray:
    """The clip's moving-region mask as a bool (H, W) array, resized (nearest) to ``size``."""
    path = mask_path(clip)
    if not path.is_file():
        raise DatasetError(f"{path}: no region mask beside the clip (synthetic clips have one).")
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DatasetError(f"{path}: cannot decode the region mask.")
    if size is not None:
        height, width = (size, size) if isinstance(size, int) else size
        mask = cv2.resize(mask, (int(width), int(height)), interpolation=cv2.INTER_NEAREST)
    return mask > 127


def synthetic_root(seed=0, subjects=16, size=128) -> Path:
    """Where the cached synthetic dataset lives: ``$MER_KERAS_CACHE`` or the user cache dir."""
    return user_cache_base() / f"{GENERATOR_VERSION}-s{subjects}-seed{seed}-{size}"


def ensure_synthetic_smic(seed=0, subjects=16, size=128, progress=True) -> Path:
    """The cached synthetic dataset, generated on first use (into a temp dir, renamed when done)."""
    root = synthetic_root(seed, subjects, size)
    if (root / COMPLETE_MARKER).is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        make_synthetic_smic(scratch, subjects=subjects, seed=seed, size=size, progress=progress)
        (scratch / COMPLETE_MARKER).write_text(GENERATOR_VERSION + "\n")
        if (root / COMPLETE_MARKER).is_file():  # another process finished first
            return root
        if root.exists():  # an interrupted generation: never half-used
            shutil.rmtree(root)
        scratch.rename(root)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mer_keras.datasets.synthetic",
        description="Write the synthetic SMIC-HS-like dataset to OUT.",
    )
    parser.add_argument("out", type=Path, help="folder to create SMIC_all_raw/ in")
    parser.add_argument("--subjects", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=128, help="frame height and width in pixels")
    parser.add_argument(
        "--clips-scale", type=float, default=1.0, help="multiplies the number of clips per subject"
    )
    parser.add_argument("--intensity", type=float, default=1.0, help="multiplies the expression amplitude")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        root = make_synthetic_smic(
            args.out,
            args.subjects,
            args.seed,
            args.size,
            args.clips_scale,
            args.intensity,
            progress=not args.quiet,
        )
    except (ValueError, FileExistsError) as error:
        parser.exit(2, f"error: {error}\n")
    print((root / "SMIC_all_raw" / "README_SYNTHETIC.txt").read_text(), end="")
    print(f"Written to {root} in {time.perf_counter() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
