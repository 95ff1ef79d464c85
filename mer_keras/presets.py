"""``--preset fast|paper``: named sets of option values; options given on the command line win.

``fast`` is the package's defaults (fit for a CPU: the frozen backbone cached once, cached
flip/rotation variants, motion features, 112² on synthetic data). ``paper`` is what Bai & Goecke
(ICMI 2020) did, as far as the paper says: 224² frames, retraining from the layer l_s Grad-CAM
picks, fresh random flips and rotations per training sample, Table 1's class balancing, pooled
features into the LSTM, no standardization. A run records the preset and what it set
(``preset_record``), read back from the config alone, so a resumed or collected run says the same.
"""

from __future__ import annotations

PRESETS = ("fast", "paper")
# The paper gives no angle for its "random rotation" (Exp-I, after Takalkar & Xu 2017); +-10 degrees
# turns a face visibly while keeping it upright and its features on the frame.
PAPER_ROTATION = 10.0
# Table 1, AugI: 14,664-15,072 frames per class after augmentation, from 1,408-5,016 before (SMIC-HS):
# every class at about 3x the largest class's count (per-class multipliers 2.9 to 10.7).
PAPER_BALANCE_SCALE = 3.0

_PAPER = {
    "image_size": 224,
    "retrain_from": "auto",
    "augment": "online",
    "flip": True,
    "rotation": PAPER_ROTATION,
    "balance": True,
    "standardize": False,
}
_PAPER_BY_EXPERIMENT = {
    "exp1": {"balance_scale": PAPER_BALANCE_SCALE},
    "exp2": {"n": 13, "clip_features": "raw"},  # windows of 13 balanced per class (AugII), pooled features
    "exp3": {"n": 13, "clip_features": "raw"},
}
# where each option a preset may set lives in a RunConfig
_FIELDS = {
    "image_size": ("data", "image_size"),
    "retrain_from": ("model", "retrain_from"),
    "augment": ("data", "augment"),
    "flip": ("data", "flip"),
    "rotation": ("data", "rotation"),
    "balance": ("data", "balance"),
    "balance_scale": ("data", "balance_scale"),
    "standardize": ("model", "head", "standardize"),
    "clip_features": ("model", "head", "clip_features"),
    "n": ("model", "n"),
}


def preset_options(name: str, experiment: str) -> dict:
    """``{option dest: value}`` the preset ``name`` sets for ``experiment`` (``fast``: nothing)."""
    if name not in PRESETS:
        raise ValueError(f"--preset must be one of {PRESETS}. Received: --preset {name!r}")
    if name == "fast" or experiment not in _PAPER_BY_EXPERIMENT:
        return {}
    return {**_PAPER, **_PAPER_BY_EXPERIMENT[experiment]}


def apply_preset(name: str, experiment: str, options: dict, given) -> dict:
    """``options`` with the preset's values for every option not in ``given`` (those typed by the user)."""
    return {
        **options,
        **{k: v for k, v in preset_options(name, experiment).items() if k not in given},
        "preset": name,
    }


def option_name(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def preset_record(config) -> dict:
    """``{name, set: {--option: value}, overridden: [--option, ...]}`` of a run's config.

    ``set``: what the preset set and the run used; ``overridden``: the preset's options the run
    used another value for (given on the command line).
    """
    applied, overridden = {}, []
    for dest, value in preset_options(config.preset, config.experiment).items():
        used = config
        for part in _FIELDS[dest]:
            used = getattr(used, part)
        if used == value:
            applied[option_name(dest)] = value
        else:
            overridden.append(option_name(dest))
    return {"name": config.preset, "set": applied, "overridden": overridden}


def describe(experiment: str) -> str:
    """One line for ``--help``: what ``--preset paper`` sets for ``experiment``."""

    def typed(dest, value):
        if isinstance(value, bool):
            return option_name(dest) if value else option_name(f"no_{dest}")
        return f"{option_name(dest)} {value}"

    return ", ".join(typed(k, v) for k, v in preset_options("paper", experiment).items())
