"""keras-vggface's RESNET50 (VGGFace2) rebuilt for Keras 3, layer for layer.

Layer names are keras-vggface's with `/` replaced by `_` (`conv1/7x7_s2/bn` ->
`conv1_7x7_s2_bn`); the unweighted layers, which keras-vggface leaves unnamed, get
names of ours (`conv1_relu`, `pool1`, `conv4_6_out`, ...) so Grad-CAM and the
transfer helpers can address them.
"""

import numbers

import keras
from keras import layers

from mer_keras.backbone.weights import legacy_layer_name, load_vggface_weights, resolve_weights

DEFAULT_BLOCKS = (3, 4, 6, 3)
STAGE_FILTERS = ((64, 64, 256), (128, 128, 512), (256, 256, 1024), (512, 512, 2048))
BN_EPSILON = 1e-3  # Keras 2's BatchNormalization default, which keras-vggface keeps.
BN_AXIS = -1
MIN_SIZE = 32
TOP_POOL = 7  # keras-vggface's AveragePooling2D((7, 7), name="avg_pool") before the classifier.


def _stage_size(size):
    """Spatial size of the stage-5 map for an input side of `size` (None stays None)."""
    if size is None:
        return None
    size = -(-size // 2)  # 7x7/2 conv, "same"
    size = (size - 3) // 2 + 1  # 3x3/2 max-pool, "valid"
    for _ in range(3):  # stride 2 in the first block of stages 3, 4, 5
        size = -(-size // 2)
    return size


def _check_args(include_top, pooling, input_shape, classes, classifier_activation, blocks, width):
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f'`pooling` must be None, "avg" or "max". Received: pooling={pooling!r}')
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or input_shape[-1] != 3
        or not all(
            d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool))
            for d in input_shape[:2]
        )
    ):
        raise ValueError(
            "`input_shape` must be (height, width, 3), channels last, height and width ints or None. "
            f"Received: input_shape={input_shape!r}"
        )
    if any(d is not None and d < MIN_SIZE for d in input_shape[:2]):
        raise ValueError(
            f"`input_shape` height and width must be at least {MIN_SIZE}. "
            f"Received: input_shape={input_shape!r}"
        )
    if include_top:
        sizes = [_stage_size(d) for d in input_shape[:2]]
        if any(s is None or not TOP_POOL <= s < 2 * TOP_POOL for s in sizes):
            raise ValueError(
                "`include_top=True` needs a fixed input whose stage-5 map is 7 to 13 pixels wide "
                "(so the 7x7 average pool gives 1x1, as at 224x224). "
                f"Received: input_shape={input_shape!r}"
            )
    if not isinstance(classes, numbers.Integral) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"`classes` must be a positive int. Received: classes={classes!r}")
    if not (classifier_activation is None or isinstance(classifier_activation, str)):
        raise ValueError(
            "`classifier_activation` must be an activation name or None. "
            f"Received: classifier_activation={classifier_activation!r}"
        )
    if (
        not isinstance(blocks, (tuple, list))
        or len(blocks) != 4
        or not all(isinstance(b, numbers.Integral) and not isinstance(b, bool) and b >= 1 for b in blocks)
    ):
        raise ValueError(f"`blocks` must be 4 positive ints (blocks per stage). Received: blocks={blocks!r}")
    if isinstance(width, bool) or not isinstance(width, numbers.Real) or not width > 0:
        raise ValueError(f"`width` must be a positive number. Received: width={width!r}")


def _conv_bn(x, make, filters, kernel_size, name, strides=1, padding="valid", relu=True):
    x = make(
        layers.Conv2D,
        name,
        filters=filters,
        kernel_size=kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
    )(x)
    x = make(layers.BatchNormalization, f"{name}_bn", axis=BN_AXIS, epsilon=BN_EPSILON)(x)
    if relu:
        x = make(layers.Activation, f"{name}_relu", activation="relu")(x)
    return x


def _bottleneck(x, make, filters, stage, block, strides):
    """resnet_conv_block (block 1, with projection shortcut) or resnet_identity_block of keras-vggface."""
    f1, f2, f3 = filters
    prefix = f"conv{stage}_{block}"
    y = _conv_bn(x, make, f1, 1, f"{prefix}_1x1_reduce", strides=strides)
    y = _conv_bn(y, make, f2, 3, f"{prefix}_3x3", padding="same")
    y = _conv_bn(y, make, f3, 1, f"{prefix}_1x1_increase", relu=False)
    if block == 1:
        x = _conv_bn(x, make, f3, 1, f"{prefix}_1x1_proj", strides=strides, relu=False)
    y = make(layers.Add, f"{prefix}_add")([y, x])
    return make(layers.Activation, f"{prefix}_out", activation="relu")(y)


def new_layer(cls, name, **kwargs):
    """The `make` of `build_graph` that creates the layers."""
    return cls(name=name, **kwargs)


