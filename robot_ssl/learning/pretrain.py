"""Self-supervised pretraining of the detector's encoder on every recorded frame.

The encoder is the convolutional trunk of a detector (``model.features``, applied
by :func:`robot_ssl.learning.models.encode`). Labels are not needed: every frame
of every session is used, and three pretext tasks share the encoder, each with
its own small head, trained on a weighted sum of their losses:

- ``patch``: relative patch position (Doersch et al., ICCV 2015). A centre patch
  and one of its 8 neighbours on a 3x3 grid (``patch_gap`` pixels apart, each
  neighbour moved by up to ``patch_jitter`` pixels) are encoded separately; the
  head predicts which of the 8 positions the neighbour came from (cross-entropy,
  chance = 1/8).
- ``denoise``: denoising autoencoder (Vincent et al., ICML 2008). A copy of the
  image with a ``mask_fraction`` of pixels set to 0 and Gaussian noise of
  ``noise_std`` (fraction of 255) is encoded; a small decoder (nearest upsampling
  + 3x3 convolutions) reconstructs the clean image, standardised per image and
  channel as the encoder sees it (MSE).
- ``odometry``: what a robot makes possible. Two frames of one session
  ``odo_dt_min_s``..``odo_dt_max_s`` apart; the head predicts, from both feature
  maps, the robot's motion between them in the first frame's robot frame
  (dx_m forward, dy_m left, dtheta_rad counter-clockwise), with the session's
  odometry interpolated at the frame times (:func:`odometry_pairs`). Targets are
  standardised (mean and std over all pairs, kept in ``encoder.pt``), MSE.
- ``rotation``: rotation prediction (Gidaris et al., ICLR 2018, "RotNet"). The
  input is not square (80x64), and a 90-degree turn of it would be a differently
  shaped image whose shape gives the answer away, so a random square crop (side
  min(width, height)) is turned by 0, 90, 180 or 270 degrees and a 4-way head on
  the pooled features names the turn (cross-entropy, chance = 1/4; the
  fully-convolutional encoder takes the square). ``rotation_acc`` is logged.
- ``views``: instance discrimination on jittered views, non-contrastive: VICReg
  (Bardes, Ponce and LeCun, ICLR 2022). Two views of each frame (random crop of
  at least ``views_crop_min`` of each side resized back, horizontal flip, per
  channel gamma and colour mixing within ``views_jitter``, pixel noise: plain
  gains would be undone by the encoder's per-image standardisation) go through
  the encoder and a projector (Linear-BatchNorm-ReLU-Linear, 128-d); the loss
  pulls the two projections together (MSE, weight 25), keeps each dimension's
  std over the batch >= 1 (hinge, 25) and decorrelates dimensions (1), as in the
  paper. Written here (:func:`vicreg_loss`): the ``lightly`` library has it, but
  needs torchvision, pytorch_lightning and hydra-core, too much for one loss.
  Under DDP each process's loss sees its own batch (no gathering).

The loop (:func:`pretrain`) reads top to bottom in the nanoGPT manner: load and
resize every frame once (the decode/resize of robot_ssl.learning.dataset), build
encoder and heads, AdamW with warmup + cosine learning rate, then per epoch one
pass over the frames in seeded random order, logging each task's mean loss
(and the patch and rotation tasks' accuracy).

Under ``torchrun --nproc_per_node=N -m robot_ssl pretrain ...`` (RANK /
WORLD_SIZE / LOCAL_RANK in the environment) the net runs in
DistributedDataParallel (gloo on CPU, NCCL on CUDA; the set-up of
robot_ssl.learning.train): every process loads the frames, takes its shard of the
epoch's seeded order (padded so every rank takes the same number of steps),
`batch_size` frames per step per process, and only rank 0 writes files and
logs (epoch means over all ranks). `device` auto picks cuda when available;
the choice is printed and kept in ``metrics.json`` and ``encoder.pt``. After every epoch ``encoder.pt`` (encoder
state dict, model config, tasks, data identities, history) and
``metrics.json`` are replaced atomically; ``encoder.pt`` loads with
``torch.load(weights_only=True)`` (:func:`load_encoder`). ``robot-ssl train
--init encoder.pt`` starts a detector from it (:func:`init_encoder`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_ssl.core.geometry import compose, interpolate_poses, inverse
from robot_ssl.inference.integrity import one_line
from robot_ssl.learning.dataset import _decode_frames, find_sessions
from robot_ssl.learning.models import ModelConfig, build_model, encode, standardize_images
from robot_ssl.learning.pretrain_config import TASKS, PretrainConfig, PretrainError  # re-exported
from robot_ssl.learning.step import optimisation_step

__all__ = [
    "ENCODER_FORMAT",
    "TASKS",
    "PretrainConfig",
    "PretrainData",
    "PretrainError",
    "PretrainNet",
    "clean_target",
    "corrupt_images",
    "init_encoder",
    "jittered_view",
    "load_encoder",
    "load_pretrain_data",
    "odometry_pairs",
    "patch_pairs",
    "pretrain",
    "rotated_crops",
    "task_losses",
    "vicreg_loss",
]

ENCODER_FORMAT = "robot-ssl/encoder"
ENCODER_VERSION = 1
PRETRAIN_OUTPUTS = ("encoder.pt", "metrics.json")


# -- odometry targets ----------------------------------------------------------------------


def odometry_pairs(
    frame_t_ns: np.ndarray,
    odo_t_ns: np.ndarray,
    odo_pose: np.ndarray,
    dt_min_s: float,
    dt_max_s: float,
    per_frame: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame pairs (i, j) with t_j - t_i in [dt_min_s, dt_max_s] and the motion between them.

    Returns (pairs int64 (M, 2) frame indices, targets float64 (M, 3)): the pose
    of frame j in the robot frame of frame i, (dx_m forward, dy_m left,
    dtheta_rad in (-pi, pi]), from the odometry interpolated at both frame times
    (robot_ssl.core.geometry.interpolate_poses; frames outside the odometry's time span are
    left out). At most `per_frame` partners per frame i, spread evenly over
    the window. `frame_t_ns` must be non-decreasing (camera timestamps are).
    """
    t = np.asarray(frame_t_ns, np.int64)
    odo_t = np.asarray(odo_t_ns, np.int64)
    keep = np.diff(odo_t, prepend=odo_t[:1] - 1) > 0  # equal stamps: keep the first
    poses = interpolate_poses(odo_t[keep], np.asarray(odo_pose)[keep], t)
    valid = np.isfinite(poses).all(axis=1) if len(odo_t) >= 2 else np.zeros(len(t), bool)
    lo = np.searchsorted(t, t + round(dt_min_s * 1e9), side="left")
    hi = np.searchsorted(t, t + round(dt_max_s * 1e9), side="right")
    firsts, seconds = [], []
    for i in np.flatnonzero(valid & (hi > lo)):
        js = np.arange(lo[i], hi[i])
        js = js[valid[js]]
        if len(js) > per_frame:
            js = js[np.linspace(0, len(js) - 1, per_frame).round().astype(int)]
        firsts.append(np.full(len(js), i))
        seconds.append(js)
    if not firsts:
        return np.zeros((0, 2), np.int64), np.zeros((0, 3))
    pairs = np.stack([np.concatenate(firsts), np.concatenate(seconds)], axis=1).astype(np.int64)
    targets = compose(inverse(poses[pairs[:, 0]]), poses[pairs[:, 1]])
    return pairs, targets


