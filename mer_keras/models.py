"""The classifier heads (frame classifier, stacked LSTM/GRU, Bi-LSTM/GRU) and the models built around them.

A head is one ``keras.Model`` over per-frame features. The same head object is composed
(``compose``) with whatever computes those features: nothing (training on cached features of
the frozen backbone), the trainable suffix of the backbone, or the whole backbone with its
preprocessing (the exported model); ``deduplicated`` runs the suffix once per distinct frame.
Every composition shares the head's layers, so no weights are ever copied between models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf  # CheckInput's assertions: the package runs on the TensorFlow backend
from keras import layers, ops

from mer_keras.flow.networks import OffApexNet, STSTNet

KINDS = ("frame", "lstm", "bilstm", "ststnet", "offapexnet")
EXPERIMENT_KIND = {
    "exp1": "frame",
    "exp2": "lstm",
    "exp3": "bilstm",
    "ststnet": "ststnet",
    "offapexnet": "offapexnet",
}
FLOW_KINDS = ("ststnet", "offapexnet")  # optical-flow baselines: one onset-to-apex flow image per clip
SINGLE_KINDS = ("frame", *FLOW_KINDS)  # heads that see one image per sample, not a window of frames
RNNS = ("lstm", "gru")
# What clip models feed their recurrent layers per frame: the pooled features (the paper), the pooled
# features minus the window's first frame's, or how much each unpooled feature map moved from that frame.
CLIP_FEATURES = ("raw", "relative", "motion")
# Layer sizes of each head: fc1, fc2 (fc3 is the classifier) / stacked layers / units per direction.
DEFAULT_UNITS = {
    "frame": (512, 128),
    "lstm": (128, 64, 32),
    "bilstm": (64,),
    "ststnet": (3, 5, 8),
    "offapexnet": (1024, 1024),
}  # STSTNet: filters per stream; OFF-ApexNet: fully connected
VARIANCE_FLOOR = 1e-3  # standardization: no feature's variance below this share of the mean variance


@keras.saving.register_keras_serializable(package="mer_keras")
class FramewiseTimeDistributed(layers.TimeDistributed):
    """TimeDistributed that folds time into the batch: one call of the inner layer on ``(B*T, ...)``.

    Same result as Keras's TimeDistributed, which on Keras 3 loops over timesteps in Python
    (slower first call, more memory).
    """

    def call(self, inputs, training=None, mask=None):
        batch, steps = ops.shape(inputs)[0], ops.shape(inputs)[1]
        folded = ops.reshape(inputs, (-1, *inputs.shape[2:]))
        outputs = self.layer(folded, training=training)
        return ops.reshape(outputs, (batch, steps, *outputs.shape[1:]))


@keras.saving.register_keras_serializable(package="mer_keras")
class FeatureStandardization(layers.Normalization):
    """Keras's Normalization (adapted), reading its statistics from its variables at every call.

    Keras's own layer turns them into constant tensors in ``finalize_state``, which a traced train
    function keeps; read from the variables, one compiled model can take another fold's statistics.
    """

    def call(self, inputs):
        if self.input_mean is not None:  # statistics given, not adapted: nothing varies
            return super().call(inputs)
        mean = ops.cast(ops.reshape(self.adapt_mean, self._broadcast_shape), self.compute_dtype)
        variance = ops.cast(ops.reshape(self.adapt_variance, self._broadcast_shape), self.compute_dtype)
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        return ops.divide(
            ops.subtract(inputs, mean), ops.maximum(ops.sqrt(variance), keras.backend.epsilon())
        )


@keras.saving.register_keras_serializable(package="mer_keras")
class SubtractFirstFrame(layers.Layer):
    """``(B, N, D)`` -> each frame's features minus those of the window's first frame.

    The sequence model then sees how the face changes over the window rather than who it is.
    """

    def call(self, inputs):
        return inputs - inputs[:, :1]


@keras.saving.register_keras_serializable(package="mer_keras")
class WindowMotion(layers.Layer):
    """``(B, N, h, w, C)`` maps -> ``(B, N, C)``: mean over the map of ``|x_t - x_0|`` per channel.

    How much each channel's map moved since the window's first frame, wherever on the face it
    moved; pooling the maps first would let small local changes of opposite sign cancel out.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")  # small differences of large values: not in float16
        super().__init__(**kwargs)

    def build(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(
                f"Layer {self.name!r} needs unpooled maps (batch, time, height, width, channels): "
                f"build the backbone with pooling=None. Received: input shape {tuple(input_shape)}"
            )

    def call(self, inputs):
        return ops.mean(ops.abs(inputs - inputs[:, :1]), axis=(2, 3))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], input_shape[-1])


