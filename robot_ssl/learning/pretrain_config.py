"""The configuration of `robot-ssl pretrain` (`PretrainConfig`), torch-free, so the command
line is generated from it (one option per field) without loading torch, and its
defaults are typed once, here. The pretraining itself is robot_ssl/learning/pretrain.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robot_ssl.core.config import (
    MAX_BATCH,
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
from robot_ssl.inference.integrity import one_line
from robot_ssl.inference.model_config import ModelConfig
from robot_ssl.learning.train_config import DEFAULT_INPUT_SIZE

__all__ = ["DEFAULT_TASKS", "TASKS", "PretrainConfig", "PretrainError"]

TASKS = ("patch", "denoise", "odometry", "rotation", "views")
DEFAULT_TASKS = ("patch", "denoise", "odometry")


class PretrainError(RobotSSLError):
    """A pretraining configuration, its data or an encoder file is unusable."""


@dataclass
class PretrainConfig:
    """Everything a pretraining run depends on (saved in ``encoder.pt``).

        `data`: session files or folders (every frame is used, labelled or not).
        `arch`, `input_width`/`input_height` (pixels) and `model` (extra ModelConfig
        fields, e.g. widths) define the encoder, as for training. Patch task:
        `patch_size`, `patch_gap`, `patch_jitter` in network-input pixels (the 3x3
        grid, 3*size + 2*gap + 2*jitter, must fit in the image). Denoising:
        `mask_fraction` of pixels zeroed, Gaussian `noise_std` as a fraction of 255.
        Odometry: pairs `odo_dt_min_s`..`odo_dt_max_s` apart, at most
        `odo_pairs_per_frame` per first frame. Rotation: a random square crop (side
    min(width, height)) turned by 0/90/180/270 degrees. Views: two jittered views per
    frame (random crop of at least `views_crop_min` of each side, resized back,
    horizontal flip, brightness/contrast/colour gains within +-`views_jitter`, noise),
    VICReg loss. `*_weight` weight each task's loss. `device`: auto (cuda when
    available, else cpu), cpu or cuda; under torchrun, `batch_size` is per process.
        `min_lr`: where the schedule ends (None: 1e-4, or `lr` when lower). `num_threads`:
        torch intra-op threads (None: torch's default).
    """

    data: tuple[str, ...] = ()
    out_dir: str = "runs/pretrain"
    tasks: tuple[str, ...] = DEFAULT_TASKS
    arch: str = "default"
    input_width: int = bounded(DEFAULT_INPUT_SIZE[0], 1, MAX_INPUT_PX)
    input_height: int = bounded(DEFAULT_INPUT_SIZE[1], 1, MAX_INPUT_PX)
    model: dict[str, Any] = field(default_factory=dict)
    epochs: int = bounded(10, 1, MAX_EPOCHS)
    batch_size: int = bounded(64, 1, MAX_BATCH)
    lr: float = bounded(2e-3, 0, 1, min_inclusive=False)
    min_lr: float | None = bounded(None, 0, 1)  # None: min(1e-4, lr)
    weight_decay: float = bounded(0.01, 0, 1)
    warmup_steps: int = bounded(50, 0, MAX_STEPS)
    grad_clip: float = bounded(1.0, 0, 1e6)
    patch_size: int = bounded(16, 1, MAX_INPUT_PX)
    patch_gap: int = bounded(4, 0, MAX_INPUT_PX)
    patch_jitter: int = bounded(2, 0, MAX_INPUT_PX)
    mask_fraction: float = bounded(0.25, 0, 1)
    noise_std: float = bounded(0.1, 0, 1)
    odo_dt_min_s: float = bounded(0.3, 0, 3600, min_inclusive=False)
    odo_dt_max_s: float = bounded(1.0, 0, 3600, min_inclusive=False)
    odo_pairs_per_frame: int = bounded(4, 1, 1000)
    patch_weight: float = bounded(1.0, 0, 1e6)
    denoise_weight: float = bounded(1.0, 0, 1e6)
    odometry_weight: float = bounded(1.0, 0, 1e6)
    rotation_weight: float = bounded(1.0, 0, 1e6)
    views_weight: float = bounded(1.0, 0, 1e6)
    views_crop_min: float = bounded(0.6, 0, 1, min_inclusive=False)
    views_jitter: float = bounded(0.3, 0, 1)
    seed: int = bounded(0, 0, MAX_SEED)
    num_threads: int | None = bounded(None, 1, MAX_THREADS)
    device: str = "auto"
    decode_workers: int = bounded(2, 0, MAX_THREADS)
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_bounds(self, "pretrain config", PretrainError)
        if self.min_lr is None:  # PretrainConfig(lr=5e-5) is what pretrain --lr 5e-5 is
            self.min_lr = min(1e-4, self.lr)
        self.data = tuple(str(d) for d in self.data)
        self.tasks = tuple(str(t).strip() for t in self.tasks)
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise PretrainError(
                f"tasks must be distinct names among {', '.join(TASKS)}, got {list(self.tasks)}"
            )
        if not isinstance(self.model, dict):
            raise PretrainError(f"model: must be a mapping, got {self.model!r}")
        if self.min_lr > self.lr:
            raise PretrainError("need min_lr <= lr")
        if self.odo_dt_min_s > self.odo_dt_max_s:
            raise PretrainError("need odo_dt_min_s <= odo_dt_max_s")
        if self.device not in ("auto", "cpu", "cuda"):
            raise PretrainError("device must be auto, cpu or cuda")
        if "patch" in self.tasks:
            span = 3 * self.patch_size + 2 * self.patch_gap + 2 * self.patch_jitter
            if span > min(self.input_width, self.input_height):
                raise PretrainError(
                    f"the 3x3 patch grid spans {span} px (3*size + 2*gap + 2*jitter) but the "
                    f"input is {self.input_width}x{self.input_height}: use smaller patches"
                )
        self.model_config()  # validates arch and model fields

    def model_config(self) -> ModelConfig:
        """The ModelConfig of the detector whose encoder this run trains."""
        reserved = {"arch", "input_width", "input_height"}
        bad = sorted(set(self.model) & reserved)
        if bad:
            raise PretrainError(f"model: reserved keys {bad}")
        try:
            return ModelConfig(
                arch=self.arch,
                input_width=self.input_width,
                input_height=self.input_height,
                **self.model,
            )
        except TypeError as e:
            raise PretrainError(f"model: {one_line(e)}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists instead of tuples) for JSON and `weights_only` files."""
        return plain_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PretrainConfig:
        return cls(**checked_fields(cls, d, "pretrain config", PretrainError))
