"""One run's configuration: made and checked once (from the command line or config.json), then passed down.

``RunConfig`` is frozen and holds every option with its run-time default resolved (image size,
precision, run folder), so what a run did is what its ``config.json`` says. ``identity()`` is the
part that changes results: ``--resume`` refuses a run folder whose identity differs.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from mer_keras.datasets.short_clips import POLICIES as SHORT_CLIP_POLICIES
from mer_keras.faces import DEFAULT_MARGIN, FACE_MODES, MAX_MARGIN
from mer_keras.files import read_json
from mer_keras.flow.apex import APEX_ESTIMATES
from mer_keras.models import DEFAULT_UNITS, EXPERIMENT_KIND, FLOW_KINDS, HeadSpec
from mer_keras.presets import PRESETS

CONFIG_VERSION = 1
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
PROTOCOLS = ("kfold", "loso")
STRATEGIES = ("none", "mirrored", "multiworker")  # tf.distribute data parallelism, see mer_keras.distribute
BACKBONES = ("resnet50", "tiny", "none")
AUGMENTS = ("cached", "online")  # flip/rotation as cached variants of frozen features, or drawn per step
SYNTHETIC = "synthetic"
EXECUTORS = ("local", "ray")  # where the folds run: in this process one after the other, or as Ray tasks
PATTERN = {
    "frame": "VGGFace2 (frames)",
    "lstm": "3-Layer-{rnn}",
    "bilstm": "Bi-{rnn}",
    "ststnet": "STSTNet",
    "offapexnet": "OFF-ApexNet",
}


class ConfigError(ValueError):
    """An option value that cannot make a run; the message names the option."""


def _check(condition, option, value, allowed):
    if not condition:
        raise ConfigError(f"{option} must be {allowed}. Received: {option} {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """Which clips, at which size, and how short clips and training samples are handled."""

    path: str = SYNTHETIC  # a dataset folder (absolute), or "synthetic"
    dataset: str = "auto"
    sheet: str | None = None  # coding sheet (CASME II, SAMM; MEGC2019: one or both) instead of the one found
    synthetic: bool = True  # the built-in dataset, or a folder written by its generator
    synthetic_subjects: int = 16
    image_size: int = 112
    short_clips: str = "interpolate"
    flip: bool = False
    rotation: float = 0.0
    augment: str = "cached"
    balance: bool = True
    balance_scale: float = 1.0  # with balance: every class gets this many times the largest class's samples
    face: str = (
        "none"  # none (whole frames, the paper's choice), crop or align (MTCNN, one transform per clip)
    )
    face_margin: float = 0.2
    apex: str = "flow"  # flow baselines, clips without a coded apex: largest motion from the onset, or middle
    flow_size: int = 28  # flow baselines: side of the u, v, strain images

    def check(self):
        _check(32 <= self.image_size <= 1024, "--image-size", self.image_size, "between 32 and 1024")
        _check(0.0 <= self.rotation <= 45.0, "--rotation", self.rotation, "between 0 and 45 degrees")
        _check(self.augment in AUGMENTS, "--augment", self.augment, f"one of {AUGMENTS}")
        _check(
            self.augment == "cached" or self.flip or self.rotation,
            "--augment",
            self.augment,
            "cached unless --flip or --rotation is on (online augmentation of nothing would only run "
            "the whole backbone every step)",
        )
        _check(
            1.0 <= self.balance_scale <= 100.0,
            "--balance-scale",
            self.balance_scale,
            "between 1 and 100 (times the largest class)",
        )
        _check(
            self.balance or self.balance_scale == 1.0,
            "--balance-scale",
            self.balance_scale,
            "1 with --no-balance (it scales the balanced class counts)",
        )
        _check(self.synthetic_subjects >= 2, "--synthetic-subjects", self.synthetic_subjects, ">= 2")
        _check(
            self.short_clips in SHORT_CLIP_POLICIES,
            "--short-clips",
            self.short_clips,
            f"one of {SHORT_CLIP_POLICIES}",
        )
        _check(self.face in FACE_MODES, "--face", self.face, f"one of {FACE_MODES}")
        _check(
            0.0 <= self.face_margin <= MAX_MARGIN,
            "--face-margin",
            self.face_margin,
            f"between 0 and {MAX_MARGIN}",
        )
        _check(self.apex in APEX_ESTIMATES, "--apex", self.apex, f"one of {APEX_ESTIMATES}")
        _check(8 <= self.flow_size <= 256, "--flow-size", self.flow_size, "between 8 and 256")


@dataclass(frozen=True)
class ProtocolConfig:
    """How subjects are split into folds and each fold's validation subjects carved out."""

    protocol: str = "kfold"
    folds: int = 5
    validation_fraction: float = 0.2
    seed: int = 0

    def check(self):
        _check(self.protocol in PROTOCOLS, "--protocol", self.protocol, f"one of {PROTOCOLS}")
        _check(self.folds >= 2, "--folds", self.folds, ">= 2 (and at most the number of subjects)")
        _check(
            0.0 < self.validation_fraction < 1.0,
            "--validation-fraction",
            self.validation_fraction,
            "in (0, 1)",
        )
        _check(self.seed >= 0, "--seed", self.seed, ">= 0")