@keras.saving.register_keras_serializable(package="mer_keras")
class GatherFrames(layers.Layer):
    """``(frames (F, D), index (B, N))`` -> ``(B, N, D)``: windows built after the per-frame encoder."""

    def call(self, inputs):
        frames, index = inputs
        return ops.take(frames, ops.cast(index, "int32"), axis=0)

    def compute_output_shape(self, input_shapes):
        frames, index = input_shapes
        return (*index, *frames[1:])


@keras.saving.register_keras_serializable(package="mer_keras")
class CheckInput(layers.Layer):
    """Refuses input of another shape than ``(batch, *shape)`` or with NaN/inf, saying what it expects.

    In front of the exported model: a SavedModel signature does not check shapes itself, and a wrong
    N or frame size would otherwise fail deep inside with a reshape error (or NaN give plausible answers).
    """

    def __init__(self, shape, what="frames", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.shape, self.what = tuple(int(d) for d in shape), what

    def call(self, inputs):
        expected = ", ".join(map(str, self.shape))
        checks = [
            tf.debugging.assert_equal(
                tf.shape(inputs)[1:],
                tf.constant(self.shape, tf.int32),
                message=f"{self.name}: expected {self.what} of shape (batch, {expected}), float32 RGB 0-255. "
                "Received a tensor whose shape after the batch axis is",
            ),
            tf.debugging.assert_all_finite(inputs, f"{self.name}: {self.what} hold NaN or infinite values"),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "shape": list(self.shape), "what": self.what}


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}. Received: {name}={value!r}")
    return value


@dataclass(frozen=True)
class HeadSpec:
    """What a head is: its kind, layer sizes, recurrent cell, clip features, dropout, standardization."""

    kind: str
    units: tuple = None  # None: DEFAULT_UNITS[kind]
    rnn: str = "lstm"
    clip_features: str = "raw"
    dropout: float = 0.3
    standardize: bool = False
    name: str = field(default=None, compare=False)

    def __post_init__(self):
        _choice("kind", self.kind, KINDS)
        _choice("rnn", self.rnn, RNNS)
        _choice("clip_features", self.clip_features, CLIP_FEATURES)
        units = DEFAULT_UNITS[self.kind] if self.units is None else tuple(int(u) for u in self.units)
        if not units or min(units) < 1 or (self.kind == "bilstm" and len(units) != 1):
            raise ValueError(
                f"`units` must be positive layer sizes (one for a bidirectional head). "
                f"Received: units={self.units!r}"
            )
        object.__setattr__(self, "units", units)
        if self.kind in SINGLE_KINDS and self.clip_features != "raw":
            raise ValueError(
                f"A {self.kind} model sees single images: `clip_features` must be 'raw'. "
                f"Received: clip_features={self.clip_features!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={self.dropout}")

    @property
    def single(self) -> bool:
        """True for heads that see one image per sample (frames, flow images), not windows."""
        return self.kind in SINGLE_KINDS

    @property
    def pooling(self):
        """The backbone's pooling for this head: none where the head measures motion on the maps."""
        return None if self.clip_features == "motion" else "avg"


