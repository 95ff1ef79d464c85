"""Two apex-frame baselines on onset-to-apex optical flow, as Keras models: STSTNet and OFF-ApexNet.

Both take the ``(28, 28, channels)`` images of ``mer_keras.flow.flow_inputs`` (u, v, strain) and
end in a float32 softmax, so they train under mixed precision too. Each is a ``keras.Model``
built functionally in ``__init__`` (like ``VGGFaceResNet50``) and saves to ``.keras`` by its config.
"""

from __future__ import annotations

import numbers

import keras
from keras import layers

from mer_keras.flow.optical_flow import CHANNELS


def _positive_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _check_common(classes, input_shape, channels, min_side, dropout):
    if not _positive_int(classes) or classes < 2:
        raise ValueError(f"`classes` must be an int >= 2. Received: classes={classes!r}")
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or not all(_positive_int(d) for d in input_shape)
        or input_shape[2] not in channels
        or min(input_shape[:2]) < min_side
    ):
        raise ValueError(
            f"`input_shape` must be (height, width, channels) of ints, height and width "
            f">= {min_side}, channels in {tuple(channels)}. "
            f"Received: input_shape={input_shape!r}"
        )
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}")


def _softmax_head(x, classes):
    logits = layers.Dense(classes, name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="softmax")(logits)


@keras.saving.register_keras_serializable(package="mer_keras")
class STSTNet(keras.Model):
    """STSTNet: Liong, Gan, See, Khor, Huang, "Shallow Triple Stream Three-dimensional CNN (STSTNet)
    for Micro-expression Recognition", FG 2019 (arXiv:1902.03634).

    Input ``(28, 28, 3)``: u, v, optical strain of the onset-to-apex flow. Three parallel streams of
    ``filters`` = 3, 5 and 8 convolutions 3x3 (stride 1, ReLU), each followed by batch
    normalisation, a 3x3 max-pool with stride 3 (28 -> 10) and dropout; the 16 maps concatenated,
    2x2 average-pooled with stride 2 (10 -> 5), flattened (400) and a dense layer to ``classes``.
    Sizes are those of the authors' own PyTorch code (github.com/christy1206/STSTNet, main.py), which
    uses BatchNorm after the ReLU and dropout 0.5; its convolutions pad 2 (28 -> 30) and its pool
    pads 1, which like ours gives 10x10, while we pad "same" (28 -> 28) as the paper's 28 -> 10 -> 5
    shapes imply. Not verified: the paper's text itself (we could read only the code, not the
    paper's configuration table) and any parameter count it states. Ours with 3 classes: 1,715
    weights, 1,683 trainable (the 32 BatchNorm moving statistics are not).
    """

    def __init__(
        self,
        classes=3,
        input_shape=(28, 28, 3),
        filters=(3, 5, 8),
        batch_norm=True,
        dropout=0.5,
        name="ststnet",
        **kwargs,
    ):
        _check_common(classes, input_shape, (3,), 4, dropout)
        if not (isinstance(filters, (tuple, list)) and filters and all(_positive_int(f) for f in filters)):
            raise ValueError(
                f"`filters` must be a non-empty sequence of positive ints (one per stream). "
                f"Received: filters={filters!r}"
            )
        if not isinstance(batch_norm, bool):
            raise TypeError(f"`batch_norm` must be True or False. Received: batch_norm={batch_norm!r}")
        input_shape, filters = tuple(int(d) for d in input_shape), tuple(int(f) for f in filters)
        classes, dropout = int(classes), float(dropout)

        inputs = keras.Input(shape=input_shape, name="flow")
        streams = []
        for i, count in enumerate(filters, start=1):
            x = layers.Conv2D(count, 3, padding="same", activation="relu", name=f"stream{i}_conv")(inputs)
            if batch_norm:
                x = layers.BatchNormalization(name=f"stream{i}_bn")(x)
            x = layers.MaxPooling2D(3, strides=3, padding="same", name=f"stream{i}_pool")(x)
            streams.append(layers.Dropout(dropout, name=f"stream{i}_dropout")(x) if dropout else x)
        x = layers.Concatenate(name="streams")(streams) if len(streams) > 1 else streams[0]
        x = layers.AveragePooling2D(2, strides=2, name="avg_pool")(x)
        x = layers.Flatten(name="flatten")(x)
        super().__init__(inputs=inputs, outputs=_softmax_head(x, classes), name=name, **kwargs)

        self.classes = classes
        self.image_shape = input_shape
        self.filters = filters
        self.batch_norm = batch_norm
        self.dropout = dropout

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "classes": self.classes,
            "input_shape": self.image_shape,
            "filters": self.filters,
            "batch_norm": self.batch_norm,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="mer_keras")
