"""Label sources besides the proximity sensors: contacts and the floor the body swept.

The meaning of a cell does not change with its source (robot_ssl.labelling.labeller):
cell (s, d) of the frame at t is 1 when, at the pose d straight ahead of the pose at t,
sensor s has an obstacle within its reach along its axis, 0 when it has none. Three
sources say so, each for the cells it can vouch for (-1 elsewhere):

- "ir": the proximity readings at the matched pose (`compute_labels`, any sensor kind).
- "contact": a contact detected at time tc, at the odometry pose P, labels the frames
  taken on the approach. A frame at t whose later trajectory reaches P driving straight
  (every pose in between within the tolerances of the matching rule, no backtracking,
  same odometry segment, within the horizon) has the obstacle about D = dx(P) ahead,
  touching the body's front at the contact's bearing (the front point of the driving
  direction when the detector gives none). The obstacle's surface is taken as tangent
  to the body at that point; cell (s, d) is 1 when the sensor faces the touched point
  (its axis leaves the body within `contact_bearing_tol_rad` of it) and, at the pose d,
  its axis meets that surface within the sensor's reach. Other cells stay unknown.
- "traversal": a frame whose pose the robot then drove straight on from, up to dx = X
  (before any contact), saw free floor wherever the body's disc later passed: cell
  (s, d) with d reached is 0 when the sensor's whole reach (its axis and, for a sensor
  with a field of view, both edges of its beam, from the sensor to the end of its
  reach) lies inside the swept corridor, shrunk by the lateral tolerance and
  `traversal_margin_m`. Wide-angle or long-range sensors leave the corridor and stay
  unknown.

Combined with "ir" first, then "contact", then "traversal": the first source that knows
a cell gives its label, and the per-cell source code (core.label_grid.SOURCE_CODES)
records which one. Pure numpy on arrays; the session wiring is in session_labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from robot_ssl.core.geometry import interpolate_poses, relative, segment_ids, wrap_angle
from robot_ssl.core.label_grid import (
    LABEL_SOURCES,
    SOURCE_CODES,
    UNKNOWN,
    LabelConfig,
    LabelGrid,
    LabellingError,
)

__all__ = [
    "SensorGeometry",
    "SourcePlan",
    "StraightRuns",
    "add_sources",
    "agreement_by_source",
    "combine_sources",
    "contact_labels",
    "odometry_grid",
    "plan_sources",
    "sensor_geometry",
    "straight_runs",
    "traversal_labels",
]

_NS_PER_S = 1_000_000_000
_BLOCK = 64  # odometry samples per step of the straight-run scan
_CHUNK_ROWS = 4096
_CANDIDATE_STEP_NS = 50_000_000  # odometry_grid's candidate spacing  # frames per block of contact and traversal cells


@dataclass(frozen=True)
class SensorGeometry:
    """The labelled sensors' geometry in the robot frame, one entry per grid sensor.

    x_m, y_m, theta_rad (S,): pose; reach_m (S,): an obstacle closer than this along the
    axis is an obstacle; fov_rad (S,): beam width (0: one ray); body_radius_m: the body's
    disc; exit_bearing_rad (S,): bearing on the body's edge where the sensor's axis
    leaves the disc (the sensor's own bearing when it sits on or outside the edge).
    """

    x_m: np.ndarray
    y_m: np.ndarray
    theta_rad: np.ndarray
    reach_m: np.ndarray
    fov_rad: np.ndarray
    body_radius_m: float

    @property
    def exit_bearing_rad(self) -> np.ndarray:
        r = self.body_radius_m
        ux, uy = np.cos(self.theta_rad), np.sin(self.theta_rad)
        pu = self.x_m * ux + self.y_m * uy
        pp = self.x_m**2 + self.y_m**2
        lam = np.maximum(-pu + np.sqrt(np.maximum(pu**2 - pp + r**2, 0.0)), 0.0)
        lam = np.where(pp < r**2, lam, 0.0)
        return np.arctan2(self.y_m + lam * uy, self.x_m + lam * ux)


def sensor_geometry(robot, sensor_indices: Sequence[int]) -> SensorGeometry:
    """The geometry of `robot`'s sensors `sensor_indices` (a RobotSpec): a sensor's reach
    is its own `range_m` when it has one, else the robot's `prox_range_m`."""
    n = len(robot.prox_sensors)
    bad = [i for i in sensor_indices if not 0 <= i < n]
    if bad:
        raise LabellingError(f"sensor_indices {bad} out of range: the robot has {n} sensors")
    chosen = [robot.prox_sensors[i] for i in sensor_indices]

    def reach(i: int) -> float:
        if hasattr(robot, "reach_m"):  # per kind (a contact sensor's own default)
            return float(robot.reach_m(i))
        r = getattr(robot.prox_sensors[i], "range_m", None)
        return float(robot.prox_range_m if r is None else r)

    return SensorGeometry(
        x_m=np.array([s.x_m for s in chosen], np.float64),
        y_m=np.array([s.y_m for s in chosen], np.float64),
        theta_rad=np.array([s.theta_rad for s in chosen], np.float64),
        reach_m=np.array([reach(i) for i in sensor_indices], np.float64),
        fov_rad=np.array([float(getattr(s, "fov_rad", 0.0) or 0.0) for s in chosen]),
        body_radius_m=float(robot.body_radius_m),
    )


@dataclass(frozen=True)
class StraightRuns:
    """How far each frame's robot then drove straight on (the shared half of contact and
    traversal labels).

    reach_m (N,): the largest dx of the straight run from the frame's pose (NaN: the frame
    has no pose). contact (N,) int64: index of the contact the run ended on (-1: none);
    contact_dx_m (N,): dx of the pose at that contact (NaN: none).
    """

    reach_m: np.ndarray
    contact: np.ndarray
    contact_dx_m: np.ndarray


def straight_runs(
    frame_t_ns: np.ndarray,
    odom_t_ns: np.ndarray,
    odom_pose: np.ndarray,
    contact_t_ns: np.ndarray,
    config: LabelConfig,
    *,
    chunk_rows: int = 4096,
) -> StraightRuns:
    """Each frame's straight run: from the pose at its exposure time `frame_t_ns`, the
    odometry poses that follow (within the horizon, the odometry segment, and before the
    next contact) while each stays within |dy| < tol_y_m and |dtheta| < tol_theta_rad of
    the frame's axis and was reached driving forward (the labeller's backward-motion
    rule). The run ends at the first pose that breaks these; a run still going at the
    next contact's time (the pose there included) ends on that contact."""
    cam_t = np.asarray(frame_t_ns, np.int64)
    odom_t = np.asarray(odom_t_ns, np.int64)
    pose = np.asarray(odom_pose, np.float64)
    contacts = np.sort(np.asarray(contact_t_ns, np.int64))
    n = cam_t.size
    reach = np.full(n, np.nan)
    contact = np.full(n, -1, np.int64)
    contact_dx = np.full(n, np.nan)
    if n == 0 or odom_t.size < 2:
        return StraightRuns(reach, contact, contact_dx)
    max_gap_ns = round(config.max_gap_s * _NS_PER_S)
    seg = segment_ids(odom_t, max_gap_ns)
    seg_end = odom_t[np.concatenate([np.flatnonzero(np.diff(seg)), [odom_t.size - 1]])]
    i = np.clip(np.searchsorted(odom_t, cam_t, side="right") - 1, 0, odom_t.size - 1)
    frame_pose = interpolate_poses(odom_t, pose, cam_t, max_gap_ns)
    ok_frame = np.isfinite(frame_pose).all(axis=1)
    k = np.searchsorted(contacts, cam_t, side="left")
    padded = np.concatenate([contacts, [-1]])  # -1: no contact after the frame
    next_contact = padded[k]
    limit = np.minimum(cam_t + round(config.horizon_s * _NS_PER_S), seg_end[seg[i]])
    has_contact = (next_contact >= 0) & (next_contact <= limit)
    end_t = np.where(has_contact, next_contact, limit)
    lo = np.searchsorted(odom_t, cam_t, side="left")
    width = np.where(ok_frame, np.maximum(np.searchsorted(odom_t, end_t, "left") - lo, 0), 0)
    end_pose = interpolate_poses(odom_t, pose, end_t, max_gap_ns)
    for a in range(0, n, chunk_rows):
        b = min(a + chunk_rows, n)
        r, alive, run_max = _scan(frame_pose[a:b], lo[a:b], width[a:b], ok_frame[a:b], pose, config)
        rel = relative(frame_pose[a:b], end_pose[a:b])
        ok_end = alive & _straight(rel, run_max, config)
        r = np.where(ok_end, np.fmax(r, rel[:, 0]), r)
        reach[a:b] = np.where(ok_frame[a:b], r, np.nan)
        hit = ok_end & has_contact[a:b]
        contact[a:b] = np.where(hit, k[a:b], -1)
        contact_dx[a:b] = np.where(hit, rel[:, 0], np.nan)
    return StraightRuns(reach, contact, contact_dx)


def _straight(rel: np.ndarray, prev_max: np.ndarray, cfg: LabelConfig) -> np.ndarray:
    """Which relative poses continue a straight run (prev_max: the run's furthest dx before)."""
    return (
        (rel[..., 0] >= prev_max - cfg.max_backtrack_m)
        & (np.abs(rel[..., 1]) < cfg.tol_y_m)
        & (np.abs(rel[..., 2]) < cfg.tol_theta_rad)
    )


def _scan(
    frame_pose: np.ndarray,
    lo: np.ndarray,
    width: np.ndarray,
    ok_frame: np.ndarray,
    pose: np.ndarray,
    cfg: LabelConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scan a block of frames' windows of odometry samples, _BLOCK columns at a time, until
    every run has ended: (furthest dx, still going at the window's end, running max dx)."""
    rows = frame_pose.shape[0]
    alive = ok_frame.copy()
    run_max = np.zeros(rows)
    reach = np.zeros(rows)
    j0 = 0
    r = np.flatnonzero(alive & (width > 0))  # the runs still going with samples left
    while r.size:
        cols = j0 + np.arange(_BLOCK)
        in_win = cols[None, :] < width[r, None]
        idx = np.minimum(lo[r, None] + cols[None, :], pose.shape[0] - 1)
        rel = relative(frame_pose[r, None, :], pose[idx])
        dx = np.where(in_win, rel[..., 0], -np.inf)
        cum = np.maximum(np.maximum.accumulate(dx, axis=1), run_max[r, None])
        prev = np.concatenate([run_max[r, None], cum[:, :-1]], axis=1)
        ok = _straight(rel, prev, cfg) | ~in_win
        going = np.logical_and.accumulate(ok, axis=1)
        reach[r] = np.fmax(reach[r], np.max(np.where(going & in_win, dx, -np.inf), axis=1))
        alive[r] = going[:, -1]
        run_max[r] = cum[:, -1]
        j0 += _BLOCK
        r = r[alive[r] & (width[r] > j0)]
    return reach, alive, run_max


def _reached(runs_dx: np.ndarray, dist: np.ndarray, tol_d_m: float) -> np.ndarray:
    """(N, D): bin d was passed on the run (some pose within tol_d_m of it, poses from 0 to dx)."""
    return np.isfinite(runs_dx)[:, None] & (dist[None, :] - tol_d_m < runs_dx[:, None])


def contact_labels(
    runs: StraightRuns,
    geometry: SensorGeometry,
    config: LabelConfig,
    contact_bearing_rad: np.ndarray | None = None,
) -> np.ndarray:
    """int8 (N, S, D): 1 where a contact says obstacle (see the module docstring), else -1.

    contact_bearing_rad (K,): bearing of the touched point on the body per contact, in
    the robot frame (None or NaN: 0, the front point of the forward driving direction).
    """
    n, dist = runs.reach_m.shape[0], np.asarray(config.distances_m, np.float64)
    out = np.full((n, geometry.x_m.size, dist.size), UNKNOWN, np.int8)
    hit = runs.contact >= 0
    if not hit.any():
        return out
    bearing = np.zeros(int(runs.contact.max()) + 1)
    if contact_bearing_rad is not None:
        given = np.asarray(contact_bearing_rad, np.float64)[: bearing.size]
        bearing[: given.size] = np.where(np.isfinite(given), given, 0.0)
    phi = bearing[runs.contact[hit]][:, None, None]  # (H, 1, 1)
    g, r = geometry, geometry.body_radius_m
    nx, ny = np.cos(phi), np.sin(phi)
    ux, uy = np.cos(g.theta_rad)[None, :, None], np.sin(g.theta_rad)[None, :, None]
    facing_ray = nx * ux + ny * uy  # (H, S, 1)
    ahead = runs.contact_dx_m[hit][:, None, None] - dist[None, None, :]  # D - d
    # the surface through the touched point, tangent to the body, at the pose d
    plane = r + ahead * nx
    along = (plane - (nx * g.x_m[None, :, None] + ny * g.y_m[None, :, None])) / np.where(
        facing_ray > 0, facing_ray, np.nan
    )
    faces = np.abs(wrap_angle(g.exit_bearing_rad[None, :, None] - phi))
    faces = faces < config.contact_bearing_tol_rad
    with np.errstate(invalid="ignore"):
        pos = faces & (along >= 0) & (along < g.reach_m[None, :, None])
    pos &= _reached(runs.contact_dx_m[hit], dist, config.tol_d_m)[:, None, :]
    out[hit] = np.where(pos, 1, UNKNOWN).astype(np.int8)
    return out


def traversal_labels(
    runs: StraightRuns, geometry: SensorGeometry, config: LabelConfig
) -> np.ndarray:
    """int8 (N, S, D): 0 where the body later swept the sensor's whole reach, else -1."""
    n, dist = runs.reach_m.shape[0], np.asarray(config.distances_m, np.float64)
    g = geometry
    radius = g.body_radius_m - config.tol_y_m - config.traversal_margin_m
    x_run = np.where(np.isfinite(runs.reach_m), runs.reach_m, -np.inf)[:, None, None]
    free = np.ones((n, g.x_m.size, dist.size), bool)
    if radius <= 0:
        free[:] = False
    # test points: the sensor, and the end of its reach on its axis and on the beam's edges
    edges = (0.0, -0.5, 0.5) if np.any(g.fov_rad > 0) else (0.0,)
    points = [(g.x_m, g.y_m)]
    for e in edges:
        a = g.theta_rad + e * g.fov_rad
        points.append((g.x_m + g.reach_m * np.cos(a), g.y_m + g.reach_m * np.sin(a)))
    for px, py in points:
        x = px[None, :, None] + dist[None, None, :]  # at the pose d, in the frame's robot frame
        y = np.broadcast_to(py[None, :, None], x.shape)
        off = x - np.clip(x, 0.0, np.maximum(x_run, 0.0))
        free &= (x_run >= 0) & (np.hypot(off, y) < radius)
    free &= _reached(runs.reach_m, dist, config.tol_d_m)[:, None, :]
    return np.where(free, 0, UNKNOWN).astype(np.int8)


def combine_sources(grids: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(labels int8, source uint8) from per-source (N, S, D) grids: each cell from the
    first source, in LABEL_SOURCES order ("ir", "contact", "traversal"), that knows it;
    source is that source's code (0: unknown)."""
    unknown = [k for k in grids if k not in SOURCE_CODES]
    if unknown:
        raise LabellingError(f"unknown label sources {unknown}: known are {list(LABEL_SOURCES)}")
    if not grids:
        raise LabellingError("no label source to combine")
    shape = next(iter(grids.values())).shape
    labels = np.full(shape, UNKNOWN, np.int8)
    source = np.zeros(shape, np.uint8)
    for name in LABEL_SOURCES:
        grid = grids.get(name)
        if grid is None:
            continue
        if grid.shape != shape:
            raise LabellingError(f"label source {name}: shape {grid.shape}, expected {shape}")
        take = (source == 0) & (grid >= 0)
        labels[take] = grid[take]
        source[take] = SOURCE_CODES[name]
    return labels, source


def agreement_by_source(labels: np.ndarray, source: np.ndarray, truth: np.ndarray) -> dict:
    """{source name: TruthAgreement of its cells only} for each source that labelled a cell."""
    from robot_ssl.labelling.labeller import compare_with_truth

    out = {}
    for name in LABEL_SOURCES:
        mine = source == SOURCE_CODES[name]
        if mine.any():
            out[name] = compare_with_truth(np.where(mine, labels, UNKNOWN), truth)
    return out


@dataclass(frozen=True)
class SourcePlan:
    """Which sources label a session, and the contacts the contact source uses.

    sources: in order of precedence; contact_t_ns (K,): detected contacts (their onset);
    contact_bearing_rad (K,) or None: bearing of each touched point (None: the front).
    """

    sources: tuple[str, ...]
    contact_t_ns: np.ndarray
    contact_bearing_rad: np.ndarray | None = None


def plan_sources(reader, config: LabelConfig, notes: list[str] | None = None) -> SourcePlan:
    """The sources to label an open session (robot_ssl.io.session.SessionReader) with:
    `config.sources` (empty: every source), less those the session cannot give, each
    drop said in one line appended to `notes`: "ir" needs proximity rows, "contact" wheel
    rows (and uses the accelerometer when the session has a readable `acc` stream; a
    missing or damaged one is said, and contacts come from the wheels alone),
    "traversal" odometry (or wheels to integrate). NothingToLabelError when none is left."""
    from robot_ssl.io.session import SessionError
    from robot_ssl.labelling.labeller import NothingToLabelError

    notes = notes if notes is not None else []
    wanted = config.sources or LABEL_SOURCES
    streams = reader.streams
    has = {
        "ir": streams.get("proximity", 0) > 0,
        "contact": streams.get("wheels", 0) >= 2,
        "traversal": streams.get("odometry", 0) >= 2 or streams.get("wheels", 0) >= 2,
    }
    why = {"ir": "no proximity readings", "contact": "no wheel speeds", "traversal": "no odometry"}
    chosen = tuple(s for s in LABEL_SOURCES if s in wanted and has[s])
    dropped = [s for s in LABEL_SOURCES if s in wanted and not has[s]]
    if not chosen:
        raise NothingToLabelError(
            "nothing to label from: " + "; ".join(f"{s}: {why[s]}" for s in dropped)
        )
    if dropped and config.sources:  # asked for by name: say what is left out
        for s in dropped:
            notes.append(f"no {s} labels ({why[s]}): labelling with {', '.join(chosen)}")
    elif "ir" in dropped:  # every source: a session without proximity is worth a line
        notes.append(f"{why['ir']}: labelling with {', '.join(chosen)}")
    contacts = np.zeros(0, np.int64)
    if "contact" in chosen:
        contacts = _session_contacts(reader, notes, SessionError)
    return SourcePlan(chosen, contacts)


def _session_contacts(reader, notes: list[str], session_error: type[Exception]) -> np.ndarray:
    """Onsets of the contacts detected in an open session (wheels, + acc when readable)."""
    from robot_ssl.core.contact import ContactError, detect_contacts

    wheel_t, speed, target = reader.wheels()
    acc = None
    try:
        acc = reader.read("acc")
        if acc is None:
            notes.append("no acc stream: contacts detected from the wheels alone")
        elif len(acc.t_ns) == 0:
            notes.append("acc stream is empty: contacts detected from the wheels alone")
            acc = None
    except session_error as e:
        notes.append(f"acc stream unreadable ({e}): contacts detected from the wheels alone")
        acc = None
    keep = np.concatenate([[True], np.diff(np.asarray(wheel_t)) > 0])
    args = (np.asarray(wheel_t)[keep], np.asarray(speed)[keep], np.asarray(target)[keep])
    if acc is not None:
        try:
            return detect_contacts(*args, acc.t_ns, acc.acc, acc.tap).t_ns
        except ContactError as e:
            notes.append(f"acc stream damaged ({e}): contacts detected from the wheels alone")
    return detect_contacts(*args).t_ns


def odometry_grid(
    camera_t_ns: np.ndarray,
    odom_t_ns: np.ndarray,
    odom_pose: np.ndarray,
    config: LabelConfig,
    camera_offset_s: float,
) -> LabelGrid:
    """A grid with no label yet but each (frame, bin)'s matched odometry pose: the
    matching rule of `compute_labels` with odometry samples (at most one per 50 ms) as
    candidates (what a session labelled without proximity stores as its match)."""
    from robot_ssl.labelling.labeller import compute_labels

    width = max(config.sensor_indices) + 1
    odom_t = np.asarray(odom_t_ns, np.int64)
    # candidates about as dense as a Thymio's proximity (20 Hz at most): 1 cm steps at
    # 0.2 m/s, and the cost of labelling from proximity
    _, first = np.unique(odom_t // _CANDIDATE_STEP_NS, return_index=True)
    cand_t = odom_t[first]
    grid = compute_labels(
        camera_t_ns, cand_t, np.zeros((cand_t.size, width), np.int16), odom_t, odom_pose,
        config, camera_offset_s=camera_offset_s,
    )  # fmt: skip
    return replace(
        grid,
        labels=np.full_like(grid.labels, UNKNOWN),
        readings=np.full_like(grid.readings, UNKNOWN),
    )


def add_sources(
    grid: LabelGrid,
    plan: SourcePlan,
    odom_t_ns: np.ndarray,
    odom_pose: np.ndarray,
    robot,
    config: LabelConfig,
    camera_offset_s: float,
) -> LabelGrid:
    """`grid` (the "ir" labels, or `odometry_grid`'s when "ir" is not among the plan's
    sources) with the contact and traversal labels of `plan` combined in, and the
    per-cell source codes set."""
    grids = {"ir": grid.labels} if "ir" in plan.sources else {}
    if {"contact", "traversal"} & set(plan.sources):
        exposure = grid.t_ns - round(camera_offset_s * _NS_PER_S)
        runs = straight_runs(exposure, odom_t_ns, odom_pose, plan.contact_t_ns, config)
        geometry = sensor_geometry(robot, config.sensor_indices)
        for name in ("contact", "traversal"):
            if name in plan.sources:
                grids[name] = np.full(grid.labels.shape, UNKNOWN, np.int8)
        for a in range(0, grid.num_frames, _CHUNK_ROWS):  # bounded memory: (rows, S, D) floats
            rows = slice(a, a + _CHUNK_ROWS)
            part = StraightRuns(runs.reach_m[rows], runs.contact[rows], runs.contact_dx_m[rows])
            if "contact" in plan.sources:
                bearing = plan.contact_bearing_rad
                grids["contact"][a : a + _CHUNK_ROWS] = contact_labels(
                    part, geometry, config, bearing
                )
            if "traversal" in plan.sources:
                grids["traversal"][a : a + _CHUNK_ROWS] = traversal_labels(part, geometry, config)
    labels, source = combine_sources(grids)
    return replace(grid, labels=labels, source=source)