@dataclass(frozen=True)
class ModelConfig:
    """The backbone, where it is cut, and the head on top."""

    backbone: str = "resnet50"
    weights: str = "auto"
    retrain_from: str = "none"
    head: HeadSpec = HeadSpec("lstm")
    n: int = 13  # window length (1 for the frame model)
    deduplicate: bool = True

    def check(self):
        _check(self.backbone in BACKBONES, "--backbone", self.backbone, f"one of {BACKBONES}")
        _check(
            (self.backbone == "none") == (self.head.kind in FLOW_KINDS),
            "--backbone",
            self.backbone,
            "none for the flow baselines, resnet50 or tiny otherwise",
        )
        _check(self.n >= 1, "--n", self.n, ">= 1")
        if self.head.kind != "frame" and self.head.clip_features in ("motion", "relative"):
            _check(
                self.n >= 2,
                "--n",
                self.n,
                f">= 2 with --clip-features {self.head.clip_features} (motion and "
                "change are measured from a window's first frame)",
            )


@dataclass(frozen=True)
class TrainingConfig:
    """How each fold is fitted."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    early_stopping: int = 0
    precision: str = "float32"
    deterministic: bool = True  # TensorFlow op determinism: same machine, same seed -> same bytes
    oracle: bool = True  # also score the test fold after every epoch, for the report (never for selection)
    strategy: str = "none"  # data parallelism within a fit; splitting batches changes float sums: identity
    jit: bool = False  # --jit: XLA (jit_compile=True); otherwise Keras's "auto" (XLA on a GPU only)

    def check(self):
        _check(self.epochs >= 1, "--epochs", self.epochs, ">= 1")
        _check(self.batch_size >= 1, "--batch-size", self.batch_size, ">= 1")
        _check(self.lr > 0, "--lr", self.lr, "> 0")
        _check(self.early_stopping >= 0, "--early-stopping", self.early_stopping, ">= 0 (0: off)")
        _check(self.precision in PRECISIONS[1:], "--precision", self.precision, f"one of {PRECISIONS}")
        _check(self.strategy in STRATEGIES, "--strategy", self.strategy, f"one of {STRATEGIES}")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run of an experiment needs; see ``from_options`` for how defaults resolve."""

    experiment: str
    data: DataConfig
    protocol: ProtocolConfig
    model: ModelConfig
    training: TrainingConfig
    out: str
    final: bool = True
    cache_dir: str | None = None
    resume: bool = False
    verbose: int = 2
    only_folds: tuple | None = None  # --only-folds: the folds this invocation trains (None: all)
    preset: str = "fast"  # --preset: where the defaults came from (the options themselves are identity)
    executor: str = "local"  # --executor: folds one after the other here, or as Ray tasks (executors.py)
    ray_address: str | None = None  # --ray-address: auto or HOST:PORT; None: a local Ray on this machine
    cpus_per_fold: int = 1  # --cpus-per-fold: the CPUs Ray reserves for one fold's task

    # what may differ between a run and its --resume: where and how loudly it runs, not what it computes
    NOT_IDENTITY = (
        "out",
        "final",
        "cache_dir",
        "resume",
        "verbose",
        "only_folds",
        "executor",
        "ray_address",
        "cpus_per_fold",
        "preset",
    )

    def __post_init__(self):
        _check(
            self.experiment in EXPERIMENT_KIND,
            "experiment",
            self.experiment,
            f"one of {list(EXPERIMENT_KIND)}",
        )
        for part in (self.data, self.protocol, self.model, self.training):
            part.check()
        if self.model.head.kind != EXPERIMENT_KIND[self.experiment]:
            raise ConfigError(
                f"{self.experiment} needs a {EXPERIMENT_KIND[self.experiment]} head. "
                f"Received: {self.model.head.kind}"
            )
        if self.kind in FLOW_KINDS and self.data.face != "none":
            raise ConfigError(
                f"{self.experiment} computes its flow on whole frames. Received: --face {self.data.face}"
            )
        if self.training.strategy != "none" and self.model.retrain_from != "none" and self.model.deduplicate:
            _check(
                self.model.head.single,
                "--strategy",
                self.training.strategy,
                "none with --deduplicate (a batch of distinct frames and an index into them cannot be "
                "split between replicas): add --no-deduplicate",
            )
        _check(self.preset in PRESETS, "--preset", self.preset, f"one of {PRESETS}")
        if self.training.jit and self.training.deterministic:
            raise ConfigError(
                "--jit needs --no-deterministic: Keras compiles nothing with XLA while TensorFlow op "
                "determinism is on (not every XLA kernel is deterministic). Received: --jit --deterministic"
            )
        if self.training.jit and self.data.augment == "online":
            raise ConfigError(
                "--jit cannot compile --augment online: its training model holds WindowAugmentation, whose "
                "image warp (ImageProjectiveTransformV3) has no XLA kernel, and Keras then compiles none of "
                "the model. Drop --jit, or use --augment cached. Received: --jit --augment online"
            )
        _check(self.executor in EXECUTORS, "--executor", self.executor, f"one of {EXECUTORS}")
        _check(self.cpus_per_fold >= 1, "--cpus-per-fold", self.cpus_per_fold, ">= 1")
        if self.ray_address is not None:
            if self.executor != "ray":
                raise ConfigError(
                    f"--ray-address needs --executor ray. Received: --ray-address {self.ray_address} "
                    f"--executor {self.executor}"
                )
            host, _, port = self.ray_address.rpartition(":")
            _check(
                self.ray_address == "auto" or (host and port.isdigit()),
                "--ray-address",
                self.ray_address,
                "auto or HOST:PORT (e.g. 10.0.0.1:6379)",
            )
        if self.executor == "ray" and (self.training.strategy != "none" or self.data.augment == "online"):
            raise ConfigError(
                "--executor ray trains each fold in a worker on one device, from cached features: not with "
                f"--strategy {self.training.strategy} or --augment {self.data.augment}. Received: "
                f"--executor ray --strategy {self.training.strategy} --augment {self.data.augment}"
            )
        if self.only_folds is not None:
            object.__setattr__(self, "only_folds", tuple(self.only_folds))  # config.json gives a list
            if self.protocol.protocol == "kfold":  # loso: checked once the subjects are known
                check_only_folds(self.only_folds, self.protocol.folds)

    @property
    def kind(self) -> str:
        return self.model.head.kind

    @property
    def n(self) -> int:
        """Frames per sample: the window length, 1 for the frame model."""
        return 1 if self.model.head.single else self.model.n

    @property
    def pattern(self) -> str:
        """The paper's name of the head (Table 3): ``3-Layer-LSTM``, ``Bi-LSTM``, ..."""
        return PATTERN[self.kind].format(rnn=self.model.head.rnn.upper())

    def head(self, standardize: bool) -> HeadSpec:
        """The head spec, standardized or not (only a wholly frozen backbone gives fixed features)."""
        return dataclasses.replace(self.model.head, standardize=standardize, name=f"{self.experiment}_head")

    def to_dict(self) -> dict:
        return {"config_version": CONFIG_VERSION, **dataclasses.asdict(self)}

    def identity(self) -> dict:
        """The options that change results."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.NOT_IDENTITY}

    def differences(self, other: RunConfig) -> list:
        """``--option old -> new`` for every result-changing option that differs from ``other``."""
        return [
            f"{name} {before!r} -> {after!r}"
            for name, before, after in _flat_differences(other.identity(), self.identity())
        ]

    @classmethod
    def from_dict(cls, config: dict, where="config") -> RunConfig:
        """A config written by ``to_dict``; a folder of another format version is refused."""
        version = config.get("config_version")
        if version != CONFIG_VERSION:
            raise ConfigError(
                f"{where}: written by another version of mer_keras (config_version {version!r}, this "
                f"one reads {CONFIG_VERSION}); start a new run folder."
            )
        parts = {k: v for k, v in config.items() if k != "config_version"}
        model = dict(parts["model"])
        model["head"] = HeadSpec(**model["head"])
        return cls(
            **{
                **parts,
                "data": DataConfig(**parts["data"]),
                "protocol": ProtocolConfig(**parts["protocol"]),
                "model": ModelConfig(**model),
                "training": TrainingConfig(**parts["training"]),
            }
        )

    @classmethod
    def from_json(cls, path) -> RunConfig:
        """The ``config`` of a run folder's ``config.json`` (or of the file itself)."""
        path = Path(path)
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no config.json (not a run folder).")
        return cls.from_dict(read_json(path).get("config", {}), where=str(path))

    @classmethod
    def from_options(cls, experiment: str, options: dict, *, gpus: bool = False) -> RunConfig:
        """The config of the command line's ``options`` (a plain dict), run-time defaults resolved.

        Image size: 224 (the paper's), 112 on synthetic data; precision ``auto``: mixed_float16 on a GPU,
        float32 otherwise; run folder: ``runs/<experiment>-n<N>-<time>``.
        """
        o = dict(options)
        kind = EXPERIMENT_KIND[experiment]
        path = o["data"] if o["data"] == SYNTHETIC else str(Path(o["data"]).resolve())
        synthetic = path == SYNTHETIC or is_synthetic_folder(path)
        sheet = None if o.get("sheet") is None else str(Path(o["sheet"]).resolve())
        data = DataConfig(
            path=path,
            dataset="smic" if path == SYNTHETIC else o["dataset"],
            sheet=sheet,
            synthetic=synthetic,
            synthetic_subjects=o["synthetic_subjects"],
            image_size=o.get("image_size") or (112 if synthetic else 224),
            short_clips=o.get("short_clips", "interpolate"),
            flip=o.get("flip", False),
            rotation=float(o.get("rotation", 0.0)),
            augment=o.get("augment", "cached"),
            balance=o["balance"],
            balance_scale=float(o.get("balance_scale", 1.0)),
            face=o.get("face", "none"),
            face_margin=float(o.get("face_margin", DEFAULT_MARGIN)),
            apex=o.get("apex", "flow"),
            flow_size=o.get("flow_size", 28),
        )
        protocol = ProtocolConfig(o["protocol"], o["folds"], o["validation_fraction"], o["seed"])
        units = {
            "frame": o.get("fc_units"),
            "lstm": o.get("lstm_units"),
            "bilstm": (o["bilstm_units"],) if o.get("bilstm_units") else None,
            "ststnet": o.get("stream_filters"),
            "offapexnet": o.get("fc_units"),
        }[kind]
        try:
            head = HeadSpec(
                kind,
                units or DEFAULT_UNITS[kind],
                rnn=o.get("rnn", "lstm"),
                clip_features=o.get("clip_features", "raw"),
                dropout=o["dropout"],
                standardize=o.get("standardize", False),
            )
        except ValueError as error:
            raise ConfigError(_option_names(str(error))) from None
        n = 1 if head.single else o["n"]
        model = ModelConfig(
            o.get("backbone", "none"),
            o.get("weights", "none"),
            o.get("retrain_from", "none"),
            head,
            n,
            o.get("deduplicate", True),
        )
        precision = o["precision"]
        if precision == "auto":
            precision = "mixed_float16" if gpus else "float32"
        training = TrainingConfig(
            o["epochs"],
            o["batch_size"],
            o["lr"],
            o["early_stopping"],
            precision,
            o.get("deterministic", True),
            o.get("oracle", True),
            o.get("strategy", "none"),
            o.get("jit", False),
        )
        out = o["out"] or str(Path("runs") / f"{experiment}-n{n}-{time.strftime('%Y%m%d-%H%M%S')}")
        return cls(
            experiment,
            data,
            protocol,
            model,
            training,
            out=out,
            final=o["final"],
            cache_dir=o.get("cache_dir"),
            resume=o["resume"],
            verbose=o["verbose"],
            only_folds=o.get("only_folds"),
            preset=o.get("preset", "fast"),
            executor=o.get("executor", "local"),
            ray_address=o.get("ray_address"),
            cpus_per_fold=o.get("cpus_per_fold", 1),
        )


def check_only_folds(only_folds, n_folds: int) -> None:
    """``--only-folds`` must name folds of the run: indices 0..n_folds-1."""
    outside = [k for k in only_folds if not 0 <= k < n_folds]
    if outside:
        raise ConfigError(
            f"--only-folds {','.join(map(str, outside))}: this run has {n_folds} folds (0-{n_folds - 1}). "
            f"Received: --only-folds {','.join(map(str, only_folds))}"
        )


def is_synthetic_folder(path) -> bool:
    """True for a folder written by the synthetic generator (its manifest is there)."""
    root = Path(path)
    return any((root / sub / "synthetic_manifest.json").exists() for sub in ("", "SMIC_all_raw", ".."))


def _option_names(message: str) -> str:
    for name, option in (
        ("`units`", "layer sizes"),
        ("`dropout`", "--dropout"),
        ("`rnn`", "--rnn"),
        ("`clip_features`", "--clip-features"),
    ):
        message = message.replace(name, option)
    return message


def _flat_differences(before: dict, after: dict, prefix=""):
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            yield from _flat_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            yield f"{prefix}{key}", a, b
