"""Per-frame Grad-CAM of clip models (TimeDistributed frame encoder + LSTM head), by a short tape.

tf-keras-vis pools the channel weights over time too, which gives one weight set per clip; here
each frame gets its own: the gradients of the clip's score pooled over that frame's H and W.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from scipy.ndimage import zoom

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
        raise ValueError(f"Model {model.name!r} takes single frames: use mer_keras.gradcam.gradcam. "
                         f"Received: input shape {tuple(model.inputs[0].shape)}")
    clips = check_images(model, clips, "clips")
    layers = [layers] if isinstance(layers, str) else list(layers)
    score = score_for(targets, len(clips))
    exposed = expose_layers(model, layers, logits=logits)
    probe = keras.Model(exposed.inputs, [exposed.outputs[0], *(exposed.get_layer(target_name(name)).output
                                                                for name in layers)])
    inputs = tf.constant(clips)
    with tf.GradientTape() as tape:
        output, *activations = probe(inputs, training=False)
        total = tf.reduce_sum(tf.cast(score(output), tf.float32))
    gradients = tape.gradient(total, activations)
    batch, steps, height, width = clips.shape[:4]
    maps = {}
    for name, activation, gradient in zip(layers, activations, gradients):
        activation = tf.cast(activation, tf.float32)  # (batch * time, h, w, c)
        weights = tf.reduce_mean(tf.cast(gradient, tf.float32), axis=(1, 2), keepdims=True)  # per frame
        cam = tf.nn.relu(tf.reduce_sum(weights * activation, axis=-1)).numpy()
        cam = cam.reshape(batch, steps, *cam.shape[1:])
        maps[name] = resize_maps(cam, (height, width))
    return maps
