"""Policies from controllers: a proximity controller (wander, IR-reactive) or a detector
with a grid controller (camera avoid, monitor). The controllers stay pure functions of
perception (robot_ssl.live.controllers, robot_ssl.recording.wander); these adapters say
when they are asked and what they are given."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from robot_ssl.runtime.interfaces import TRIGGERS, Perception, Predictor, Situation

__all__ = ["CameraPolicy", "GridController", "ProximityPolicy"]

ProximityCommand = Callable[[np.ndarray, int, "np.ndarray | None"], tuple[int, int]]


class ProximityPolicy:
    """Wheel targets from the newest proximity reading: `command(proximity, t_ns, pose)`,
    asked on every wheel poll (`trigger="wheels"`: the wander drive of `record`) or on
    every proximity refresh (`"proximity"`: the IR-reactive baseline)."""

    def __init__(self, command: ProximityCommand, trigger: str = "proximity") -> None:
        if trigger not in ("wheels", "proximity"):
            raise ValueError(f"a proximity policy triggers on wheels or proximity, not {trigger!r}")
        self.command = command
        self.trigger = trigger

    def perceive(self, image_bgr: np.ndarray) -> Perception:
        return Perception(None)

    def decide(self, situation: Situation) -> tuple[int, int] | None:
        if situation.proximity is None:
            return None
        return self.command(situation.proximity, situation.t_ns, situation.pose)

    def status(self) -> str:
        return ""


class GridController(Protocol):
    """Detector grid -> wheel targets (robot_ssl.live.controllers.CameraAvoidController)."""

    def clearance(self, prob: np.ndarray) -> np.ndarray: ...

    def command(
        self, prob: np.ndarray, t_ns: int, pose: np.ndarray | None = None
    ) -> tuple[int, int]: ...


class CameraPolicy:
    """The detector on every new frame, then the grid controller (`drive`) or nothing
    (monitoring: the robot never moves, the watchdog still notes fresh frames)."""

    trigger = "frame"

    def __init__(self, predictor: Predictor, controller: GridController, drive: bool) -> None:
        assert self.trigger in TRIGGERS
        self.predictor = predictor
        self.controller = controller
        self.drive = drive
        self.last_clearance_m: np.ndarray | None = None

    def perceive(self, image_bgr: np.ndarray) -> Perception:
        t0 = time.perf_counter()
        batch = self.predictor.preprocess(image_bgr[None])
        t1 = time.perf_counter()
        prob = np.asarray(self.predictor.infer(batch)[0])
        t2 = time.perf_counter()
        return Perception(prob, {"preprocess": t1 - t0, "inference": t2 - t1})

    def decide(self, situation: Situation) -> tuple[int, int] | None:
        p = situation.perception
        if p is None or p.prob is None:
            return None
        self.last_clearance_m = self.controller.clearance(p.prob)
        if not self.drive:
            return None
        return self.controller.command(p.prob, situation.t_ns, pose=situation.pose)

    def status(self) -> str:
        c = self.last_clearance_m
        return "obstacle " + (
            "-" if c is None or not np.isfinite(c).any() else f"{np.min(c):.2f} m"
        )
