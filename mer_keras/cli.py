"""The experiments' command line (``exp1``-``exp3``, ``ststnet``, ``offapexnet``): options -> ``RunConfig``.

The only module that sees argparse; everything below it gets the validated ``RunConfig``.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys

import tensorflow as tf

from mer_keras.config import (
    AUGMENTS,
    EXECUTORS,
    PRECISIONS,
    SHORT_CLIP_POLICIES,
    STRATEGIES,
    ConfigError,
    RunConfig,
)
from mer_keras.datasets.registry import LOADERS
from mer_keras.distribute import tf_config, worker_config
from mer_keras.faces import DEFAULT_MARGIN, FACE_MODES
from mer_keras.flow.apex import APEX_ESTIMATES
from mer_keras.flow.optical_flow import STSTNET_SIZE
from mer_keras.models import CLIP_FEATURES, DEFAULT_UNITS, EXPERIMENT_KIND, FLOW_KINDS, RNNS
from mer_keras.presets import PRESETS, apply_preset
from mer_keras.presets import describe as describe_preset

DESCRIPTIONS = {
    "exp1": "Exp-I: VGGFace2 ResNet-50 frame classifier (fc1-fc3) on single frames.",
    "exp2": "Exp-II: VGGFace2 ResNet-50 (TimeDistributed) + 3-layer LSTM on windows of N frames.",
    "exp3": "Exp-III: VGGFace2 ResNet-50 (TimeDistributed) + Bi-LSTM on windows of N frames.",
    "ststnet": "STSTNet (Liong et al. 2019): three shallow CNN streams on the onset-to-apex optical flow "
    "(u, v, optical strain), under the same honest protocol.",
    "offapexnet": "OFF-ApexNet (Gan et al. 2019): two CNN streams on the onset-to-apex optical flow (u, v), "
    "fully connected layers, under the same honest protocol.",
}


def _units(text: str) -> tuple:
    try:
        units = tuple(int(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return units


def _indices(text: str) -> tuple:
    try:
        indices = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated fold indices such as 0,3,5, got {text!r}"
        ) from None
    if min(indices) < 0 or len(set(indices)) != len(indices):
        raise argparse.ArgumentTypeError(f"fold indices must be distinct and >= 0, got {text!r}")
    return tuple(sorted(indices))


def build_parser(experiment: str) -> argparse.ArgumentParser:
    """The argument parser of one experiment; every option says what it does."""
    p = argparse.ArgumentParser(
        prog=f"python -m experiments.{experiment}",
        description=DESCRIPTIONS[experiment],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    flow = EXPERIMENT_KIND[experiment] in FLOW_KINDS
    if not flow:
        p.add_argument(
            "--preset",
            choices=PRESETS,
            default="fast",
            help="fast = the defaults below (frozen backbone cached once: fit for a CPU); paper = what "
            f"Bai & Goecke did: {describe_preset(experiment)}. Options given explicitly override the "
            "preset (config.json records record.preset: what it set, what was overridden)",
        )
    _data_options(p.add_argument_group("data"), experiment, flow)
    _protocol_options(p.add_argument_group("protocol"))
    model = p.add_argument_group("model")
    if flow:
        _flow_model_options(model, experiment)
    else:
        _backbone_model_options(model, experiment)
    _training_options(p.add_argument_group("training"), experiment, flow)
    _execution_options(p.add_argument_group("execution"))
    return p


def _execution_options(execution):
    execution.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="where the folds train: local = one after the other in this process; ray = one Ray task "
        "per fold, in parallel, on this machine or a Ray cluster (pip install mer_keras[cluster]); "
        "same results either way",
    )
    execution.add_argument(
        "--ray-address",
        default=None,
        metavar="auto|HOST:PORT",
        help="--executor ray: the Ray cluster to use (auto: the one started on this machine by "
        "`ray start`); default: a Ray started here with this machine's cores",
    )
    execution.add_argument(
        "--cpus-per-fold",
        type=int,
        default=1,
        help="--executor ray: CPUs reserved for each fold's task (folds at once = the cluster's CPUs / this)",
    )


def _data_options(data, experiment, flow):
    frame_level = experiment == "exp1"
    data.add_argument(
        "--data",
        default="synthetic",
        help="dataset folder, or 'synthetic' for the built-in synthetic SMIC-like dataset",
    )
    data.add_argument(
        "--dataset",
        default="auto",
        choices=("auto", *LOADERS),
        help="which loader reads --data (auto: recognised from the folder layout; megc2019: "
        "SMIC, CASME II and SAMM side by side in --data, the official 442-clip list, "
        "3 classes; megc2019-mapping: the same by label mapping alone)",
    )
    data.add_argument(
        "--synthetic-subjects",
        type=int,
        default=16,
        help="subjects of the synthetic dataset (SMIC-HS has 16)",
    )
    data.add_argument(
        "--balance",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="resample training samples so every class has about as many as the largest",
    )
    data.add_argument(
        "--sheet",
        default=None,
        metavar="PATH",
        help="coding sheet to read instead of the one found beside the data (casme2, samm; "
        "megc2019: a CASME2-coding-*.xlsx or SAMM_Micro_FACS_Codes*.xlsx file, told apart "
        "by its name); needed when several sheets match, e.g. two CASME II versions",
    )
    if flow:
        data.add_argument(
            "--apex",
            choices=APEX_ESTIMATES,
            default="flow",
            help="apex of clips the dataset codes none (SMIC): flow = the frame that moved most "
            "since the onset (Farneback search), middle = the middle frame; coded apexes "
            "(CASME II, SAMM) are used as they are",
        )
        data.add_argument(
            "--flow-size",
            type=int,
            default=STSTNET_SIZE,
            help="side of the u, v, strain images of the onset-to-apex TV-L1 flow",
        )
        return
    data.add_argument(
        "--n",
        type=int,
        default=13,
        help="window length N in frames (Exp-II/III; the paper tried 11-17, best 13)",
    )
    data.add_argument(
        "--short-clips",
        choices=SHORT_CLIP_POLICIES,
        default="interpolate",
        help="clips shorter than N: interpolate linearly up to N frames, repeat frames, or drop",
    )
    data.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="frames are resized to this square size (default: 224, the paper's; 112 on synthetic)",
    )
    data.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=frame_level,
        help="horizontal-flip augmentation (a cached variant per window/frame)",
    )
    data.add_argument(
        "--rotation",
        type=float,
        default=8.0 if frame_level else 0.0,
        help="rotation augmentation angle in degrees, +/- (0: off)",
    )
    data.add_argument(
        "--augment",
        choices=AUGMENTS,
        default="cached",
        help="how --flip/--rotation augment: cached = a few fixed variants whose frozen features are "
        "cached (cheap); online = a fresh random flip and rotation in +/- --rotation per training window "
        "(Exp-I: per frame) inside the training model, on uint8 frames decoded once, the backbone run "
        "every step (the paper's way; slow on a CPU); the exported model holds no augmentation",
    )
    data.add_argument(
        "--balance-scale",
        type=float,
        default=1.0,
        metavar="R",
        help="with --balance: every class gets R times as many training samples per epoch as the "
        "largest class has (Table 1, Exp-I: about 3, every class about 15,000 frames)",
    )
    data.add_argument(
        "--face",
        choices=FACE_MODES,
        default="none",
        help="face preprocessing with MTCNN, one transform per clip from its first frames: none "
        "(whole frames, the paper's choice), crop (the face box plus a margin) or align (also "
        "rotated and scaled so the eyes are level at fixed places); a clip without a detected "
        "face keeps its whole frames (counted in config.json)",
    )
    data.add_argument(
        "--face-margin",
        type=float,
        default=DEFAULT_MARGIN,
        help="--face crop/align: margin around the face box, as a share of its side",
    )


def _protocol_options(proto):
    proto.add_argument(
        "--protocol",
        choices=("kfold", "loso"),
        default="kfold",
        help="subject-wise k-fold (the paper's) or leave-one-subject-out",
    )
    proto.add_argument("--folds", type=int, default=5, help="number of folds for --protocol kfold")
    proto.add_argument(
        "--validation-fraction",
        type=float,
        default=0.2,
        help="share of each fold's TRAINING subjects held out to select the checkpoint",
    )
    proto.add_argument(
        "--final",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after cross-validation, train one model on all subjects and export it",
    )
    proto.add_argument(
        "--only-folds",
        type=_indices,
        default=None,
        metavar="K,K,...",
        help="train only these folds (0-based) into --out, e.g. one per job of a cluster array; "
        "a fold another process is training (fold_K/train.lock) is skipped; once every fold is "
        "in the folder the run is pooled, or later by python -m experiments.collect OUT",
    )


def _flow_model_options(model, experiment):
    if experiment == "ststnet":
        model.add_argument(
            "--stream-filters",
            type=_units,
            default=DEFAULT_UNITS["ststnet"],
            help="filters of the three 3x3 convolution streams (STSTNet: 3, 5, 8)",
        )
    else:
        model.add_argument(
            "--fc-units",
            type=_units,
            default=DEFAULT_UNITS["offapexnet"],
            help="sizes of the fully connected layers (OFF-ApexNet: 1024, 1024)",
        )
    model.add_argument("--dropout", type=float, default=0.5, help="dropout (0.5 as the published code)")


def _backbone_model_options(model, experiment):
    frame_level = experiment == "exp1"
    model.add_argument(
        "--weights",
        default="auto",
        help="backbone weights: auto, vggface2, none (random) or a path to a keras-vggface .h5 "
        "file; auto = vggface2 if found or downloadable, else random on synthetic data only",
    )
    model.add_argument(
        "--retrain-from",
        default="none",
        help="first backbone layer to retrain (l_s), e.g. conv5_1_1x1_reduce; none = "
        "whole backbone frozen; auto = the block whose output Grad-CAM finds best focused "
        "on the moving regions, on the untrained backbone (the paper's way; written to "
        "config.json)",
    )
    model.add_argument(
        "--backbone",
        choices=("resnet50", "tiny"),
        default="resnet50",
        help="tiny = a 1-block-per-stage, 1/16-width ResNet for quick checks (random weights)",
    )
    if frame_level:
        model.add_argument(
            "--fc-units",
            type=_units,
            default=DEFAULT_UNITS["frame"],
            help="sizes of fc1,fc2 (fc3 is the softmax classifier)",
        )
    elif experiment == "exp2":
        model.add_argument(
            "--lstm-units",
            type=_units,
            default=DEFAULT_UNITS["lstm"],
            help="sizes of the stacked recurrent layers (Exp-II)",
        )
    else:
        model.add_argument(
            "--bilstm-units",
            type=int,
            default=DEFAULT_UNITS["bilstm"][0],
            help="units per direction (Exp-III)",
        )
    if not frame_level:
        model.add_argument(
            "--rnn",
            choices=RNNS,
            default="lstm",
            help="recurrent cell of the clip head: lstm (the paper's) or gru (the common ablation)",
        )
        model.add_argument(
            "--deduplicate",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="with a trainable backbone suffix, run it once per distinct frame of a batch and "
            "build windows after it (same gradients, far fewer frames per step)",
        )
    model.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="standardize each feature of the frozen backbone (with --clip-features motion: "
        "each motion feature) with statistics of the training frames (windows) (a Keras "
        "Normalization layer, kept in the exported model); only with --retrain-from none",
    )
    if not frame_level:
        model.add_argument(
            "--clip-features",
            choices=CLIP_FEATURES,
            default="motion",
            help="what the LSTM sees per frame: motion = per backbone channel, the mean absolute "
            "change of its (unpooled) feature map since the window's first frame; relative "
            "= the pooled features minus the first frame's; raw = the pooled features, as "
            "the paper",
        )
    model.add_argument("--dropout", type=float, default=0.3, help="dropout before the classifier")


def _training_options(train, experiment, flow):
    train.add_argument("--epochs", type=int, default=60 if flow else 10, help="epochs per fold")
    train.add_argument("--batch-size", type=int, default=32, help="batch size")
    train.add_argument(
        "--lr", type=float, default=1e-4 if experiment == "exp1" else 1e-3, help="Adam learning rate"
    )
    # clip models: on the seed-1 synthetic dataset every fold's validation loss was lowest after epoch 1 and
    # never came back within 10 epochs: 2 epochs of patience keep the same checkpoint at a third of the cost
    patience = 10 if flow else 2 if experiment in ("exp2", "exp3") else 0
    train.add_argument(
        "--early-stopping",
        type=int,
        default=patience,
        metavar="PATIENCE",
        help="stop after this many epochs without validation improvement (0: off)",
    )
    train.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto = mixed_float16 on a GPU, float32 on CPU",
    )
    train.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="none",
        help="data-parallel training within each fit (tf.distribute), --batch-size split between the "
        "replicas: mirrored = the GPUs of this machine, multiworker = the processes listed in the "
        "environment variable TF_CONFIG (run the same command on each; the chief writes --out)",
    )
    train.add_argument(
        "--jit",
        action="store_true",
        help="compile the training step with XLA (jit_compile=True); without it Keras decides (XLA on a "
        "GPU when every layer allows it, off on a CPU). Needs --no-deterministic (Keras turns XLA off "
        "under op determinism); refused with --augment online (no XLA kernel for its image warp); a "
        "cuDNN LSTM on a GPU cannot be compiled either (a warning says so)",
    )
    train.add_argument("--seed", type=int, default=0, help="seed for folds, sampling and initialisation")
    train.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        metavar="SEED",
        help="repeat the run once per seed into OUT/seed_<SEED>/ and write the mean and std over "
        "seeds (OUT/seeds.json, seeds.md); replaces --seed",
    )
    train.add_argument(
        "--only-seeds",
        type=int,
        nargs="+",
        default=None,
        metavar="SEED",
        help="run only these of --seeds (e.g. one per cluster job); seeds.json is written once every "
        "seed's run is in OUT",
    )
    train.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TensorFlow op determinism (tf.config.experimental.enable_op_determinism): reruns on "
        "the same machine give the same bytes; on GPUs it also fixes the otherwise random "
        "kernel choices",
    )
    train.add_argument(
        "--oracle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score the test fold after every epoch, to report the oracle figure (best test "
        "epoch, as much of the literature does) beside the honest one; never used to select",
    )
    train.add_argument(
        "--cache-dir",
        default=None,
        help="keep the frozen features on disk here, reused by later runs; training reads the rows "
        "of each batch from disk, so memory stays low; default: in memory, unless they would "
        "take over a quarter of this machine's memory (then in $MER_KERAS_CACHE or the user "
        "cache dir, under features/)",
    )
    train.add_argument("--out", default=None, help="run folder (default runs/<exp>-n<N>-<time>)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out: finished folds are kept, a killed fold continues",
    )
    if experiment == "exp1":
        train.add_argument(
            "--gradcam",
            action="store_true",
            help="after training, run the Grad-CAM layer sweep on the run folder (as python -m "
            "experiments.gradcam --run OUT): OUT/gradcam/focus.json and figures",
        )
    train.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2), help="Keras fit verbosity")
    train.add_argument("--debug", action="store_true", help="show the traceback of an error, not one line")


def parse_config(experiment: str, argv=None) -> tuple[RunConfig, dict]:
    """``(config, extras)``: the validated run config, and the options that are not part of it."""
    parser = build_parser(experiment)
    options = vars(parser.parse_args(argv))
    if "preset" in options:
        options = apply_preset(options["preset"], experiment, options, given_options(parser, argv, options))
    extras = {k: options.pop(k) for k in ("gradcam", "debug", "seeds", "only_seeds") if k in options}
    if options["resume"] and not options["out"]:
        parser.error("--resume needs --out DIR, the run folder to continue")
    if extras.get("gradcam") and not options["final"]:
        parser.error("--gradcam explains the final model: drop --no-final")
    if extras.get("seeds") and not options["out"]:
        parser.error("--seeds needs --out DIR, the folder of the per-seed runs")
    if extras.get("only_seeds") is not None:
        seeds = extras.get("seeds") or []
        outside = [s for s in extras["only_seeds"] if s not in seeds]
        if not seeds or outside:
            parser.error(
                f"--only-seeds must be some of --seeds ({' '.join(map(str, seeds)) or 'none given'}). "
                f"Received: --only-seeds {' '.join(map(str, extras['only_seeds']))}"
            )
    try:
        config = RunConfig.from_options(
            experiment, options, gpus=bool(tf.config.list_physical_devices("GPU"))
        )
        if config.training.strategy == "multiworker":
            tf_config()
    except ConfigError as error:
        parser.error(str(error))
    return config, extras


def given_options(parser: argparse.ArgumentParser, argv, options: dict) -> set:
    """The options typed in ``argv`` (not defaults): parsed again into a namespace of markers."""
    unset = object()
    typed = parser.parse_args(argv, namespace=argparse.Namespace(**dict.fromkeys(options, unset)))
    return {k for k, v in vars(typed).items() if v is not unset}


USER_ERRORS = (ConfigError, FileNotFoundError, FileExistsError, ValueError, OSError)


def run_main(experiment: str, argv=None, after=None) -> int:
    """Parse and run; a user's error is one ``error: ...`` line, exit 2 (``--debug``: the traceback)."""
    from mer_keras.experiment import run_experiment
    from mer_keras.repeats import run_seeds

    config, extras = parse_config(experiment, argv)
    config = worker_config(config)  # multiworker: a worker other than the chief writes a temporary folder
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        if extras.get("seeds"):
            run_seeds(config, extras["seeds"], only=extras.get("only_seeds"))
        else:
            summary = run_experiment(config)
            if after is not None and summary.get("complete", True):  # not on a run with folds missing
                after(config, extras)
    except USER_ERRORS as error:
        if extras.get("debug"):
            raise
        print(f"error: {error} (--debug shows the traceback)", file=sys.stderr)
        return 2
    return 0


