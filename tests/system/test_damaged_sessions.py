"""Damaged session files (issue 11): truncated copies, overwritten HDF5 metadata, labels
files given as sessions. Every case damages a real session recorded with the simulator."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from paths import REPO, TESTS
from robot_cli import run_robot_ssl

from robot_ssl.cli.main import main
from robot_ssl.io.labels_file import is_labels_file, read_labels, skip_labels_files
from robot_ssl.io.session import (
    DamagedSessionError,
    NotASessionError,
    SessionError,
    SessionReader,
    SessionWriter,
)

START_NS = 7_000_000_000_000  # a monotonic clock that did not start at zero


class FlushingClock:
    """The simulator's clock, flushing the writer every 0.5 simulated seconds: the file
    grows as in a real-time recording (the writer flushes every 0.5 s of wall time)."""

    def __init__(self, clock, writer, every_ns: int = 500_000_000) -> None:
        self.clock, self.writer, self.every_ns = clock, writer, every_ns
        self.last = clock.now_ns()

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def sleep_until_ns(self, t_ns: int) -> None:
        self.clock.sleep_until_ns(t_ns)
        if t_ns - self.last >= self.every_ns:
            self.writer.flush()
            self.last = t_ns


def record_realtime_like(path: Path, seconds: float) -> Path:
    """A simulated session written the way a real-time recording is (flushes every 0.5 s)."""
    from robot_ssl.core.spec import CameraSpec, RobotSpec
    from robot_ssl.recording.recorder import Recorder, RecorderConfig
    from robot_ssl.recording.wander import wander_controller
    from robot_ssl.simlink.simulator import make_simulator

    robot, camera = RobotSpec(), CameraSpec()
    from sim.camera_timing import CameraTiming, RobotTiming

    # ideal clocks (frames at k / fps, polled readings): the file layout the cuts below assume
    sim = make_simulator(
        "arena_boxes", 3, split="train", start_ns=START_NS,
        camera_timing=CameraTiming.ideal(), robot_timing=RobotTiming.ideal(), stream=False,
    )  # fmt: skip
    writer = SessionWriter(
        path,
        robot=robot,
        camera=camera,
        metadata={"world": sim.world.name, "seed": 3, "source": "sim"},
        truth_sensors=robot.num_prox,
        flush_interval_s=1e9,  # only the clock flushes: the same layout on every run
        jpeg_quality=100,  # ~50 KB frames: a 20 s session of ~34 MB
    )
    recorder = Recorder(
        sim.robot,
        sim.camera,
        writer,
        RecorderConfig(camera_fps=sim.camera_params.fps, status=False, jpeg_quality=100),
        clock=FlushingClock(sim.clock, writer),
        controller=wander_controller(robot, 3),
        truth=sim.robot.truth,
    )
    recorder.run_stepped(seconds)
    writer.close()
    return path


@pytest.fixture(scope="module")
def realtime_session(tmp_path_factory) -> Path:
    return record_realtime_like(tmp_path_factory.mktemp("rt") / "rt.h5", 20.0)


@pytest.fixture(scope="module")
def sim_session(tmp_path_factory) -> Path:
    """What `robot-ssl sim record` writes: 6 simulated s, a flush every 0.5 simulated s."""
    path = tmp_path_factory.mktemp("simrec") / "s.h5"
    args = ["sim", "record", "--world", "arena_boxes", "--minutes", "0.1", "--seed", "3"]
    args += ["--ideal-clocks"]  # frames at k / fps: the counts the cuts below assume
    assert main([*args, "--no-progress", str(path)]) == 0
    return path


def _contents(path: Path) -> dict:
    """Every stream's arrays and every JPEG of an intact session."""
    with SessionReader(path) as r:
        assert not r.recovered
        out = {
            "proximity": r.proximity(),
            "wheels": r.wheels(),
            "odometry": r.odometry(),
            "truth": r.truth(),
            "camera_t": r.camera_t_ns,
            "jpeg": [r.jpeg(i) for i in range(r.num_frames)],
            "events": r.events(),
            "streams": r.streams,
        }
    return out


