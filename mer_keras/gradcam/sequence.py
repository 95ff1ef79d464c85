"""Per-frame Grad-CAM of clip models (TimeDistributed frame encoder + recurrent head), with tf-keras-vis.

``expose_layers`` folds time into the batch, so at a backbone layer each frame is its own row:
tf-keras-vis's Grad-CAM, not expanded to the input, then pools the gradients over each frame's
H and W and gives one map per frame (the same as a hand-written tape, tested).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import zoom
from tf_keras_vis.gradcam import Gradcam

from mer_keras.gradcam.cam import check_images, score_for
from mer_keras.gradcam.graph import expose_layers, is_clip_model, target_name


def resize_maps(maps, size) -> np.ndarray:
    """``(..., h, w)`` maps linearly resized to ``size = (H, W)`` (tf-keras-vis's own zoom, order 1)."""
    maps = np.asarray(maps, np.float32)
    factors = (1.0,) * (maps.ndim - 2) + (size[0] / maps.shape[-2], size[1] / maps.shape[-1])
    return zoom(maps, factors, order=1).astype(np.float32)


def sequence_cams(model, clips, layers, targets, logits=True) -> dict:
    """``{layer: (batch, time, H, W) maps}`` of a clip model: ReLU'd, resized to the frames, not normalised.

    ``targets`` are class indices (one per clip, or one for all) or a score callable on the output.
    """
    if not is_clip_model(model):
        raise ValueError(
            f"Model {model.name!r} takes single frames: use mer_keras.gradcam.gradcam. "
            f"Received: input shape {tuple(model.inputs[0].shape)}"
        )
    clips = check_images(model, clips, "clips")
    layers = [layers] if isinstance(layers, str) else list(layers)
    explainer = Gradcam(expose_layers(model, layers, logits=logits))
    score = score_for(targets, len(clips))
    batch, steps, height, width = clips.shape[:4]
    maps = {}
    for name in layers:
        cam = np.asarray(
            explainer(
                score,
                clips,
                penultimate_layer=target_name(name),
                seek_penultimate_conv_layer=False,
                normalize_cam=False,
                expand_cam=False,
            ),
            np.float32,
        )  # (batch * time, h, w)
        maps[name] = resize_maps(cam.reshape(batch, steps, *cam.shape[1:]), (height, width))
    return maps
