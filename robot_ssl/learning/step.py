"""The one optimisation step of `train`, `pretrain` and the online learner, with the
check that learning has not diverged.

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
from collections.abc import Sequence

import torch
from torch import nn

from robot_ssl.core.errors import RobotSSLError

__all__ = ["TrainingDiverged", "check_finite_loss", "optimisation_step"]


class TrainingDiverged(RobotSSLError):
    """The loss, the gradients or the weights became NaN or infinite: learning diverged."""


def optimisation_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.Tensor],
    grad_clip: float,
    where: str,
    hint: str = "lower --lr or --weight-decay",
) -> float:
    """Backpropagate `loss`, clip the gradient norm of `params` to `grad_clip` (0: no
    clipping), step `optimizer`; returns the loss value.

    Raises TrainingDiverged ("training diverged at `where`: ...; `hint`") when the loss, the
    gradient norm or any weight is not finite after the step. The weights of `params`
    are then unusable: the caller must not save them (the online learner falls back on
    its averaged weights).
    """
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
