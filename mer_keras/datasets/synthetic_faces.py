"""Synthetic faces for the built-in dataset: one identity per subject, drawn smooth with numpy.

Shapes are soft (signed distance through a smooth step about a pixel wide), then blurred a
little, so that a sub-pixel warp of the face changes pixel values smoothly. Action units are
Gaussian-weighted displacement fields around the brows, eyelids and mouth corners.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The action units each class shows (action_unit_components gives their displacement fields).
CLASS_ACTION_UNITS = {
    "negative": ("AU4", "AU15"),
    "positive": ("AU12",),
    "surprise": ("AU1+2", "AU5"),
    "non_micro": (),
}
HAIR_COLOURS = np.array([[30, 22, 18], [70, 45, 28], [125, 90, 55], [190, 160, 110], [40, 40, 42]])
IRIS_COLOURS = np.array([[70, 45, 25], [60, 90, 120], [80, 100, 60], [40, 30, 25]])


@dataclass(frozen=True)
class FaceIdentity:
    """Geometry and colours of one synthetic subject, in pixels of a ``size`` x ``size`` frame."""

    size: int
    center: tuple  # head centre (x, y)
    radii: tuple  # head half-width, half-height
    skin: tuple  # RGB
    hair: tuple
    clothes: tuple
    background: tuple  # (top RGB, bottom RGB)
    light: tuple  # direction (x, y, z) and strength
    hairline: float  # height of the hairline above the centre, fraction of the half-height
    brow: tuple  # (dy, dx, half length, thickness, arch) in pixels, dy/dx from head centre
    eye: tuple  # (dy, dx, half width, half height)
    iris: tuple  # RGB
    nose: tuple  # (length, half width)
    mouth: tuple  # (dy, half width, upper lip, lower lip, smile curvature)
    lips: tuple  # RGB
    blush: float
    texture_seed: int

    @property
    def face_width(self) -> float:
        return 2.0 * self.radii[0]

    def brow_center(self, side: int):
        cx, cy = self.center
        return cx + side * self.brow[1], cy + self.brow[0]

    def eye_center(self, side: int):
        cx, cy = self.center
        return cx + side * self.eye[1], cy + self.eye[0]

    def mouth_corner(self, side: int):
        cx, cy = self.center
        return cx + side * self.mouth[1], cy + self.mouth[0]


def sample_identity(rng: np.random.Generator, size: int) -> FaceIdentity:
    """A random but plausible face: proportions, skin tone, hair, background and lighting."""
    s = float(size)
    rx = s * rng.uniform(0.27, 0.31)
    ry = rx * rng.uniform(1.22, 1.36)
    tone = rng.uniform(0.0, 1.0)  # light to dark skin
    skin = np.array([236, 202, 178]) * (1 - tone) + np.array([128, 86, 62]) * tone
    skin = skin * rng.uniform(0.96, 1.04, 3)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    back = rng.uniform(60, 200, 3)
    angle = rng.uniform(-1.0, 1.0)
    light = (np.sin(angle), -rng.uniform(0.2, 0.6), np.cos(angle), rng.uniform(0.15, 0.35))
    mouth_half = rx * rng.uniform(0.32, 0.42)
    return FaceIdentity(
        size=size,
        center=(s * 0.5 + rng.normal(0, 0.015 * s), s * 0.5 + rng.normal(0, 0.015 * s)),
        radii=(rx, ry),
        skin=tuple(np.clip(skin, 0, 255)),
        hair=tuple(np.clip(hair, 0, 255)),
        clothes=tuple(rng.uniform(30, 220, 3)),
        background=(tuple(back), tuple(np.clip(back * rng.uniform(0.6, 1.1, 3), 0, 255))),
        light=light,
        hairline=rng.uniform(0.52, 0.68),
        brow=(
            -ry * rng.uniform(0.24, 0.3),
            rx * rng.uniform(0.36, 0.44),
            rx * rng.uniform(0.22, 0.28),
            rx * rng.uniform(0.06, 0.09),
            rx * rng.uniform(0.03, 0.08),
        ),
        eye=(
            -ry * rng.uniform(0.1, 0.15),
            rx * rng.uniform(0.36, 0.42),
            rx * rng.uniform(0.16, 0.2),
            rx * rng.uniform(0.07, 0.09),
        ),
        iris=tuple(IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.8, 1.2)),
        nose=(ry * rng.uniform(0.3, 0.38), rx * rng.uniform(0.13, 0.18)),
        mouth=(
            ry * rng.uniform(0.46, 0.54),
            mouth_half,
            rx * rng.uniform(0.08, 0.11),
            rx * rng.uniform(0.1, 0.14),
            rx * rng.uniform(-0.02, 0.04),
        ),
        lips=tuple(np.clip(skin * np.array([0.85, 0.62, 0.62]) + np.array([25, 0, 5]), 0, 255)),
        blush=rng.uniform(0.0, 0.06),
        texture_seed=int(rng.integers(2**31)),
    )


def _grid(size):
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs, ys


def _inside(signed_distance, width=0.7):
    """Soft coverage from a signed distance in pixels (negative inside): antialiased edges."""
    return 0.5 - 0.5 * np.tanh(signed_distance / width)


def _ellipse(xs, ys, center, radii):
    """Approximate signed distance to an ellipse (first-order, exact on the boundary)."""
    dx, dy = (xs - center[0]) / radii[0], (ys - center[1]) / radii[1]
    f = dx * dx + dy * dy - 1.0
    grad = 2.0 * np.sqrt((dx / radii[0]) ** 2 + (dy / radii[1]) ** 2) + 1e-6
    return f / grad


def _smooth_noise(rng, size, sigma, sigma_y=None):
    """Unit-variance noise low-passed with a Gaussian: skin, hair and background textures."""
    noise = cv2.GaussianBlur(
        rng.standard_normal((size, size)).astype(np.float32),
        (0, 0),
        sigma,
        sigmaY=sigma_y or sigma,
        borderType=cv2.BORDER_REFLECT,
    )
    return noise / (noise.std() + 1e-6)


def _paint(image, alpha, colour):
    alpha = alpha[..., None]
    image *= 1.0 - alpha
    image += alpha * np.asarray(colour, np.float32)


def render_face(face: FaceIdentity, eyes_closed: bool = False) -> np.ndarray:
    """The subject's neutral face as float32 RGB in [0, 255]; ``eyes_closed`` for blinks."""
    size, (cx, cy), (rx, ry) = face.size, face.center, face.radii
    xs, ys = _grid(size)
    rng = np.random.default_rng(face.texture_seed)  # same textures for open and closed eyes
    k = size / 128.0
    top, bottom = np.asarray(face.background, np.float32)
    t = (ys / size)[..., None]
    image = top * (1 - t) + bottom * t + 6.0 * _smooth_noise(rng, size, 10 * k)[..., None]
    shoulders = _ellipse(xs, ys, (cx, size * 1.22), (size * 0.5, size * 0.36))
    _paint(image, _inside(shoulders), face.clothes)
    neck = np.maximum(np.abs(xs - cx) - rx * 0.5, cy + 0.5 * ry - ys)
    _paint(image, _inside(neck), np.asarray(face.skin) * 0.8)
    for side in (-1, 1):
        ear = _ellipse(xs, ys, (cx + side * rx * 0.97, cy - 0.05 * ry), (rx * 0.13, ry * 0.2))
        _paint(image, _inside(ear), np.asarray(face.skin) * 0.9)

    # Skin: Lambertian shading of an ellipsoid plus two scales of texture.
    nx, ny = (xs - cx) / rx, (ys - cy) / ry
    nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
    lx, ly, lz, strength = face.light
    lambert = np.clip((nx * lx + ny * ly + nz * lz) / np.sqrt(lx * lx + ly * ly + lz * lz), 0, 1)
    shade = (1.0 - strength) + strength * lambert
    shade *= 1.0 + 0.035 * _smooth_noise(rng, size, 4 * k)
    shade *= 1.0 + 0.02 * _smooth_noise(rng, size, 0.8 * k)
    skin = np.asarray(face.skin, np.float32) * shade[..., None]
    for side in (-1, 1):  # cheeks
        cheek = _gaussian(xs, ys, (cx + side * rx * 0.5, cy + ry * 0.2), (rx * 0.16, ry * 0.11))
        skin *= 1.0 - face.blush * cheek[..., None] * np.array([0.0, 1.0, 0.8], np.float32)
    head = _inside(_ellipse(xs, ys, (cx, cy), (rx, ry)))[..., None]
    image = image * (1 - head) + skin * head

    # Hair: a cap over the top of the head down to a wavy hairline, with strand texture.
    hairline = cy - face.hairline * ry + 0.04 * ry * np.cos(3.0 * (xs - cx) / rx)
    cap = np.maximum(_ellipse(xs, ys, (cx, cy - 0.03 * ry), (rx * 1.06, ry * 1.06)), ys - hairline)
    strands = 1.0 + 0.12 * _smooth_noise(rng, size, 0.6 * k, 3.0 * k)
    hair = np.asarray(face.hair, np.float32) * strands[..., None]
    alpha = _inside(cap)[..., None]
    image = image * (1 - alpha) + hair * alpha

    _draw_brows(image, face, xs, ys)
    _draw_eyes(image, face, xs, ys, eyes_closed)
    _draw_nose_mouth(image, face, xs, ys)
    image = cv2.GaussianBlur(image, (0, 0), 0.5 * k)
    return np.clip(image, 0, 255).astype(np.float32)


