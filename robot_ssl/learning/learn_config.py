"""`LearnConfig`: the settings of learning while driving (`run --learn`, `replay --live
--learn`), torch-free so that `RunConfig` and `ReplayJob` hold it as a nested config and
their options (`--learn DIR`, `--learn.lr`, `--learn.augment.noise-std`, ...) are
generated without importing torch. The learner itself is robot_ssl/learning/online.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_ssl.core.config import (
    MAX_BATCH,
    MAX_DURATION_S,
    MAX_FRAMES,
    MAX_STEPS,
    MAX_THREADS,
    bounded,
    check_bounds,
)
from robot_ssl.core.errors import ConfigError
from robot_ssl.learning.replay_buffer import ReplayConfig
from robot_ssl.learning.train_config import AugmentConfig

__all__ = ["LearnConfig"]


@dataclass(frozen=True)
class LearnConfig:
    """Online fine-tuning settings of `run --learn` and `replay --live --learn`; times in s.

    `out_dir` the folder of the learner's checkpoints (`online_last.pt`; None: no
    learning, the model only drives), `lr` (AdamW, constant), `batch_size`,
    `min_frames` labelled frames before the first step, `publish_every` steps between
    weight swaps into the live predictor, `checkpoint_every_s`, `threads` torch threads
    (`run` sets them from its own `threads`: torch's count is per process), `duty`
    fraction of wall time the learner may compute, `label_every_s` how often pending
    frames are labelled, `ema` the per-step decay of the weight average that is
    published and saved (0: the raw weights; 0.99 averages over about the last 100 steps).
    """

    out_dir: str | None = None
    lr: float = bounded(3e-4, 0, 1, min_inclusive=False)
    weight_decay: float = bounded(0.01, 0, 1)
    batch_size: int = bounded(32, 1, MAX_BATCH)
    min_frames: int = bounded(64, 1, MAX_FRAMES)
    publish_every: int = bounded(10, 1, MAX_STEPS)
    checkpoint_every_s: float = bounded(60.0, 0, MAX_DURATION_S, min_inclusive=False)
    threads: int = bounded(1, 1, MAX_THREADS)
    duty: float = bounded(1.0, 0, 1, min_inclusive=False)
    label_every_s: float = bounded(0.5, 0, 3600, min_inclusive=False)
    ema: float = bounded(0.99, 0, 1, max_inclusive=False)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)

    def __post_init__(self) -> None:
        check_bounds(self, "learn config", ConfigError)
        for name, cls in (("augment", AugmentConfig), ("replay", ReplayConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"learn config.{name}: must be a {cls.__name__}")
