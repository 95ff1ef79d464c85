"""The paper's three models as Keras functional graphs: frame classifier, 3-layer LSTM, Bi-LSTM.

Each is built around a per-frame ``encoder``: either the whole backbone with preprocessing (the
exported model, raw RGB frames in) or only its trainable suffix, or nothing, when training on
cached features of the frozen prefix. Head layers carry fixed names so trained weights move
between the two by name.
"""

from __future__ import annotations

import keras
from keras import layers, ops

KINDS = ("frame", "lstm", "bilstm")
EXPERIMENT_KIND = {"exp1": "frame", "exp2": "lstm", "exp3": "bilstm"}
# What clip models feed their LSTM per frame: the pooled features (the paper), the pooled features
# minus the window's first frame's, or how much each unpooled feature map moved from that frame.
CLIP_FEATURES = ("raw", "relative", "motion")


@keras.saving.register_keras_serializable(package="mer_keras")
class FramewiseTimeDistributed(layers.TimeDistributed):
    """TimeDistributed that folds time into the batch: one call of the inner layer on ``(B*T, ...)``.

    Same result as Keras's TimeDistributed, which on Keras 3 loops over timesteps in Python
    (slower first call, more memory; see DESIGN.md).
    """

    def call(self, inputs, training=None, mask=None):
        batch, steps = ops.shape(inputs)[0], ops.shape(inputs)[1]
        folded = ops.reshape(inputs, (-1, *inputs.shape[2:]))
        outputs = self.layer(folded, training=training)
        return ops.reshape(outputs, (batch, steps, *outputs.shape[1:]))


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
            raise ValueError(f"Layer {self.name!r} needs unpooled maps (batch, time, height, width, channels): "
                             f"build the backbone with pooling=None. Received: input shape {tuple(input_shape)}")

    def call(self, inputs):
        return ops.mean(ops.abs(inputs - inputs[:, :1]), axis=(2, 3))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], input_shape[-1])


def backbone_pooling(clip_features: str):
    """The backbone's pooling for these clip features: none where the head measures motion on maps."""
    return None if check_clip_features(clip_features) == "motion" else "avg"


def check_clip_features(clip_features: str) -> str:
    if clip_features not in CLIP_FEATURES:
        raise ValueError(f"`clip_features` must be one of {CLIP_FEATURES}. Received: clip_features={clip_features!r}")
    return clip_features


def _frame_features(x, standardize: bool, clip_features: str = "raw"):
    """Per-frame features into the head; a standardization's statistics are set later by ``adapt``."""
    if clip_features == "motion":  # standardized after: the statistics are those of the motion
        x = WindowMotion(name="window_motion")(x)
    if standardize:  # float32 also under mixed precision: adapt() sums its statistics in float32
        x = layers.Normalization(axis=-1, name="feature_standardization", dtype="float32")(x)
    if clip_features == "relative":
        x = SubtractFirstFrame(name="window_relative")(x)
    return x