def _draw_brows(image, face, xs, ys):
    length, thickness, arch = face.brow[2], face.brow[3], face.brow[4]
    colour = np.asarray(face.hair, np.float32) * 0.7
    for side in (-1, 1):
        bx, by = face.brow_center(side)
        u = np.clip((xs - bx) * side / length, -1.5, 1.5)  # -1 inner end, +1 outer end
        centre_line = by - arch * (1 - u * u) + 0.15 * thickness * u
        half = 0.5 * thickness * (1.0 - 0.35 * (u + 1))
        distance = np.maximum(np.abs(ys - centre_line) - half, (np.abs(u) - 1) * length)
        _paint(image, 0.85 * _inside(distance), colour)


def _draw_eyes(image, face, xs, ys, closed):
    half_w, half_h = face.eye[2], face.eye[3]
    skin = np.asarray(face.skin, np.float32)
    for side in (-1, 1):
        ex, ey = face.eye_center(side)
        socket = _gaussian(xs, ys, (ex, ey - half_h), (half_w * 1.06, half_h * 1.77))
        image *= 1.0 - 0.1 * socket[..., None]
        eye = _ellipse(xs, ys, (ex, ey), (half_w, half_h))
        if closed:
            _paint(image, _inside(eye), skin * 0.82)
            lid = np.abs(ys - ey - 0.2 * half_h * (1 - ((xs - ex) / half_w) ** 2))
            _paint(image, 0.8 * _inside(np.maximum(lid - 0.5, eye - 0.3)), (35, 25, 20))
            continue
        _paint(image, _inside(eye), (228, 222, 215))
        iris = np.maximum(_ellipse(xs, ys, (ex, ey + 0.1 * half_h), (half_h * 1.1,) * 2), eye)
        _paint(image, _inside(iris), face.iris)
        pupil = np.maximum(_ellipse(xs, ys, (ex, ey + 0.1 * half_h), (half_h * 0.5,) * 2), eye)
        _paint(image, _inside(pupil), (15, 12, 12))
        upper_lid = np.maximum(np.abs(eye) - 0.6, ys - ey)  # dark lash line on the upper rim
        _paint(image, 0.85 * _inside(upper_lid), (35, 25, 20))


