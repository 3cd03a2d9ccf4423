"""Auto-labeller speed, memory, yield and truth agreement on a synthetic wander session.

    python -m benchmarks label_speed              # one hour, full report
    python -m benchmarks label_speed --quick      # 3 minutes, 1 minute per noise level
    python -m benchmarks label_speed --hours 0.1 --truth-minutes 5

A small closed-loop simulator (a 2 m x 2 m arena with cylinders, a Thymio with
its 7 IR sensors and the Enki IR response, a wander controller that drives
straight, stops, backs off obstacles and turns) makes a session in memory:
30 fps camera times, 10 Hz proximity, 100 Hz wheel odometry (integrated by
robot_ssl.core.odometry from noisy, miscalibrated wheel speeds) and 50 Hz truth.

Prints, on one core:
- labelling time (median of repeats) and frames per second; target: one hour
  in < 10 s; peak memory of the labelling (tracemalloc) and the process's
  max RSS; target < 2 GB;
- label yield (known cells, labelled frames) against the original method
  (streams merged on the sparsest stream, pose and frame taken at the merged
  rows only, candidates only at the merged rows); target >= 3x;
- agreement of the labels with the simulator's truth, for odometry noise
  from none to high.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import time
import tracemalloc
from dataclasses import dataclass

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from benchmarks import Parser
from benchmarks.results import Figure, Target
from robot_ssl.core.geometry import compose, relative
from robot_ssl.core.odometry import integrate_wheel_odometry
from robot_ssl.core.spec import RobotSpec
from robot_ssl.labelling.labeller import (
    LabelConfig,
    compare_with_truth,
    compute_labels,
    label_stats,
    truth_labels,
)

MS = 1_000_000
STEP_NS = 10 * MS  # wheel/odometry period (100 Hz)
CONTROL_STEPS = 10  # controller and proximity period: 10 steps = 100 ms


# -- world and sensors -----------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """Axis-aligned arena [0, size]^2 with cylinders (cx, cy, r)."""

    size_m: float
    cylinders: np.ndarray  # (C, 3)

    @classmethod
    def random(cls, rng: np.random.Generator, size_m: float = 2.0, n: int = 6) -> World:
        cyl = np.column_stack(
            [
                rng.uniform(0.4, size_m - 0.4, n),
                rng.uniform(0.4, size_m - 0.4, n),
                rng.uniform(0.04, 0.15, n),
            ]
        )
        return cls(size_m, cyl)

    def ray_distance(self, origin: np.ndarray, angle: np.ndarray) -> np.ndarray:
        """Distance from origin (..., 2) along angle (...) to the first wall or cylinder."""
        ux, uy = np.cos(angle), np.sin(angle)
        px, py = origin[..., 0], origin[..., 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = np.where(ux > 0, (self.size_m - px) / ux, np.where(ux < 0, -px / ux, np.inf))
            ty = np.where(uy > 0, (self.size_m - py) / uy, np.where(uy < 0, -py / uy, np.inf))
        best = np.maximum(np.minimum(tx, ty), 0.0)
        for cx, cy, r in self.cylinders:
            ox, oy = px - cx, py - cy
            b = ux * ox + uy * oy
            c = ox * ox + oy * oy - r * r
            disc = b * b - c
            with np.errstate(invalid="ignore"):
                t = -b - np.sqrt(disc)
            hit = (disc >= 0) & (-b + np.sqrt(np.maximum(disc, 0)) >= 0)
            best = np.where(hit, np.minimum(best, np.maximum(t, 0.0)), best)
        return best


def sensor_distances(world: World, robot: RobotSpec, pose: np.ndarray) -> np.ndarray:
    """True distance (T, 7) along each IR sensor's axis from poses (T, 3)."""
    sp = np.asarray(robot.prox_poses())  # (7, 3)
    world_sp = compose(pose[:, None, :], sp[None, :, :])  # (T, 7, 3)
    return world.ray_distance(world_sp[..., :2], world_sp[..., 2])