CLIP_EXPERIMENTS = tuple(e for e, kind in EXPERIMENT_KIND.items() if kind in ("lstm", "bilstm"))
_NUMBER = re.compile(r"-\d*\.?\d+(?:[eE][-+]?\d+)?")  # a negative number is a value, not an option


def build_sweep_parser() -> argparse.ArgumentParser:
    """The sweep's own options; every other option is an experiment's (see ``parse_sweep``)."""
    p = argparse.ArgumentParser(
        prog="python -m experiments.sweep",
        description="The paper's Table 3: one run per experiment and window length N (and seed) into "
        "OUT/<exp>-n<N>[/seed_<S>], all on one frame cache (the frames of every N computed once), then "
        "OUT/table3.md and table3.json beside the paper's rows. With --resume a finished run is kept "
        "and an unfinished one continues.",
        epilog="Any other option is an experiment's (python -m experiments.exp2 --help), given to every "
        "run and checked as that experiment checks it (--seeds, --resume, --data, --epochs, --folds, "
        "--cache-dir, ...); one that only some of --experiments have (--lstm-units, --bilstm-units) "
        "goes to those.",
        allow_abbrev=False,  # a prefix of an experiment's option must not be taken for a sweep option
    )
    p.add_argument(
        "--experiments",
        nargs="+",
        required=True,
        metavar="EXP",
        help=f"the clip experiments to run ({', '.join(CLIP_EXPERIMENTS)})",
    )
    p.add_argument(
        "--n", type=int, nargs="+", required=True, metavar="N", help="window lengths (the paper: 11 13 15 17)"
    )
    p.add_argument("--out", required=True, help="sweep folder: one run folder per experiment and N")
    return p