# -- data ----------------------------------------------------------------------------------


@dataclass
class PretrainData:
    """Every frame of the sessions, resized, with the odometry pairs between them."""

    images: np.ndarray  # uint8 (N, H, W, 3) BGR at the network input size
    session_ids: np.ndarray  # int32 (N,)
    pairs: np.ndarray  # int64 (M, 2) indices into images, same session
    pair_targets: np.ndarray  # float64 (M, 3) dx_m, dy_m, dtheta_rad
    sessions: list[dict[str, Any]] = field(default_factory=list)  # name, sha256, size, frames

    def __len__(self) -> int:
        return len(self.images)


def load_pretrain_data(cfg: PretrainConfig) -> PretrainData:
    """Decode and resize every frame of every session of `cfg.data`; compute odometry pairs.
    Damaged frames are skipped with one line per session (report_damaged_frames)."""
    from robot_ssl.io.labels_file import identify_session
    from robot_ssl.io.session import SessionReader, report_damaged_frames

    if not cfg.data:
        raise PretrainError("no pretraining data given")
    size = (cfg.input_width, cfg.input_height)
    images, ids, pairs, targets, sessions = [], [], [], [], []
    offset = 0
    for k, path in enumerate(find_sessions(cfg.data)):
        with SessionReader(path) as reader:
            every = np.arange(reader.num_frames)
            frames, intact = _decode_frames(
                reader, every, size, cfg.decode_workers, path.name, cfg.progress
            )
            report_damaged_frames(path, int((~intact).sum()), len(intact))
            n = len(frames)
            odo_t, odo_pose = reader.odometry()
            p, tg = odometry_pairs(
                reader.camera_t_ns[intact],
                odo_t,
                odo_pose,
                cfg.odo_dt_min_s,
                cfg.odo_dt_max_s,
                cfg.odo_pairs_per_frame,
            )
        ident = identify_session(path)
        sessions.append(
            {
                "name": path.stem,
                "sha256": ident.sha256,
                "size_bytes": ident.size_bytes,
                "num_frames": n,
            }
        )
        images.append(frames)
        ids.append(np.full(n, k, np.int32))
        pairs.append(p + offset)
        targets.append(tg)
        offset += n
    data = PretrainData(
        images=np.concatenate(images),
        session_ids=np.concatenate(ids),
        pairs=np.concatenate(pairs),
        pair_targets=np.concatenate(targets),
        sessions=sessions,
    )
    if len(data) == 0:
        raise PretrainError("the sessions hold no camera frames")
    if "odometry" in cfg.tasks and len(data.pairs) == 0:
        raise PretrainError(
            f"no frame pairs {cfg.odo_dt_min_s:g}-{cfg.odo_dt_max_s:g} s apart with odometry: "
            "drop the odometry task or record sessions with odometry"
        )
    return data


