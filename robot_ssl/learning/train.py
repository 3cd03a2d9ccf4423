"""Training the detector: masked loss, batch augmentation and one readable training loop.

The loop (:func:`train`) reads top to bottom in the nanoGPT manner: set up
(distributed or not), load frames once into memory, split by session or
world, build model and AdamW, optionally resume, then for each epoch: shuffle
(DistributedSampler, so each process sees its own shard), augment on the fly,
step with a warmup + cosine (or step) learning rate, validate (AUC per cell,
mean and per band), log (CSV, JSON, PNG curves) and checkpoint (`last.pt`
every epoch, `best.pt` on a new best validation AUC). Only rank 0 writes.

A run folder is always complete or resumable. `last.pt` is written first in
each epoch and records which epoch is the best; `best.pt` follows. A run killed
between the two (or any time) is continued by `--resume`, which first rebuilds
`best.pt` from `last.pt` when `last.pt`'s own epoch is the best one and
`best.pt` is missing, damaged or older, and always rewrites the logs (metrics,
curves) and config.json at the end, also when no epoch was left to train.
`overwrite` removes the previous run's files before the new run writes its
first one, so no stale file is left beside the new ones. The output folder is
checked for writing before any data is loaded, and the label grids of all
sessions are checked to agree before the first epoch.

Multi-process training uses PyTorch's own engine: launch with
``torchrun --nproc_per_node=N -m robot_ssl train ...``; RANK / WORLD_SIZE /
LOCAL_RANK from the environment select DistributedDataParallel with gloo on
CPU or nccl on GPU. Everything random (shuffling, augmentation, dropout) is
seeded from (seed, epoch, rank), so a resumed run continues exactly where
the interrupted one would have gone.

Checkpoints hold only tensors and plain Python values and load with
``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.outputs import (
    OutputError,
    atomic_output,
    check_writable,
    remove_stale_temps,
)
from robot_ssl.inference.integrity import one_line
from robot_ssl.learning.checkpoint import Checkpoint
from robot_ssl.learning.dataset import (
    DatasetError,
    FrameSet,
    load_sessions,
    split_sessions,
)
from robot_ssl.learning.evaluate import auc_report
from robot_ssl.learning.models import ModelError, build_model
from robot_ssl.learning.step import (
    LRSchedule,
    TrainingDiverged,
    make_optimizer,
    optimisation_step,
)
from robot_ssl.learning.train_config import (  # re-exported: the config lives without torch
    AugmentConfig,
    TrainConfig,
    TrainError,
)

__all__ = [
    "AugmentConfig",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "augment_batch",
    "masked_bce_loss",
    "train",
]

# every file a run writes in its folder (what `overwrite` removes first)
RUN_OUTPUTS = ("last.pt", "best.pt", "metrics.csv", "metrics.json", "curves.png", "config.json")


# -- loss ----------------------------------------------------------------------------------


def masked_bce_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pos_weight: float | torch.Tensor | None = None,
    cell_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary cross-entropy over known cells only (label >= 0), averaged over their count.

    Unknown cells (-1) are removed by boolean indexing before the loss, so
    their logits influence neither the value nor the gradient. `pos_weight`
    (a float or a tensor broadcastable to (S, D)) up-weights positives, as in
    `BCEWithLogitsLoss`. A batch without any known cell gives a zero loss that
    still backpropagates (zero gradients), which keeps DDP processes in step.
    `cell_weights` (like labels): each cell's weight, its label's confidence (None: 1).
    """
    known = labels >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0
    target = labels.clamp(min=0).to(logits.dtype)
    weight = None
    if pos_weight is not None:
        weight = torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
        weight = weight.expand_as(logits)[known]
    w = None if cell_weights is None else cell_weights.to(logits.dtype)[known]
    return F.binary_cross_entropy_with_logits(
        logits[known], target[known], weight=w, pos_weight=weight
    )


# -- augmentation --------------------------------------------------------------------------