def build_model(kind: str, num_classes: int, frame_shape, n: int | None = None, encoder=None, *,
                fc_units=(512, 128), lstm_units=(512, 256, 128), bilstm_units=256,
                dropout=0.3, standardize=False, clip_features="raw", name=None) -> keras.Model:
    """A frame (``kind="frame"``) or clip (``"lstm"``, ``"bilstm"``) classifier.

    ``frame_shape`` is one frame's input (raw ``(H, W, 3)`` or cached features); clip models take
    ``(n, *frame_shape)``. ``standardize`` adds a Normalization of the per-frame features (adapt it
    on training features); ``clip_features`` (clip models, one of ``CLIP_FEATURES``) says what the
    LSTM sees; ``"motion"`` needs unpooled maps. The softmax runs in float32 under mixed precision.
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind!r}")
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes}")
    if kind != "frame" and (n is None or n < 1):
        raise ValueError(f"Clip models need a window length `n` >= 1. Received: n={n}")
    check_clip_features(clip_features)
    if kind == "frame" and clip_features != "raw":
        raise ValueError(f"A frame model sees single frames: `clip_features` must be 'raw'. "
                         f"Received: clip_features={clip_features!r}")
    frame_shape = tuple(frame_shape)
    if kind == "frame":
        inputs = keras.Input(frame_shape, name="frames")
        x = _frame_features(encoder(inputs) if encoder is not None else inputs, standardize)
        for i, units in enumerate(fc_units, start=1):
            x = layers.Dense(units, activation="relu", name=f"fc{i}")(x)
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
        logits = layers.Dense(num_classes, name=f"fc{len(fc_units) + 1}")(x)
        outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
        return keras.Model(inputs, outputs, name=name or f"mer_{kind}")
    inputs = keras.Input((n, *frame_shape), name="clips")
    x = FramewiseTimeDistributed(encoder, name="frame_encoder")(inputs) if encoder is not None else inputs
    x = _frame_features(x, standardize, clip_features)
    outputs = _sequence_head(x, kind, num_classes, lstm_units, bilstm_units, dropout)
    return keras.Model(inputs, outputs, name=name or f"mer_{kind}")


def _sequence_head(x, kind, num_classes, lstm_units, bilstm_units, dropout):
    if kind == "lstm":
        for i, units in enumerate(lstm_units, start=1):
            x = layers.LSTM(units, return_sequences=i < len(lstm_units), name=f"lstm{i}")(x)
    else:
        x = layers.Bidirectional(layers.LSTM(bilstm_units), name="bilstm")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    logits = layers.Dense(num_classes, name="classifier")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(logits)


@keras.saving.register_keras_serializable(package="mer_keras")
class GatherFrames(layers.Layer):
    """``(frames (F, D), index (B, N))`` -> ``(B, N, D)``: windows built after the per-frame encoder."""

    def call(self, inputs):
        frames, index = inputs
        return ops.take(frames, ops.cast(index, "int32"), axis=0)

    def compute_output_shape(self, input_shapes):
        frames, index = input_shapes
        return (*index, *frames[1:])


def build_deduplicated_model(kind: str, num_classes: int, frame_shape, n: int, encoder, *,
                             lstm_units=(512, 256, 128), bilstm_units=256, dropout=0.3,
                             clip_features="raw", name=None) -> keras.Model:
    """A clip model that runs ``encoder`` once per distinct frame of a batch, then gathers windows.

    Inputs: ``frames`` (distinct frames of the batch) and ``index`` ``(B, n)`` into them. Same
    layers and names as :func:`build_model`, so weights move between the two by name; the
    gradients equal those of running the encoder on every window position.
    """
    if kind not in ("lstm", "bilstm"):
        raise ValueError(f"`kind` must be 'lstm' or 'bilstm'. Received: kind={kind!r}")
    frames = keras.Input(tuple(frame_shape), name="frames")
    index = keras.Input((n,), dtype="int32", name="index")
    x = GatherFrames(name="gather_windows")([encoder(frames), index])
    x = _frame_features(x, False, check_clip_features(clip_features))
    outputs = _sequence_head(x, kind, num_classes, lstm_units, bilstm_units, dropout)
    return keras.Model([frames, index], outputs, name=name or f"mer_{kind}_deduplicated")


def copy_weights_by_name(source: keras.Model, target: keras.Model) -> list:
    """Copy every weighted layer of ``source`` into the same-named layer of ``target``.

    Nested models are searched by name on both sides. Returns the copied layer names; a missing
    or mis-shaped layer raises naming it.
    """
    target_layers = {layer.name: layer for layer in _weighted_layers(target)}
    copied = []
    for layer in _weighted_layers(source):
        if layer.name not in target_layers:
            raise ValueError(f"Layer {layer.name!r} of {source.name!r} has no counterpart in {target.name!r}.")
        destination = target_layers[layer.name]
        weights = layer.get_weights()
        shapes = [w.shape for w in weights]
        expected = [tuple(w.shape) for w in destination.weights]
        if shapes != expected:
            raise ValueError(f"Layer {layer.name!r}: shapes {shapes} do not match {expected} in {target.name!r}.")
        destination.set_weights(weights)
        if isinstance(destination, layers.Normalization):
            destination.finalize_state()  # its mean/variance tensors are derived from the weights
        copied.append(layer.name)
    return copied


def _weighted_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _weighted_layers(layer)
        elif isinstance(layer, layers.TimeDistributed) and isinstance(layer.layer, keras.Model):
            yield from _weighted_layers(layer.layer)
        elif layer.weights:
            yield layer
