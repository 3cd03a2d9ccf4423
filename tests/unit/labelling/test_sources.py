"""Label sources (robot_ssl.labelling.sources): contact and traversal labels on synthetic
straight approaches to a wall, their precedence, and the labels file's source codes."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from labelling_sessions import write_session

from robot_ssl.core.label_grid import SOURCE_CODES, UNKNOWN, LabelConfig, LabelConfigError
from robot_ssl.core.spec import RobotSpec
from robot_ssl.io.labels_file import (
    InconsistentLabelsError,
    LabelSet,
    SessionIdentity,
    read_labels,
    write_labels,
)
from robot_ssl.labelling.labeller import NothingToLabelError, compute_labels, truth_labels
from robot_ssl.labelling.session_labels import label_session, session_truth_grid
from robot_ssl.labelling.sources import (
    agreement_by_source,
    combine_sources,
    contact_labels,
    sensor_geometry,
    straight_runs,
    traversal_labels,
)

S = 1_000_000_000
V = 0.1  # m/s
WALL_X = 0.5  # the wall's face (world x)
ROBOT = RobotSpec()
R = ROBOT.body_radius_m
T_CONTACT = (WALL_X - R) / V  # the body's front touches the wall


def approach(stall_s: float = 1.0):
    """Straight at V to the wall, stalled against it for `stall_s`, then backing off:
    odometry at 100 Hz, frames at 30 fps, the true distance along each sensor's axis."""
    t = np.arange(0, round((T_CONTACT + stall_s + 1.0) * 100) + 1) * (S // 100)
    ts = t / S
    x = np.where(ts < T_CONTACT, V * ts, WALL_X - R)
    back = ts > T_CONTACT + stall_s
    x = np.where(back, WALL_X - R - V * (ts - T_CONTACT - stall_s), x)
    pose = np.stack([x, np.zeros_like(x), np.zeros_like(x)], axis=1)
    frames = np.arange(0, t[-1], S // 30, dtype=np.int64)
    dist = np.full((t.size, ROBOT.num_prox), np.inf)
    for i, s in enumerate(ROBOT.prox_sensors):
        if math.cos(s.theta_rad) > 0:  # the wall x = WALL_X along the sensor's axis
            dist[:, i] = (WALL_X - (x + s.x_m)) / math.cos(s.theta_rad)
    return t, pose, frames, dist


def grids(cfg: LabelConfig, contacts_ns):
    t, pose, frames, dist = approach()
    runs = straight_runs(frames, t, pose, np.asarray(contacts_ns, np.int64), cfg)
    geometry = sensor_geometry(ROBOT, cfg.sensor_indices)
    truth = truth_labels(frames, t, pose, dist, ROBOT.prox_range_m, cfg).labels
    return runs, contact_labels(runs, geometry, cfg), traversal_labels(runs, geometry, cfg), truth


def test_contact_labels_the_approach_within_reach_for_the_front_sensors():
    cfg = LabelConfig(camera_offset=0.0)
    runs, contact, _, truth = grids(cfg, [round(T_CONTACT * S)])
    _, _, frames, _ = approach()
    before = frames < T_CONTACT * S
    assert np.all(runs.contact[before] == 0)
    np.testing.assert_allclose(
        runs.contact_dx_m[before], WALL_X - R - V * frames[before] / S, atol=2e-3
    )
    assert np.all(runs.contact[~before] == -1)  # stalled, then backing off: no approach
    assert set(np.unique(contact)) == {UNKNOWN, 1}
    # positives: D - reach < d <= D for the centre, about the same for the 19-degree pair
    dist = np.asarray(cfg.distances_m)
    i = int(np.flatnonzero(before)[30])  # a frame 1 s into the approach
    big_d = runs.contact_dx_m[i]
    centre = contact[i, 2]
    expect = (big_d - dist < ROBOT.prox_range_m) & (dist <= big_d)
    np.testing.assert_array_equal(centre == 1, expect)
    assert centre[dist < big_d - ROBOT.prox_range_m - 0.01].max() == UNKNOWN
    # the 19-degree pair's axes leave the body 19 degrees off the touched point: unknown
    # by default (an oblique wall or a post would fool them), labelled with a wider
    # tolerance; the 38-degree sensors never
    assert np.all(contact[:, [0, 1, 3, 4]] == UNKNOWN)
    wide = contact_labels(runs, sensor_geometry(ROBOT, cfg.sensor_indices),
                          replace(cfg, contact_bearing_tol_rad=0.35))  # fmt: skip
    assert (wide[i, 1] == 1).sum() > 5 and (wide[i, 3] == 1).sum() > 5
    assert np.all(wide[:, [0, 4]] == UNKNOWN)
    assert np.mean(truth[(wide == 1) & (truth >= 0)] == 1) > 0.97
    # every positive is true where the truth knows the cell
    known = (contact == 1) & (truth >= 0)
    assert known.sum() > 200
    assert np.mean(truth[known] == 1) > 0.97


def test_contact_seen_from_the_side_labels_the_sensors_facing_it():
    cfg = LabelConfig(camera_offset=0.0)
    t, pose, frames, _ = approach()
    runs = straight_runs(frames, t, pose, np.array([round(T_CONTACT * S)]), cfg)
    geometry = sensor_geometry(ROBOT, cfg.sensor_indices)
    left = contact_labels(runs, geometry, cfg, np.array([math.radians(38)]))
    assert (left[:, 0] == 1).any()
    assert np.all(left[:, 2:] == UNKNOWN)


def test_traversal_frees_the_swept_cells_and_leaves_wide_sensors_unknown():
    cfg = LabelConfig(camera_offset=0.0)
    runs, contact, free, truth = grids(cfg, [round(T_CONTACT * S)])
    assert set(np.unique(free)) == {UNKNOWN, 0}
    # the centre sensor's reach (0.08 + 0.14 m ahead of the axle) swept before the wall
    dist = np.asarray(cfg.distances_m)
    i = 15  # a frame 0.5 s into the approach
    big_d = runs.reach_m[i]
    np.testing.assert_allclose(big_d, WALL_X - R - V * 0.5, atol=2e-3)
    swept = dist + 0.08 + ROBOT.prox_range_m <= big_d + R - cfg.tol_y_m - cfg.traversal_margin_m
    np.testing.assert_array_equal(free[i, 2] == 0, swept)
    assert swept.sum() >= 5
    # the 38-degree sensors' reach leaves the corridor: never labelled free
    assert np.all(free[:, [0, 4]] == UNKNOWN)
    # contact and traversal never label the same cell, and traversal is never wrong here
    assert not np.any((free >= 0) & (contact >= 0))
    known = (free == 0) & (truth >= 0)
    assert known.sum() > 500 and np.all(truth[known] == 0)


def test_traversal_without_contact_stops_where_the_run_turns():
    cfg = LabelConfig(camera_offset=0.0)
    t = np.arange(0, 401) * (S // 100)
    ts = t / S
    x = V * np.minimum(ts, 2.0)  # 0.2 m straight, then turning on the spot
    theta = np.where(ts > 2.0, 0.5 * (ts - 2.0), 0.0)
    pose = np.stack([x, np.zeros_like(x), theta], axis=1)
    runs = straight_runs(np.array([0], np.int64), t, pose, np.zeros(0, np.int64), cfg)
    assert runs.contact[0] == -1 and abs(runs.reach_m[0] - 0.2) < 1e-3


def test_precedence_ir_then_contact_then_traversal():
    ir = np.array([[[1, -1, -1, 0]]], np.int8)
    contact = np.array([[[0, 1, -1, -1]]], np.int8)
    traversal = np.array([[[0, 0, 0, -1]]], np.int8)
    labels, source = combine_sources({"traversal": traversal, "ir": ir, "contact": contact})
    np.testing.assert_array_equal(labels, [[[1, 1, 0, 0]]])
    c = SOURCE_CODES
    np.testing.assert_array_equal(source, [[[c["ir"], c["contact"], c["traversal"], c["ir"]]]])
    labels, source = combine_sources({"traversal": traversal})
    np.testing.assert_array_equal(source, [[[3, 3, 3, 0]]])
    by = agreement_by_source(labels, source, np.array([[[0, 1, 0, 0]]], np.int8))
    assert list(by) == ["traversal"] and by["traversal"].agree == 2


def test_sources_in_the_config():
    assert LabelConfig().sources == ()
    assert "sources" not in LabelConfig().to_dict()  # default: the config as before
    cfg = LabelConfig(sources=("contact", "traversal"))
    assert LabelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(LabelConfigError, match="unknown label source 'sonar'"):
        LabelConfig(sources=("ir", "sonar"))
    with pytest.raises(LabelConfigError, match="distinct"):
        LabelConfig(sources=("ir", "ir"))


def _label_set(tmp_path: Path, with_source: bool) -> LabelSet:
    cfg = LabelConfig(camera_offset=0.0)
    t, pose, frames, dist = approach()
    grid = compute_labels(frames, t, (dist < 0.14).astype(np.int16), t, pose, cfg)
    if with_source:
        runs = straight_runs(frames, t, pose, np.array([round(T_CONTACT * S)]), cfg)
        free = traversal_labels(runs, sensor_geometry(ROBOT, cfg.sensor_indices), cfg)
        ir = grid.labels.copy()
        ir[:, :, 10:] = UNKNOWN  # proximity known up to 0.09 m only: traversal fills the rest
        labels, source = combine_sources({"ir": ir, "traversal": free})
        grid = replace(grid, labels=labels, source=source)
    ident = SessionIdentity(str(tmp_path / "s.h5"), 1, "0" * 64)
    return LabelSet.from_grid(grid, cfg, ident)


def test_labels_file_round_trip_of_the_source_codes(tmp_path: Path):
    labels = _label_set(tmp_path, with_source=True)
    assert (labels.source == SOURCE_CODES["traversal"]).any()
    back = read_labels(write_labels(tmp_path / "s.labels.h5", labels))
    np.testing.assert_array_equal(back.source, labels.source)
    np.testing.assert_array_equal(back.cell_sources(), labels.source)


def test_labels_files_without_source_read_as_ir(tmp_path: Path):
    labels = _label_set(tmp_path, with_source=False)
    path = write_labels(tmp_path / "old.labels.h5", labels)
    with h5py.File(path, "r") as f:
        assert "source" not in f
    back = read_labels(path)
    assert back.source is None
    np.testing.assert_array_equal(
        back.cell_sources(), np.where(back.labels >= 0, SOURCE_CODES["ir"], 0)
    )


def test_a_source_code_that_disagrees_with_the_labels_is_refused(tmp_path: Path):
    labels = _label_set(tmp_path, with_source=True)
    bad = labels.source.copy()
    bad[labels.labels < 0] = SOURCE_CODES["contact"]
    with pytest.raises(InconsistentLabelsError, match="source"):
        write_labels(tmp_path / "bad.labels.h5", replace(labels, source=bad))


def test_a_session_without_proximity_labels_from_contacts_and_the_swept_floor(tmp_path: Path):
    path = write_session(tmp_path / "touch.h5", 7.0, proximity=False, stall=True, truth=True)
    notes: list[str] = []
    labels = label_session(path, LabelConfig(camera_offset=0.0), notes=notes)
    assert notes == [
        "no proximity readings: labelling with contact, traversal",
        "no acc stream: contacts detected from the wheels alone",
    ]
    codes = labels.cell_sources()
    assert set(np.unique(codes).tolist()) == {0, SOURCE_CODES["contact"], SOURCE_CODES["traversal"]}
    truth = session_truth_grid(path, labels).labels
    by = agreement_by_source(labels.labels, codes, truth)
    assert by["contact"].compared > 200 and by["contact"].precision == 1.0
    assert by["traversal"].compared > 200 and by["traversal"].agreement == 1.0
    # asked for by name, a source the session lacks is said and left out
    notes.clear()
    only = label_session(
        path, LabelConfig(camera_offset=0.0, sources=("ir", "traversal")), notes=notes
    )
    assert notes == ["no ir labels (no proximity readings): labelling with traversal"]
    assert set(np.unique(only.cell_sources()).tolist()) == {0, SOURCE_CODES["traversal"]}
    with pytest.raises(NothingToLabelError, match="ir: no proximity readings"):
        label_session(path, LabelConfig(camera_offset=0.0, sources=("ir",)))


def test_a_damaged_acc_stream_is_said_and_contacts_come_from_the_wheels(tmp_path: Path):
    path = write_session(tmp_path / "acc.h5", 7.0, proximity=False, stall=True, acc=True)
    notes: list[str] = []
    intact = label_session(path, LabelConfig(camera_offset=0.0, sources=("contact",)), notes=notes)
    assert notes == []  # the accelerometer read: nothing to say
    with h5py.File(path, "r+") as f:
        del f["acc"]["acc"]
    damaged = label_session(path, LabelConfig(camera_offset=0.0, sources=("contact",)), notes=notes)
    assert len(notes) == 1
    assert notes[0].startswith("acc stream unreadable (") and "cannot read /acc/acc" in notes[0]
    assert notes[0].endswith("): contacts detected from the wheels alone")
    assert (damaged.labels == 1).sum() > 100  # the stall alone still finds the contact
    np.testing.assert_array_equal(damaged.labels, intact.labels)
