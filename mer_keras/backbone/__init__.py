"""The VGGFace2 ResNet-50 of keras-vggface, ported to Keras 3, with its published weights."""

from mer_keras.backbone.preprocessing import BGR_MEAN, VGGFacePreprocess, preprocess_input, with_preprocessing
from mer_keras.backbone.resnet50 import VGGFaceResNet50, vggface_resnet50
from mer_keras.backbone.transfer import (
    freeze_before,
    frozen_output_name,
    gradcam_candidates,
    retrain_candidates,
    split_backbone,
)
from mer_keras.backbone.weights import (
    WeightsError,
    WeightsNotFoundError,
    fetch_vggface2_weights,
    legacy_layer_name,
    load_legacy_weights,
    load_vggface_weights,
    resolve_weights,
    vggface2_weights_path,
)

__all__ = [
    "BGR_MEAN",
    "VGGFacePreprocess",
    "VGGFaceResNet50",
    "WeightsError",
    "WeightsNotFoundError",
    "fetch_vggface2_weights",
    "freeze_before",
    "frozen_output_name",
    "gradcam_candidates",
    "legacy_layer_name",
    "load_legacy_weights",
    "load_vggface_weights",
    "preprocess_input",
    "resolve_weights",
    "retrain_candidates",
    "split_backbone",
    "vggface2_weights_path",
    "vggface_resnet50",
    "with_preprocessing",
]