def ir_reading(distance_m: np.ndarray, rng: np.random.Generator, range_m: float) -> np.ndarray:
    """Enki's IR response F(x) (x in cm) with Gaussian noise; 0 beyond the range."""
    m, x0, c = 4505.0, 0.03, 73.0
    x = distance_m * 100.0
    f = m * (c - x0**2) / (x * x - 2 * x0 * x + c)
    f = f + rng.normal(0.0, 3.0, f.shape)
    return np.where(distance_m < range_m, np.clip(np.round(f), 1, 4505), 0).astype(np.int16)


# -- wander simulation -------------------------------------------------------------------------


@dataclass(frozen=True)
class OdometryNoise:
    """Wheel-speed measurement noise (raw units, per 10 ms sample) and calibration error."""

    name: str
    speed_sigma_units: float
    calibration_sd: float  # per-wheel relative error of the speed conversion


NOISE_LEVELS = (
    OdometryNoise("none", 0.0, 0.0),
    OdometryNoise("low", 2.0, 0.01),
    OdometryNoise("medium", 5.0, 0.03),
    OdometryNoise("high", 10.0, 0.08),
    OdometryNoise("severe", 20.0, 0.15),
)


@dataclass
class SyntheticSession:
    camera_t_ns: np.ndarray
    prox_t_ns: np.ndarray
    prox_values: np.ndarray
    odom_t_ns: np.ndarray
    odom_pose: np.ndarray
    truth_t_ns: np.ndarray
    truth_pose: np.ndarray
    truth_distance_m: np.ndarray


def _arc_steps(pose0: np.ndarray, v: np.ndarray, w: np.ndarray, dt_s: float) -> np.ndarray:
    """Poses after each of len(v) constant-twist steps of dt_s, starting at pose0."""
    dth = w * dt_s
    theta = pose0[2] + np.concatenate([[0.0], np.cumsum(dth)])
    chord = v * dt_s * np.sinc(dth / (2 * np.pi))
    mid = theta[:-1] + 0.5 * dth
    x = pose0[0] + np.concatenate([[0.0], np.cumsum(chord * np.cos(mid))])
    y = pose0[1] + np.concatenate([[0.0], np.cumsum(chord * np.sin(mid))])
    return np.column_stack([x, y, theta])