def _draw_nose_mouth(image, face, xs, ys):
    (cx, cy), length, half = face.center, face.nose[0], face.nose[1]
    for side in (-1, 1):
        wing = _ellipse(xs, ys, (cx + side * half * 0.9, cy + length * 0.92), (half * 0.45, half * 0.35))
        image *= 1.0 - 0.12 * _inside(wing, 1.5)[..., None]
        nostril = _ellipse(xs, ys, (cx + side * half * 0.45, cy + length), (half * 0.28, half * 0.15))
        _paint(image, 0.7 * _inside(nostril), np.asarray(face.skin) * 0.35)
        ridge = np.exp(-(((xs - cx - side * half * 0.55) / (0.8 + 0.1 * half)) ** 2))
        ridge *= ((ys > cy + face.eye[0]) & (ys < cy + length * 0.85)).astype(np.float32)
        image *= 1.0 - 0.07 * ridge[..., None]
    dy, mouth_half, upper, lower, smile = face.mouth
    u = (xs - cx) / mouth_half
    inside = np.abs(u) < 1.0
    profile = np.sqrt(np.clip(1.0 - u * u, 0, 1)) ** 0.8
    line = cy + dy - smile * (u * u)
    bow = 1.0 - 0.25 * np.exp(-((u / 0.15) ** 2))  # cupid's bow dip
    lip_distance = np.where(ys < line, (line - upper * profile * bow) - ys, ys - (line + lower * profile))
    beyond = (np.abs(u) - 1.0) * mouth_half + np.abs(ys - line)
    lip_distance = np.where(inside, lip_distance, beyond)
    _paint(image, 0.9 * _inside(lip_distance), face.lips)
    slit = np.maximum(np.abs(ys - line) - 0.45, (np.abs(u) - 1.0) * mouth_half)
    _paint(image, 0.8 * _inside(slit), np.asarray(face.lips) * 0.35)
    for side in (-1, 1):  # shadowed corners: what AU12/AU15 visibly move
        mx, my = face.mouth_corner(side)
        corner = _ellipse(xs, ys, (mx, my - smile), (0.06 * mouth_half + 0.8, 0.04 * mouth_half + 0.7))
        _paint(image, 0.7 * _inside(corner, 0.8), np.asarray(face.lips) * 0.35)


