"""The training models of ``--augment online``: uint8 frames -> random flip/rotation -> backbone -> head.

The raw frame cache (``pipeline.raw_frames``) feeds uint8 windows; the model draws one transform
per window (``WindowAugmentation``; single frames for Exp-I: one per frame) or, deduplicated, one
per clip of the batch (``ClipAugmentation``: the clip's frames stay shared by its windows), then
preprocesses and runs the frozen prefix and the trainable suffix once per frame. The augmentation
is the identity outside training and is not part of the exported model (``final_model``), which
composes the same head and backbone layers without it.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from mer_keras.backbone.preprocessing import VGGFacePreprocess
from mer_keras.models import FramewiseTimeDistributed, GatherFrames
from mer_keras.pipeline.online_augment import WindowAugmentation


def augmentation(flip: bool, rotation: float, seed=None) -> WindowAugmentation:
    """The paper's augmentation (flip, rotation within +-``rotation`` degrees), nothing else drawn."""
    return WindowAugmentation(
        flip=flip,
        rotation=rotation,
        translation=0.0,
        scale=0.0,
        brightness=0.0,
        contrast=0.0,
        seed=seed,
        name="window_augmentation",
    )


def raw_frame_encoder(prefix: keras.Model, suffix: keras.Model | None, size: int) -> keras.Model:
    """uint8 ``(size, size, 3)`` frames -> VGGFace2 preprocessing -> ``prefix`` -> ``suffix`` (shared)."""
    frames = keras.Input((size, size, 3), dtype="uint8", name="rgb_frames")
    x = prefix(VGGFacePreprocess(name="vggface_preprocess")(frames))
    if suffix is not None:
        x = suffix(x)
    return keras.Model(frames, x, name=f"{prefix.name}_on_uint8")


@keras.saving.register_keras_serializable(package="mer_keras")
class ClipAugmentation(layers.Layer):
    """``(frames (F, H, W, C), group (F,))`` -> frames, every frame of a group transformed by one draw.

    A deduplicated batch holds each distinct frame once and its windows as indices; drawing per
    group (the clip of the frame) keeps one transform per window while the frames stay shared.
    """

    def __init__(self, augmentation: WindowAugmentation, **kwargs):
        super().__init__(**kwargs)
        self.augmentation = augmentation
        self.supports_jit = False  # the warp has no XLA kernel (see WindowAugmentation)

    def build(self, input_shapes):
        pass  # no weights: the draws come from the augmentation's seed generator

    def call(self, inputs, training=None):
        frames, group = inputs
        if not training:
            return frames
        group = ops.cast(group, "int32")
        draws = self.augmentation.draw(ops.max(group) + 1)
        return self.augmentation.transform(frames, {k: ops.take(v, group, axis=0) for k, v in draws.items()})

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {
            **super().get_config(),
            "augmentation": keras.saving.serialize_keras_object(self.augmentation),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["augmentation"] = keras.saving.deserialize_keras_object(config["augmentation"])
        return cls(**config)


def online_model(
    head: keras.Model, encoder: keras.Model, augment: WindowAugmentation, deduplicate: bool
) -> keras.Model:
    """The training model on uint8 input: ``augment`` (training only), ``encoder`` per frame, ``head``.

    Inputs: frames ``(H, W, 3)`` (frame head), windows ``(n, H, W, 3)``, or deduplicated
    ``frames (F, H, W, 3)``, ``index (B, n)``, ``group (F,)`` (``make_deduplicated_dataset(groups=True)``).
    """
    frame_shape = tuple(encoder.inputs[0].shape[1:])
    clip = head.inputs[0].name == "clips"
    if deduplicate:
        n = head.inputs[0].shape[1]
        frames = keras.Input(frame_shape, dtype="uint8", name="frames")
        index = keras.Input((n,), dtype="int32", name="index")
        group = keras.Input((), dtype="int32", name="group")
        x = ClipAugmentation(augment, name="clip_augmentation")([frames, group])
        x = GatherFrames(name="gather_windows")([encoder(x), index])
        return keras.Model([frames, index, group], head(x), name=f"{head.name}_online_deduplicated")
    shape = (head.inputs[0].shape[1], *frame_shape) if clip else frame_shape
    inputs = keras.Input(shape, dtype="uint8", name="clips" if clip else "frames")
    x = augment(inputs)
    x = FramewiseTimeDistributed(encoder, name="frame_encoder")(x) if clip else encoder(x)
    return keras.Model(inputs, head(x), name=f"{head.name}_online")
