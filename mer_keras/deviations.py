"""Every way a run departs from the paper's protocol, in words, for config.json and results.json."""

from __future__ import annotations

from mer_keras.config import RunConfig
from mer_keras.models import FLOW_KINDS
from mer_keras.presets import PAPER_BALANCE_SCALE


def deviations(config: RunConfig, *, weights: dict, retrain_from, standardized: bool, variants) -> list:
    """The departures of a run with this config, weights record, backbone split and frame variants."""
    if config.kind in FLOW_KINDS:
        return flow_deviations(config)
    d, m, head, found = config.data, config.model, config.model.head, []
    if d.synthetic:
        found.append("data: built-in synthetic SMIC-like dataset, not SMIC-HS")
    if weights["source"] != "file":
        found.append(f"backbone weights: random ({weights['reason']}), not VGGFace2")
    if d.face != "none":
        found.append(
            f"faces {'cropped' if d.face == 'crop' else 'aligned'} with MTCNN (--face {d.face}, margin "
            f"{d.face_margin}); the paper feeds whole frames"
        )
    if d.image_size != 224:
        found.append(f"image size {d.image_size}x{d.image_size}, not 224x224")
    if retrain_from in (None, "none"):
        found.append(
            "whole backbone frozen (--retrain-from none); the paper retrains from a layer l_s "
            "picked with Grad-CAM"
        )
    else:
        found.append(
            f"retrained from {retrain_from} with its BatchNorm layers frozen (loaded statistics, "
            "inference mode); the paper does not say"
        )
    if standardized:
        found.append(
            "frozen features standardized with statistics of the training "
            + ("windows' motion" if head.clip_features == "motion" else "frames")
            + " (Normalization layer)"
        )
    if head.clip_features == "motion":
        found.append(
            "the LSTM sees, per backbone channel, the mean absolute change of its unpooled feature map "
            "since the window's first frame (--clip-features motion); the paper feeds the pooled "
            "features (--clip-features raw)"
        )
    elif head.clip_features == "relative":
        found.append(
            "the LSTM sees each window's pooled features minus its first frame's (--clip-features "
            "relative); the paper feeds the pooled features (--clip-features raw)"
        )
    if head.rnn != "lstm":
        found.append(f"recurrent cell {head.rnn.upper()} (--rnn {head.rnn}), not LSTM")
    if m.backbone == "tiny":
        found.append("tiny test backbone (1 block per stage, 1/16 width), not ResNet-50")
    if d.augment == "online":
        drawn = [
            *(["flip"] if d.flip else []),
            *([f"rotation within +-{d.rotation:g} degrees"] if d.rotation else []),
        ]
        per = "frame" if config.kind == "frame" else "window"
        if config.kind != "frame" and m.deduplicate:
            per = "clip of a batch (deduplicated batches: a clip's windows share their frames)"
        found.append(
            f"frame augmentation drawn at random in training ({' and '.join(drawn)}), one draw per {per}; "
            "the paper gives no rotation angle"
        )
    else:
        found.append(
            "frame augmentation uses cached variants ("
            + ", ".join(variants)
            + ") drawn per sample, not fresh random rotations"
        )
    if config.kind == "frame" and (not d.balance or d.balance_scale != PAPER_BALANCE_SCALE):
        found.append(
            (
                f"training frames balanced to {d.balance_scale:g}x the largest class"
                if d.balance
                else "no balancing"
            )
            + f"; Table 1 (AugI) brings every class to about {PAPER_BALANCE_SCALE:g}x the largest class's "
            f"frames (--balance-scale {PAPER_BALANCE_SCALE:g})"
        )
    if config.kind != "frame":
        found.append(
            "test clips: all windows, clip probability = mean of window probabilities "
            "(the paper does not say)"
        )
        found.append(f"clips shorter than N: {d.short_clips} (the paper does not say)")
    p = config.protocol
    found.append(
        f"checkpoint selected on validation subjects carved from each training fold "
        f"({p.validation_fraction:.0%} of them); the paper does not say how it selected epochs"
    )
    if p.protocol != "kfold" or p.folds != 5:
        found.append(
            f"protocol {p.protocol}"
            + (f" with {p.folds} folds" if p.protocol == "kfold" else "")
            + ", not 5-fold subject-wise"
        )
    if config.training.precision != "float32":
        found.append(f"precision {config.training.precision}")
    return found


def flow_deviations(config: RunConfig) -> list:
    """How a flow baseline run differs from its published pipeline (STSTNet, OFF-ApexNet)."""
    d, p = config.data, config.protocol
    found = [
        "not the paper's experiment: an optical-flow baseline (onset-to-apex TV-L1 flow), run under the "
        "same protocol and metrics as the paper's LSTMs for comparison"
    ]
    if d.synthetic:
        found.append("data: built-in synthetic SMIC-like dataset")
    found += [
        "checkpoint selected on validation subjects carved from each training fold; the published code "
        "keeps, per test subject, the epoch that scored best on it (see the oracle figure)",
        f"flow: OpenCV TV-L1 with its default parameters on whole greyscale frames, u, v and optical strain "
        f"resized to {d.flow_size}x{d.flow_size}, not normalised to 0-255 images",
        "apex where the dataset codes none: "
        + ("the frame that moved most since the onset" if d.apex == "flow" else "the middle frame")
        + " (coded apexes used as they are)",
        f"Adam (learning rate {config.training.lr}), {config.training.epochs} epochs at most, early stopping "
        f"after {config.training.early_stopping} epochs without validation improvement",
    ]
    if p.protocol != "loso":
        found.append(
            f"protocol {p.protocol} with {p.folds} folds; the published figures are leave-one-subject-out"
        )
    return found
