"""Transfer learning on the backbone: where it can be cut, what to freeze, frozen prefix / trainable suffix.

Retraining starts at a bottleneck block (`l_s` of the paper, e.g. `conv5_1_1x1_reduce`); the
block outputs (`conv4_6_out`, ...) are the Grad-CAM targets. `retrain_candidates(m)[i + 1]`
starts the block right after `gradcam_candidates(m)[i]`.
"""

import re

import keras

from mer_keras.backbone.resnet50 import VGGFaceResNet50, build_graph

_BLOCK = re.compile(r"^conv(\d+)_(\d+)_")
_STEM = ("conv1_7x7_s2", "conv1_7x7_s2_bn", "conv1_relu", "pool1")


def _block_of(name):
    """(stage, block) of a layer name; the stem is (1, 0); input, pooling and top are None."""
    if name in _STEM:
        return (1, 0)
    match = _BLOCK.match(name)
    return (int(match[1]), int(match[2])) if match else None


def _sorted_names(model, suffix):
    names = [layer.name for layer in model.layers if _BLOCK.match(layer.name) and layer.name.endswith(suffix)]
    return sorted(names, key=_block_of)


def retrain_candidates(model):
    """Names of the layers where retraining may start (first conv of each block), in network order."""
    return _sorted_names(model, "_1x1_reduce")


def gradcam_candidates(model):
    """Names of the block-output activations (the last of a stage ends that stage), in network order."""
    return _sorted_names(model, "_out")


def _check_start(model, layer_name):
    candidates = retrain_candidates(model)
    if layer_name not in candidates:
        raise ValueError(
            f"Retraining can start only at a block's first layer of model {model.name!r}: {candidates} "
            f"(or None for nothing). Received: {layer_name!r}"
        )
    return _block_of(layer_name)


def _is_none(layer_name):
    return layer_name is None or (isinstance(layer_name, str) and layer_name.lower() == "none")


def freeze_before(model, layer_name, train_batchnorm=False):
    """Freezes the stem and every block before the one starting at `layer_name`; the rest trains.

    `layer_name` None or "none" freezes everything. Frozen BatchNorm runs in inference mode
    (Keras 3 behaviour for `trainable=False`), so its moving statistics stay as loaded. Unless
    `train_batchnorm`, the BatchNorm layers of the retrained blocks stay frozen too (the usual
    fine-tuning practice): a frame's features then never depend on which frames share its batch,
    which is what lets a batch run each distinct frame once (see `models.deduplicated`).
    """
    if _is_none(layer_name):
        model.trainable = False
        return model
    start = _check_start(model, layer_name)
    model.trainable = True
    for layer in model.layers:
        block = _block_of(layer.name)
        layer.trainable = block is None or block >= start
        if isinstance(layer, keras.layers.BatchNormalization) and not train_batchnorm:
            layer.trainable = False
    return model


def frozen_output_name(model, retrain_from):
    """Name of the layer whose output feeds the block starting at `retrain_from` (`pool1` for the first)."""
    start = _check_start(model, retrain_from)
    before = [name for name in gradcam_candidates(model) if _block_of(name) < start]
    return before[-1] if before else "pool1"


def split_backbone(backbone, retrain_from):
    """`(frozen_prefix, trainable_suffix)`, `suffix(prefix(x)) == backbone(x)`; freezes as `freeze_before`.

    Both share the backbone's layers (same names, same variables), so training the suffix trains
    the backbone too. The suffix ends with the backbone's pooling/top. `retrain_from` None or "none"
    gives `(backbone, None)` with everything frozen.
    """
    if _is_none(retrain_from):
        freeze_before(backbone, None)
        return backbone, None
    if not isinstance(backbone, VGGFaceResNet50):
        raise TypeError(f"split_backbone needs a VGGFaceResNet50. Received: {type(backbone).__name__}")
    cut_name = frozen_output_name(backbone, retrain_from)
    cut = backbone.get_layer(cut_name).output
    freeze_before(backbone, retrain_from)
    prefix = keras.Model(backbone.input, cut, name=f"{backbone.name}_frozen")
    prefix.trainable = False
    features = keras.Input(shape=cut.shape[1:], name=f"{cut_name}_features")
    outputs = build_graph(
        features,
        lambda cls, name, **kwargs: backbone.get_layer(name),  # the backbone's own layers, not copies
        backbone.blocks,
        backbone.width,
        backbone.include_top,
        backbone.pooling,
        backbone.classes,
        backbone.classifier_activation,
        start=_block_of(retrain_from),
    )
    suffix = keras.Model(features, outputs, name=f"{backbone.name}_from_{retrain_from}")
    return prefix, suffix