@pytest.fixture(scope="module")
def realtime_contents(realtime_session) -> dict:
    return _contents(realtime_session)


def cut(src: Path, dst: Path, keep: int) -> Path:
    with src.open("rb") as a, dst.open("wb") as b:
        b.write(a.read(keep))
    return dst


CUTS = {"10%": lambda n: n // 10, "50%": lambda n: n // 2, "90%": lambda n: n * 9 // 10}
CUTS["-100 bytes"] = lambda n: n - 100


run_cli = run_robot_ssl


def assert_prefix_of_original(r: SessionReader, ref: dict) -> None:
    """Everything the recovered reader gives is the original's prefix, byte for byte."""
    for name in ("proximity", "wheels", "odometry", "truth"):
        got = getattr(r, name)()
        for a, b in zip(got, ref[name]):
            assert len(a) <= len(b)
            np.testing.assert_array_equal(a, b[: len(a)])
    np.testing.assert_array_equal(r.camera_t_ns, ref["camera_t"][: r.num_frames])
    for i in range(r.num_frames):
        assert r.jpeg(i) == ref["jpeg"][i]
    if r.num_frames:
        assert r.frame(r.num_frames - 1).shape == (240, 320, 3)
    assert r.events() == ref["events"][: len(r.events())]


# -- truncated files ----------------------------------------------------------------------


@pytest.mark.parametrize("where", list(CUTS))
def test_truncated_session_opens_with_its_intact_prefix(
    realtime_session, realtime_contents, tmp_path, where
):
    size = realtime_session.stat().st_size
    path = cut(realtime_session, tmp_path / "cut.h5", CUTS[where](size))
    with pytest.raises(OSError, match="truncated file"):
        h5py.File(path, "r")  # what HDF5 says on its own
    t0 = time.monotonic()
    with SessionReader(path) as r:
        assert r.recovered and r.damage == "truncated file"
        assert r.recovery_reason.startswith(f"truncated file ({path.stat().st_size} of {size}")
        total = realtime_contents["streams"]["camera"]
        assert 0 < r.num_frames <= total
        assert f"{r.num_frames} of ~{total} frames intact" in r.recovery_summary
        assert r.stream_recovery["camera"].stored == total
        for stream in ("proximity", "wheels", "odometry", "truth"):
            assert r.streams[stream] > 0
        assert_prefix_of_original(r, realtime_contents)
        if where == "-100 bytes":  # finalized, yet truncated: nothing lost but the tail
            assert r.finalized and r.num_frames == total
            assert r.streams == realtime_contents["streams"]
        if where == "10%":
            assert r.num_frames < total // 5
    assert time.monotonic() - t0 < 10  # no SWMR metadata retries on a dead file


@pytest.mark.parametrize("where", list(CUTS))
def test_info_label_replay_work_on_truncated_files(realtime_session, tmp_path, where):
    size = realtime_session.stat().st_size
    path = cut(realtime_session, tmp_path / "cut.h5", CUTS[where](size))
    with SessionReader(path) as r:
        frames = r.num_frames
    r = run_cli("info", str(path))
    assert r.returncode == 0, r.stderr
    assert "recovered truncated file" in r.stdout
    assert f"{frames} of ~" in r.stdout and "frames intact" in r.stdout
    r = run_cli("info", str(path), "--json")
    info = json.loads(r.stdout)
    assert info["recovered"] and info["recovery"]["streams"]["camera"]["intact"] == frames
    assert main(["label", str(path), "--no-plot"]) == 0
    labels = read_labels(tmp_path / "cut.labels.h5")
    assert labels.num_frames == frames
    video = tmp_path / "cut.mp4"
    assert main(["replay", str(path), "--max-frames", "5", "--video", str(video)]) == 0
    assert video.stat().st_size > 0


@pytest.mark.parametrize("percent", [50, 75])
def test_cut_sim_record_session_keeps_its_share_of_frames(sim_session, tmp_path, percent):
    """A `sim record` session copied only up to X % of its bytes keeps about X % of its
    frames, like a real-time recording (issue 24: it kept none at 50 % and 75 %, its
    rows all flushed at the end): `info` says how many, `label` labels them."""
    ref = _contents(sim_session)
    size = sim_session.stat().st_size
    path = cut(sim_session, tmp_path / "cut.h5", size * percent // 100)
    r = run_cli("info", str(path), "--json")
    assert r.returncode == 0, r.stderr
    recovery = json.loads(r.stdout)["recovery"]["streams"]
    total = ref["streams"]["camera"]
    frames = recovery["camera"]["intact"]
    assert percent - 12 <= 100 * frames / total <= percent + 12, (frames, total)  # 51 %, 78 %
    for stream in ("proximity", "wheels", "odometry", "truth"):
        assert recovery[stream]["intact"] > 0, stream
    with SessionReader(path) as reader:
        assert_prefix_of_original(reader, ref)
    r = run_cli("label", str(path), "--no-plot")
    assert r.returncode == 0, r.stderr
    assert read_labels(tmp_path / "cut.labels.h5").num_frames == frames


def test_truncated_file_with_nothing_intact_is_refused_in_one_line(
    realtime_session, sim_session, tmp_path
):
    cases = {
        "one_percent.h5": (realtime_session, realtime_session.stat().st_size // 100),
        "sim_5_percent.h5": (sim_session, sim_session.stat().st_size // 20),  # 1st JPEG chunk
        "header_only.h5": (realtime_session, 5000),  # root attributes lie past the cut
    }
    for name, (src, keep) in cases.items():
        path = cut(src, tmp_path / name, keep)
        with pytest.raises(DamagedSessionError, match="nothing to recover"):
            SessionReader(path)
        for verb in (["info"], ["label", "--no-plot"], ["replay", "--max-frames", "2"]):
            r = run_cli(verb[0], str(path), *verb[1:])
            assert r.returncode == 2, (name, verb, r.stderr)
            assert r.stderr.count("\n") == 1 and "nothing to recover" in r.stderr, r.stderr
            assert r.stderr.count(str(path)) == 1


def test_writer_killed_and_truncated(tmp_path):
    """A power cut: the writer never closed (SWMR flags still set) and the tail is gone."""
    path = tmp_path / "k.h5"
    killer = TESTS / "session_killer.py"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(killer), str(path), str(tmp_path / "k.log")], env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 8 << 20):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    full = tmp_path / "full.h5"
    shutil.copy(path, full)
    with SessionReader(full) as r:
        assert r.recovered and r.recovery_reason == "writer did not finish"
        frames = r.num_frames
    short = cut(full, tmp_path / "short.h5", full.stat().st_size // 2)
    with SessionReader(short) as r:
        assert r.recovered and r.damage == "truncated file" and not r.finalized
        assert 0 < r.num_frames < frames
        t, p = r.proximity()
        assert len(t) > 0 and np.all(np.diff(t) > 0)
        assert p[-1, 0] == (len(t) - 1) % 4000  # the killer writes row numbers
        r.frame(r.num_frames - 1)


# -- damaged metadata ---------------------------------------------------------------------


def _object_address(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        obj = f if name == "/" else f[name]
        return h5py.h5o.get_info(obj.id).addr


def _flip(path: Path, at: int, n: int = 8) -> None:
    with path.open("r+b") as fh:
        fh.seek(at)
        data = bytearray(fh.read(n))
        fh.seek(at)
        fh.write(bytes(b ^ 0xFF for b in data))


def test_damaged_dataset_header_loses_only_that_stream(sim_session, tmp_path):
    path = tmp_path / "d.h5"
    shutil.copy(sim_session, path)
    _flip(path, _object_address(path, "proximity/horizontal") + 20)  # mid-header
    with pytest.raises(KeyError, match="checksum"), h5py.File(path, "r") as f:
        f["proximity/horizontal"].shape  # noqa: B018  (what h5py raises on its own)
    ref = _contents(sim_session)
    with SessionReader(path) as r:
        assert r.recovered and r.damage == "damaged metadata"
        assert r.streams["proximity"] == 0
        assert "unreadable" in r.stream_recovery["proximity"].note
        assert r.proximity()[1].shape == (0, 7)
        assert r.num_frames == ref["streams"]["camera"]
        assert_prefix_of_original(r, ref)
    r = run_cli("info", str(path))
    assert r.returncode == 0 and "recovered damaged metadata" in r.stdout, r.stderr
    assert "proximity 0 of 61 rows" in r.stdout
    # the proximity is lost: the session is labelled from the sources that remain
    r = run_cli("label", str(path), "--no-plot")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert "recovered session: damaged metadata" in lines[0]
    assert any("no proximity readings: labelling with contact, traversal" in x for x in lines)
    labels = read_labels(path.with_name("d.labels.h5"))
    known = labels.labels >= 0
    assert known.any() and set(np.unique(labels.source[known])) <= {2, 3}  # contact, traversal


@pytest.mark.parametrize(
    ("what", "where", "expect"),
    [
        ("root group header", "/", "root metadata is damaged"),
        ("superblock", None, "cannot open"),
        ("camera frame data header", "camera/jpeg_data", "0 of ~181 frames intact"),
    ],
)
def test_damaged_metadata_is_one_line_or_recovered(sim_session, tmp_path, what, where, expect):
    path = tmp_path / "d.h5"
    shutil.copy(sim_session, path)
    _flip(path, 10 if where is None else _object_address(path, where) + 20)
    r = run_cli("info", str(path))
    assert "Traceback" not in r.stderr, (what, r.stderr)
    if r.returncode == 0:
        assert expect in r.stdout, (what, r.stdout)
    else:
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (what, r.stderr)
        assert expect in r.stderr and r.stderr.count(str(path)) == 1


def test_damaged_attribute_heap_is_refused_not_a_hang(sim_session, tmp_path):
    """h5py keeps string attributes in HDF5's global heap, which has no checksum; HDF5
    loops forever on a heap object of size 0. The reader checks the heap first."""
    path = tmp_path / "heap.h5"
    shutil.copy(sim_session, path)
    at = path.read_bytes()[: 1 << 16].find(b"GCOL\x01")
    assert at > 0
    with path.open("r+b") as fh:  # first object: index 0, size 0
        fh.seek(at + 16)
        fh.write(bytes(16))
    with pytest.raises(DamagedSessionError, match="global heap"):
        SessionReader(path)
    assert not is_labels_file(path)
    for verb in (["info"], ["label"], ["replay"]):
        r = run_cli(verb[0], str(path))  # would hang (timeout) without the check
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "root metadata is damaged" in r.stderr


def test_no_metadata_byte_flip_gives_a_traceback(sim_session, tmp_path):
    """Flip bytes every 53 bytes through the file's metadata (superblock, object headers,
    attribute heap, chunk indexes, up to the first raw chunk): the reader either
    recovers (and every read works or fails as a SessionError) or refuses with a
    SessionError; never another exception, never a hang."""
    path = tmp_path / "fuzz.h5"
    shutil.copy(sim_session, path)
    with h5py.File(path, "r") as f:
        first_chunk = min(
            ds.id.get_chunk_info(i).byte_offset
            for ds in (f[f"{g}/{n}"] for g in ("camera", "proximity", "wheels") for n in f[g])
            for i in range(ds.id.get_num_chunks())
        )
    outcomes = {"intact": 0, "recovered": 0, "refused": 0}
    t0 = time.monotonic()
    for at in range(0, first_chunk, 53):
        _flip(path, at, 4)
        try:
            with SessionReader(path) as r:
                outcomes["recovered" if r.recovered else "intact"] += 1
                for read in (r.proximity, r.wheels, r.odometry, r.truth, r.events):
                    read()
                assert r.duration_s >= 0 and (r.recovery_summary or "") is not None
                if r.num_frames:
                    with contextlib.suppress(SessionError):
                        r.frame(r.num_frames - 1)
        except SessionError:
            outcomes["refused"] += 1
        finally:
            _flip(path, at, 4)  # undo
    assert time.monotonic() - t0 < 60
    assert all(outcomes.values()), outcomes


# -- labels files given as sessions --------------------------------------------------------


def test_labels_files_are_recognised_by_content(tmp_path, sim_session):
    session = tmp_path / "run.h5"
    shutil.copy(sim_session, session)
    assert main(["label", str(session), "--no-plot"]) == 0
    labels = tmp_path / "run.labels.h5"
    renamed = tmp_path / "renamed.h5"
    shutil.copy(labels, renamed)
    odd_session = tmp_path / "odd.labels.h5"  # a session with a labels-like name
    shutil.copy(sim_session, odd_session)
    assert is_labels_file(labels) and is_labels_file(renamed)
    assert not is_labels_file(session) and not is_labels_file(odd_session)
    notes: list[str] = []
    kept = skip_labels_files([session, labels, renamed, odd_session], notes.append)
    assert kept == [session, odd_session]
    assert notes == [
        f"skipping {labels}: a labels file, not a session",
        f"skipping {renamed}: a labels file, not a session",
    ]
    with pytest.raises(NotASessionError, match="a labels file, not a session"):
        SessionReader(renamed)


def test_glob_flow_skips_labels_files_in_every_verb(tmp_path, capsys):
    """`label dir/*.h5` twice, then info, train and eval on `dir/*.h5`: the labels files
    the glob matches are skipped with a note; real sessions go on, exit status 0."""
    pytest.importorskip("torch")
    d = tmp_path / "sessions"
    for seed in (1, 2):
        args = ["sim", "record", "--world", "arena_boxes", "--minutes", "0.05", "--fps", "10"]
        assert main([*args, "--seed", str(seed), "--no-progress", str(d / f"s{seed}.h5")]) == 0
    capsys.readouterr()

    def glob() -> list[str]:
        return sorted(str(p) for p in d.glob("*.h5"))

    assert main(["label", *glob(), "--no-plot", "-j", "1"]) == 0
    assert len(glob()) == 4  # the labels files sit beside the sessions now
    capsys.readouterr()
    assert main(["label", *glob(), "--no-plot", "-j", "1"]) == 0
    err = capsys.readouterr().err
    for seed in (1, 2):
        assert f"skipping {d / f's{seed}.labels.h5'}: a labels file, not a session" in err
    assert main(["info", *glob()]) == 0
    out, err = capsys.readouterr()
    assert out.count("session   ") == 2 and err.count("skipping") == 2
    assert main(["info", *glob(), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    run = tmp_path / "run"
    train = ["train", "--data", *glob(), "--out", str(run), "--epochs", "1", "--quiet"]
    assert main([*train, "--no-cache", "--val-fraction", "0.5"]) == 0
    assert "a labels file, not a session" in capsys.readouterr().err
    evaluate = ["eval", "--model", str(run / "best.pt"), "--data", *glob(), "--bootstrap", "0"]
    assert main([*evaluate, "--quiet", "--no-cache"]) == 0
    assert capsys.readouterr().err.count("skipping") == 2
    # only labels files left: one line, exit 2
    labels_only = [p for p in glob() if p.endswith(".labels.h5")]
    for verb in (["info"], ["label"], ["replay"]):
        assert main([verb[0], labels_only[0]]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "a labels file, not a session" in err
    assert main(["train", "--data", *labels_only, "--out", str(tmp_path / "r2")]) == 2
    assert "only labels files" in capsys.readouterr().err
    # any other non-session file: a clear one-line error naming it once
    junk = d / "notes.h5"
    junk.write_text("not a session")
    assert main(["label", *glob(), "--no-plot", "-j", "1"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "notes.h5" in line]
    assert err == [f"robot-ssl label: {junk}: not an HDF5 file"]