def simulate(duration_s: float, seed: int, noise: OdometryNoise) -> SyntheticSession:
    """A wander session: closed-loop control at 10 Hz, everything else vectorised afterwards."""
    rng = np.random.default_rng(seed)
    robot = RobotSpec()
    world = World.random(np.random.default_rng(seed + 1000))
    n_ctrl = int(duration_s * 1000 / (CONTROL_STEPS * 10))
    dt_ctrl = CONTROL_STEPS * STEP_NS / 1e9
    front = np.asarray(robot.prox_poses())[list(robot.front_sensor_indices)]
    # the robot's true speed per raw unit, relative to the nominal one odometry assumes
    cal = 1.0 + rng.normal(0.0, noise.calibration_sd, 2)

    pose = np.array([world.size_m / 2, world.size_m / 2, 0.0])
    cmd = np.zeros((n_ctrl, 2))  # commanded wheel speeds (m/s), held for 100 ms
    poses = np.empty((n_ctrl + 1, 3))
    poses[0] = pose
    mode, left, v_run, w_run = "forward", 0, 0.1, 0.0
    for k in range(n_ctrl):
        sp = compose(pose, front)
        dmin = float(world.ray_distance(sp[:, :2], sp[:, 2]).min())
        ahead = pose[:2] + 0.14 * np.array([math.cos(pose[2]), math.sin(pose[2])])
        blocked = (
            dmin < rng.uniform(0.02, 0.06)
            or world.ray_distance(pose[None, :2], np.array([pose[2]]))[0] < 0.16
            or not (0.0 < ahead[0] < world.size_m and 0.0 < ahead[1] < world.size_m)
        )
        if mode == "forward" and blocked:
            if rng.random() < 0.5:
                mode, left = "reverse", int(rng.integers(3, 10))
            else:
                mode, left = "turn", int(rng.integers(5, 25))
                w_run = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.0)
        elif left <= 0 and mode != "forward":
            if mode == "reverse":
                mode, left = "turn", int(rng.integers(5, 25))
                w_run = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.0)
            else:
                mode, v_run = "forward", rng.uniform(0.05, 0.15)
                w_run = rng.normal(0.0, 0.03) if rng.random() < 0.3 else 0.0
        elif mode == "forward" and rng.random() < 0.003:
            mode, left = "stop", int(rng.integers(10, 30))
        left -= 1
        v, w = {"forward": (v_run, w_run), "reverse": (-0.08, 0.0), "turn": (0.0, w_run)}.get(
            mode, (0.0, 0.0)
        )
        half = 0.5 * w * robot.axle_length_m
        cmd[k] = (v - half, v + half)
        tv, tw = cmd[k].mean(), (cmd[k, 1] - cmd[k, 0]) / robot.axle_length_m
        pose = _arc_steps(pose, np.array([tv]), np.array([tw]), dt_ctrl)[-1]
        poses[k + 1] = pose

    # 100 Hz truth: each 100 ms step split in 10 equal arcs of the same twist.
    true_lr = np.repeat(cmd, CONTROL_STEPS, axis=0)
    tv = true_lr.mean(axis=1)
    tw = (true_lr[:, 1] - true_lr[:, 0]) / robot.axle_length_m
    frac = np.arange(CONTROL_STEPS) * 0.01
    local = np.zeros((n_ctrl, CONTROL_STEPS, 3))
    tv_c, tw_c = tv[::CONTROL_STEPS, None], tw[::CONTROL_STEPS, None]
    dth = tw_c * frac
    chord = tv_c * frac * np.sinc(dth / (2 * np.pi))
    local[..., 0] = chord * np.cos(dth / 2)
    local[..., 1] = chord * np.sin(dth / 2)
    local[..., 2] = dth
    fine = compose(poses[:-1, None, :], local).reshape(-1, 3)
    fine = np.concatenate([fine, poses[-1:]])
    t_fine = np.arange(fine.shape[0], dtype=np.int64) * STEP_NS + 1_000 * MS

    # Odometry from measured wheel speeds (raw units, nominal conversion, noise).
    if noise.speed_sigma_units == 0 and noise.calibration_sd == 0:
        odom_pose = fine.copy()
    else:
        units = np.concatenate([true_lr, true_lr[-1:]]) / (robot.speed_m_per_unit * cal)
        measured = np.round(units + rng.normal(0.0, noise.speed_sigma_units, units.shape))
        odom_pose, _ = integrate_wheel_odometry(t_fine, measured, robot, initial_pose=fine[0])
    odom_t = t_fine

    # Proximity at 10 Hz (jittered by one step), truth at 50 Hz, camera at 30 fps.
    prox_i = np.arange(5, fine.shape[0] - 5, CONTROL_STEPS)
    prox_i += rng.integers(-1, 2, prox_i.size)
    prox_values = ir_reading(sensor_distances(world, robot, fine[prox_i]), rng, robot.prox_range_m)
    truth_i = np.arange(0, fine.shape[0], 2)
    truth_d = sensor_distances(world, robot, fine[truth_i]).astype(np.float32)
    n_cam = int(duration_s * 30)
    cam_t = t_fine[0] + np.round(np.arange(n_cam) * 1e9 / 30).astype(np.int64)
    cam_t += rng.integers(-2 * MS, 2 * MS, n_cam)
    cam_t = np.sort(np.delete(cam_t, rng.choice(n_cam, n_cam // 200, replace=False)))
    return SyntheticSession(
        camera_t_ns=cam_t,
        prox_t_ns=t_fine[prox_i],
        prox_values=prox_values,
        odom_t_ns=odom_t,
        odom_pose=odom_pose,
        truth_t_ns=t_fine[truth_i],
        truth_pose=fine[truth_i],
        truth_distance_m=truth_d,
    )


# -- the original method -----------------------------------------------------------------------


def original_method_known_cells(s: SyntheticSession, cfg: LabelConfig) -> tuple[int, int]:
    """(known cells, labelled frames) of the original pipeline, vectorised.

    As in the original code: the streams are merged on the sparsest one (here the
    proximity), each merged row takes the first camera frame and the first
    odometry pose at or after its time (no interpolation); for distance d (cm)
    the candidates are the merged rows in [t + round(d / 20, 1) s, t + round(d /
    5, 1) s] (speeds 5..20 cm/s), filtered with strict tolerances and an
    unwrapped heading difference, and the first candidate wins.
    """
    counts = {"camera": s.camera_t_ns.size, "proximity": s.prox_t_ns.size}
    counts["odometry"] = s.odom_t_ns.size
    assert min(counts, key=counts.get) == "proximity"
    row_t = s.prox_t_ns
    cam_i = np.searchsorted(s.camera_t_ns, row_t, side="left")
    odo_i = np.searchsorted(s.odom_t_ns, row_t, side="left")
    keep = (cam_i < s.camera_t_ns.size) & (odo_i < s.odom_t_ns.size)
    row_t, cam_i, pose = row_t[keep], cam_i[keep], s.odom_pose[odo_i[keep]]
    n = row_t.size
    known = np.zeros((n, len(cfg.distances_m)), dtype=bool)
    for k, d_m in enumerate(cfg.distances_m):
        d_cm = d_m * 100
        a = round(round(d_cm / 20.0, 1) * 1e9)
        b = round(round(d_cm / 5.0, 1) * 1e9)
        lo = np.searchsorted(row_t, row_t + a, side="left")
        hi = np.searchsorted(row_t, row_t + b, side="right")
        wmax = int((hi - lo).max())
        for start in range(0, n, 20_000):
            sl = slice(start, min(start + 20_000, n))
            cols = np.arange(wmax)
            idx = np.minimum(lo[sl, None] + cols, n - 1)
            inwin = cols < (hi[sl] - lo[sl])[:, None]
            rel = relative(pose[sl, None, :], pose[idx])
            dth = pose[idx][..., 2] - pose[sl, None, 2]  # not wrapped
            ok = inwin & (rel[..., 0] > d_m - cfg.tol_d_m) & (rel[..., 0] < d_m + cfg.tol_d_m)
            ok &= (np.abs(rel[..., 1]) < cfg.tol_y_m) & (np.abs(dth) < cfg.tol_theta_rad)
            known[sl, k] = ok.any(axis=1)
    cells = int(known.sum()) * len(cfg.sensor_indices)
    return cells, int(np.unique(cam_i[known.any(axis=1)]).size)


# -- report --------------------------------------------------------------------------------------


def _label(s: SyntheticSession, cfg: LabelConfig):
    return compute_labels(s.camera_t_ns, s.prox_t_ns, s.prox_values, s.odom_t_ns, s.odom_pose, cfg)


def speed_and_yield(hours: float, repeats: int, seed: int) -> Figure:
    cfg = LabelConfig()
    t0 = time.perf_counter()
    s = simulate(hours * 3600, seed, NOISE_LEVELS[1])
    print(
        f"session: {hours:g} h, {s.camera_t_ns.size} frames, {s.prox_t_ns.size} proximity, "
        f"{s.odom_t_ns.size} odometry samples (built in {time.perf_counter() - t0:.1f} s)"
    )
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        grid = _label(s, cfg)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    tracemalloc.start()
    _label(s, cfg)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"labelling: median {med:.2f} s over {repeats} runs (min {min(times):.2f} s), "
        f"{s.camera_t_ns.size / med:,.0f} frames/s, {hours * 3600 / med:,.0f}x real time"
    )
    print(
        f"memory: labelling peak {peak / 2**20:,.0f} MiB (tracemalloc), process max RSS {rss_mb:,.0f} MiB"
    )
    st = label_stats(grid.labels)
    cells, frames = original_method_known_cells(s, cfg)
    print(
        f"yield: {st.known_cells:,} known cells ({100 * st.known_fraction:.1f}% of all), "
        f"{st.frames_with_labels:,} labelled frames, {100 * st.positive_fraction:.1f}% positive"
    )
    print(f"original method: {cells:,} known cells, {frames:,} labelled frames")
    ratio = st.known_cells / max(cells, 1)
    print(f"yield ratio: {ratio:.2f}x cells, {st.frames_with_labels / max(frames, 1):.2f}x frames")
    per_hour_s = med / hours
    peak_mib = peak / 2**20
    return Figure(
        f"{hours:g} h at 30 fps camera, 10 Hz prox, one core",
        f"{med:.1f} s ({s.camera_t_ns.size / med:,.0f} frames/s), {peak_mib:,.0f} MiB peak; "
        f"{ratio:.2f}x the known cells of the original merge-on-sparsest-stream method",
        (
            Target("< 10 s for one hour", per_hour_s < 10.0),
            Target("< 2 GB", peak_mib < 2048.0),
            Target(">= 3x the known cells", ratio >= 3.0),
        ),
        {
            "label_s": med,
            "label_s_per_hour": per_hour_s,
            "peak_mib": peak_mib,
            "yield_ratio": ratio,
        },
    )


def truth_report(minutes: float, seed: int) -> None:
    cfg = LabelConfig()
    robot = RobotSpec()
    print(f"\ntruth agreement ({minutes:g} min session per noise level, same world and path):")
    print(
        f"{'noise':>8} {'sigma':>6} {'calib':>6} {'known%':>7} {'agree%':>7} {'prec%':>6} {'recall%':>7} {'lab-only%':>9}"
    )
    for noise in NOISE_LEVELS:
        s = simulate(minutes * 60, seed, noise)
        grid = _label(s, cfg)
        truth = truth_labels(
            s.camera_t_ns, s.truth_t_ns, s.truth_pose, s.truth_distance_m, robot.prox_range_m, cfg
        )
        a = compare_with_truth(grid.labels, truth.labels)
        st = label_stats(grid.labels)
        lab_only = a.label_only / max(st.known_cells, 1)
        print(
            f"{noise.name:>8} {noise.speed_sigma_units:>6g} {noise.calibration_sd:>6g} "
            f"{100 * st.known_fraction:>7.1f} {100 * a.agreement:>7.2f} {100 * a.precision:>6.1f} "
            f"{100 * a.recall:>7.1f} {100 * lab_only:>9.1f}"
        )


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m benchmarks label_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--hours", type=float, default=None, help="speed/yield session (1; quick 0.05)")
    p.add_argument("--repeats", type=int, default=None, help="repeats (3; quick 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--truth-minutes", type=float, default=None, help="0 skips the truth report (15; quick 1)"
    )
    return p


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Speed, memory and yield on one core, then the truth report."""
    args = parser().parse_args(argv)
    hours = args.hours or (0.05 if quick else 1.0)
    repeats = args.repeats or (1 if quick else 3)
    truth_minutes = args.truth_minutes if args.truth_minutes is not None else (1 if quick else 15)
    if hasattr(os, "sched_setaffinity"):  # one core
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(affinity)})
    try:
        figure = speed_and_yield(hours, repeats, args.seed)
        if truth_minutes > 0:
            truth_report(truth_minutes, args.seed)
    finally:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, affinity)
    return [figure]
