"""`robot-ssl calibrate`: camera offset and wheel-speed factor from simulated calibration
sessions of a robot whose true speed_m_per_unit differs from its spec's."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scripted_drives import simulate, straight_script, wander_script, write_session

from robot_ssl.cli.main import main
from robot_ssl.core.errors import SpecError
from robot_ssl.core.spec import CameraSpec, RobotSpec, load_specs, save_specs
from robot_ssl.labelling.time_offset import measure_spins, straight_run

NOMINAL = RobotSpec()
SPIN_UNITS = 200
# The simulated camera delivers frames 80 ms late; the wheel odometry itself lags the true
# motion by ~20 ms (a measured speed is the firmware's mean over 40 ms), so the offset of
# the frames against the odometry, what calibrate measures and the labeller needs, is ~60 ms.
OFFSET_VS_ODOMETRY_S = 0.080 - 0.020


def spin_script(turns: float = 2.0):
    """Stand 1 s, spin `turns` turns left (by the nominal spec), stand 1 s, spin back, stand."""
    omega = 2 * SPIN_UNITS * NOMINAL.speed_m_per_unit / NOMINAL.axle_length_m
    spin = turns * 2 * math.pi / omega

    def script(t: float) -> tuple[int, int]:
        if 1.0 <= t < 1.0 + spin:
            return (-SPIN_UNITS, SPIN_UNITS)
        if 2.0 + spin <= t < 2.0 + 2 * spin:
            return (SPIN_UNITS, -SPIN_UNITS)
        return (0, 0)

    return script, 3.0 + 2 * spin


@pytest.fixture(scope="module")
def spin_session(tmp_path_factory) -> Path:
    """Two turns each way of a robot 5 % faster than its spec; frames stamped 80 ms late."""
    script, seconds = spin_script()
    streams = simulate(script, seconds, speed_factor=1.05, start_pose=(0.0, 0.0, 0.5))
    return write_session(tmp_path_factory.mktemp("cal") / "spin.h5", streams, 80)


@pytest.fixture(scope="module")
def straight_session(tmp_path_factory) -> tuple[Path, float]:
    """A straight run of a robot 5 % slower than its spec; the true distance from truth."""
    streams = simulate(straight_script, 10.0, speed_factor=0.95, start_pose=(-1.0, 0.0, 0.0))
    true_m = float(np.hypot(*(streams.truth_pose[-1, :2] - streams.truth_pose[0, :2])))
    return write_session(tmp_path_factory.mktemp("cal") / "line.h5", streams), true_m


def spec_file(path: Path, **robot) -> Path:
    path.write_text(yaml.safe_dump({"robot": {"name": "thymio-7", **robot}}))
    return path


def test_turn_recovers_the_speed_factor_and_the_offset(tmp_path: Path, spin_session: Path, capsys):
    spec = spec_file(tmp_path / "robot.yaml")
    assert main(["calibrate", str(spin_session), "--spec", str(spec), "--turn"]) == 0
    out = capsys.readouterr().out
    assert "closed" in out and "-> " in out and f"wrote {spec}" in out
    robot, camera = load_specs(spec)  # loads back
    assert robot.name == "thymio-7"
    assert robot.speed_m_per_unit / NOMINAL.speed_m_per_unit == pytest.approx(1.05, rel=0.01)
    assert robot.axle_length_m == NOMINAL.axle_length_m
    assert abs(camera.time_offset_s - OFFSET_VS_ODOMETRY_S) < 0.015
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left over


def test_turn_can_correct_the_axle(tmp_path: Path, spin_session: Path, capsys):
    spec = spec_file(tmp_path / "robot.yaml")
    args = [
        "calibrate",
        str(spin_session),
        "--spec",
        str(spec),
        "--turn",
        "--turn-corrects",
        "axle",
    ]
    assert main(args) == 0
    robot, _ = load_specs(spec)
    assert robot.speed_m_per_unit == NOMINAL.speed_m_per_unit
    assert NOMINAL.axle_length_m / robot.axle_length_m == pytest.approx(1.05, rel=0.01)


def test_spins_are_measured_exactly_from_the_still_views(spin_session: Path):
    from robot_ssl.io.session import SessionReader
    from robot_ssl.labelling.session_labels import frame_loader, session_odometry

    with SessionReader(spin_session) as r:
        odom_t, odom_pose = session_odometry(r)
        cal = measure_spins(
            r.camera_t_ns, frame_loader(r), odom_t, odom_pose, r.camera, offset_s=0.08
        )
    assert cal.reliable and len(cal.spins) == 2
    assert {s.method for s in cal.spins} == {"closed"}
    assert cal.spins[0].image_yaw_rad > 0 > cal.spins[1].image_yaw_rad
    assert cal.factor == pytest.approx(1.05, rel=0.005) and cal.spread < 0.01


def test_straight_run_recovers_the_speed_factor(tmp_path: Path, straight_session, capsys):
    session, true_m = straight_session
    spec = spec_file(tmp_path / "robot.json")
    spec.write_text('{"robot": {"name": "t"}, "camera": {"fps": 30}}')
    args = ["calibrate", str(session), "--spec", str(spec), "--straight-m", f"{true_m:.4f}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "time_offset_s left as it is" in out and "no turns" in out  # a warning, not an error
    robot, camera = load_specs(spec)
    assert robot.speed_m_per_unit / NOMINAL.speed_m_per_unit == pytest.approx(0.95, rel=0.01)
    assert camera.time_offset_s == 0.0


def test_straight_run_chord():
    t = np.arange(5) * 10**8
    pose = np.array([[0, 0, 0], [0.1, 0, 0], [0.2, 0.01, 0.02], [0.3, 0, 0], [0.4, 0, 0.01]])
    run = straight_run(t, pose)
    assert run.distance_m == pytest.approx(0.4) and run.heading_change_rad == pytest.approx(0.01)


def test_dry_run_changes_nothing(tmp_path: Path, spin_session: Path, capsys):
    spec = spec_file(tmp_path / "robot.yaml")
    before = spec.read_text()
    assert main(["calibrate", str(spin_session), "--spec", str(spec), "--turn", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "speed_m_per_unit" in out
    assert spec.read_text() == before


def test_offset_only(tmp_path: Path, spin_session: Path, capsys):
    spec = spec_file(tmp_path / "robot.yaml", speed_m_per_unit=0.0003)
    assert main(["calibrate", str(spin_session), "--spec", str(spec)]) == 0
    robot, camera = load_specs(spec)
    assert robot.speed_m_per_unit == 0.0003
    assert abs(camera.time_offset_s - OFFSET_VS_ODOMETRY_S) < 0.015


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--turn"], "no turn on the spot"),
        ([], "no reliable camera offset: no turns"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, straight_session, capsys, extra, message):
    session, _ = straight_session
    spec = spec_file(tmp_path / "robot.yaml")
    before = spec.read_text()
    assert main(["calibrate", str(session), "--spec", str(spec), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0
    assert spec.read_text() == before


def test_missing_files_are_one_line(tmp_path: Path, spin_session: Path):
    spec = spec_file(tmp_path / "robot.yaml")
    for args, message in (
        ([str(spin_session), "--spec", str(tmp_path / "none.yaml")], "no such spec file"),
        ([str(tmp_path / "none.h5"), "--spec", str(spec)], "no such file"),
        ([str(spin_session), "--spec", str(spec), "--turn", "--straight-m", "1"], "not allowed"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "robot_ssl", "calibrate", *args], capture_output=True, text=True
        )
        assert r.returncode == 2 and message in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0


def test_save_specs_is_atomic_and_keeps_permissions(tmp_path: Path):
    path = tmp_path / "s.yaml"
    save_specs(path, RobotSpec(), CameraSpec(time_offset_s=0.07))
    path.chmod(0o600)
    save_specs(path, RobotSpec(speed_m_per_unit=0.0004), CameraSpec(time_offset_s=0.07))
    assert path.stat().st_mode & 0o777 == 0o600
    robot, camera = load_specs(path)
    assert robot.speed_m_per_unit == 0.0004 and camera.time_offset_s == 0.07
    assert [p.name for p in tmp_path.iterdir()] == ["s.yaml"]


def test_save_specs_on_a_full_disk_keeps_the_old_file(mount_tmpfs):
    """The spec is written by the one atomic writer: ENOSPC is a one-line SpecError and
    the file on disk keeps its old content, no temporary file beside it."""
    disk = mount_tmpfs("16k")
    path = disk / "s.yaml"
    save_specs(path, RobotSpec(), CameraSpec(time_offset_s=0.07))
    old = path.read_bytes()
    with pytest.raises(SpecError, match=r"cannot write .*s\.yaml: no space left") as e:
        save_specs(path, RobotSpec(name="x" * 40_000), CameraSpec(time_offset_s=0.07))
    assert "\n" not in str(e.value)
    assert path.read_bytes() == old
    assert sorted(p.name for p in disk.iterdir()) == ["s.yaml"]


# -- refusals: implausible factors, sessions that are not what the mode needs ---------------


def cli(*args: str) -> subprocess.CompletedProcess:
    """The real `robot-ssl` entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "robot_ssl", *args], capture_output=True, text=True, timeout=120
    )


