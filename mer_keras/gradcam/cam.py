"""Grad-CAM and Grad-CAM++ of frame models with tf-keras-vis, at layers of a nested backbone."""

from __future__ import annotations

import numpy as np
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.utils.scores import CategoricalScore

from mer_keras.gradcam.graph import expose_layers, is_clip_model, target_name

METHODS = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus}


def check_images(model, images, what="images") -> np.ndarray:
    """``images`` as float32, checked against the model's input shape (batch axis first)."""
    images = np.asarray(images, np.float32)
    expected = tuple(model.inputs[0].shape[1:])
    shape = images.shape
    if images.ndim != len(expected) + 1 or any(e not in (None, s) for e, s in zip(expected, shape[1:])):
        wanted = ", ".join(map(str, expected))
        raise ValueError(
            f"Model {model.name!r} takes {what} of shape (batch, {wanted}). Received: shape {shape}"
        )
    return images


def score_for(targets, batch):
    """A tf-keras-vis score: class indices (one per sample, or one for all) or a callable."""
    if callable(targets):
        return targets
    targets = np.atleast_1d(np.asarray(targets))
    if targets.dtype.kind not in "iu" or targets.ndim != 1 or len(targets) not in (1, batch):
        raise ValueError(
            f"`targets` must be a class index or {batch} class indices (one per sample), or a "
            f"callable score. Received: {targets!r}"
        )
    return CategoricalScore([int(t) for t in targets])


def gradcam(model, images, layers, targets, method="gradcam", logits=True) -> dict:
    """``{layer: (batch, H, W) maps}`` of a frame model: ReLU'd, resized to the frames, not normalised.

    ``targets`` are the class indices whose score is explained (logits when the model ends with a
    softmax ``Activation``), or a tf-keras-vis score callable.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}. Received: method={method!r}")
    if is_clip_model(model):
        raise ValueError(
            f"Model {model.name!r} takes clips: use mer_keras.gradcam.sequence_cams for "
            f"per-frame maps. Received: input shape {tuple(model.inputs[0].shape)}"
        )
    images = check_images(model, images)
    layers = [layers] if isinstance(layers, str) else list(layers)
    exposed = expose_layers(model, layers, logits=logits)
    explainer = METHODS[method](exposed)
    score = score_for(targets, len(images))
    maps = {}
    for layer in layers:
        cam = explainer(
            score,
            images,
            penultimate_layer=target_name(layer),
            seek_penultimate_conv_layer=False,
            normalize_cam=False,
        )
        maps[layer] = np.asarray(cam, np.float32).reshape(images.shape[:3])
    return maps
