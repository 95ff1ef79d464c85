"""Grad-CAM of a finished run: layer sweep before and after training, focus.json and figures.

"Before" is the run's architecture with the weights it started from: the backbone rebuilt as
``config.json`` says (same ``--weights``; random weights re-drawn with the run's seed, and the
layers the run froze are checked against the trained model), the head freshly initialised.
"After" is ``final/model.keras``.
"""

from __future__ import annotations

import io
from argparse import Namespace
from pathlib import Path

import keras
import numpy as np

from mer_keras import reports
from mer_keras.backbone import VGGFacePreprocess, freeze_before
from mer_keras.datasets import load_dataset
from mer_keras.experiment import clip_features_of, head_sizes, legacy_options
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
from mer_keras.models import EXPERIMENT_KIND, backbone_pooling, build_model
from mer_keras.provenance import resolve_backbone


def load_run(run_dir):
    """``(config, final model)`` of a run folder; errors name the missing file."""
    run_dir = Path(run_dir)
    config_path, model_path = run_dir / "config.json", run_dir / "final" / "model.keras"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not a finished run folder (no config.json).")
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: the run has no final model (was it run with --no-final, "
                                "or killed before the end?).")
    return reports.read_json(config_path), keras.saving.load_model(model_path)


def run_clips(config) -> list:
    """The run's clips, read again from ``data.root`` (only the classes the run used)."""
    options, data = config["options"], config["data"]
    dataset = "smic" if options["data"] == "synthetic" else options["dataset"]
    classes = set(data["classes"])
    return [c for c in load_dataset(data["root"], dataset) if c.label in classes]


def initial_model(config):
    """``(model, backbone, weights record)``: the run's architecture with its starting weights."""
    options = Namespace(**legacy_options(config["options"]))
    size, kind = options.image_size, EXPERIMENT_KIND[options.experiment]
    keras.utils.set_random_seed(options.seed)  # as Run does before building its backbone
    backbone, weights = resolve_backbone(options, size, config["data"]["synthetic"],
                                         pooling=backbone_pooling(clip_features_of(options)))
    frames = keras.Input((size, size, 3), name="rgb_frames")
    encoder = keras.Model(frames, backbone(VGGFacePreprocess(name="vggface_preprocess")(frames)),
                          name="frame_encoder_model")
    model = build_model(kind, len(config["data"]["classes"]), (size, size, 3),
                        None if kind == "frame" else options.n, encoder,
                        name=f"mer_{options.experiment}_untrained", **head_sizes(options))
    return model, backbone, weights


def frozen_match(before_backbone, after_backbone, retrain_from, train_batchnorm=False) -> dict:
    """Whether the layers the run froze hold the same weights in both backbones (max |difference|)."""
    freeze_before(before_backbone, retrain_from, train_batchnorm)
    frozen = [layer for layer in before_backbone.layers if layer.weights and not layer.trainable]
    diff = 0.0
    for layer in frozen:
        for a, b in zip(layer.get_weights(), after_backbone.get_layer(layer.name).get_weights()):
            diff = max(diff, float(np.max(np.abs(a - b))))
    return {"frozen_layers_compared": len(frozen), "max_abs_difference": diff, "same": diff == 0.0}


def save_figure(path, fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    reports.write_bytes(path, buffer.getvalue())
    return str(path)


def write_figures(out, samples, sweeps, chosen, classes, method) -> dict:
    """Frames x layers grids before and after training, and Figure 4 (one frame per class) at ``chosen``."""
    figures = {name: save_figure(out / f"sweep_{name}.png", sweep_figure(
        samples, sweep, classes, f"Grad-CAM ({method}) {name} training: frames x layers"))
        for name, sweep in sweeps.items()}
    labels = [s.label for s in samples]
    pick = [labels.index(k) for k in sorted(set(labels))]  # the first sample of each class
    at_chosen = {name: {chosen: {"maps": sweep[chosen]["maps"][pick], "score": sweep[chosen]["score"]}}
                 for name, sweep in sweeps.items()}
    figures["before_after"] = save_figure(out / "before_after.png", before_after_figure(
        [samples[i] for i in pick], at_chosen["before"], at_chosen["after"], chosen, classes,
        f"Grad-CAM ({method}) at {chosen}\n(the chosen layer), before / after training"))
    return figures


def gradcam_run(run_dir, per_class=3, method="gradcam", layers=None, seed=0, face_box=WHOLE_FRAME,
                out=None) -> dict:
    """Writes ``<run>/gradcam/`` (figures, focus.json) and returns what focus.json holds."""
    config, after = load_run(run_dir)
    out = Path(run_dir) / "gradcam" if out is None else Path(out)
    options, classes = config["options"], config["data"]["classes"]
    n = 1 if EXPERIMENT_KIND[options["experiment"]] == "frame" else options["n"]
    before, before_backbone, weights = initial_model(config)
    layers = default_layers(after) if layers is None else list(layers)
    clips = run_clips(config)
    samples = sample_frames(clips, classes, options["image_size"], per_class=per_class, n=n, seed=seed,
                            face_box=face_box)
    sweeps = {"before": layer_sweep(before, samples, layers, method),
              "after": layer_sweep(after, samples, layers, method)}
    scores = {name: {layer: sweep[layer]["score"] for layer in layers} for name, sweep in sweeps.items()}
    chosen = choose_layer(scores["before"])
    retrain = config.get("backbone_split", {}).get("retrain_from", options.get("retrain_from"))
    retrained = None if retrain in (None, "none") else retrain
    # runs made before BatchNorm of retrained blocks was frozen have no such key: they trained it
    train_batchnorm = config.get("backbone_split", {}).get("train_batchnorm", True)
    frozen = frozen_match(before_backbone, find_backbone(after), retrained, train_batchnorm)
    focus = {
        "layers": {layer: {name: scores[name][layer] for name in ("before", "after")} for layer in layers},
        "chosen": chosen,
        "chosen_by": "best focus before training (l_s is picked before retraining); ties to the later layer",
        "retrain_from": retrain_from_for(before_backbone, chosen),
        "best_after": choose_layer(scores["after"]),
        "run_retrain_from": retrain,
        "method": method,
        "target": "logit of each sample's true class",
        "regions": describe_regions(clips, face_box),
        "chance": chance_level([s.mask for s in samples]),
        "maps_with_a_region": int(sum(s.mask.any() for s in samples) * n),
        "maps_with_a_score": {layer: {name: sweep[layer]["defined"] for name, sweep in sweeps.items()}
                              for layer in layers},
        "before": {"weights": weights, "run_frozen_layers": frozen,
                   "head": f"fresh random initialisation (seed {options['seed']}), not the run's exact draw"},
        "after": str(Path(run_dir) / "final" / "model.keras"),
        "samples": [{"clip": s.clip.key, "label": classes[s.label], "frame": s.frame,
                     "frame_path": s.clip.frames[s.frame]} for s in samples],
        "figures": write_figures(out, samples, sweeps, chosen, classes, method),
    }
    reports.write_json(out / "focus.json", focus)
    return focus
