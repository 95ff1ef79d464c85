"""keras-vggface `preprocess_input(x, version=2)`: RGB 0-255 -> BGR minus the VGGFace2 channel means."""

import keras
import numpy as np

# keras-vggface version=2 subtracts these from channels 0, 1, 2 *after* flipping RGB to BGR.
BGR_MEAN = (91.4953, 103.8827, 131.0912)


def _check_channels(shape):
    if len(shape) < 1 or shape[-1] != 3:
        raise ValueError(
            f"VGGFace2 preprocessing expects RGB images, channels last (..., 3). Received: shape={shape}"
        )


def preprocess_input(x):
    """NumPy version: RGB in 0-255 (any leading dims) -> BGR, mean-subtracted float array; no scaling.

    Integer input gives float32; float input keeps its precision. The input is not modified.
    """
    x = np.asarray(x)
    _check_channels(x.shape)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
    return x[..., ::-1].astype(dtype) - np.asarray(BGR_MEAN, dtype=dtype)


@keras.saving.register_keras_serializable(package="mer_keras")
class VGGFacePreprocess(keras.layers.Layer):
    """The same as a layer, so exported models take raw RGB frames (uint8 or float, 0-255).

    It computes in float32 whatever the dtype policy (bfloat16 cannot hold 131.0912) and returns
    the layer's compute dtype, so it is safe under mixed precision.
    """

    def __init__(self, **kwargs):
        kwargs.pop("autocast", None)
        super().__init__(autocast=False, **kwargs)

    def call(self, inputs):
        x = keras.ops.cast(inputs, "float32")
        x = keras.ops.flip(x, axis=-1) - keras.ops.convert_to_tensor(BGR_MEAN, dtype="float32")
        return keras.ops.cast(x, self.compute_dtype)

    def build(self, input_shape):
        _check_channels(tuple(input_shape))

    def compute_output_shape(self, input_shape):
        return input_shape


def with_preprocessing(backbone: keras.Model, size: int, name=None) -> keras.Model:
    """Raw RGB frames ``(size, size, 3)``, 0-255, in; ``backbone``'s output out (its own layers)."""
    frames = keras.Input((size, size, 3), name="rgb_frames")
    return keras.Model(
        frames,
        backbone(VGGFacePreprocess(name="vggface_preprocess")(frames)),
        name=name or f"{backbone.name}_on_rgb",
    )
