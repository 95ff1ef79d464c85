"""Grad-CAM for mer_keras models: maps at backbone layers, focus scores, the choice of ``l_s``.

Frame models go through tf-keras-vis (Grad-CAM, Grad-CAM++); clip models get per-frame maps
from a short gradient tape. ``python -m experiments.gradcam --run DIR`` does it for a run.
"""

from mer_keras.gradcam.cam import METHODS, gradcam
from mer_keras.gradcam.focus import (
    FACE_LAYOUT,
    chance_level,
    face_layout_mask,
    focus_score,
    frame_scores,
    layer_score,
)
from mer_keras.gradcam.graph import expose_layers, find_backbone, target_name
from mer_keras.gradcam.sequence import resize_maps, sequence_cams
from mer_keras.gradcam.sweep import (
    Sample,
    choose_layer,
    choose_retrain_layer,
    describe_regions,
    layer_sweep,
    sample_frames,
)

__all__ = [
    "FACE_LAYOUT",
    "METHODS",
    "Sample",
    "chance_level",
    "choose_layer",
    "choose_retrain_layer",
    "describe_regions",
    "expose_layers",
    "face_layout_mask",
    "find_backbone",
    "focus_score",
    "frame_scores",
    "gradcam",
    "layer_score",
    "layer_sweep",
    "resize_maps",
    "sample_frames",
    "sequence_cams",
    "target_name",
]