def _gaussian(xs, ys, center, sigma):
    return np.exp(-0.5 * (((xs - center[0]) / sigma[0]) ** 2 + ((ys - center[1]) / sigma[1]) ** 2))


def action_unit_components(face: FaceIdentity, action_unit: str):
    """One action unit as Gaussian components [(centre, sigma, forward displacement)], in pixels.

    Amplitudes are fractions of the face width: 1.4-1.8 % at full intensity (AU5: 0.7 %).
    """
    w = face.face_width
    components = []
    for side in (-1, 1):
        bx, by = face.brow_center(side)
        ex, ey = face.eye_center(side)
        mx, my = face.mouth_corner(side)
        inner = (bx - side * 0.45 * face.brow[2], by)
        if action_unit == "AU1+2":  # brow raiser, inner and outer
            components.append(((bx, by - 0.01 * w), (0.13 * w, 0.07 * w), (0.0, -0.018 * w)))
        elif action_unit == "AU5":  # upper lid raiser: slight widening
            components.append(((ex, ey - face.eye[3]), (0.09 * w, 0.035 * w), (0.0, -0.007 * w)))
        elif action_unit == "AU4":  # brow lowerer: inner brows down and together
            components.append((inner, (0.09 * w, 0.065 * w), (-side * 0.01 * w, 0.014 * w)))
        elif action_unit == "AU15":  # lip-corner depressor
            components.append(((mx, my), (0.065 * w, 0.055 * w), (0.0, 0.014 * w)))
        elif action_unit == "AU12":  # lip-corner puller: up and out
            components.append(((mx, my - 0.01 * w), (0.075 * w, 0.06 * w), (side * 0.01 * w, -0.014 * w)))
        else:
            raise ValueError(
                f"Unknown action unit {action_unit!r}; expected one of AU1+2, AU4, AU5, AU12, AU15."
            )
    return components


def displacement_field(face: FaceIdentity, action_units, mask_threshold: float = 0.25):
    """Forward displacement (dx, dy) of the given action units at apex, and their support in [0, 1].

    The support is the largest Gaussian weight of any component; ``>= mask_threshold`` gives the
    moving-region mask.
    """
    xs, ys = _grid(face.size)
    dx, dy, support = (np.zeros_like(xs) for _ in range(3))
    for action_unit in action_units:
        for center, sigma, (vx, vy) in action_unit_components(face, action_unit):
            weight = _gaussian(xs, ys, center, sigma)
            dx += vx * weight
            dy += vy * weight
            support = np.maximum(support, weight)
    return dx, dy, support


def eyelid_alpha(face: FaceIdentity, closure: float) -> np.ndarray:
    """Where the closed-eye render replaces the open eye, lids ``closure`` (0..1) shut."""
    xs, ys = _grid(face.size)
    alpha = np.zeros_like(xs)
    half_w, half_h = face.eye[2] * 1.2, face.eye[3] * 1.6
    for side in (-1, 1):
        ex, ey = face.eye_center(side)
        lid = ey - half_h + closure * 2.0 * half_h
        eye = _inside(_ellipse(xs, ys, (ex, ey), (half_w, half_h)))
        alpha = np.maximum(alpha, eye * _inside(ys - lid))
    return alpha