# -- pretext tasks -------------------------------------------------------------------------


def patch_pairs(
    images: torch.Tensor, size: int, gap: int, jitter: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(centre patches, neighbour patches, position 0..7) from images (B, H, W, 3).

    Each image gets a 3x3 grid of `size`-pixel patches `gap` pixels apart at a
    random place; the neighbour is one of the 8 outer cells (row-major order,
    centre skipped), moved by up to `jitter` pixels on each axis.
    """
    b, h, w, _ = images.shape
    dev = images.device
    step, span = size + gap, 3 * size + 2 * gap

    def randint(high: int) -> torch.Tensor:
        return torch.randint(0, high + 1, (b,), generator=generator, device=dev)

    top, left = jitter + randint(h - span - 2 * jitter), jitter + randint(w - span - 2 * jitter)
    pos = torch.randint(0, 8, (b,), generator=generator, device=dev)
    cell = pos + (pos >= 4).long()  # 0..8 without the centre (4)
    n_top = top + (cell // 3) * step + randint(2 * jitter) - jitter
    n_left = left + (cell % 3) * step + randint(2 * jitter) - jitter
    r = torch.arange(size, device=dev)
    batch = torch.arange(b, device=dev)[:, None, None]

    def crop(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return images[batch, (y[:, None] + r)[:, :, None], (x[:, None] + r)[:, None, :]]

    return crop(top + step, left + step), crop(n_top, n_left), pos


def corrupt_images(
    images: torch.Tensor, mask_fraction: float, noise_std: float, generator: torch.Generator
) -> torch.Tensor:
    """Masking noise (a `mask_fraction` of pixels set to 0) plus Gaussian noise of sigma
    `noise_std` * 255, on images (B, H, W, 3) in 0..255; clamped to 0..255."""
    b, h, w, _ = images.shape
    dev = images.device
    keep = torch.rand(b, h, w, 1, generator=generator, device=dev) >= mask_fraction
    x = images.float() * keep
    x = x + 255.0 * noise_std * torch.randn(x.shape, generator=generator, device=dev)
    return x.clamp(0.0, 255.0)


def rotated_crops(
    images: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(square crops turned by k * 90 degrees counter-clockwise (B, S, S, 3), k 0..3 (B,))
    from images (B, H, W, 3); S = min(H, W), the crop's place along the long side random."""
    b, h, w, _ = images.shape
    dev = images.device
    side = min(h, w)
    top = torch.randint(0, h - side + 1, (b,), generator=generator, device=dev)
    left = torch.randint(0, w - side + 1, (b,), generator=generator, device=dev)
    r = torch.arange(side, device=dev)
    batch = torch.arange(b, device=dev)[:, None, None]
    crops = images[batch, (top[:, None] + r)[:, :, None], (left[:, None] + r)[:, None, :]]
    k = torch.randint(0, 4, (b,), generator=generator, device=dev)
    turned = crops.clone()
    for quarter in (1, 2, 3):
        sel = k == quarter
        turned[sel] = torch.rot90(crops[sel], quarter, dims=(1, 2))
    return turned, k


def jittered_view(
    images: torch.Tensor, crop_min: float, jitter: float, generator: torch.Generator
) -> torch.Tensor:
    """One random view of each image (B, H, W, 3) 0..255, same shape: a crop of scale
    `crop_min`..1 of each side resized back (bilinear), flipped left-right half the time,
    per-channel gamma in 1 +- `jitter`, colour mixing (off-diagonal weights up to
    `jitter` / 4), Gaussian noise of 2 % of 255; clamped to 0..255."""
    b = images.shape[0]
    dev = images.device

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, *shape, generator=generator, device=dev)

    scale = uniform(crop_min, 1.0)
    flip = torch.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, 0, 2], theta[:, 1, 2] = (1 - scale) * uniform(-1, 1), (1 - scale) * uniform(-1, 1)
    x = images.permute(0, 3, 1, 2).float()
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = 255.0 * (x / 255.0).clamp(0.0, 1.0) ** uniform(1 - jitter, 1 + jitter, 3, 1, 1)
    mix = torch.eye(3, device=dev) + uniform(-jitter / 4, jitter / 4, 3, 3)
    x = torch.einsum("bij,bjhw->bihw", mix, x)
    x = x + 0.02 * 255.0 * torch.randn(x.shape, generator=generator, device=dev)
    return x.clamp(0.0, 255.0).permute(0, 2, 3, 1)


