"""Label uncertainty from odometry noise (Nava et al., RA-L 2021): Monte Carlo replays.

A label says what a sensor read once the robot stood d ahead of its pose at the frame,
and "d ahead" comes from integrating the wheel speeds: odometry error moves the matched
moment, the more so the further the robot drove. Each replay integrates the wheel speeds
again with perturbed speeds (a relative scale error per replay and wheel, plus relative
noise per sample), relabels the frames with the same rule, and the confidence of a known
cell is the fraction of replays that give it the same label (a replay that finds no
match for the cell does not agree). Cells near the frame keep their labels; cells far
along the drive lose confidence. Unknown cells get confidence 0.
"""

from __future__ import annotations

import numpy as np

from robot_ssl.core.label_grid import LabelConfig, LabelGrid
from robot_ssl.core.odometry import DEFAULT_MAX_GAP_NS, integrate_wheel_odometry
from robot_ssl.core.spec import RobotSpec
from robot_ssl.labelling.labeller import LabelInputError, compute_labels

__all__ = ["label_confidence", "perturbed_speeds"]


def perturbed_speeds(
    speed_units: np.ndarray, scale_std: float, step_std: float, rng: np.random.Generator
) -> np.ndarray:
    """(K, 2) wheel speeds with one replay's errors: speed * (1 + scale) * (1 + noise),
    scale ~ N(0, scale_std) per wheel for the whole replay, noise ~ N(0, step_std) per sample."""
    speed = np.asarray(speed_units, dtype=np.float64)
    scale = 1.0 + rng.normal(0.0, scale_std, size=(1, 2))
    noise = 1.0 + rng.normal(0.0, step_std, size=speed.shape)
    return speed * scale * noise


def label_confidence(
    nominal: LabelGrid,
    camera_t_ns: np.ndarray,
    prox_t_ns: np.ndarray,
    prox_values: np.ndarray,
    wheel_t_ns: np.ndarray,
    wheel_speed_units: np.ndarray,
    robot: RobotSpec,
    config: LabelConfig,
    camera_offset_s: float,
    prox_presence: np.ndarray | None = None,
) -> np.ndarray:
    """float32 (N, S, D): per cell, the fraction of `config.uncertainty_replays` odometry
    replays whose label equals `nominal`'s (0 where `nominal` is unknown).

    Each replay matches the same frames and proximity samples with the same rule and
    camera offset (and `prox_presence`, the sensors' obstacle / free / unknown, see
    `compute_labels`) as the nominal labels, only the odometry differs.
    """
    wheel_t = np.asarray(wheel_t_ns, dtype=np.int64)
    if wheel_t.size < 2:
        raise LabelInputError("label uncertainty needs the session's wheel speeds: none recorded")
    keep = np.concatenate([[True], np.diff(wheel_t) > 0])  # equal stamps: keep the first
    wheel_t, speed = wheel_t[keep], np.asarray(wheel_speed_units)[keep]
    rng = np.random.default_rng(config.uncertainty_seed)
    agree = np.zeros(nominal.labels.shape, dtype=np.int32)
    known = nominal.labels >= 0
    for _ in range(config.uncertainty_replays):
        noisy = perturbed_speeds(
            speed, config.uncertainty_scale_std, config.uncertainty_step_std, rng
        )
        pose, _ = integrate_wheel_odometry(wheel_t, noisy, robot, max_gap_ns=DEFAULT_MAX_GAP_NS)
        replay = compute_labels(
            camera_t_ns, prox_t_ns, prox_values, wheel_t, pose, config,
            camera_offset_s=camera_offset_s, prox_presence=prox_presence,
        )  # fmt: skip
        agree += known & (replay.labels == nominal.labels)
    return (agree / config.uncertainty_replays).astype(np.float32)