def _option_names(experiment: str) -> set:
    return {name for action in build_parser(experiment)._actions for name in action.option_strings}


def _forwarded(experiment: str, argv, experiments) -> list:
    """The options of ``argv`` for ``experiment``: all but those only other ``experiments`` know."""
    names = {e: _option_names(e) for e in experiments}
    groups = []  # an option and the values after it
    for token in argv:
        if not groups or (token.startswith("-") and not _NUMBER.fullmatch(token)):
            groups.append([token])
        else:
            groups[-1].append(token)
    kept = []
    for group in groups:
        knowing = [e for e in experiments if group[0].split("=", 1)[0] in names[e]]
        if experiment in knowing or not knowing:  # unknown to all: the experiment's parser says so
            kept += group
    return kept


def parse_sweep(argv=None) -> tuple[list, dict]:
    """``(runs, extras)``: a ``SweepRun`` per experiment and N, each config made by ``parse_config``.

    ``extras``: ``out``, ``seeds`` (or None) and ``debug``.
    """
    from mer_keras.sweep import SweepRun, run_folder

    parser = build_sweep_parser()
    args, rest = parser.parse_known_args(argv)
    if any(e not in CLIP_EXPERIMENTS for e in args.experiments) or len(set(args.experiments)) < len(
        args.experiments
    ):
        parser.error(
            f"--experiments must be distinct clip experiments ({', '.join(CLIP_EXPERIMENTS)}). "
            f"Received: --experiments {' '.join(args.experiments)}"
        )
    if min(args.n) < 2 or len(set(args.n)) < len(args.n):
        parser.error(
            "--n must be distinct window lengths of at least 2 frames. "
            f"Received: --n {' '.join(map(str, args.n))}"
        )
    runs, extras = [], {}
    for experiment in args.experiments:
        options = _forwarded(experiment, rest, args.experiments)
        for n in sorted(args.n):
            out = run_folder(args.out, experiment, n)
            config, extras = parse_config(experiment, [*options, "--n", str(n), "--out", str(out)])
            runs.append(SweepRun(experiment, n, config))
    if runs[0].config.only_folds is not None or extras.get("only_seeds") is not None:
        option = "--only-folds" if runs[0].config.only_folds is not None else "--only-seeds"
        parser.error(f"{option}: a sweep trains whole runs (train pieces with python -m experiments.exp2).")
    return runs, {"out": args.out, "seeds": extras.get("seeds"), "debug": extras.get("debug")}


def sweep_main(argv=None) -> int:
    """Parse and run a sweep; a user's error is one ``error: ...`` line, exit 2 (as ``run_main``)."""
    from mer_keras.sweep import run_sweep

    runs, extras = parse_sweep(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        run_sweep(runs, extras["out"], seeds=extras["seeds"])
    except USER_ERRORS as error:
        if extras["debug"]:
            raise
        print(f"error: {error} (--debug shows the traceback)", file=sys.stderr)
        return 2
    return 0