def assert_refused(r: subprocess.CompletedProcess, spec: Path, before: str, *words: str) -> None:
    """Exit 2, one line on stderr naming `words`, no traceback, the spec file untouched."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr
    assert spec.read_text() == before
    assert not list(spec.parent.glob(".*tmp*"))


@pytest.fixture(scope="module")
def wander_session(tmp_path_factory) -> Path:
    """Forward, spin, forward, spin: a wander, not a straight run."""
    streams = simulate(wander_script, 16.0)
    return write_session(tmp_path_factory.mktemp("cal") / "wander.h5", streams, 80)


def test_a_wander_given_as_a_straight_run_is_refused(tmp_path: Path, wander_session: Path):
    spec = spec_file(tmp_path / "robot.yaml")
    before = spec.read_text()
    r = cli("calibrate", str(wander_session), "--spec", str(spec), "--straight-m", "0.2")
    assert_refused(r, spec, before, "not one straight run", "heading strayed")


@pytest.mark.parametrize(("length", "word"), [("x0.78", "factor 0.78"), ("1e9", "factor 2.2")])
def test_an_implausible_straight_factor_is_refused(
    tmp_path: Path, straight_session, length: str, word: str
):
    """x0.78 (a wrong tape or session) and an absurd length: nothing written."""
    session, true_m = straight_session
    spec = spec_file(tmp_path / "robot.yaml")
    before = spec.read_text()
    if length == "x0.78":
        length = f"{true_m * 0.78 / 0.95:.4f}"  # the session's robot is 0.95x its spec
    r = cli("calibrate", str(session), "--spec", str(spec), "--straight-m", length)
    assert_refused(r, spec, before, word, "outside the plausible 0.8..1.25", "spec not changed")


def test_a_result_outside_the_nominal_band_is_refused(tmp_path: Path):
    """A plausible correction (x0.95) of a session recorded with a speed near the band's
    edge would leave the band: refused, not written for `record` to refuse later."""
    low = RobotSpec(speed_m_per_unit=0.8 * NOMINAL.speed_m_per_unit)
    streams = simulate(straight_script, 10.0, robot=low, start_pose=(-1.0, 0.0, 0.0))
    edge = write_session(tmp_path / "edge.h5", streams)
    spec = spec_file(tmp_path / "robot.yaml")
    before = spec.read_text()
    length = (
        f"{0.95 * float(np.hypot(*(streams.truth_pose[-1, :2] - streams.truth_pose[0, :2]))):.4f}"
    )
    r = cli("calibrate", str(edge), "--spec", str(spec), "--straight-m", length)
    assert_refused(r, spec, before, "robot.speed_m_per_unit", "implausible", "spec not changed")


def test_calibrate_changes_only_what_it_calibrates(tmp_path: Path, spin_session: Path):
    """Comments, order, quoting and every other key stay as written; only the two
    calibrated values change, in place."""
    spec = tmp_path / "robot.yaml"
    before = (
        "# thymio-7, the blue one\n"
        "robot:\n"
        "  name: 'thymio-7'   # sticker on the left wheel\n"
        "  speed_m_per_unit: 0.000332  # nominal\n"
        "  prox_range_m: 0.13\n"
        "\n"
        "# the Pi camera on its 3D-printed mount\n"
        "camera:\n"
        "  width: 320\n"
        "  pitch_rad: 0.35\n"
    )
    spec.write_text(before)
    r = cli("calibrate", str(spin_session), "--spec", str(spec), "--turn")
    assert r.returncode == 0, r.stderr
    after = spec.read_text().splitlines()
    robot, camera = load_specs(spec)
    speed = robot.speed_m_per_unit
    assert speed / NOMINAL.speed_m_per_unit == pytest.approx(1.05, rel=0.01)
    expected = before.splitlines()
    expected[3] = f"  speed_m_per_unit: {speed!r}  # nominal"
    expected.append(f"  time_offset_s: {camera.time_offset_s!r}")
    assert after == expected
    assert robot.prox_range_m == 0.13 and camera.pitch_rad == 0.35


def test_spec_loader_refuses_an_absurd_speed_and_record_does_not_drive(tmp_path: Path):
    spec = spec_file(tmp_path / "robot.yaml", speed_m_per_unit=0.00332)  # a 10x typo
    with pytest.raises(SpecError, match=r"speed_m_per_unit: 0.00332 is implausible"):
        load_specs(spec)
    out = tmp_path / "s.h5"
    r = cli(
        "record",
        str(out),
        "--spec",
        str(spec),
        "--robot",
        "sim",
        "--camera",
        "sim",
        "--duration",
        "1",
    )
    assert r.returncode == 2 and "implausible" in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert not out.exists()
    spec_file(spec, speed_m_per_unit=0.0003)  # 0.9x nominal: a plausible Thymio
    assert load_specs(spec)[0].speed_m_per_unit == 0.0003
