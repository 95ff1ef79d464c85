"""Layer sweep: Grad-CAM at every candidate layer on a few frames per class, scored by focus.

``choose_layer`` picks the best focus score (ties, to 6 decimals, go to the later layer);
``choose_retrain_layer`` does it on an untrained backbone and names the block to retrain from
(``l_s`` of the paper: the block whose output focuses best is the first one retrained).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from mer_keras.backbone import gradcam_candidates, retrain_candidates, with_preprocessing
from mer_keras.datasets import read_frame
from mer_keras.datasets.clip import Clip
from mer_keras.datasets.synthetic import mask_path, read_mask
from mer_keras.faces import apply_face, describe_landmark_regions, face_focus_mask
from mer_keras.gradcam.cam import gradcam
from mer_keras.gradcam.focus import WHOLE_FRAME, describe_layout, face_layout_mask, layer_score
from mer_keras.gradcam.graph import default_layers, is_clip_model
from mer_keras.gradcam.sequence import sequence_cams


@dataclass(frozen=True, repr=False)
class Sample:
    """One clip's centre (or apex) frame, or the window of ``n`` frames around it, with its region mask."""

    clip: Clip
    frame: int  # index in clip.frames of the frame shown
    label: int  # class index
    image: np.ndarray  # float32 RGB (H, W, 3), or (n, H, W, 3) for clip models
    mask: np.ndarray  # bool (H, W)

    def __repr__(self):
        return f"Sample({self.clip.key}, frame {self.frame}, label {self.label}, shape {self.image.shape})"


def has_masks(clips) -> bool:
    """True when every clip has a moving-region mask beside it (the synthetic dataset)."""
    return all(mask_path(c).is_file() for c in clips)


def describe_regions(clips, face_box=WHOLE_FRAME, faces=None) -> dict:
    """Which regions the focus score uses for these clips, for config.json / focus.json."""
    if has_masks(clips):
        return {
            "kind": "moving-region masks of the synthetic dataset (<clip>_mask.png)"
            + ("" if not faces else ", put through each clip's face transform")
        }
    if faces and any(f.found for f in faces.values()):
        return {
            "kind": "regions around the MTCNN landmarks of each clip's face (brows and eyes, nose wings, "
            "mouth corners); the fixed layout where no face was found",
            "landmark_regions": describe_landmark_regions(),
            "fixed_layout": describe_layout(face_box),
        }
    return describe_layout(face_box)


def sample_frames(clips, classes, size, per_class=3, n=1, seed=0, face_box=WHOLE_FRAME, faces=None) -> list:
    """``per_class`` clips per class (distinct subjects first), their apex or centre frame at ``size``.

    ``faces``: the run's face transform per clip (``--face crop|align``): frames and masks go through
    it, and on real data the focus regions come from the face's landmarks where one was found.
    """
    if per_class < 1 or n < 1:
        raise ValueError(f"`per_class` and `n` must be >= 1. Received: per_class={per_class}, n={n}")
    rng = np.random.default_rng(seed)
    synthetic = has_masks(clips)
    samples = []
    for label, name in enumerate(classes):
        pool = [clips[i] for i in rng.permutation(len(clips)) if clips[i].label == name]
        seen, first, rest = set(), [], []
        for clip in pool:
            (rest if clip.subject in seen else first).append(clip)
            seen.add(clip.subject)
        for clip in (first + rest)[:per_class]:
            face = (faces or {}).get(clip.key)
            centre = clip.apex if clip.apex is not None else len(clip) // 2
            picks = np.clip(np.arange(n) + centre - n // 2, 0, len(clip) - 1)  # edges repeated if short
            image = np.stack([_frame(clip.frames[i], size, face) for i in picks]).astype(np.float32)
            samples.append(
                Sample(
                    clip,
                    int(centre),
                    label,
                    image[0] if n == 1 else image,
                    _mask(clip, size, face, synthetic, face_box),
                )
            )
    if not samples:
        raise ValueError(f"No clip has a label in {list(classes)}. Received: {len(clips)} clips")
    return samples


def _frame(path, size, face):
    return read_frame(path, size) if face is None else apply_face(read_frame(path), face, size)


def _mask(clip, size, face, synthetic, face_box):
    """The clip's focus region at ``size``: its synthetic mask, the landmarks' regions, or the layout."""
    if synthetic:
        if face is None:
            return read_mask(clip, size)
        full = np.repeat(read_mask(clip)[..., None].astype(np.uint8) * 255, 3, axis=-1)
        return apply_face(full, face, size)[..., 0] > 127
    if face is not None and face.found:
        return face_focus_mask(face, size)
    return face_layout_mask((size, size), face_box)


def layer_sweep(model, samples, layers=None, method="gradcam", targets=None) -> dict:
    """``{layer: {"maps", "score": mean focus, "defined": maps with a score}}`` for a frame or clip model.

    ``targets`` default to the samples' labels (the class score explained).
    """
    layers = default_layers(model) if layers is None else list(layers)
    inputs = np.stack([s.image for s in samples])
    targets = np.array([s.label for s in samples]) if targets is None else targets
    if is_clip_model(model):
        if method != "gradcam":
            raise ValueError(f"Clip models get per-frame Grad-CAM only. Received: method={method!r}")
        maps = sequence_cams(model, inputs, layers, targets)
    else:
        maps = gradcam(model, inputs, layers, targets, method=method)
    masks = [s.mask for s in samples]
    sweep = {}
    for layer in layers:
        score, defined = layer_score(maps[layer], masks)
        sweep[layer] = {"maps": maps[layer], "score": score, "defined": defined}
    return sweep


def choose_layer(scores) -> str:
    """The layer with the best focus score; ties (to 6 decimals) go to the later layer. NaN never wins."""
    ranked = [
        (round(score, 6), i, layer)
        for i, (layer, score) in enumerate(scores.items())
        if score is not None and np.isfinite(score)
    ]
    if not ranked:
        raise ValueError(
            f"No layer has a defined focus score (no mask, or all maps zero). Received: {scores}"
        )
    return max(ranked)[2]


def retrain_from_for(backbone, cam_layer):
    """The first layer of the block whose output is ``cam_layer`` (None if it is no block output)."""
    candidates = gradcam_candidates(backbone)
    return retrain_candidates(backbone)[candidates.index(cam_layer)] if cam_layer in candidates else None


def _pooled_features(outputs):
    """Label-free score: the mean of the backbone's (pooled) output per frame."""
    return tf.reduce_mean(tf.reshape(outputs, (tf.shape(outputs)[0], -1)), axis=1)


def choose_retrain_layer(
    backbone, clips, size, classes=None, per_class=3, seed=0, method="gradcam", face_box=WHOLE_FRAME
):
    """``(retrain_from, scores)``: the block start to retrain from, and ``{block output: focus}``.

    Uses no labels (the target is the mean pooled backbone feature), so any clips may be shown.
    """
    classes = sorted({c.label for c in clips}) if classes is None else list(classes)
    model = with_preprocessing(backbone, size, name="backbone_for_gradcam")
    samples = sample_frames(clips, classes, size, per_class=per_class, seed=seed, face_box=face_box)
    sweep = layer_sweep(model, samples, gradcam_candidates(backbone), method=method, targets=_pooled_features)
    scores = {layer: result["score"] for layer, result in sweep.items()}
    return retrain_from_for(backbone, choose_layer(scores)), scores
