"""Labels files (robot_ssl.io.labels_file) and the `robot-ssl label` command on real session files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from robot_ssl.cli.main import main
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
from robot_ssl.io.session import SessionReader, SessionWriter
from robot_ssl.labelling.labeller import LabelConfig, NothingToLabelError, compute_labels
from robot_ssl.labelling.session_labels import label_session, session_truth_agreement

S_NS = 1_000_000_000
MS_NS = 1_000_000
WALL_X = 0.555
_JPEG = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()


def write_session(
    path: Path,
    seconds: float = 5.0,
    *,
    odometry: bool = True,
    wheels: bool = True,
    truth: bool = False,
    frames: bool = True,
) -> Path:
    """Straight approach to a wall at 0.1 m/s: 30 fps, 10 Hz proximity, 100 Hz wheels/odometry."""
    speed_units = round(0.1 / 0.000332)
    v = speed_units * 0.000332
    with SessionWriter(path, truth_sensors=7 if truth else None) as w:
        for k in range(round(seconds * 100) + 1):
            t = k * 10 * MS_NS
            x = v * t / S_NS
            if frames and k % 3 == 0:
                w.write_jpeg(t, _JPEG)
            if k % 10 == 5:
                prox = np.zeros(7, np.int16)
                prox[2] = 1500 if WALL_X - (x + 0.08) < 0.14 else 0
                w.write_proximity(t, prox)
            if wheels:
                w.write_wheels(t, [speed_units, speed_units], [speed_units, speed_units])
            if odometry:
                w.write_odometry(t, [x, 0.0, 0.0])
            if truth and k % 2 == 0:
                d = np.full(7, np.inf)
                d[2] = WALL_X - (x + 0.08)
                w.write_truth(t, [x, 0.0, 0.0], d)
    return path


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


def test_cli_labels_sessions_in_parallel(tmp_path: Path, capsys):
    a = write_session(tmp_path / "a.h5")
    b = write_session(tmp_path / "b.h5", seconds=4.0)
    out = tmp_path / "labels"
    assert main(["label", str(a), str(b), "--jobs", "2", "--out", str(out)]) == 0
    for name in ("a", "b"):
        assert (out / f"{name}.labels.h5").is_file()
        assert (out / f"{name}.labels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        read_labels(out / f"{name}.labels.h5")
    assert not list(tmp_path.glob("*.labels.h5"))  # nothing written beside the sessions
    table = capsys.readouterr().out
    assert "known" in table and "positive" in table
    assert "a.h5" in table and "b.h5" in table and " 167 " in table  # a.h5 has 167 frames


def test_cli_reports_bad_sessions_and_goes_on(tmp_path: Path, capsys):
    good = write_session(tmp_path / "good.h5")
    empty = write_session(tmp_path / "empty.h5", frames=False)
    no_odo = write_session(tmp_path / "no_odo.h5", odometry=False, wheels=False)
    missing = tmp_path / "missing.h5"
    rc = main(["label", str(empty), str(good), str(no_odo), str(missing), "-j", "2"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    msgs = [line for line in err if line.startswith("robot-ssl label:")]
    assert len(msgs) == 3
    assert "empty.h5: empty session: no camera frames" in msgs[0]
    assert "no_odo.h5: no odometry" in msgs[1]
    assert "missing.h5" in msgs[2] and "no such file" in msgs[2]
    assert (tmp_path / "good.labels.h5").is_file()
    assert not (tmp_path / "empty.labels.h5").exists()


def test_cli_config_file_and_flags(tmp_path: Path, capsys):
    s = write_session(tmp_path / "s.h5")
    cfg = tmp_path / "label.yaml"
    cfg.write_text(
        "sensor_indices: [2]\ndistances_m: {start: 0, stop: 0.2, step: 0.05}\ntol_d_m: 0.02\n"
    )
    args = ["label", str(s), "--config", str(cfg), "--tol-y", "0.005", "--threshold", "10"]
    assert main([*args, "--no-plot"]) == 0
    labels = read_labels(tmp_path / "s.labels.h5")
    assert labels.config.sensor_indices == (2,)
    assert labels.config.distances_m == (0.0, 0.05, 0.1, 0.15, 0.2)
    assert (labels.config.tol_d_m, labels.config.tol_y_m, labels.config.threshold) == (
        0.02,
        0.005,
        10,
    )
    assert not (tmp_path / "s.labels.png").exists()
    assert main(["label", str(s), "--sensors", "0,1", "--distances", "0,0.1", "--no-plot"]) == 0
    labels = read_labels(tmp_path / "s.labels.h5")
    assert labels.shape[1:] == (2, 2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tol-d", "-1"], "--tol-d: must be a finite number in (0, 10]"),
        (["--distances", "0:1"], "START:STOP:STEP"),
        (["--sensors", "a"], "--sensors"),
        (["--config", "/nonexistent/label.yaml"], "cannot read label config"),
    ],
)
def test_cli_bad_config_is_one_line(tmp_path: Path, capsys, extra, message):
    s = write_session(tmp_path / "s.h5")
    assert main(["label", str(s), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_cli_same_output_twice_is_refused(tmp_path: Path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = write_session(tmp_path / "x" / "run.h5")
    b = write_session(tmp_path / "y" / "run.h5")
    assert main(["label", str(a), str(b), "--out", str(tmp_path / "out")]) == 2
    assert "would both write" in capsys.readouterr().err


def test_cli_truth_report(tmp_path: Path, capsys):
    sim = write_session(tmp_path / "sim.h5", truth=True)
    real = write_session(tmp_path / "real.h5")
    assert main(["label", str(sim), str(real), "--truth", "--no-plot", "-j", "1"]) == 0
    out = capsys.readouterr().out
    assert "truth agree" in out and "no truth" in out


def test_cli_as_a_subprocess_exits_2_in_one_line(tmp_path: Path):
    r = subprocess.run(
        [sys.executable, "-m", "robot_ssl", "label", str(tmp_path / "nope.h5")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr
