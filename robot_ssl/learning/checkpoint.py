"""The training checkpoint: one type, written by `train` and the online learner, read by
`train --resume`, `run`, `eval`, `export`, `replay` and `--learn`.

A checkpoint is a torch zip archive of tensors and plain Python values only, so it
loads with ``torch.load(path, weights_only=True)`` (:func:`load_weights_file`: the
archive's CRCs are checked first, an unsafe pickle is refused). :class:`Checkpoint`
names every key: the weights, the ModelConfig, the camera viewpoint of the training
sessions (robot_ssl.inference.viewpoint), the optimiser state and the run's history.
Files of earlier versions (no format, no viewpoint) still load: their viewpoint is None.
Writes are whole or nothing: serialised in memory (torch's own writer hides a full disk
behind "unexpected pos"; Python's write says ENOSPC), then written through
robot_ssl.core.outputs.atomic_output.
"""

from __future__ import annotations

import io
import math
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pinhole import Pinhole
from robot_ssl.core.outputs import OutputError, atomic_output, write_error
from robot_ssl.inference.integrity import (
    ModelIntegrityError,
    check_zip,
    one_line,
    refusal_reason,
)
from robot_ssl.inference.model_config import ModelConfig, ModelError

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "Checkpoint", "load_weights_file"]

CHECKPOINT_FORMAT = "robot-ssl/checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    """A detector's weights and everything that travels with them.

    `model` is the state dict; `viewpoint` the camera the training sessions were
    recorded with (None: not recorded, e.g. an older file); `optimizer` the optimiser
    state (for `--resume`); `epoch` is 0-based; `best_epoch` 1-based (-1: none yet);
    `train_sessions` name and SHA-256 of each training session (eval warns when one is
    evaluated again); `online` what the online learner adds (steps, raw weights).
    """

    model: dict[str, Any]
    model_config: ModelConfig
    viewpoint: Pinhole | None = None
    optimizer: dict[str, Any] | None = None
    train_config: dict[str, Any] = field(default_factory=dict)
    train_sessions: list[dict[str, str]] = field(default_factory=list)
    epoch: int = 0
    step: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -math.inf
    best_epoch: int = -1
    seed: int = 0
    world_size: int = 1
    online: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The plain mapping that is saved (tensors and plain values only)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": self.model,
            "model_config": self.model_config.to_dict(),
            "viewpoint": None if self.viewpoint is None else self.viewpoint.viewpoint_dict(),
            "optimizer": self.optimizer,
            "train_config": self.train_config,
            "train_sessions": self.train_sessions,
            "epoch": self.epoch,
            "step": self.step,
            "metrics": self.metrics,
            "history": self.history,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "seed": self.seed,
            "world_size": self.world_size,
            "online": self.online,
        }

    @classmethod
    def from_dict(cls, d: Any, path: str | Path) -> Checkpoint:
        """A Checkpoint from a loaded mapping; ModelError (one line) when it is not one."""
        if not isinstance(d, dict) or "model" not in d or "model_config" not in d:
            raise ModelError(f"{path}: not a robot-ssl checkpoint (no model/model_config)")
        try:
            viewpoint = d.get("viewpoint")
            return cls(
                model=d["model"],
                model_config=ModelConfig.from_dict(dict(d["model_config"])),
                viewpoint=None if viewpoint is None else Pinhole.from_viewpoint_dict(viewpoint),
                optimizer=d.get("optimizer"),
                train_config=dict(d.get("train_config") or {}),
                train_sessions=list(d.get("train_sessions") or []),
                epoch=int(d.get("epoch", 0)),
                step=int(d.get("step", 0)),
                metrics=dict(d.get("metrics") or {}),
                history=[dict(r) for r in d.get("history") or []],
                best_score=float(d.get("best_score", -math.inf)),
                best_epoch=int(d.get("best_epoch", -1)),
                seed=int(d.get("seed", 0)),
                world_size=int(d.get("world_size", 1)),
                online=d.get("online"),
            )
        except ModelError as e:
            raise ModelError(f"{path}: {e}") from None
        except (TypeError, ValueError) as e:
            raise ModelError(f"{path}: not a robot-ssl checkpoint ({one_line(e)})") from None

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """Read a checkpoint safely (`load_weights_file`) and check its keys."""
        return cls.from_dict(load_weights_file(path, "checkpoint"), path)

    def save(self, path: str | Path) -> None:
        """Write the checkpoint to `path` whole or not at all (OutputError on a full disk)."""
        save_weights_file(self.to_dict(), Path(path))


def save_weights_file(obj: dict[str, Any], path: Path) -> None:
    """torch.save `obj` to `path` atomically (checkpoints, encoder files); a failed write
    (full disk, I/O error) is an OutputError "cannot write PATH: REASON" and no file."""
    buf = io.BytesIO()
    torch.save(obj, buf)  # a file object: members are "archive/...", not the temporary name
    try:
        with atomic_output(path) as tmp, tmp.open("wb") as f:
            f.write(buf.getbuffer())
    except OutputError:
        raise
    except OSError as e:
        raise write_error(path, e) from None


def load_weights_file(path: str | Path, what: str = "checkpoint") -> Any:
    """Read a torch file of this project safely: integrity first, then
    `torch.load(weights_only=True)`; `what` names the file in errors ("checkpoint",
    "encoder file").

    Every member of the zip archive is checked against its CRC-32 before torch
    reads it (robot_ssl.inference.integrity.check_zip; torch itself does not check), so
    a damaged file is refused instead of giving wrong weights. A pickle that
    needs anything but tensors and plain values is refused with one line.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"no such {what}: {path}")
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as e:
        raise ModelError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if not is_zip:
        with path.open("rb") as f:
            head = f.read(4)
        if head.startswith(b"PK"):
            raise ModelIntegrityError(f"{path}: damaged {what} (truncated zip archive)")
        raise ModelError(f"{path}: not a readable robot-ssl {what} (not a torch zip archive)")
    check_zip(path, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols on stderr
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelIntegrityError(
            f"{path}: refused: not a plain-weights {what} (unsafe pickle: {refusal_reason(e)})"
        ) from None
    except Exception as e:  # torch raises many types for corrupt/foreign files
        raise ModelError(f"{path}: not a readable robot-ssl {what} ({one_line(e)})") from None
