"""The one optimisation of `train`, `pretrain` and the online learner: the optimiser and
its parameter groups (:func:`make_optimizer`), the learning-rate schedule
(:class:`LRSchedule`: warmup, then cosine, step decay or constant), the gradient clipping
and the step itself (:func:`optimisation_step`), with the check that learning has not
diverged.

A learning rate or weight decay far too high (``--lr 1e12``) makes the loss or the
weights NaN or infinite within a few steps; every later step, epoch score and saved
file would then be NaN too. :func:`optimisation_step` checks the loss, the gradient
norm and the weights after every step (one device synchronisation, the one that
reading the loss costs anyway) and raises :class:`TrainingDiverged`, naming the
step, at the first non-finite value, so the caller stops before anything NaN is
written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from robot_ssl.core.errors import RobotSSLError

__all__ = [
    "SCHEDULE_KINDS",
    "LRSchedule",
    "TrainingDiverged",
    "check_finite_loss",
    "make_optimizer",
    "optimisation_step",
]

SCHEDULE_KINDS = ("cosine", "step", "constant")


class TrainingDiverged(RobotSSLError):
    """The loss, the gradients or the weights became NaN or infinite: learning diverged."""


def make_optimizer(
    params: Iterable[torch.Tensor], lr: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over `params` (those that require gradients) in two groups: weight decay on
    weights (2 dimensions or more), none on biases and normalisation gains."""
    params = [p for p in params if p.requires_grad]
    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=lr,
    )


@dataclass(frozen=True)
class LRSchedule:
    """The learning rate at each step: linear warmup over `warmup_steps`, then `kind`:
    "cosine" decay from `lr` to `min_lr` at `total_steps`, "step" decay by `step_gamma`
    every `step_epochs` epochs (not below `min_lr`), or "constant" `lr`."""

    lr: float
    min_lr: float = 0.0
    warmup_steps: int = 0
    total_steps: int = 1
    kind: str = "cosine"
    step_gamma: float = 1.0
    step_epochs: int = 1

    @classmethod
    def constant(cls, lr: float) -> LRSchedule:
        return cls(lr, lr, kind="constant")

    def at(self, step: int, epoch: int = 0) -> float:
        """The learning rate of step `step` (0-based) in epoch `epoch` (0-based)."""
        if step >= self.warmup_steps and self.kind == "constant":
            return self.lr
        if step >= self.warmup_steps and self.kind == "step":
            return max(self.min_lr, self.lr * self.step_gamma ** (epoch // self.step_epochs))
        if step < self.warmup_steps:
            return self.lr * (step + 1) / (self.warmup_steps + 1)
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


def optimisation_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.Tensor],
    grad_clip: float,
    where: str,
    hint: str = "lower --lr or --weight-decay",
    lr: float | None = None,
) -> float:
    """Set every parameter group's learning rate to `lr` (None: leave it), backpropagate
    `loss`, clip the gradient norm of `params` to `grad_clip` (0: no clipping), step
    `optimizer`; returns the loss value.

    Raises TrainingDiverged ("training diverged at `where`: ...; `hint`") when the loss, the
    gradient norm or any weight is not finite after the step. The weights of `params`
    are then unusable: the caller must not save them (the online learner falls back on
    its averaged weights).
    """
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = nn.utils.clip_grad_norm_(params, grad_clip) if grad_clip > 0 else None
    optimizer.step()
    with torch.no_grad():
        largest = torch._foreach_norm([p.detach() for p in params], ord=math.inf)
        checked = [loss.detach().float().reshape(1), torch.stack(largest).float().amax(0, True)]
        if norm is not None:
            checked.append(norm.detach().float().reshape(1))
        values = torch.cat([c.to(loss.device) for c in checked]).tolist()  # one sync
    if not all(math.isfinite(v) for v in values):
        raise TrainingDiverged(
            f"training diverged at {where}: {_what(values)}{hint and '; '}{hint}"
        )
    return values[0]


def check_finite_loss(loss: torch.Tensor, where: str, hint: str = "") -> float:
    """The value of `loss`; TrainingDiverged ("training diverged at `where`: loss nan")
    when it is not finite (before a step, to learn that the current weights are usable)."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainingDiverged(f"training diverged at {where}: loss {value:g}{hint and '; '}{hint}")
    return value


def _what(values: list[float]) -> str:
    """Which checked values are not finite, in words."""
    names = ("loss", "largest weight", "gradient norm")
    return ", ".join(f"{n} {v:g}" for n, v in zip(names, values) if not math.isfinite(v))