class OffApexNet(keras.Model):
    """OFF-ApexNet: Gan, Liong, Yau, Huang, Tan, "OFF-ApexNet on micro-expression recognition
    system", Signal Processing: Image Communication 74 (2019) 129-139.

    Two streams, one on u and one on v of the onset-to-apex flow (28x28): each two 5x5
    convolutions of ``filters`` = 6 and 16 (ReLU, "same"), each followed by a 2x2 max-pool with
    stride 2 (28 -> 14 -> 7); the two 7x7x16 maps flattened and concatenated (1,568), then fully
    connected layers of ``units`` = 1024 and 1024 (ReLU, dropout) and the output layer. Input
    ``(28, 28, 2)`` u, v, or ``(28, 28, 3)`` as ``flow_inputs`` gives: the third channel (strain)
    is then not used, as OFF-ApexNet is defined on u and v only.
    Not verified against the paper's text (not readable here): the "same" padding, the ReLU after
    the convolutions, dropout 0.5 and its place; those follow the shapes above and the
    re-implementation in github.com/ECNU-Cross-Innovation-Lab/PRICAI2021-Off-TANet
    (models/off_apexnet.py), whose README counts 2.66 M parameters for 3 classes, as ours:
    2,664,475.
    """

    def __init__(
        self,
        classes=3,
        input_shape=(28, 28, 2),
        filters=(6, 16),
        kernel_size=5,
        units=(1024, 1024),
        dropout=0.5,
        name="off_apexnet",
        **kwargs,
    ):
        _check_common(classes, input_shape, (2, 3), 4, dropout)
        for arg, value in (("filters", filters), ("units", units)):
            if not isinstance(value, (tuple, list)) or not value or not all(_positive_int(v) for v in value):
                raise ValueError(
                    f"`{arg}` must be a non-empty sequence of positive ints. Received: {arg}={value!r}"
                )
        if not _positive_int(kernel_size):
            raise ValueError(f"`kernel_size` must be a positive int. Received: kernel_size={kernel_size!r}")
        if min(input_shape[:2]) < 2 ** len(filters):
            raise ValueError(
                f"`input_shape` must be at least {2 ** len(filters)} pixels for {len(filters)} "
                f"2x2 pools. Received: input_shape={input_shape!r}"
            )
        input_shape, filters = tuple(int(d) for d in input_shape), tuple(int(f) for f in filters)
        units, kernel_size = tuple(int(u) for u in units), int(kernel_size)
        classes, dropout = int(classes), float(dropout)

        inputs = keras.Input(shape=input_shape, name="flow")
        flattened = []
        for channel, stream in enumerate(CHANNELS[:2]):  # u, v
            x = inputs[..., channel : channel + 1]
            for i, count in enumerate(filters, start=1):
                x = layers.Conv2D(
                    count, kernel_size, padding="same", activation="relu", name=f"{stream}_conv{i}"
                )(x)
                x = layers.MaxPooling2D(2, strides=2, name=f"{stream}_pool{i}")(x)
            flattened.append(layers.Flatten(name=f"{stream}_flatten")(x))
        x = layers.Concatenate(name="streams")(flattened)
        for i, count in enumerate(units, start=1):
            x = layers.Dense(count, activation="relu", name=f"fc{i}")(x)
            if dropout:
                x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
        super().__init__(inputs=inputs, outputs=_softmax_head(x, classes), name=name, **kwargs)

        self.classes = classes
        self.image_shape = input_shape
        self.filters = filters
        self.kernel_size = kernel_size
        self.units = units
        self.dropout = dropout

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "classes": self.classes,
            "input_shape": self.image_shape,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "units": self.units,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
