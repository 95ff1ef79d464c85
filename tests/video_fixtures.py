"""Recordings written on the fly: synthetic RGB frames as videos (cv2.VideoWriter) or frame folders.

Codecs this OpenCV wheel (5.0, FFmpeg backend) writes and reads back, checked in test_recordings:
lossless FFV1 (.avi, .mkv), HFYU (.avi, .mkv), PNG (.avi) and raw RGBA (.avi); lossy mp4v (.mp4),
MJPG (.avi). No H.264 encoder is available (avc1/H264 fail to open a writer).
"""

from __future__ import annotations

import cv2
import numpy as np

from mer_keras.datasets.synthetic_faces import render_face, sample_identity

LOSSLESS = "FFV1"


def moving_frames(count, size=48, seed=0, planted=None):
    """``count`` RGB uint8 frames of a synthetic face drifting sub-pixel, with a light patch moving.

    ``planted``: ``{(first, last): (r, g, b)}``: frames first..last (inclusive) get the whole image
    tinted towards that colour (a signal a test model can read).
    """
    face = render_face(sample_identity(np.random.default_rng(seed), size))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = []
    for i in range(count):
        shift = np.float32([[1, 0, 1.5 * np.sin(i / 9.0)], [0, 1, 1.0 * np.cos(i / 13.0)]])
        image = cv2.warpAffine(face, shift, (size, size), borderMode=cv2.BORDER_REFLECT)
        cx, cy = size * (0.5 + 0.3 * np.sin(i / 5.0)), size * (0.5 + 0.3 * np.cos(i / 7.0))
        image = image + 40.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size / 8) ** 2))[..., None]
        for (first, last), colour in (planted or {}).items():
            if first <= i <= last:
                image = 0.3 * image + 0.7 * np.asarray(colour, np.float32)
        frames.append(np.clip(np.rint(image), 0, 255).astype(np.uint8))
    return frames


def write_video(path, frames, fps, fourcc=LOSSLESS):
    """Write RGB frames with cv2.VideoWriter; fails loudly if this build cannot write ``fourcc``."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_folder(folder, frames, prefix="img", ext=".png", first=1):
    """Frames as numbered image files (numbers not zero-padded, as CASME II names them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{prefix}{first + i}{ext}"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def read_video(path):
    """Every frame of a video as RGB uint8, straight from OpenCV."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames
