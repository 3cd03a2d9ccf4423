"""Labels files (robot_ssl.io.labels_file) and the `robot-ssl label` command on real session files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from labelling_sessions import write_session

from robot_ssl.io.labels_file import (
    InconsistentLabelsError,
    LabelsMismatchError,
    LabelsWriteError,
    NotALabelsFileError,
    UnsupportedLabelsVersionError,
    default_labels_path,
    identify_session,
    read_labels,
    write_labels,
)
from robot_ssl.io.session import SessionReader
from robot_ssl.labelling.labeller import LabelConfig, NothingToLabelError, compute_labels
from robot_ssl.labelling.session_labels import label_session, session_truth_agreement


@pytest.fixture
def session(tmp_path: Path) -> Path:
    return write_session(tmp_path / "run1.h5")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- library ------------------------------------------------------------------------------


def test_default_labels_path():
    assert default_labels_path("/a/run1.h5") == Path("/a/run1.labels.h5")
    assert default_labels_path("/a/run.2.h5", "/out") == Path("/out/run.2.labels.h5")
    assert default_labels_path("run1") == Path("run1.labels.h5")


def test_label_session_round_trip(session: Path):
    before = (sha256(session), session.stat().st_mtime_ns)
    cfg = LabelConfig(tol_theta_rad=0.04)
    labels = label_session(session, cfg)
    out = write_labels(default_labels_path(session), labels)
    assert out == session.with_name("run1.labels.h5")
    assert (sha256(session), session.stat().st_mtime_ns) == before  # session untouched
    assert [p.name for p in session.parent.iterdir() if p.name.endswith(".tmp")] == []
    back = read_labels(out)
    assert back.config == cfg
    assert back.session.sha256 == before[0]
    assert back.session.size_bytes == session.stat().st_size
    assert back.session.path == str(session.resolve())
    for name in ("frame_index", "t_ns", "labels", "readings", "match_t_ns", "sensor_indices"):
        np.testing.assert_array_equal(getattr(back, name), getattr(labels, name))
    np.testing.assert_array_equal(back.match_offset, labels.match_offset)  # NaN-aware
    np.testing.assert_array_equal(back.distances_m, cfg.distances_m)
    assert back.shape == (labels.num_frames, 5, 31)
    np.testing.assert_array_equal(back.frame_index, np.arange(back.num_frames))
    with SessionReader(session) as r:
        np.testing.assert_array_equal(back.t_ns, r.camera_t_ns)
    # the approach to the wall shows up as positives of the centre sensor only
    st = back.stats()
    assert st.known_fraction > 0.5 and st.positive_cells > 0
    assert np.all(back.labels[:, [0, 1, 3, 4]] <= 0)
    with h5py.File(out) as f:
        assert f.attrs["format"] == "robot-ssl/labels" and f.attrs["version"] == 1
        assert json.loads(f.attrs["config"])["tol_theta_rad"] == 0.04
        assert f["labels"].dtype == np.int8 and f["readings"].dtype == np.int16
        assert f["match_offset"].dtype == np.float32 and f["match_t_ns"].dtype == np.int64


def test_labels_file_is_where_the_dataset_code_looks(session: Path):
    from robot_ssl.learning.dataset import labels_path_for

    out = write_labels(default_labels_path(session), label_session(session))
    assert labels_path_for(session) == out
    assert labels_path_for(session, "/x") == default_labels_path(session, "/x")


def test_identity_check(session: Path, tmp_path: Path):
    ident = identify_session(session)
    assert ident.sha256 == sha256(session)
    ident.check(session)
    other = write_session(tmp_path / "other.h5", seconds=4.0)
    with pytest.raises(LabelsMismatchError):
        ident.check(other)
    same_size = tmp_path / "same_size.h5"
    same_size.write_bytes(b"\0" * ident.size_bytes)
    ident.check(same_size, full_hash=False)
    with pytest.raises(LabelsMismatchError, match="content differs"):
        ident.check(same_size)


def test_write_is_atomic_and_never_overwrites_the_session(session: Path, monkeypatch):
    labels = label_session(session)
    with pytest.raises(LabelsWriteError, match="refusing"):
        write_labels(session, labels)
    target = default_labels_path(session)
    target.write_bytes(b"previous labels")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(h5py.Group, "create_dataset", broken)
    with pytest.raises(LabelsWriteError, match="No space left"):
        write_labels(target, labels)
    assert target.read_bytes() == b"previous labels"  # old output intact
    assert sorted(p.name for p in session.parent.iterdir()) == ["run1.h5", "run1.labels.h5"]


def _good_file(session: Path) -> Path:
    return write_labels(default_labels_path(session), label_session(session))


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (
            lambda f: f.attrs.__setitem__("format", "robot-ssl/session"),
            NotALabelsFileError,
            "not a labels",
        ),
        (lambda f: f.attrs.__setitem__("version", 2), UnsupportedLabelsVersionError, "version 2"),
        (lambda f: f.__delitem__("readings"), InconsistentLabelsError, "'readings' is missing"),
        (lambda f: f.attrs.__setitem__("config", "{"), InconsistentLabelsError, "bad config"),
        (
            lambda f: f.attrs.__setitem__("camera_offset", '{"source": "guess"}'),
            InconsistentLabelsError,
            "bad camera_offset",
        ),
        (
            lambda f: f.attrs.__delitem__("session_sha256"),
            InconsistentLabelsError,
            "session_sha256",
        ),
        (
            lambda f: (f.__delitem__("t_ns"), f.create_dataset("t_ns", data=np.zeros(3, np.int64))),
            InconsistentLabelsError,
            "t_ns: expected int64",
        ),
        (
            lambda f: (
                f.__delitem__("labels"),
                f.create_dataset("labels", data=np.zeros((1, 5, 31))),
            ),
            InconsistentLabelsError,
            "labels: expected int8",
        ),
    ],
)
def test_read_labels_rejects_damaged_files(session: Path, damage, error, message):
    path = _good_file(session)
    with h5py.File(path, "r+") as f:
        damage(f)
    with pytest.raises(error, match=message):
        read_labels(path)


def test_read_labels_rejects_non_labels_files(session: Path, tmp_path: Path):
    with pytest.raises(NotALabelsFileError, match="no such file"):
        read_labels(tmp_path / "missing.labels.h5")
    junk = tmp_path / "junk.labels.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(NotALabelsFileError, match="not an HDF5"):
        read_labels(junk)
    with pytest.raises(NotALabelsFileError, match="not a labels file"):
        read_labels(session)


def test_odometry_falls_back_to_wheel_speeds(tmp_path: Path, session: Path):
    no_odo = write_session(tmp_path / "no_odo.h5", odometry=False)
    a = label_session(session)
    b = label_session(no_odo)
    # same straight drive: same labels (odometry integrated from the same wheel speeds)
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"odometry": False, "wheels": False}, "no odometry"),
        ({"frames": False}, "no camera frames"),
        ({"seconds": 0.5}, "too short"),
    ],
)
def test_sessions_with_nothing_to_label(tmp_path: Path, kwargs, message):
    path = write_session(tmp_path / "bad.h5", **kwargs)
    with pytest.raises(NothingToLabelError, match=message):
        label_session(path)


def test_truth_agreement_from_a_session(tmp_path: Path, session: Path):
    sim = write_session(tmp_path / "sim.h5", truth=True)
    labels = label_session(sim)
    found = session_truth_agreement(sim, labels)
    assert found is not None
    agreement, truth_stats = found
    assert agreement.compared > 1000 and agreement.agreement > 0.99
    assert truth_stats.positive_cells > 0
    assert session_truth_agreement(session, label_session(session)) is None


def test_label_grid_matches_direct_computation(session: Path):
    labels = label_session(session)
    with SessionReader(session) as r:
        grid = compute_labels(r.camera_t_ns, *r.proximity(), *r.odometry())
    np.testing.assert_array_equal(labels.labels, grid.labels)


# -- command line --------------------------------------------------------------------------