def augment_batch(
    images: torch.Tensor, labels: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch in one vectorised pass: images float (B, H, W, 3) in 0..255, labels (B, S, D).

    Every random draw comes from `generator` (seeded by the caller), one value
    per image, so the result is reproducible. Returns new tensors (images
    clamped to 0..255).
    """
    if not cfg.enabled:
        return images, labels
    b, h, w, _ = images.shape
    dev = images.device

    def uniform(*shape: int) -> torch.Tensor:  # in [-1, 1)
        return torch.rand(*shape, generator=generator, device=dev) * 2.0 - 1.0

    x = images.float()
    if cfg.channel_shuffle > 0:
        perm = torch.argsort(torch.rand(b, 3, generator=generator, device=dev), dim=1)
        shuffled = torch.gather(x, 3, perm.view(b, 1, 1, 3).expand(b, h, w, 3))
        pick = torch.rand(b, generator=generator, device=dev) < cfg.channel_shuffle
        x = torch.where(pick.view(b, 1, 1, 1), shuffled, x)
    if cfg.grayscale > 0:
        luma = x @ torch.tensor([0.114, 0.587, 0.299], device=dev)  # BGR weights
        pick = torch.rand(b, generator=generator, device=dev) < cfg.grayscale
        x = torch.where(pick.view(b, 1, 1, 1), luma.unsqueeze(-1).expand(b, h, w, 3), x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1.0 + cfg.contrast * uniform(b, 1, 1, 1)) + mean
    x = x * (1.0 + cfg.channel_gain * uniform(b, 1, 1, 3))
    x = x + 255.0 * cfg.brightness * uniform(b, 1, 1, 1)
    if cfg.gradient > 0:
        ys = torch.linspace(-1.0, 1.0, h, device=dev).view(1, h, 1, 1)
        xs = torch.linspace(-1.0, 1.0, w, device=dev).view(1, 1, w, 1)
        ramp = uniform(b, 1, 1, 1) * xs + uniform(b, 1, 1, 1) * ys
        x = x + 255.0 * cfg.gradient * 0.5 * ramp
    if cfg.noise_std > 0:
        sigma = 255.0 * cfg.noise_std * torch.rand(b, 1, 1, 1, generator=generator, device=dev)
        x = x + sigma * torch.randn(x.shape, generator=generator, device=dev)
    x = x.clamp(0.0, 255.0)
    if cfg.hflip:
        flip = torch.rand(b, generator=generator, device=dev) < 0.5
        x = torch.where(flip.view(b, 1, 1, 1), x.flip(2), x)
        labels = torch.where(flip.view(b, 1, 1), labels.flip(1), labels)
    return x, labels


# -- configuration -------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What a run produced (rank 0 paths are meaningful on every rank)."""

    out_dir: Path
    best_path: Path
    last_path: Path
    best_epoch: int
    best_score: float
    history: list[dict[str, Any]]
    train_time_s: float
    final_state: dict[str, Any] | None = None  # this rank's own final weights (CPU tensors)


# -- distributed set-up --------------------------------------------------------------------


@dataclass
class _Dist:
    rank: int
    world_size: int
    device: torch.device
    owns_group: bool  # this call initialised the process group and must destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()


def _setup_distributed(device_pref: str) -> _Dist:
    """Join the torchrun process group when WORLD_SIZE > 1; pick the device."""
    use_cuda = device_pref == "cuda" or (device_pref == "auto" and torch.cuda.is_available())
    if device_pref == "cuda" and not torch.cuda.is_available():
        raise TrainError("device cuda requested but CUDA is not available")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size <= 1:
        return _Dist(0, 1, device, owns_group=False)
    dist = torch.distributed
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), device, owns_group=owns)


# -- helpers -------------------------------------------------------------------------------


