"""What a training run depends on, without torch: `TrainConfig` and `AugmentConfig`.

Kept apart from robot_ssl.learning.train (the torch loop) so that the command line
(`robot-ssl train`, whose options are generated from these fields) and any tool that
reads a run's config.json need no torch. Bounds are declared once on the fields.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from robot_ssl.core.config import (
    MAX_BATCH,
    MAX_DURATION_S,
    MAX_EPOCHS,
    MAX_INPUT_PX,
    MAX_SEED,
    MAX_STEPS,
    MAX_THREADS,
    bounded,
    check_bounds,
    checked_fields,
    plain_dict,
)
from robot_ssl.core.errors import RobotSSLError
from robot_ssl.inference.model_config import ModelConfig

__all__ = [
    "DEFAULT_INPUT_SIZE",
    "DEFAULT_MIN_LR",
    "SCHEDULES",
    "SPLIT_GROUPS",
    "TARGETS",
    "AugmentConfig",
    "TrainConfig",
    "TrainError",
]

DEFAULT_INPUT_SIZE = (80, 64)  # (width, height), as in the original work
DEFAULT_MIN_LR = 1e-4  # where the cosine schedule ends, unless lr is lower
SCHEDULES = ("cosine", "step", "constant")
SPLIT_GROUPS = ("session", "world", "block")  # what validation holds out (dataset.split_sessions)
TARGETS = ("labels", "truth")  # what a run learns: the auto-labels or the simulator's truth


class TrainError(RobotSSLError):
    """A training configuration or run directory is unusable."""


@dataclass
class AugmentConfig:
    """Training-time augmentation (never applied at validation or test).

    Photometric: `brightness` (max offset, fraction of 255), `contrast` (max
    relative change around the image mean), `channel_gain` (max relative
    change per colour channel), `gradient` (max amplitude of a linear
    illumination ramp in a random direction, fraction of 255), `noise_std`
    (max Gaussian noise sigma, fraction of 255; each image draws its own).
    Colour: `channel_shuffle` (probability of a random permutation of the colour
    channels) and `grayscale` (probability of dropping colour): floors and
    obstacles come in any colour, so the network must not key on hue; these
    push it towards edges, shading and where things meet the floor.
    Geometric: `hflip` flips an image left-right with probability 0.5 and
    mirrors its labels along the sensor axis (sensor s -> S-1-s), valid only
    for a mirror-symmetric sensor set such as the Thymio's five front sensors.
    """

    enabled: bool = True
    hflip: bool = True
    brightness: float = bounded(0.15, 0, 1)
    contrast: float = bounded(0.3, 0, 1)
    channel_gain: float = bounded(0.1, 0, 1)
    gradient: float = bounded(0.1, 0, 1)
    noise_std: float = bounded(0.03, 0, 1)
    channel_shuffle: float = bounded(0.5, 0, 1)
    grayscale: float = bounded(0.2, 0, 1)

    def __post_init__(self) -> None:
        check_bounds(self, "augment", TrainError)
        for name in ("enabled", "hflip"):
            if not isinstance(getattr(self, name), bool):
                raise TrainError(
                    f"augment.{name} must be true or false, got {getattr(self, name)!r}"
                )


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in every checkpoint).

    `data` are session files or folders; their labels are found next to each
    session or under `labels_dir`. Validation: sessions of `val_worlds`, or a
    seeded `val_fraction` of the sessions (or worlds, `split_by="world"`, or
    `val_block_s`-second time blocks of every session, `split_by="block"`, with
    `val_gap_s` seconds of training frames dropped around each; see
    dataset.split_sessions). `patience`: stop when the validation score has not
    improved for that many epochs (None: train all epochs).
    `model` holds extra ModelConfig fields (widths, hidden, dropout, ...).
    `num_threads` sets torch's intra-op threads per process (None: torch's
    default; torchrun sets OMP_NUM_THREADS=1). `channels_last` stores the
    convolution weights NHWC, the layout of the camera frames (about 15% faster
    on CPU). The defaults (10 epochs, time-block validation, channels-last) reach
    the held-out AUC of the earlier 30-epoch, session-split defaults in 0.29 of
    the time (benchmarks/train_speed.py); `patience` 3 was faster still (0.20) but
    stopped on validation noise, 0.007 lower. `init`: an ``encoder.pt`` of
    `robot-ssl pretrain` whose encoder weights start a new run (not a resumed
    one); its architecture and widths must match. `min_lr`: where the cosine
    schedule ends (None: 1e-4, or `lr` when that is lower). `targets`: "labels" (the
    auto-labels) or "truth" (the simulator's true grid of the same frames and cells,
    training and validation alike: the supervised reference; a session without truth
    is refused). `consistency_weight`: weight of the state-consistency loss between
    frames a short straight drive apart (robot_ssl.learning.consistency; 0: off).
    """

    data: tuple[str, ...] = ()
    out_dir: str = "runs/detector"
    labels_dir: str | None = None
    cache_dir: str | None = None
    arch: str = "default"
    input_width: int = bounded(DEFAULT_INPUT_SIZE[0], 1, MAX_INPUT_PX)
    input_height: int = bounded(DEFAULT_INPUT_SIZE[1], 1, MAX_INPUT_PX)
    model: dict[str, Any] = field(default_factory=dict)
    epochs: int = bounded(10, 1, MAX_EPOCHS)
    batch_size: int = bounded(64, 1, MAX_BATCH)
    lr: float = bounded(2e-3, 0, 1, min_inclusive=False)
    min_lr: float | None = bounded(None, 0, 1)
    weight_decay: float = bounded(0.01, 0, 1)
    schedule: str = "cosine"
    warmup_steps: int = bounded(100, 0, MAX_STEPS)
    step_epochs: int = bounded(10, 1, MAX_EPOCHS)
    step_gamma: float = bounded(0.3, 0, 1, min_inclusive=False)
    grad_clip: float = bounded(1.0, 0, 1e6)
    pos_weight: float | None = bounded(None, 0, 1e6, min_inclusive=False)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    val_worlds: tuple[str, ...] = ()
    val_fraction: float = bounded(0.2, 0, 1, max_inclusive=False)
    split_by: str = "block"
    val_block_s: float = bounded(30.0, 0, MAX_DURATION_S, min_inclusive=False)
    val_gap_s: float = bounded(3.0, 0, MAX_DURATION_S)
    patience: int | None = bounded(None, 1, MAX_EPOCHS)
    seed: int = bounded(0, 0, MAX_SEED)
    num_threads: int | None = bounded(None, 1, MAX_THREADS)
    channels_last: bool = True
    device: str = "auto"
    eval_batch_size: int = bounded(512, 1, MAX_BATCH)
    decode_workers: int = bounded(2, 0, MAX_THREADS)
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    init: str | None = None
    targets: str = "labels"
    consistency_weight: float = bounded(0.0, 0, 1e3)

    def __post_init__(self) -> None:
        check_bounds(self, "train config", TrainError)
        if self.min_lr is None:
            self.min_lr = min(DEFAULT_MIN_LR, self.lr)
        self.data = tuple(str(d) for d in self.data)
        self.val_worlds = tuple(str(w) for w in self.val_worlds)
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(
                **checked_fields(AugmentConfig, self.augment, "augment", TrainError)
            )
        if not isinstance(self.augment, AugmentConfig):
            raise TrainError(f"augment: must be an AugmentConfig, got {self.augment!r}")
        if not isinstance(self.model, dict):
            raise TrainError(f"model: must be a mapping, got {self.model!r}")
        if self.min_lr > self.lr:
            raise TrainError("need min_lr <= lr")
        if self.schedule not in SCHEDULES:
            raise TrainError(f"schedule must be one of {', '.join(SCHEDULES)}")
        if self.split_by not in SPLIT_GROUPS:
            raise TrainError(f"split_by must be one of {', '.join(SPLIT_GROUPS)}")
        if self.targets not in TARGETS:
            raise TrainError(f"targets must be one of {', '.join(TARGETS)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise TrainError("device must be auto, cpu or cuda")
        if self.resume and self.overwrite:
            raise TrainError("resume and overwrite exclude each other")
        reserved = {"arch", "input_width", "input_height", "num_sensors", "num_distances"}
        allowed = {f.name for f in fields(ModelConfig)} - reserved
        unknown = sorted(set(self.model) - allowed)
        if unknown:
            raise TrainError(f"model: unknown or reserved keys {unknown}")
        self.model_config(num_sensors=1, num_distances=1)  # validates arch and model fields

    def model_config(self, num_sensors: int, num_distances: int, **extra: Any) -> ModelConfig:
        """The ModelConfig of this run for a label grid of (num_sensors, num_distances)."""
        kwargs = dict(self.model)
        kwargs.update(extra)
        return ModelConfig(
            arch=self.arch,
            input_width=self.input_width,
            input_height=self.input_height,
            num_sensors=num_sensors,
            num_distances=num_distances,
            **kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists instead of tuples) for JSON and `weights_only` checkpoints."""
        return plain_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return cls(**checked_fields(cls, d, "train config", TrainError))


def default_cache_dir() -> Path:
    """Where the command line caches decoded, resized frames between runs of `train` and
    `eval` ($XDG_CACHE_HOME/robot-ssl/frames); a config's own default is no cache."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "robot-ssl" / "frames"