def build_graph(x, make, blocks, width, include_top, pooling, classes, classifier_activation, start=None):
    """Wires the network on tensor `x`; `make(cls, name, **kwargs)` supplies each layer.

    `start=(stage, block)` wires only from that block on (x is then the previous block's output),
    which with a `make` returning existing layers cuts a built model into two.
    """

    def scaled(f):
        return max(1, int(round(f * width)))

    if start is None:
        x = _conv_bn(x, make, scaled(64), 7, "conv1_7x7_s2", strides=2, padding="same", relu=False)
        x = make(layers.Activation, "conv1_relu", activation="relu")(x)
        x = make(layers.MaxPooling2D, "pool1", pool_size=3, strides=2)(x)
    for stage, (n_blocks, filters) in enumerate(zip(blocks, STAGE_FILTERS), start=2):
        for block in range(1, n_blocks + 1):
            if start is None or (stage, block) >= start:
                strides = 2 if block == 1 and stage > 2 else 1
                x = _bottleneck(x, make, [scaled(f) for f in filters], stage, block, strides)
    if include_top:
        x = make(layers.AveragePooling2D, "avg_pool", pool_size=TOP_POOL)(x)
        x = make(layers.Flatten, "flatten")(x)
        x = make(layers.Dense, "classifier", units=classes, activation=classifier_activation)(x)
    elif pooling == "avg":
        x = make(layers.GlobalAveragePooling2D, "global_avg_pool")(x)
    elif pooling == "max":
        x = make(layers.GlobalMaxPooling2D, "global_max_pool")(x)
    return x


@keras.saving.register_keras_serializable(package="mer_keras")
class VGGFaceResNet50(keras.Model):
    """The VGGFace2 ResNet-50 of keras-vggface as a functional Keras 3 model (random weights).

    Use `vggface_resnet50()` to get it with the published weights. `blocks` and `width`
    shrink the network for fast tests; pretrained weights need the defaults.
    Without top, `pooling` applies to the stage-5 map directly. keras-vggface first averages 7x7,
    which at 224x224 gives the same "avg" result but limits the input size, and makes its "max"
    a max over one averaged pixel; ours is a true global max.
    """

    def __init__(
        self,
        include_top=False,
        pooling="avg",
        input_shape=(224, 224, 3),
        classes=8631,
        classifier_activation="softmax",
        blocks=DEFAULT_BLOCKS,
        width=1.0,
        name="vggface_resnet50",
        **kwargs,
    ):
        _check_args(include_top, pooling, input_shape, classes, classifier_activation, blocks, width)
        # Plain Python numbers, so get_config stays JSON-serializable.
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
        blocks, classes, width = tuple(int(b) for b in blocks), int(classes), float(width)

        inputs = keras.Input(shape=input_shape, name="images")
        x = build_graph(
            inputs, new_layer, blocks, width, include_top, pooling, classes, classifier_activation
        )
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)

        self.include_top = include_top
        self.pooling = pooling
        self.image_shape = input_shape
        self.classes = classes
        self.classifier_activation = classifier_activation
        self.blocks = blocks
        self.width = width
        self.weights_source = None  # set by vggface_resnet50() / load_vggface_weights()

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "include_top": self.include_top,
            "pooling": self.pooling,
            "input_shape": self.image_shape,
            "classes": self.classes,
            "classifier_activation": self.classifier_activation,
            "blocks": self.blocks,
            "width": self.width,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def legacy_name_map(self):
        """{our layer name: keras-vggface layer name} for every layer that has weights."""
        return {layer.name: legacy_layer_name(layer.name) for layer in self.layers if layer.weights}


def vggface_resnet50(
    weights="vggface2",
    include_top=False,
    pooling="avg",
    input_shape=(224, 224, 3),
    classes=8631,
    classifier_activation="softmax",
    blocks=DEFAULT_BLOCKS,
    width=1.0,
    name="vggface_resnet50",
):
    """keras-vggface `RESNET50` with VGGFace2 weights (`weights="vggface2"`), a legacy .h5 path, or None.

    The file used and its sha256 end up in `model.weights_source` (None for random weights).
    """
    _check_args(include_top, pooling, input_shape, classes, classifier_activation, blocks, width)
    is_default = tuple(blocks) == DEFAULT_BLOCKS and width == 1.0
    if weights is not None and not is_default:
        raise ValueError(
            "Pretrained weights need the full architecture: blocks=(3, 4, 6, 3), width=1.0. "
            f"Received: blocks={blocks!r}, width={width!r}, weights={weights!r}"
        )
    if weights == "vggface2" and include_top and classes != 8631:
        raise ValueError(
            "The VGGFace2 classifier has 8631 classes; use include_top=False to train your own head. "
            f"Received: classes={classes!r}"
        )
    path = None if weights is None else resolve_weights(weights, include_top)  # fail before building
    model = VGGFaceResNet50(
        include_top=include_top,
        pooling=pooling,
        input_shape=input_shape,
        classes=classes,
        classifier_activation=classifier_activation,
        blocks=blocks,
        width=width,
        name=name,
    )
    if path is not None:
        load_vggface_weights(model, path)
    return model
