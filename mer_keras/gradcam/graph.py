"""Model surgery for Grad-CAM: nested backbones inlined, an ``Identity`` after each target layer.

tf-keras-vis 0.8.7 cannot reach a layer inside a nested model on Keras 3 (its output belongs to
the inner graph: "Output ... is not connected to inputs"). ``expose_layers`` rebuilds the model
with the same layer objects (same weights) as one flat graph, adds an ``Identity`` named
``gradcam_<layer>`` after each target, folds ``TimeDistributed`` time into the batch, and drops
a final ``Activation("softmax")`` so that scores are logits.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from mer_keras.backbone import VGGFaceResNet50, gradcam_candidates

PREFIX = "gradcam_"


def target_name(layer_name: str) -> str:
    """Name of the ``Identity`` that ``expose_layers`` puts after ``layer_name``."""
    return PREFIX + layer_name


def _is_graph(layer) -> bool:
    return isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph")


def _inner(layer):
    """The nested model a layer holds (itself, or what a TimeDistributed wraps), else None."""
    if isinstance(layer, layers.TimeDistributed):
        layer = layer.layer
    return layer if _is_graph(layer) else None


def iter_layers(model):
    """Every layer of ``model``, nested models and TimeDistributed wrappers included, in order."""
    for layer in model.layers:
        yield layer
        inner = _inner(layer)
        if inner is not None:
            yield from iter_layers(inner)


def find_backbone(model):
    """The ``VGGFaceResNet50`` inside ``model`` (or ``model`` itself), else None."""
    if isinstance(model, VGGFaceResNet50):
        return model
    return next((layer for layer in iter_layers(model) if isinstance(layer, VGGFaceResNet50)), None)


def default_layers(model) -> list:
    """The backbone's Grad-CAM candidates (block outputs, in network order)."""
    backbone = find_backbone(model)
    if backbone is None:
        raise ValueError(
            f"Model {model.name!r} holds no VGGFaceResNet50: pass the layer names to use. "
            "Received: layers=None"
        )
    return gradcam_candidates(backbone)


def is_clip_model(model) -> bool:
    """True when the model takes clips ``(batch, time, H, W, C)`` (a TimeDistributed frame encoder)."""
    return len(model.inputs[0].shape) == 5


def _check_targets(model, names):
    found = {layer.name: layer for layer in iter_layers(model)}
    for name in names:
        if name not in found:
            raise ValueError(
                f"Layer {name!r} not found in model {model.name!r} (nested models searched). "
                f"Received: {name!r}"
            )
        shape = found[name].output.shape
        if len(shape) != 4:
            raise ValueError(
                f"Grad-CAM needs a layer with a (batch, height, width, channels) output; layer "
                f"{name!r} of model {model.name!r} gives {shape}. Received: {name!r}"
            )


def _final_softmax(model):
    """The softmax ``Activation`` that ends ``model`` (inside a nested head model too), else None."""
    last = model.layers[-1]
    if _is_graph(last):
        return _final_softmax(last)
    if isinstance(last, layers.Activation) and last.get_config().get("activation") == "softmax":
        return last
    return None


def expose_layers(model, names, logits=True) -> keras.Model:
    """``model`` as one flat graph with ``Identity`` layers ``gradcam_<name>`` after each of ``names``.

    Shares the layers (and weights) of ``model``; with ``logits`` a final softmax is left out.
    """
    names = list(names)
    _check_targets(model, names)
    skip = _final_softmax(model) if logits else None

    def call(layer, *args, **kwargs):
        if layer is skip:
            return args[0]
        if _is_graph(layer):  # inline a nested model (private Keras API, as clone_model uses it)
            return layer._run_through_graph(args[0], operation_fn=lambda op: op, call_fn=call)
        inner = _inner(layer)
        if inner is not None:  # TimeDistributed: fold time into the batch, as FramewiseTimeDistributed
            clips = args[0]
            steps = clips.shape[1]
            frames = inner._run_through_graph(
                ops.reshape(clips, (-1, *clips.shape[2:])), operation_fn=lambda op: op, call_fn=call
            )
            return ops.reshape(frames, (-1, steps, *frames.shape[1:]))
        out = layer(*args, **kwargs)
        if layer.name in names:
            out = layers.Identity(name=target_name(layer.name))(out)
        return out

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
