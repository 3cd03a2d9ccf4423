"""The configuration of `robot-ssl eval` (`EvalConfig`), torch-free, so the command line is
generated from it (one option per field) without loading torch and its defaults are
typed once, here. The evaluation itself is robot_ssl/learning/evaluate.py
(`evaluate_config(cfg)` runs one `EvalConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass

from robot_ssl.core.config import (
    MAX_BATCH,
    MAX_BOOTSTRAP,
    MAX_SEED,
    MAX_THREADS,
    bounded,
    check_bounds,
)
from robot_ssl.core.errors import RobotSSLError

__all__ = ["BOOTSTRAP_UNITS", "DEFAULT_BLOCK_S", "EvalConfig", "EvalConfigError"]

DEFAULT_BLOCK_S = 10.0  # block bootstrap: frames at 30 fps are not independent
BOOTSTRAP_UNITS = ("block", "session")
"""The bootstrap's unit: `block_s`-second blocks of each session, or whole sessions per world."""


class EvalConfigError(RobotSSLError):
    """An eval setting is out of range (one line, exit 2)."""


@dataclass(frozen=True)
class EvalConfig:
    """What `robot-ssl eval` does: ROC AUC per (sensor, distance) of `model` on `data`.

    `labels_dir` (None: each session's labels beside it); `cache_dir` decoded frames
    (None: no cache); `json_out` the JSON report; `out_dir` report.json and the PNGs;
    `bootstrap` replicates (0: none) at `confidence`, resampling `block_s`-second blocks
    of each session (0: single frames), or with `bootstrap_unit` "session" whole sessions
    per world (several recorded drives of each world, issue 27); `truth` also against simulator truth;
    `num_threads` inference threads (None: the runtime's default); `progress` bars and
    the table; `allow_viewpoint_mismatch` a model trained with another camera viewpoint.
    """

    model: str = ""
    data: tuple[str, ...] = ()
    labels_dir: str | None = None
    cache_dir: str | None = None
    json_out: str | None = None
    out_dir: str | None = None
    bootstrap: int = bounded(1000, 0, MAX_BOOTSTRAP)
    confidence: float = bounded(0.95, 0, 1, min_inclusive=False, max_inclusive=False)
    block_s: float = bounded(DEFAULT_BLOCK_S, 0, 24 * 3600.0)
    bootstrap_unit: str = "block"
    truth: bool = False
    seed: int = bounded(0, 0, MAX_SEED)
    batch_size: int = bounded(256, 1, MAX_BATCH)
    num_threads: int | None = bounded(None, 1, MAX_THREADS)
    progress: bool = True
    allow_viewpoint_mismatch: bool = False

    def __post_init__(self) -> None:
        check_bounds(self, "eval", EvalConfigError)
        if self.bootstrap_unit not in BOOTSTRAP_UNITS:
            raise EvalConfigError(
                f"eval: bootstrap_unit must be one of {', '.join(BOOTSTRAP_UNITS)}, "
                f"got {self.bootstrap_unit!r}"
            )
        object.__setattr__(self, "data", tuple(str(d) for d in self.data))
