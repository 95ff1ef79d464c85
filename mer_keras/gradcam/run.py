"""Grad-CAM of a finished run: layer sweep before and after training, focus.json and figures.

"Before" is the run's architecture with the weights it started from: the backbone rebuilt as
``config.json`` says (same ``--weights``; random weights re-drawn with the run's seed, and the
layers the run froze are checked against the trained model), the head freshly initialised.
"After" is ``final/model.keras``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np

import mer_keras  # noqa: F401  (registers the custom layers of final/model.keras)
from mer_keras.backbone import freeze_before, with_preprocessing
from mer_keras.backbone.build import build_backbone
from mer_keras.config import RunConfig
from mer_keras.dataset_plan import FACES, load_clips
from mer_keras.faces import FaceTransform
from mer_keras.files import read_json, save_figure, write_json
from mer_keras.gradcam.figures import before_after_figure, sweep_figure
from mer_keras.gradcam.focus import WHOLE_FRAME, chance_level
from mer_keras.gradcam.graph import default_layers, find_backbone
from mer_keras.gradcam.sweep import (
    choose_layer,
    describe_regions,
    layer_sweep,
    retrain_from_for,
    sample_frames,
)
from mer_keras.models import build_head, compose


def load_run(run_dir):
    """``(config, record, final model)`` of a run folder; errors name the missing file."""
    run_dir = Path(run_dir)
    config = RunConfig.from_json(run_dir)
    model_path = run_dir / "final" / "model.keras"
    if not model_path.is_file():
        raise FileNotFoundError(
            f"{model_path}: the run has no final model (was it run with --no-final, "
            "or killed before the end?)."
        )
    return config, read_json(run_dir / "config.json")["record"], keras.saving.load_model(model_path)


def run_clips(config: RunConfig, classes) -> list:
    """The run's clips, read again from its data (only the classes the run used)."""
    return [c for c in load_clips(config.data)[0] if c.label in set(classes)]


def run_faces(run_dir, config: RunConfig):
    """The run's face transform per clip (``--face crop|align``), or None for whole frames."""
    if config.data.face == "none":
        return None
    return {key: FaceTransform.from_json(value) for key, value in read_json(Path(run_dir) / FACES).items()}


def initial_model(config: RunConfig, num_classes: int):
    """``(model, backbone, weights record)``: the run's architecture with its starting weights.

    The head is freshly initialised and unstandardized: its input statistics came from the run's folds.
    """
    size = config.data.image_size
    keras.utils.set_random_seed(config.protocol.seed)  # as the run does before building its backbone
    backbone, weights = build_backbone(
        config.model.backbone,
        config.model.weights,
        size,
        config.data.synthetic,
        pooling=config.model.head.pooling,
    )
    encoder = with_preprocessing(backbone, size, name="frame_encoder_model")
    head = build_head(config.head(standardize=False), num_classes, encoder.outputs[0].shape[1:], config.n)
    return (
        compose(head, encoder, (size, size, 3), name=f"mer_{config.experiment}_untrained"),
        backbone,
        weights,
    )


def frozen_match(before_backbone, after_backbone, retrain_from) -> dict:
    """Whether the layers the run froze hold the same weights in both backbones (max |difference|)."""
    freeze_before(before_backbone, retrain_from)
    frozen = [layer for layer in before_backbone.layers if layer.weights and not layer.trainable]
    diff = 0.0
    for layer in frozen:
        for a, b in zip(layer.get_weights(), after_backbone.get_layer(layer.name).get_weights()):
            diff = max(diff, float(np.max(np.abs(a - b))))
    return {"frozen_layers_compared": len(frozen), "max_abs_difference": diff, "same": diff == 0.0}


def _save(path, fig) -> str:
    return str(save_figure(path, fig))


def write_figures(out, samples, sweeps, chosen, classes, method) -> dict:
    """Frames x layers grids before and after training, and Figure 4 (one frame per class) at ``chosen``."""
    figures = {
        name: _save(
            out / f"sweep_{name}.png",
            sweep_figure(samples, sweep, classes, f"Grad-CAM ({method}) {name} training: frames x layers"),
        )
        for name, sweep in sweeps.items()
    }
    labels = [s.label for s in samples]
    pick = [labels.index(k) for k in sorted(set(labels))]  # the first sample of each class
    at_chosen = {
        name: {chosen: {"maps": sweep[chosen]["maps"][pick], "score": sweep[chosen]["score"]}}
        for name, sweep in sweeps.items()
    }
    figures["before_after"] = _save(
        out / "before_after.png",
        before_after_figure(
            [samples[i] for i in pick],
            at_chosen["before"],
            at_chosen["after"],
            chosen,
            classes,
            f"Grad-CAM ({method}) at {chosen}\n(the chosen layer), before / after training",
        ),
    )
    return figures


def gradcam_run(
    run_dir, per_class=3, method="gradcam", layers=None, seed=0, face_box=WHOLE_FRAME, out=None, data=None
) -> dict:
    """Writes ``<run>/gradcam/`` (figures, focus.json) and returns what focus.json holds.

    ``data``: where the run's dataset is now, if it moved since the run.
    """
    config, record, after = load_run(run_dir)
    if data is not None:
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, path=str(Path(data).resolve()))
        )
    out = Path(run_dir) / "gradcam" if out is None else Path(out)
    classes, n = record["data"]["classes"], config.n
    before, before_backbone, weights = initial_model(config, len(classes))
    layers = default_layers(after) if layers is None else list(layers)
    clips = run_clips(config, classes)
    faces = run_faces(run_dir, config)
    samples = sample_frames(
        clips,
        classes,
        config.data.image_size,
        per_class=per_class,
        n=n,
        seed=seed,
        face_box=face_box,
        faces=faces,
    )
    sweeps = {
        "before": layer_sweep(before, samples, layers, method),
        "after": layer_sweep(after, samples, layers, method),
    }
    scores = {name: {layer: sweep[layer]["score"] for layer in layers} for name, sweep in sweeps.items()}
    chosen = choose_layer(scores["before"])
    retrain = record["backbone_split"]["retrain_from"]
    retrained = None if retrain in (None, "none") else retrain
    frozen = frozen_match(before_backbone, find_backbone(after), retrained)
    focus = {
        "layers": {layer: {name: scores[name][layer] for name in ("before", "after")} for layer in layers},
        "chosen": chosen,
        "chosen_by": "best focus before training (l_s is picked before retraining); ties to the later layer",
        "retrain_from": retrain_from_for(before_backbone, chosen),
        "best_after": choose_layer(scores["after"]),
        "run_retrain_from": retrain,
        "method": method,
        "target": "logit of each sample's true class",
        "regions": describe_regions(clips, face_box, faces),
        "chance": chance_level([s.mask for s in samples]),
        "maps_with_a_region": int(sum(s.mask.any() for s in samples) * n),
        "maps_with_a_score": {
            layer: {name: sweep[layer]["defined"] for name, sweep in sweeps.items()} for layer in layers
        },
        "before": {
            "weights": weights,
            "run_frozen_layers": frozen,
            "head": f"fresh random initialisation (seed {config.protocol.seed}), not the run's exact draw",
        },
        "after": str(Path(run_dir) / "final" / "model.keras"),
        "samples": [
            {
                "clip": s.clip.key,
                "label": classes[s.label],
                "frame": s.frame,
                "frame_path": s.clip.frames[s.frame],
            }
            for s in samples
        ],
        "figures": write_figures(out, samples, sweeps, chosen, classes, method),
    }
    write_json(out / "focus.json", focus)
    return focus
