"""The run's backbone for ``--backbone`` / ``--weights``, and a record of the weights actually used."""

from __future__ import annotations

import warnings

from mer_keras.backbone.resnet50 import vggface_resnet50
from mer_keras.backbone.weights import WeightsNotFoundError

TINY = {"blocks": (1, 1, 1, 1), "width": 1 / 16}  # --backbone tiny: 1 block per stage, 1/16 of the width


def build_backbone(backbone: str, weights: str, size: int, synthetic: bool, pooling="avg"):
    """``(backbone, weights record)``. ``weights="auto"`` falls back to random weights only on synthetic data.

    On real data a missing VGGFace2 file is an error unless ``weights="none"`` is asked for.
    """
    shape = (size, size, 3)
    if backbone == "tiny":
        if weights not in ("auto", "none"):
            raise ValueError(f"--backbone tiny has no pretrained weights. Received: --weights {weights}")
        return vggface_resnet50(weights=None, input_shape=shape, pooling=pooling, **TINY), {
            "source": "random",
            "reason": "--backbone tiny",
        }
    if weights == "none":
        return vggface_resnet50(weights=None, input_shape=shape, pooling=pooling), {
            "source": "random",
            "reason": "--weights none",
        }
    try:
        model = vggface_resnet50(
            weights="vggface2" if weights == "auto" else weights, input_shape=shape, pooling=pooling
        )
    except WeightsNotFoundError as error:
        if weights != "auto" or not synthetic:
            if weights == "auto":
                raise WeightsNotFoundError(
                    f"{error}\nOn real data --weights auto needs the file; "
                    "pass --weights none to train from random weights."
                ) from error
            raise
        message = (
            "VGGFace2 weights not found and not downloadable: the backbone uses RANDOM weights. "
            "Fine for the synthetic demo; results are not the paper's setting. " + str(error)
        )
        warnings.warn(message, stacklevel=2)
        return vggface_resnet50(weights=None, input_shape=shape, pooling=pooling), {
            "source": "random",
            "reason": "auto: VGGFace2 file missing and not downloadable (synthetic data)",
        }
    return model, {"source": "file", **(model.weights_source or {})}