def build_head(
    spec: HeadSpec, num_classes: int, feature_shape, n: int | None = None, standardize_on=None
) -> keras.Model:
    """The head over per-frame features ``feature_shape`` (clip heads: windows of ``n`` of them).

    With ``spec.standardize`` its Normalization is adapted here on ``standardize_on``: the training
    frames' features (an array) or, for motion features, a dataset of training windows (their
    motion is what gets standardized). The softmax runs in float32 under mixed precision.
    """
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes}")
    if not spec.single and (n is None or n < 1):
        raise ValueError(f"Clip heads need a window length `n` >= 1. Received: n={n}")
    if spec.standardize and standardize_on is None:
        raise ValueError(
            "A standardized head needs training features to adapt on. Received: standardize_on=None"
        )
    feature_shape = tuple(feature_shape)
    if spec.kind in FLOW_KINDS:
        if spec.standardize:
            raise ValueError(
                f"The {spec.kind} baseline takes the flow as its paper does: no standardization. "
                "Received: standardize=True"
            )
        if spec.kind == "ststnet":
            return STSTNet(
                num_classes,
                feature_shape,
                filters=spec.units,
                dropout=spec.dropout,
                name=spec.name or "ststnet",
            )
        return OffApexNet(
            num_classes,
            feature_shape,
            units=spec.units,
            dropout=spec.dropout,
            name=spec.name or "off_apexnet",
        )
    frame = spec.kind == "frame"
    inputs = keras.Input(feature_shape if frame else (n, *feature_shape), name="frames" if frame else "clips")
    x = inputs
    motion = WindowMotion(name="window_motion") if spec.clip_features == "motion" else None
    if motion is not None:  # standardized after: the statistics are those of the motion
        x = motion(x)
    standardization = None
    if spec.standardize:  # float32 also under mixed precision: adapt() sums its statistics in float32
        standardization = FeatureStandardization(axis=-1, name="feature_standardization", dtype="float32")
        x = standardization(x)
    if spec.clip_features == "relative":
        x = SubtractFirstFrame(name="window_relative")(x)
    if frame:
        for i, units in enumerate(spec.units, start=1):
            x = layers.Dense(units, activation="relu", name=f"fc{i}")(x)
            x = layers.Dropout(spec.dropout, name=f"fc{i}_dropout")(x)
        logits = layers.Dense(num_classes, name=f"fc{len(spec.units) + 1}")(x)
    else:
        cell = {"lstm": layers.LSTM, "gru": layers.GRU}[spec.rnn]
        if spec.kind == "lstm":
            for i, units in enumerate(spec.units, start=1):
                x = cell(units, return_sequences=i < len(spec.units), name=f"{spec.rnn}{i}")(x)
        else:
            x = layers.Bidirectional(cell(spec.units[0]), name=f"bi{spec.rnn}")(x)
        x = layers.Dropout(spec.dropout, name="head_dropout")(x)
        logits = layers.Dense(num_classes, name="classifier")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    head = keras.Model(inputs, outputs, name=spec.name or f"{spec.kind}_head")
    if standardization is not None:
        _adapt(standardization, motion, standardize_on, frame)
    return head


def _adapt(standardization, motion, samples, frame: bool):
    if motion is not None:  # the motion of every training window (a first frame's motion is 0 and counts too)
        standardization.adapt(samples.map(lambda x, *_: motion(x)))
    else:
        samples = np.asarray(samples)
        standardization.adapt(samples if frame else samples[:, None])  # clip heads: (batch, n, features)
    # features that (almost) never move on the training data are not blown up by 1/std
    variance = standardization.adapt_variance.numpy()
    standardization.adapt_variance.assign(np.maximum(variance, VARIANCE_FLOOR * variance.mean()))
    standardization.finalize_state()


def compose(head: keras.Model, encoder=None, input_shape=None, name=None, check_input=False) -> keras.Model:
    """``encoder`` (per frame; time folded into the batch for clip heads) then ``head``, sharing both.

    ``input_shape`` is one frame's input to the encoder (raw ``(H, W, 3)`` or cached features);
    without an encoder the head itself is the model. ``check_input`` puts a ``CheckInput`` in front.
    """
    if encoder is None and not check_input:
        return head
    clip = len(head.inputs[0].shape) > 2 and head.inputs[0].name == "clips"
    n = head.inputs[0].shape[1] if clip else None
    shape = tuple(input_shape) if not clip else (n, *input_shape)
    inputs = keras.Input(shape, name="clips" if clip else "frames")
    x = (
        CheckInput(shape, "clips" if clip else "frames", name="check_input")(inputs)
        if check_input
        else inputs
    )
    if encoder is not None:
        x = FramewiseTimeDistributed(encoder, name="frame_encoder")(x) if clip else encoder(x)
    return keras.Model(inputs, head(x), name=name or f"{head.name}_on_{getattr(encoder, 'name', 'input')}")


def deduplicated(head: keras.Model, encoder, frame_shape, name=None) -> keras.Model:
    """A clip model that runs ``encoder`` once per distinct frame of a batch, then gathers windows.

    Inputs: ``frames`` (distinct frames of the batch) and ``index`` ``(B, n)`` into them. With the
    encoder's BatchNorm frozen, gradients equal those of running it on every window position.
    """
    n = head.inputs[0].shape[1]
    frames = keras.Input(tuple(frame_shape), name="frames")
    index = keras.Input((n,), dtype="int32", name="index")
    x = GatherFrames(name="gather_windows")([encoder(frames), index])
    return keras.Model([frames, index], head(x), name=name or f"{head.name}_deduplicated")