def vicreg_loss(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """VICReg (Bardes, Ponce, LeCun, ICLR 2022, Algorithm 1) on two projections (B, D):
    25 * invariance (MSE) + 25 * variance (mean hinge of 1 - std per dimension, both
    views) + 1 * covariance (sum of squared off-diagonal covariances / D, both views)."""
    n, d = z_a.shape
    invariance = F.mse_loss(z_a, z_b)
    variance = z_a.new_zeros(())
    covariance = z_a.new_zeros(())
    for z in (z_a, z_b):
        z = z - z.mean(0)
        std = torch.sqrt(z.var(0) + 1e-4)
        variance = variance + F.relu(1 - std).mean() / 2
        cov = (z.T @ z) / max(n - 1, 1)
        off = cov - torch.diag(torch.diag(cov))
        covariance = covariance + off.pow(2).sum() / d
    return 25.0 * invariance + 25.0 * variance + covariance


class PretrainNet(nn.Module):
    """A detector's encoder with one small head per pretext task.

    `detector` is a full detector network (built from `model_cfg`); only its
    `features` are trained and saved, its head is unused.
    """

    def __init__(self, model_cfg: ModelConfig, tasks: tuple[str, ...]) -> None:
        super().__init__()
        self.detector = build_model(model_cfg)
        self.tasks = tasks
        with torch.no_grad():
            full = encode(
                self.detector, torch.zeros(1, model_cfg.input_height, model_cfg.input_width, 3)
            )
        c, h, w = full.shape[1:]
        self.heads = nn.ModuleDict()
        if "patch" in tasks:
            self.heads["patch"] = nn.Sequential(
                nn.Linear(2 * c, 128), nn.ReLU(inplace=True), nn.Linear(128, 8)
            )
        if "denoise" in tasks:
            layers: list[nn.Module] = [nn.Conv2d(c, 32, 1), nn.ReLU(inplace=True)]
            ch = 32
            for _ in model_cfg.widths or ():
                layers += [
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(ch, 16, 3, padding=1),
                    nn.ReLU(inplace=True),
                ]
                ch = 16
            layers.append(nn.Conv2d(ch, 3, 3, padding=1))
            self.heads["denoise"] = nn.Sequential(*layers)
        if "odometry" in tasks:
            self.odo_project = nn.Sequential(nn.Conv2d(c, 16, 1), nn.ReLU(inplace=True))
            self.heads["odometry"] = nn.Sequential(
                nn.Linear(2 * 16 * h * w, 128), nn.ReLU(inplace=True), nn.Linear(128, 3)
            )
        if "rotation" in tasks:
            self.heads["rotation"] = nn.Sequential(
                nn.Linear(c, 64), nn.ReLU(inplace=True), nn.Linear(64, 4)
            )
        if "views" in tasks:
            self.heads["views"] = nn.Sequential(
                nn.Linear(c, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Linear(128, 128)
            )

    def forward(
        self,
        x: torch.Tensor,
        pair_a: torch.Tensor | None,
        pair_b: torch.Tensor | None,
        pair_y: torch.Tensor | None,
        cfg: PretrainConfig,
        gen: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """Each task's loss on one batch (:func:`task_losses`): the call DistributedDataParallel
        wraps, so that its gradients are averaged over the processes."""
        return task_losses(self, x, pair_a, pair_b, pair_y, cfg, gen)

    @property
    def encoder(self) -> nn.Module:
        return self.detector.features

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Global average of the encoder's last feature map: (B, C)."""
        return encode(self.detector, x).mean(dim=(2, 3))

    def patch_logits(self, centre: torch.Tensor, neighbour: torch.Tensor) -> torch.Tensor:
        """8 position logits (B, 8) from two patch batches (B, P, P, 3)."""
        return self.heads["patch"](torch.cat([self.pooled(centre), self.pooled(neighbour)], 1))

    def reconstruct(self, noisy: torch.Tensor) -> torch.Tensor:
        """The clean image, standardised per image and channel, (B, 3, H, W)."""
        out = self.heads["denoise"](encode(self.detector, noisy))
        return F.interpolate(out, size=noisy.shape[1:3], mode="bilinear", align_corners=False)

    def rotation_logits(self, turned: torch.Tensor) -> torch.Tensor:
        """4 logits (B, 4), k quarter turns, from square crops (B, S, S, 3)."""
        return self.heads["rotation"](self.pooled(turned))

    def project(self, view: torch.Tensor) -> torch.Tensor:
        """The VICReg projection (B, 128) of image views (B, H, W, 3)."""
        return self.heads["views"](self.pooled(view))

    def odometry(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Standardised (dx, dy, dtheta) (B, 3) from two frame batches (B, H, W, 3)."""
        a = self.odo_project(encode(self.detector, first)).flatten(1)
        b = self.odo_project(encode(self.detector, second)).flatten(1)
        return self.heads["odometry"](torch.cat([a, b], 1))


def clean_target(images: torch.Tensor) -> torch.Tensor:
    """The denoising target: images (B, H, W, 3) 0..255 -> standardised (B, 3, H, W)."""
    return standardize_images(images.permute(0, 3, 1, 2).float() * (1.0 / 255.0) - 0.5)


def task_losses(
    net: PretrainNet,
    x: torch.Tensor,
    pair_a: torch.Tensor | None,
    pair_b: torch.Tensor | None,
    pair_y: torch.Tensor | None,
    cfg: PretrainConfig,
    gen: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Each task's loss on one batch (images `x` float (B, H, W, 3), odometry pairs and
    standardised targets), plus `patch_acc` and `rotation_acc` (detached)."""
    out: dict[str, torch.Tensor] = {}
    if "patch" in cfg.tasks:
        centre, neighbour, pos = patch_pairs(
            x, cfg.patch_size, cfg.patch_gap, cfg.patch_jitter, gen
        )
        logits = net.patch_logits(centre, neighbour)
        out["patch"] = F.cross_entropy(logits, pos)
        out["patch_acc"] = (logits.argmax(1) == pos).float().mean().detach()
    if "denoise" in cfg.tasks:
        noisy = corrupt_images(x, cfg.mask_fraction, cfg.noise_std, gen)
        out["denoise"] = F.mse_loss(net.reconstruct(noisy), clean_target(x))
    if "odometry" in cfg.tasks and pair_a is not None and pair_b is not None:
        out["odometry"] = F.mse_loss(net.odometry(pair_a, pair_b), pair_y)
    if "rotation" in cfg.tasks:
        turned, k = rotated_crops(x, gen)
        logits = net.rotation_logits(turned)
        out["rotation"] = F.cross_entropy(logits, k)
        out["rotation_acc"] = (logits.argmax(1) == k).float().mean().detach()
    if "views" in cfg.tasks and len(x) > 1:  # a batch of one has no variance to keep
        view_a = jittered_view(x, cfg.views_crop_min, cfg.views_jitter, gen)
        view_b = jittered_view(x, cfg.views_crop_min, cfg.views_jitter, gen)
        out["views"] = vicreg_loss(net.project(view_a), net.project(view_b))
    return out


# -- encoder files -------------------------------------------------------------------------


def load_encoder(path: str | Path) -> dict[str, Any]:
    """Read an ``encoder.pt`` safely (robot_ssl.learning.checkpoint.load_weights_file)."""
    from robot_ssl.learning.checkpoint import load_weights_file

    obj = load_weights_file(path, "encoder file")
    if not isinstance(obj, dict) or obj.get("format") != ENCODER_FORMAT:
        raise PretrainError(f"{path}: not a robot-ssl encoder file (see `robot-ssl pretrain`)")
    return obj


def _finite_weights(state: Any) -> bool:
    """False when a floating-point tensor of the state dict `state` holds a NaN or inf."""
    if not isinstance(state, dict):
        return True  # not a state dict: load_state_dict says what is wrong
    tensors = [v for v in state.values() if torch.is_tensor(v) and v.is_floating_point()]
    return all(bool(torch.isfinite(v).all()) for v in tensors)


def init_encoder(model: nn.Module, model_cfg: ModelConfig, path: str | Path) -> dict[str, Any]:
    """Load the encoder weights of `path` into `model.features`; the rest is left as it is.

    The encoder's architecture and convolution widths must equal `model_cfg`'s
    (input size may differ: the trunk is fully convolutional). Returns the file's
    contents.
    """
    enc = load_encoder(path)
    src = ModelConfig.from_dict(dict(enc["model_config"]))
    if (src.arch, src.widths) != (model_cfg.arch, model_cfg.widths):
        raise PretrainError(
            f"{path}: encoder is arch {src.arch!r} widths {list(src.widths or ())}, the model is "
            f"arch {model_cfg.arch!r} widths {list(model_cfg.widths or ())}: "
            "pretrain with the same architecture"
        )
    if not _finite_weights(enc.get("encoder")):
        raise PretrainError(
            f"{path}: the encoder's weights are not finite (NaN or inf): its pretraining "
            "diverged; pretrain again with a lower --lr"
        )
    try:
        model.features.load_state_dict(enc["encoder"])
    except (RuntimeError, KeyError) as e:
        raise PretrainError(f"{path}: encoder weights do not fit ({one_line(e)})") from None
    return enc


# -- the pretraining loop ------------------------------------------------------------------


def pretrain(cfg: PretrainConfig, data: PretrainData | None = None) -> list[dict[str, Any]]:
    """Pretrain the encoder as configured; returns the per-epoch history.

    `data` skips loading sessions. Writes ``encoder.pt`` and ``metrics.json`` to
    `cfg.out_dir` after every epoch (atomically).
    """
    from robot_ssl.learning.train import _check_out_dir, _setup_distributed

    out_dir = Path(cfg.out_dir)
    held = [n for n in PRETRAIN_OUTPUTS if (out_dir / n).exists()]
    if held and not cfg.overwrite:
        raise PretrainError(f"{out_dir} already holds {', '.join(held)}: allow overwriting")
    _check_out_dir(out_dir)
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise PretrainError("device cuda requested but CUDA is not available")
    env = _setup_distributed(cfg.device)
    try:
        return _pretrain_loop(cfg, data, env, out_dir)
    finally:
        if env.owns_group:
            torch.distributed.destroy_process_group()


def _shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's part of an epoch's order, padded by wrapping around (as
    DistributedSampler does) so that every rank takes the same number of steps."""
    per_rank = math.ceil(len(order) / world_size)
    padded = order.repeat(math.ceil(per_rank * world_size / len(order)))[: per_rank * world_size]
    return padded[rank::world_size]


def _pretrain_loop(
    cfg: PretrainConfig, data: PretrainData | None, env: Any, out_dir: Path
) -> list[dict[str, Any]]:
    """The loop of :func:`pretrain` on the device and process group of `env` (train._Dist)."""
    from tqdm import tqdm

    from robot_ssl.core.outputs import atomic_output
    from robot_ssl.learning.checkpoint import save_weights_file
    from robot_ssl.learning.step import LRSchedule, make_optimizer
    from robot_ssl.learning.train import _writing

    device = env.device
    say = print if env.is_main else (lambda *_a, **_k: None)
    say(
        f"pretrain: device {device.type} (--device {cfg.device}), "
        f"{env.world_size} process{'es' if env.world_size > 1 else ''}"
    )

    # ---- data: uint8 frames in memory, odometry targets standardised ----
    if data is None:  # every rank decodes; only rank 0 shows progress
        data = load_pretrain_data(replace(cfg, progress=cfg.progress and env.is_main))
    if data.images.shape[1:3] != (cfg.input_height, cfg.input_width):
        raise PretrainError(
            f"frames are {data.images.shape[2]}x{data.images.shape[1]}, the encoder expects "
            f"{cfg.input_width}x{cfg.input_height}"
        )
    images = torch.from_numpy(data.images)
    use_odo = "odometry" in cfg.tasks and len(data.pairs) > 0
    odo_mean = data.pair_targets.mean(0) if use_odo else np.zeros(3)
    odo_std = data.pair_targets.std(0) + 1e-6 if use_odo else np.ones(3)
    pairs = torch.from_numpy(data.pairs)
    pair_y = torch.from_numpy((data.pair_targets - odo_mean) / odo_std).float()

    # ---- model and optimiser ----
    model_cfg = cfg.model_config()
    torch.manual_seed(cfg.seed)
    net = PretrainNet(model_cfg, cfg.tasks).to(device)
    model: nn.Module = net
    if env.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            net,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,  # the detector's own head is not trained here
        )
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.lr, cfg.weight_decay)
    weights = {
        "patch": cfg.patch_weight,
        "denoise": cfg.denoise_weight,
        "odometry": cfg.odometry_weight,
        "rotation": cfg.rotation_weight,
        "views": cfg.views_weight,
    }
    frames_per_rank = math.ceil(len(data) / env.world_size)
    steps_per_epoch = math.ceil(frames_per_rank / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    schedule = LRSchedule(cfg.lr, cfg.min_lr, cfg.warmup_steps, total_steps)
    log = (tqdm.write if cfg.progress else print) if env.is_main else say
    history: list[dict[str, Any]] = []
    step, t_start = 0, time.perf_counter()

    for epoch in range(cfg.epochs):
        run_seed = cfg.seed + 1_000_003 * (epoch + 1)
        rank_seed = run_seed + 7919 * env.rank
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(run_seed))
        order = _shard(order, env.rank, env.world_size)  # the same order on every rank
        cpu_gen = torch.Generator().manual_seed(rank_seed)  # pairs
        gen = torch.Generator(device=device).manual_seed(rank_seed)  # patches and noise
        torch.manual_seed(rank_seed)
        net.train()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=None if cfg.progress and env.is_main else True,  # None: on a tty only
        )
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = images[idx].to(device).float()
            a = b = y = None
            if use_odo:
                pick = torch.randint(0, len(pairs), (len(idx),), generator=cpu_gen)
                a = images[pairs[pick, 0]].to(device).float()
                b = images[pairs[pick, 1]].to(device).float()
                y = pair_y[pick].to(device)
            losses = model(x, a, b, y, cfg, gen)
            loss = torch.stack([weights[k] * v for k, v in losses.items() if k in weights]).sum()
            lr = schedule.at(step, epoch)
            where = f"step {step + 1} (epoch {epoch + 1}, lr {lr:.3g})"
            value = optimisation_step(loss, optimizer, params, cfg.grad_clip, where, lr=lr)
            step += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v.item() * len(idx)
                counts[k] = counts.get(k, 0) + len(idx)
            sums["loss"] = sums.get("loss", 0.0) + value * len(idx)
            counts["loss"] = counts.get("loss", 0) + len(idx)
            bar.update()
        bar.close()
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
        row.update(_epoch_means(sums, counts, _logged_keys(cfg.tasks), env.world_size, device))
        row["elapsed_s"] = time.perf_counter() - t_start
        row["device"] = device.type
        row["world_size"] = env.world_size
        history.append(row)
        if not env.is_main:
            continue

        # ---- encoder.pt and metrics.json, replaced atomically ----
        out = {
            "format": ENCODER_FORMAT,
            "version": ENCODER_VERSION,
            "encoder": {k: v.detach().cpu() for k, v in net.encoder.state_dict().items()},
            "heads": {
                k: v.detach().cpu()
                for k, v in net.state_dict().items()
                if not k.startswith("detector.")
            },
            "model_config": model_cfg.to_dict(),
            "tasks": list(cfg.tasks),
            "pretrain_config": cfg.to_dict(),
            "sessions": data.sessions,
            "num_frames": len(data),
            "num_odometry_pairs": len(data.pairs),
            "odometry_mean": [float(v) for v in odo_mean],
            "odometry_std": [float(v) for v in odo_std],
            "epoch": epoch,
            "history": history,
            "seed": cfg.seed,
            "device": device.type,
            "world_size": env.world_size,
        }
        save_weights_file(out, out_dir / "encoder.pt")
        metrics = out_dir / "metrics.json"
        with _writing(metrics), atomic_output(metrics) as tmp:
            tmp.write_text(json.dumps(history, indent=1) + "\n")
        log(
            f"epoch {epoch + 1}/{cfg.epochs}  "
            + "  ".join(
                f"{k} {v:.4f}"
                for k, v in row.items()
                if k not in ("epoch", "elapsed_s", "device", "world_size")
            )
        )
    env.barrier()  # the other ranks return once rank 0 has written the last epoch
    return history


def _logged_keys(tasks: tuple[str, ...]) -> list[str]:
    """What an epoch logs, the same list on every rank: the loss, each task's, accuracies."""
    accuracies = [f"{t}_acc" for t in ("patch", "rotation") if t in tasks]
    return ["loss", *tasks, *accuracies]


def _epoch_means(
    sums: dict[str, float],
    counts: dict[str, int],
    keys: list[str],
    world_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Each of `keys`' mean over the epoch's frames of every rank (one all-reduce); a key
    no rank logged (the odometry task without pairs) is left out."""
    both = torch.tensor(
        [[sums.get(k, 0.0), counts.get(k, 0)] for k in keys], dtype=torch.float64, device=device
    )
    if world_size > 1:
        torch.distributed.all_reduce(both)
    return {k: float(s / n) for k, (s, n) in zip(keys, both.tolist(), strict=True) if n > 0}
