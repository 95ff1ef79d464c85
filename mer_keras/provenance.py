"""What a run used and how it departs from the paper: library versions, precision, weights."""

from __future__ import annotations

import logging
import platform
import sys
import warnings

import keras
import tensorflow as tf

from mer_keras.backbone import WeightsNotFoundError, vggface_resnet50

log = logging.getLogger("mer_keras")
TINY = {"blocks": (1, 1, 1, 1), "width": 1 / 16}


def versions() -> dict:
    import cv2
    import numpy
    import sklearn

    import mer_keras

    return {
        "mer_keras": mer_keras.__version__, "python": sys.version.split()[0],
        "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": numpy.__version__,
        "opencv": cv2.__version__, "scikit-learn": sklearn.__version__,
        "platform": platform.platform(), "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }


def resolve_precision(precision: str) -> str:
    """``auto``: mixed_float16 on a GPU, float32 on CPU."""
    if precision == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    return precision


def resolve_backbone(options, size: int, synthetic: bool, pooling="avg"):
    """The backbone for ``--weights`` and a record of the weights actually used.

    ``auto`` falls back to random weights only on the synthetic dataset, loudly; on real data a
    missing VGGFace2 file is an error unless ``--weights none`` is given.
    """
    shape = (size, size, 3)
    if options.backbone == "tiny":
        if options.weights not in ("auto", "none"):
            raise ValueError(f"--backbone tiny has no pretrained weights. Received: --weights {options.weights}")
        return vggface_resnet50(weights=None, input_shape=shape, pooling=pooling, **TINY), {
            "source": "random", "reason": "--backbone tiny"}
    choice = options.weights
    if choice == "none":
        return vggface_resnet50(weights=None, input_shape=shape, pooling=pooling), {
            "source": "random", "reason": "--weights none"}
    try:
        model = vggface_resnet50(weights="vggface2" if choice == "auto" else choice, input_shape=shape,
                                 pooling=pooling)
    except WeightsNotFoundError as error:
        if choice != "auto" or not synthetic:
            if choice == "auto":
                raise WeightsNotFoundError(f"{error}\nOn real data --weights auto needs the file; "
                                           "pass --weights none to train from random weights.") from error
            raise
        message = ("VGGFace2 weights not found and not downloadable: the backbone uses RANDOM weights. "
                   "Fine for the synthetic demo; results are not the paper's setting. " + str(error))
        warnings.warn(message, stacklevel=2)
        log.warning(message)
        return vggface_resnet50(weights=None, input_shape=shape, pooling=pooling), {
            "source": "random", "reason": "auto: VGGFace2 file missing and not downloadable (synthetic data)"}
    return model, {"source": "file", **(model.weights_source or {})}


def deviations(run) -> list:
    """Every way this run departs from the paper's protocol, in words."""
    o, found = run.options, []
    if run.synthetic:
        found.append("data: built-in synthetic SMIC-like dataset, not SMIC-HS")
    if run.weights["source"] != "file":
        found.append(f"backbone weights: random ({run.weights['reason']}), not VGGFace2")
    if o.image_size != 224:
        found.append(f"image size {o.image_size}x{o.image_size}, not 224x224")
    if run.retrain_from in (None, "none"):
        found.append("whole backbone frozen (--retrain-from none); the paper retrains from a layer l_s "
                     "picked with Grad-CAM")
    else:
        found.append(f"retrained from {run.retrain_from} with its BatchNorm layers frozen (loaded statistics, "
                     "inference mode); the paper does not say")
    if run.standardize:
        found.append("frozen features standardized with statistics of the training "
                     + ("windows' motion" if run.clip_features == "motion" else "frames") + " (Normalization layer)")
    if run.clip_features == "motion":
        found.append("the LSTM sees, per backbone channel, the mean absolute change of its unpooled feature map "
                     "since the window's first frame (--clip-features motion); the paper feeds the pooled "
                     "features (--clip-features raw)")
    elif run.clip_features == "relative":
        found.append("the LSTM sees each window's pooled features minus its first frame's (--clip-features "
                     "relative); the paper feeds the pooled features (--clip-features raw)")
    if o.backbone == "tiny":
        found.append("tiny test backbone (1 block per stage, 1/16 width), not ResNet-50")
    found.append("frame augmentation uses cached variants (" + ", ".join(run.variants)
                 + ") drawn per sample, not fresh random rotations")
    if run.kind != "frame":
        found.append("test clips: all windows, clip probability = mean of window probabilities "
                     "(the paper does not say)")
        found.append(f"clips shorter than N: {o.short_clips} (the paper does not say)")
    found.append(f"checkpoint selected on validation subjects carved from each training fold "
                 f"({o.validation_fraction:.0%} of them); the paper does not say how it selected epochs")
    if o.protocol != "kfold" or o.folds != 5:
        found.append(f"protocol {o.protocol}" + (f" with {o.folds} folds" if o.protocol == "kfold" else "")
                     + ", not 5-fold subject-wise")
    if run.precision != "float32":
        found.append(f"precision {run.precision}")
    return found