def lr_schedule(cfg: TrainConfig, total_steps: int) -> LRSchedule:
    """The run's learning rate: linear warmup, then cosine decay to min_lr, step decay, or
    constant (robot_ssl.learning.step.LRSchedule, shared with pretrain and learn)."""
    return LRSchedule(
        cfg.lr,
        cfg.min_lr,
        cfg.warmup_steps,
        total_steps,
        cfg.schedule,
        cfg.step_gamma,
        cfg.step_epochs,
    )


@torch.inference_mode()
def _predict_logits(
    model: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    model.eval()
    out = [
        model(images[i : i + batch_size].to(device)).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


def _validate(
    model: nn.Module, frames: FrameSet, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig
) -> dict[str, float | None]:
    """Validation loss and AUC (mean over cells and per distance band), no augmentation."""
    device = next(model.parameters()).device
    logits = _predict_logits(model, images, cfg.eval_batch_size, device)
    loss = float(masked_bce_loss(logits, labels, cfg.pos_weight))
    report = auc_report(
        torch.sigmoid(logits).numpy(), frames.labels, frames.distances_m, n_bootstrap=0
    )
    metrics: dict[str, float | None] = {"val_loss": loss, "val_auc": report["mean_auc"]}
    for band, v in report["auc_by_band"].items():
        metrics[f"val_auc_{band}"] = v
    return metrics


def _score(row: dict[str, Any]) -> float:
    """Higher is better: validation AUC, else minus validation loss, else minus train loss."""
    if row.get("val_auc") is not None:
        return float(row["val_auc"])
    if row.get("val_loss") is not None:
        return -float(row["val_loss"])
    return -float(row["train_loss"])


@contextlib.contextmanager
def _writing(path: Path):
    """Turn a failed write (disk full, I/O error) into one line; atomic_output cleans up."""
    try:
        yield
    except OutputError:
        raise
    except (OSError, RuntimeError) as e:  # torch.save reports write failures as RuntimeError
        reason = e.strerror.lower() if isinstance(e, OSError) and e.strerror else one_line(e, 120)
        raise TrainError(f"cannot write {path}: {reason}") from None


def _check_out_dir(out_dir: Path) -> None:
    """Fail now, not after an epoch, when the run folder cannot be written.

    An existing folder is probed directly; otherwise the nearest existing
    parent is probed, so that a refused run leaves no empty folder behind.
    """
    folder = out_dir
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write to {out_dir}: {folder} is not a directory")
    check_writable(folder)


def _remove_run_outputs(out_dir: Path) -> None:
    """Remove the files of a previous run in `out_dir` (and their leftover temporary files)."""
    for name in RUN_OUTPUTS:
        path = out_dir / name
        remove_stale_temps(path)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise OutputError(f"cannot remove {path}: {e.strerror or e}") from None


def _repair_best(ckpt: Checkpoint, last_path: Path, best_path: Path) -> None:
    """Make best.pt hold the best epoch `last.pt` records (what a kill between them breaks).

    When last.pt's own epoch is the best, best.pt is rebuilt from it if missing,
    damaged or of another epoch; otherwise best.pt must already hold that epoch.
    """
    best_epoch, last_epoch = ckpt.best_epoch, ckpt.epoch + 1
    if best_epoch < 1:
        return
    try:
        held = Checkpoint.load(best_path).epoch + 1 if best_path.exists() else None
        problem = "is missing" if held is None else f"holds epoch {held}"
    except (ModelError, RobotSSLError, KeyError, TypeError, ValueError) as e:
        held, problem = None, f"is unreadable ({e})"
    if held == best_epoch:
        return
    if best_epoch != last_epoch:
        raise TrainError(
            f"{best_path} {problem}, but the best epoch is {best_epoch} and its weights are "
            f"not in {last_path.name} (epoch {last_epoch}): train again with --overwrite"
        )
    with _writing(best_path), atomic_output(best_path) as tmp:
        shutil.copyfile(last_path, tmp)


def _check_same_grids(sessions: list) -> None:
    """All sessions must share one label grid (sensors, distances): name the first misfit."""

    def grid(s: Any) -> str:
        d_cm = np.asarray(s.distances_m, np.float64) * 100.0
        span = f"{d_cm[0]:g}-{d_cm[-1]:g} cm" if len(d_cm) else "no distances"
        sensors = ",".join(str(int(i)) for i in s.sensor_indices)
        return f"sensors [{sensors}] x {len(d_cm)} distances ({span})"

    first = sessions[0]
    for s in sessions[1:]:
        same = (
            s.labels.shape[1:] == first.labels.shape[1:]
            and len(s.distances_m) == len(first.distances_m)
            and np.allclose(s.distances_m, first.distances_m)
            and np.array_equal(s.sensor_indices, first.sensor_indices)
        )
        if not same:
            raise DatasetError(
                f"label grids differ: {first.path} is labelled with {grid(first)}, {s.path} "
                f"with {grid(s)}; label all sessions with the same settings"
            )


def _check_same_viewpoints(sessions: list) -> None:
    """All sessions must share one camera viewpoint (pinhole.VIEWPOINT_TOLERANCES): a model
    learns where obstacles fall in the image, so a mix of mounts teaches neither; name the
    first misfit and what differs."""
    first = next((s for s in sessions if s.camera is not None), None)
    for s in sessions:
        if s.camera is None or first is None:
            continue
        diffs = first.camera.viewpoint_differences(s.camera)
        if diffs:
            raise DatasetError(
                f"camera viewpoints differ: {first.path} and {s.path} ({'; '.join(diffs)}); "
                "train one model per camera mount"
            )


def _write_logs(history: list[dict[str, Any]], out_dir: Path) -> None:
    """metrics.csv, metrics.json and curves.png, each replaced atomically."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for row in history:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    with _writing(out_dir / "metrics.csv"), atomic_output(out_dir / "metrics.csv") as tmp:
        tmp.write_text(buf.getvalue())
    with _writing(out_dir / "metrics.json"), atomic_output(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(history, indent=1) + "\n")
    _plot_curves(history, out_dir / "curves.png")


def _plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def series(key: str) -> np.ndarray:
        return np.array([np.nan if r.get(key) is None else r[key] for r in history], float)

    epochs = series("epoch")
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    ax_loss, ax_auc = fig.subplots(1, 2)
    ax_loss.plot(epochs, series("train_loss"), "o-", label="train")
    ax_loss.plot(epochs, series("val_loss"), "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="masked BCE", title="loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_auc.plot(epochs, series("val_auc"), "ko-", lw=2, label="mean")
    for key in [k for k in history[-1] if k.startswith("val_auc_")]:
        ax_auc.plot(epochs, series(key), ".-", label=key.removeprefix("val_auc_") + " cm")
    ax_auc.set(xlabel="epoch", ylabel="ROC AUC", title="validation AUC")
    ax_auc.legend()
    ax_auc.grid(alpha=0.3)
    with _writing(path), atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")


def _load_frames(cfg: TrainConfig, env: _Dist) -> tuple[FrameSet, FrameSet | None]:
    """Load, split and concatenate the sessions (rank 0 first, so others hit its cache)."""
    if not cfg.data:
        raise TrainError("no training data given")

    def load() -> list:
        return load_sessions(
            cfg.data,
            labels_dir=cfg.labels_dir,
            size=(cfg.input_width, cfg.input_height),
            cache_dir=cfg.cache_dir,
            workers=cfg.decode_workers,
            progress=cfg.progress and env.is_main,
        )

    sessions = load() if env.is_main else None
    env.barrier()
    if sessions is None:
        sessions = load()
    return split_frames(cfg, sessions)


def split_frames(cfg: TrainConfig, sessions: list) -> tuple[FrameSet, FrameSet | None]:
    """The (train, validation) frames of loaded sessions, split as `cfg` says; with
    `cfg.targets` "truth", every frame's labels are its simulator truth (same cells)."""
    if cfg.targets == "truth":
        from robot_ssl.learning.truth_grid import with_truth_targets

        sessions = [with_truth_targets(s, cfg.labels_dir) for s in sessions]
    _check_same_grids(sessions)
    _check_same_viewpoints(sessions)
    train_s, val_s = split_sessions(
        sessions,
        val_worlds=cfg.val_worlds or None,
        val_fraction=cfg.val_fraction,
        group_by=cfg.split_by,
        seed=cfg.seed,
        block_s=cfg.val_block_s,
        gap_s=cfg.val_gap_s,
    )
    train = FrameSet.from_sessions(train_s)
    if cfg.consistency_weight > 0:  # the odometry pairs frames for the consistency loss
        from dataclasses import replace

        from robot_ssl.learning.consistency import frame_poses

        train = replace(train, poses=np.concatenate([frame_poses(s) for s in train_s]))
    return train, (FrameSet.from_sessions(val_s) if val_s else None)


# -- state consistency ---------------------------------------------------------------------


def _consistency_pairs(cfg: TrainConfig, frames: FrameSet, say: bool) -> np.ndarray | None:
    """(partner row, shift) per training frame (-1: none) for the consistency loss, or None
    when it is off; refused when no frame pair is a straight drive apart."""
    if cfg.consistency_weight <= 0:
        return None
    from robot_ssl.learning.consistency import match_pairs

    if frames.poses is None:
        raise TrainError("the consistency loss needs the frames' odometry poses")
    pairs = match_pairs(frames.poses, frames.session_ids, frames.distances_m)
    if len(pairs) == 0:
        raise TrainError(
            "no frame pairs a short straight drive apart for the consistency loss "
            "(no odometry, or no straight driving): set --consistency-weight 0"
        )
    table = np.full((len(frames), 2), -1, np.int64)
    table[pairs.anchor, 0], table[pairs.anchor, 1] = pairs.partner, pairs.shift
    if say:
        print(f"consistency: {len(pairs)} of {len(frames)} frames paired")
    return table


def _loss_with_consistency(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    idx: torch.Tensor,
    pairs: np.ndarray,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    gen: torch.Generator,
) -> tuple[torch.Tensor, float]:
    """BCE on the batch and its frames' partners, plus weight x the consistency term.

    Partners join the batch (their labels train too); augmentation runs without its
    flip, then each pair is flipped together (mirroring the sensor axis keeps the
    (s, d) -> (s, d - shift) relation). Returns (loss, consistency term)."""
    from dataclasses import replace

    from robot_ssl.learning.consistency import consistency_loss

    table = torch.from_numpy(pairs)[idx]
    have = table[:, 0] >= 0
    partners, shift = table[have, 0], table[have, 1].to(x.device)
    b = len(idx)
    x = torch.cat([x, images[partners].to(x.device).float()])
    y = torch.cat([y, labels[partners].to(y.device)])
    x, y = augment_batch(x, y, replace(cfg.augment, hflip=False), gen)
    if cfg.augment.enabled and cfg.augment.hflip:
        flip_b = torch.rand(b, generator=gen, device=x.device) < 0.5
        flip = torch.cat([flip_b, flip_b[have.to(x.device)]])
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(2), x)
        y = torch.where(flip.view(-1, 1, 1), y.flip(1), y)
    logits = model(x)
    n_d = logits.shape[2]
    y, w = y.split(n_d, 2) if y.shape[2] > n_d else (y, None)
    term = consistency_loss(logits[:b][have.to(x.device)], logits[b:], shift)
    loss = masked_bce_loss(logits, y, cfg.pos_weight, w) + cfg.consistency_weight * term
    return loss, float(term.detach())


# -- the training loop ---------------------------------------------------------------------


def train(cfg: TrainConfig, data: tuple[FrameSet, FrameSet | None] | None = None) -> TrainResult:
    """Train a detector as configured; `data` = (train, validation) frames skips loading sessions.

    Writes to `cfg.out_dir`: last.pt, best.pt, metrics.csv, metrics.json,
    curves.png, config.json. Works alone or under torchrun (one call per process).
    """
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data.distributed import DistributedSampler
    from tqdm import tqdm

    out_dir = Path(cfg.out_dir)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if cfg.resume and not last_path.is_file():
        raise TrainError(f"cannot resume: {last_path} does not exist")
    previous = [n for n in RUN_OUTPUTS if n != "config.json" and (out_dir / n).exists()]
    if not cfg.resume and not cfg.overwrite and previous:
        held = ", ".join(previous)
        raise TrainError(f"{out_dir} already holds a run ({held}): resume it or allow overwriting")
    if int(os.environ.get("RANK", "0")) == 0:
        _check_out_dir(out_dir)
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    env = _setup_distributed(cfg.device)
    try:
        # ---- data: uint8 frames stay in memory; batches are gathered by index ----
        train_set, val_set = data if data is not None else _load_frames(cfg, env)
        if train_set.image_size != (cfg.input_width, cfg.input_height):
            raise DatasetError(
                f"frames are {train_set.image_size}, the model expects "
                f"{(cfg.input_width, cfg.input_height)} (width, height)"
            )
        if len(train_set) == 0:
            raise DatasetError("no labelled training frames")
        if cfg.augment.enabled and cfg.augment.hflip and not train_set.mirror_symmetric:
            raise TrainError("the sensor set is not mirror-symmetric: disable the flip")
        if val_set is not None and len(val_set) == 0:
            val_set = None
        if val_set is not None and (
            val_set.grid_shape != train_set.grid_shape
            or not np.allclose(val_set.distances_m, train_set.distances_m)
            or not np.array_equal(val_set.sensor_indices, train_set.sensor_indices)
        ):
            raise DatasetError(
                f"label grids differ: training sessions {train_set.session_names} have "
                f"{train_set.grid_shape} (sensors, distances), validation sessions "
                f"{val_set.session_names} {val_set.grid_shape} or other distances"
            )
        train_images = torch.from_numpy(train_set.images)
        train_labels = torch.from_numpy(train_set.labels)
        if train_set.weights is not None:  # label confidence: (labels, weights) side by side
            train_labels = torch.cat([train_labels.float(), torch.from_numpy(train_set.weights)], 2)
        if val_set is not None:
            val_images = torch.from_numpy(val_set.images)
            val_labels = torch.from_numpy(val_set.labels)

        # ---- model, optimiser, optional resume ----
        n_s, n_d = train_set.grid_shape
        ckpt = Checkpoint.load(last_path) if cfg.resume else None
        if ckpt is not None:
            model_cfg = ckpt.model_config
            grid = (model_cfg.num_sensors, model_cfg.num_distances)
            if model_cfg.arch != cfg.arch or grid != (n_s, n_d):
                raise TrainError(f"{last_path} was trained with a different arch or label grid")
        else:
            model_cfg = cfg.model_config(
                n_s,
                n_d,
                distances_m=tuple(train_set.distances_m.tolist()),
                sensor_indices=tuple(int(s) for s in train_set.sensor_indices),
            )
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        raw_model = build_model(model_cfg)
        if cfg.init is not None and ckpt is None:
            from robot_ssl.learning.pretrain import init_encoder

            init_encoder(raw_model, model_cfg, cfg.init)  # pretrained encoder, fresh head
        raw_model = raw_model.to(env.device)
        if cfg.channels_last:
            raw_model = raw_model.to(memory_format=torch.channels_last)
        params = list(raw_model.parameters())
        optimizer = make_optimizer(params, cfg.lr, cfg.weight_decay)
        start_epoch, step, history = 0, 0, []
        best_score, best_epoch = -math.inf, -1
        if ckpt is not None:
            raw_model.load_state_dict(ckpt.model)
            optimizer.load_state_dict(ckpt.optimizer)
            start_epoch, step, history = ckpt.epoch + 1, ckpt.step, ckpt.history
            best_score, best_epoch = ckpt.best_score, ckpt.best_epoch
        model = raw_model
        if env.world_size > 1:
            model = DistributedDataParallel(
                raw_model, device_ids=[env.device.index] if env.device.type == "cuda" else None
            )
        sampler = DistributedSampler(
            range(len(train_set)),
            num_replicas=env.world_size,
            rank=env.rank,
            shuffle=True,
            seed=cfg.seed,
        )
        pairs = _consistency_pairs(cfg, train_set, env.is_main)
        steps_per_epoch = math.ceil(len(sampler) / cfg.batch_size)
        total_steps = steps_per_epoch * cfg.epochs
        schedule = lr_schedule(cfg, total_steps)
        if env.is_main:
            if cfg.overwrite:
                _remove_run_outputs(out_dir)  # no file of the old run stays beside the new ones
            if ckpt is not None:
                for name in RUN_OUTPUTS:  # temporary files of a killed writer
                    remove_stale_temps(out_dir / name)
                _repair_best(ckpt, last_path, best_path)  # before last.pt is written again
            out_dir.mkdir(parents=True, exist_ok=True)
            run_info = {
                "train_config": cfg.to_dict(),
                "model_config": model_cfg.to_dict(),
                "world_size": env.world_size,
                "train_sessions": train_set.session_names,
                "val_sessions": val_set.session_names if val_set is not None else [],
                "num_train_frames": len(train_set),
                "num_val_frames": len(val_set) if val_set is not None else 0,
                "num_parameters": sum(p.numel() for p in raw_model.parameters()),
            }
            with _writing(out_dir / "config.json"), atomic_output(out_dir / "config.json") as tmp:
                tmp.write_text(json.dumps(run_info, indent=1) + "\n")
        env.barrier()
        log = tqdm.write if cfg.progress else print
        t_start = time.perf_counter() - (history[-1]["elapsed_s"] if history else 0.0)
        logged = -1  # len(history) when the logs were last written

        for epoch in range(start_epoch, cfg.epochs):
            # ---- early stop (also when a resumed run had already stopped) ----
            if cfg.patience is not None and best_epoch > 0 and epoch - best_epoch >= cfg.patience:
                if env.is_main:
                    log(f"early stop: no better validation score for {cfg.patience} epochs")
                break
            # ---- one epoch of training ----
            t_epoch = time.perf_counter()
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler), dtype=torch.long)
            run_seed = cfg.seed + 1_000_003 * (epoch + 1) + 7919 * env.rank
            torch.manual_seed(run_seed)  # dropout
            gen = torch.Generator(device=env.device).manual_seed(run_seed)
            model.train()
            loss_sum = torch.zeros(3, dtype=torch.float64)  # loss, frames, consistency
            bar = tqdm(
                total=steps_per_epoch,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                leave=False,
                disable=None if cfg.progress and env.is_main else True,  # None: on a tty only
            )
            for i in range(steps_per_epoch):
                idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                x = train_images[idx].to(env.device).float()
                y = train_labels[idx].to(env.device)
                lr = schedule.at(step, epoch)
                if pairs is None:
                    x, y = augment_batch(x, y, cfg.augment, gen)  # flips labels and weights alike
                    y, w = y.split(n_d, 2) if y.shape[2] > n_d else (y, None)
                    loss, term = masked_bce_loss(model(x), y, cfg.pos_weight, w), 0.0
                else:
                    loss, term = _loss_with_consistency(
                        model, x, y, idx, pairs, train_images, train_labels, cfg, gen
                    )
                where = f"step {step + 1} (epoch {epoch + 1}, lr {lr:.3g})"
                value = optimisation_step(loss, optimizer, params, cfg.grad_clip, where, lr=lr)
                step += 1
                loss_sum += torch.tensor(
                    [value * len(idx), len(idx), term * len(idx)], dtype=torch.float64
                )
                bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}")
                bar.update()
            bar.close()
            if env.world_size > 1:
                torch.distributed.all_reduce(loss_sum)
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": float(loss_sum[0] / max(loss_sum[1], 1.0)),
            }
            if pairs is not None:
                row["train_consistency"] = float(loss_sum[2] / max(loss_sum[1], 1.0))

            # ---- validation (every rank evaluates the whole set: same numbers, no comms) ----
            if val_set is not None:
                row.update(_validate(raw_model, val_set, val_images, val_labels, cfg))
                if not math.isfinite(row["val_loss"]):  # finite weights, overflowing outputs
                    raise TrainingDiverged(
                        f"training diverged in epoch {epoch + 1}: validation loss "
                        f"{row['val_loss']:g}; lower --lr or --weight-decay"
                    )
            row["epoch_time_s"] = time.perf_counter() - t_epoch
            row["elapsed_s"] = time.perf_counter() - t_start
            history.append(row)
            score = _score(row)
            is_best = score > best_score
            if is_best:
                best_score, best_epoch = score, epoch + 1

            # ---- checkpoints and logs (rank 0 only) ----
            if env.is_main:
                ckpt_out = Checkpoint(
                    model=raw_model.state_dict(),
                    model_config=model_cfg,
                    viewpoint=train_set.viewpoint,
                    optimizer=optimizer.state_dict(),
                    train_config=cfg.to_dict(),
                    # which sessions taught it: eval warns when one is evaluated again
                    train_sessions=[
                        {"name": n, "sha256": h}
                        for n, h in zip(train_set.session_names, train_set.session_sha256)
                    ],
                    epoch=epoch,
                    step=step,
                    metrics=row,
                    history=history,
                    best_score=best_score,
                    best_epoch=best_epoch,
                    seed=cfg.seed,
                    world_size=env.world_size,
                )
                ckpt_out.save(last_path)
                if is_best:
                    ckpt_out.save(best_path)
                _write_logs(history, out_dir)
                logged = len(history)
                log(
                    f"epoch {epoch + 1}/{cfg.epochs}  "
                    + "  ".join(
                        f"{k} {v:.4f}"
                        for k, v in row.items()
                        if k not in ("epoch", "elapsed_s") and v is not None
                    )
                    + ("  *best*" if is_best else "")
                )
            env.barrier()
        if env.is_main and history and logged != len(history):
            # the final outputs, also when a resumed run had no epoch left to train
            _write_logs(history, out_dir)
        env.barrier()
        if best_epoch < 1:  # no epoch had a finite score: there is no model to use
            raise TrainError(
                f"no epoch of the run in {out_dir} had a usable score: no best.pt written"
            )
        return TrainResult(
            out_dir=out_dir,
            best_path=best_path,
            last_path=last_path,
            best_epoch=best_epoch,
            best_score=best_score,
            history=history,
            train_time_s=history[-1]["elapsed_s"] if history else 0.0,
            final_state={k: v.detach().cpu().clone() for k, v in raw_model.state_dict().items()},
        )
    finally:
        if env.owns_group:
            torch.distributed.destroy_process_group()


def run_train(cfg: TrainConfig) -> TrainResult:
    """`robot-ssl train` in-process: train `cfg`, saying on stderr (main rank only) which
    sessions were recovered and when there was no validation set, then the best epoch on
    stdout."""
    import sys

    from robot_ssl.io.session_summary import print_recovered_notes

    main_rank = int(os.environ.get("RANK", "0")) == 0
    if main_rank:
        print_recovered_notes(list(cfg.data), "train")
    result = train(cfg)
    if main_rank and result.history and "val_loss" not in result.history[-1]:
        print(
            "robot-ssl train: no validation set (--val-fraction 0, or nothing left to split"
            " off): best.pt is the epoch with the lowest training loss, not a validated score",
            file=sys.stderr,
        )
    if main_rank:
        print(
            f"best epoch {result.best_epoch}: score {result.best_score:.4f}; "
            f"{result.train_time_s:.1f} s; checkpoints in {result.out_dir}"
        )
    return result
