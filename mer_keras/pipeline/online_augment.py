"""Random per-window augmentation as a Keras layer, computed with `keras.ops` where the model runs.

Each window of N frames draws one transform (flip, rotation, translation, scale, brightness,
contrast) and all of its frames get it alike, so the augmentation adds no motion between frames;
4-D input (single frames, Exp-I) draws one per frame. The layer is the identity outside training.
"""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops

# the columns of the (batch, 7) uniform draw, in order
_DRAWN = ("flip", "angle", "translate_x", "translate_y", "scale", "brightness", "contrast")


def affine_transforms(draws, height, width):
    """The ``(batch, 8)`` vectors `keras.ops.image.affine_transform` takes for ``draws`` (see `draw`).

    The forward map (input pixel to output pixel, pixel centres at integer coordinates) flips the
    width axis if ``flip`` is 1, rotates by ``angle`` degrees counter-clockwise on screen and scales
    by ``scale``, both about the image centre, then shifts by ``translate_x * width`` pixels right and
    ``translate_y * height`` down. `affine_transform` wants the inverse (output to input), built here.
    """
    f = 1.0 - 2.0 * ops.cast(draws["flip"], "float32")  # -1 flips x about the centre
    theta = ops.cast(draws["angle"], "float32") * (math.pi / 180.0)
    s = ops.cast(draws["scale"], "float32")
    cos, sin = ops.cos(theta) / s, ops.sin(theta) / s
    height, width = ops.cast(height, "float32"), ops.cast(width, "float32")
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    # input = c + F R(-theta) (output - c - t) / s, with R(theta) = [[cos, sin], [-sin, cos]] (y down)
    a0, a1, b0, b1 = f * cos, -f * sin, sin, cos
    ox = cx + ops.cast(draws["translate_x"], "float32") * width  # where the centre lands
    oy = cy + ops.cast(draws["translate_y"], "float32") * height
    a2 = cx - a0 * ox - a1 * oy
    b2 = cy - b0 * ox - b1 * oy
    zero = ops.zeros_like(a0)
    return ops.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=-1)


def _check(name, value, low, high, closed, unit=""):
    """Raise `ValueError` unless ``value`` is a real number in [low, high] (closed) or [low, high)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (low <= value <= high if closed else low <= value < high)
    if not ok:
        bounds = f"between {low} and {high}" if closed else f"at least {low} and less than {high}"
        raise ValueError(f"`{name}` must be {bounds}{unit}. Received: {name}={value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="mer_keras")
class WindowAugmentation(keras.layers.Layer):
    """One random transform per window, applied alike to its frames; the identity when not training.

    Input: windows ``(batch, N, H, W, C)`` or frames ``(batch, H, W, C)`` of raw 0-255 pixels (the
    model's own preprocessing comes after this layer); output: same shape and dtype, clipped to
    [0, 255]. ``rotation`` is in degrees (angle drawn in [-rotation, rotation]); ``translation`` is a
    fraction of the width / height; ``scale`` draws a zoom in [1 - scale, 1 + scale]; ``brightness``
    adds up to +-brightness * 255; ``contrast`` scales about the window's per-channel mean by a factor
    in [1 - contrast, 1 + contrast]. Uncovered pixels are filled by reflection (``fill_mode``).
    """

    fill_mode = "reflect"  # no constant corners or edge streaks; the filled area is static over a window

    def __init__(
        self,
        flip=True,
        rotation=10.0,
        translation=0.05,
        scale=0.05,
        brightness=0.1,
        contrast=0.1,
        seed=None,
        **kwargs,
    ):
        if not isinstance(flip, bool):
            raise ValueError(f"`flip` must be True or False. Received: flip={flip!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
        self.flip = flip
        self.rotation = _check("rotation", rotation, 0, 45, True, " degrees")
        self.translation = _check("translation", translation, 0, 0.5, False)
        self.scale = _check("scale", scale, 0, 0.5, False)
        self.brightness = _check("brightness", brightness, 0, 1, False)
        self.contrast = _check("contrast", contrast, 0, 1, False)
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # TF has no XLA kernel for ImageProjectiveTransformV3: jit_compile="auto" must fall back (as
        # keras.layers.RandomRotation does), or model.fit fails on a GPU machine
        self.supports_jit = False

    def draw(self, batch_size):
        """One draw per window: a dict of ``(batch_size,)`` float32 tensors named as in `_DRAWN`."""
        u = keras.random.uniform((batch_size, len(_DRAWN)), seed=self.seed_generator)
        u = [u[:, i] for i in range(len(_DRAWN))]
        between = lambda x, half, centre=0.0: centre + (2.0 * x - 1.0) * half  # noqa: E731
        return {
            "flip": ops.cast(u[0] < (0.5 if self.flip else 0.0), "float32"),
            "angle": between(u[1], self.rotation),
            "translate_x": between(u[2], self.translation),
            "translate_y": between(u[3], self.translation),
            "scale": between(u[4], self.scale, 1.0),
            "brightness": between(u[5], self.brightness * 255.0),
            "contrast": between(u[6], self.contrast, 1.0),
        }

    def transform(self, inputs, draws):
        """``inputs`` (windows or frames) transformed by ``draws`` (one entry per window or frame)."""
        x = ops.cast(inputs, "float32")
        frames = len(inputs.shape) == 4
        if frames:
            x = ops.expand_dims(x, 1)
        _, n, height, width, channels = ops.shape(x)
        transforms = ops.repeat(affine_transforms(draws, height, width), n, axis=0)
        x = ops.image.affine_transform(
            ops.reshape(x, (-1, height, width, channels)),
            transforms,
            interpolation="bilinear",
            fill_mode=self.fill_mode,
            data_format="channels_last",
        )
        x = ops.reshape(x, (-1, n, height, width, channels))
        per_window = lambda v: ops.reshape(v, (-1, 1, 1, 1, 1))  # noqa: E731
        # contrast about one mean per window (so its frames change alike), then brightness: one
        # multiply-add per pixel, (x - mean) * gain + mean + delta = x * gain + offset
        gain = per_window(draws["contrast"])
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        x = x * gain + (mean * (1.0 - gain) + per_window(draws["brightness"]))
        x = ops.clip(x, 0.0, 255.0)
        if frames:
            x = ops.squeeze(x, 1)
        if "int" in keras.backend.standardize_dtype(inputs.dtype):
            x = ops.round(x)
        return ops.cast(x, inputs.dtype)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        return self.transform(inputs, self.draw(ops.shape(inputs)[0]))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            flip=self.flip,
            rotation=self.rotation,
            translation=self.translation,
            scale=self.scale,
            brightness=self.brightness,
            contrast=self.contrast,
            seed=self.seed,
        )
        return config
