"""Outputs: atomic writes (robot_ssl.core.outputs), no leftovers after errors, SIGTERM or SIGKILL,
modes that follow the umask, read-only output folders (one line, exit 2), `record
--overwrite` keeping the old session until the new one is complete, and `label --jobs`
workers that die with their parent. Real files and real processes throughout."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from paths import REPO
from robot_cli import ROBOT_SSL

from robot_ssl.cli.main import main
from robot_ssl.core.outputs import (
    SIGTERM_GRACE_S,
    OutputError,
    atomic_output,
    remove_stale_temps,
    temp_name_pattern,
)


def temps(folder: Path) -> list[Path]:
    """Temporary files of any output in `folder` (and below)."""
    return sorted(p for p in folder.rglob(".*") if ".tmp-" in p.name or ".partial" in p.name)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def wait_for(cond, timeout: float, what: str, proc: subprocess.Popen | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"process ended (rc {proc.returncode}) before {what}: {err}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def umask():
    """Set the process umask for one test, restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    """Six simulated seconds at 10 fps, 80x64."""
    d = tmp_path_factory.mktemp("outputs")
    path = d / "s.h5"
    args = ["sim", "record", str(path), "--minutes", "0.1", "--seed", "3", "--fps", "10"]
    assert main([*args, "--width", "80", "--height", "64", "--no-progress"]) == 0
    return path


# -- the helper ---------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_output_replaces_and_follows_the_umask(tmp_path, umask, mask):
    umask(mask)
    target = tmp_path / "a" / "b" / "out.json"  # folders are created
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp.exists()
        assert temp_name_pattern(target).match(tmp.name)
        assert tmp.name == f".out.json.tmp-{os.getpid()}.json"  # recognisable, keeps the suffix
        tmp.write_text("new")
        assert not target.exists()  # nothing visible until the end
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert temps(tmp_path) == []


@pytest.mark.parametrize("exc", [ValueError, KeyboardInterrupt, SystemExit])
def test_atomic_output_leaves_the_old_file_and_no_temp_on_any_exception(tmp_path, exc):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(exc), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise exc()
    assert target.read_text() == "old"
    assert temps(tmp_path) == []


def test_two_threads_writing_one_target_get_their_own_temp(tmp_path):
    target = tmp_path / "x.bin"
    with atomic_output(target) as a, atomic_output(target) as b:
        assert a != b
        a.write_bytes(b"a")
        b.write_bytes(b"b")
    assert target.read_bytes() == b"a"  # the last to finish wins, whole
    assert temps(tmp_path) == []


_HOLD = textwrap.dedent(
    """
    import sys, time
    from robot_ssl.core.outputs import atomic_output
    with atomic_output(sys.argv[1]) as tmp:
        tmp.write_bytes(b"partial" * 1000)
        print(tmp, flush=True)
        time.sleep(60)
    """
)


def _hold_an_output(target: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.exists(), proc.stderr.read() if proc.poll() is not None else ""
    return proc, tmp


def test_sigterm_during_a_write_removes_the_temp(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    proc, tmp = _hold_an_output(target)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert not tmp.exists() and temps(tmp_path) == []
    assert target.read_bytes() == b"old"


def test_sigkill_leftover_is_never_the_output_and_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "k.bin"
    target.write_bytes(b"old")
    proc, tmp = _hold_an_output(target)
    proc.kill()
    proc.wait(timeout=20)
    assert tmp.exists() and temps(tmp_path) == [tmp]  # a kill -9 cannot be caught...
    assert target.read_bytes() == b"old"  # ...but the output is untouched
    # 0-byte leftovers (as mkstemp used to leave) of dead processes, and a live one's
    stale_empty = tmp_path / f".k.bin.tmp-{dead_pid()}.bin"
    stale_empty.touch()
    live = tmp_path / f".k.bin.tmp-{os.getppid()}.bin"  # pytest's parent: alive
    live.touch()
    other = tmp_path / f".other.bin.tmp-{dead_pid()}.bin"  # another target's: not ours
    other.touch()
    with atomic_output(target) as t:
        t.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert not tmp.exists() and not stale_empty.exists()
    assert live.exists() and other.exists()
    assert remove_stale_temps(tmp_path / "other.bin") == [other]


# -- read-only output folders ----------------------------------------------------------------


@pytest.fixture(params=["read-only mount", "file in the path"])
def unwritable(request, tmp_path):
    """(folder that cannot be written even by root, expected reason)."""
    if request.param == "file in the path":
        (tmp_path / "afile").write_text("x")
        yield tmp_path / "afile" / "sub", "not a directory"
        return
    mnt = tmp_path / "ro"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt, "read-only file system"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize(
    "verb",
    ["sim record", "sim generate", "sim show", "replay --video", "label --out"],
)
def test_unwritable_output_folder_is_one_line_and_exit_2(unwritable, verb, session, tmp_path):
    folder, reason = unwritable
    argv = {
        "sim record": ["sim", "record", str(folder / "s.h5"), "--minutes", "0.05"],
        "sim generate": ["sim", "generate", str(folder / "w.yaml")],
        "sim show": ["sim", "show", "corridor", "--out", str(folder / "show")],
        "replay --video": ["replay", str(session), "--video", str(folder / "r.mp4")],
        "label --out": ["label", str(session), "--out", str(folder / "labels")],
    }[verb]
    before = sorted(session.parent.iterdir())
    r = subprocess.run([*ROBOT_SSL, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    name = verb.split()[0]
    want = folder / "show" if verb == "sim show" else folder
    if verb == "label --out":
        want = folder / "labels"
    assert lines[0] == f"robot-ssl {name}: error: cannot write to {want}: {reason}"
    assert sorted(session.parent.iterdir()) == before  # nothing half-written anywhere
    assert temps(tmp_path) == []


# -- sim record, replay, label: no leftovers, folders, modes ------------------------------------


_SWALLOW = textwrap.dedent(
    """
    import sys, time
    from robot_ssl.core.outputs import atomic_output
    with atomic_output(sys.argv[1]) as tmp:
        tmp.write_bytes(b"partial")
        ready = False
        while True:  # where the SystemExit lands, it is swallowed (as in a weakref callback)
            try:
                if not ready:  # say so only inside the swallowing block: no race with SIGTERM
                    ready = True
                    print(tmp, flush=True)
                time.sleep(0.01)
            except BaseException:
                pass
    """
)


def test_sigterm_exits_even_when_its_systemexit_is_swallowed(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _SWALLOW, str(tmp_path / "t.bin")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.exists()
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert time.monotonic() - t0 >= SIGTERM_GRACE_S - 0.5  # after the grace, not before
    assert "terminated (SIGTERM)" in proc.stderr.read()
    assert temps(tmp_path) == []


def test_sim_record_sigterm_leaves_nothing(tmp_path):
    out = tmp_path / "long.h5"
    proc = subprocess.Popen(
        [*ROBOT_SSL, "sim", "record", str(out), "--minutes", "30", "--no-progress"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        tmp = wait_for(lambda: temps(tmp_path), 60, "the temporary session", proc)[0]
        wait_for(lambda: tmp.stat().st_size > 100_000, 60, "some data", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no output, no hidden temp


def test_replay_creates_its_folder_and_error_leaves_no_partial(session, tmp_path, umask):
    umask(0o022)
    video = tmp_path / "out" / "sub" / "x.mp4"
    assert main(["replay", str(session), "--video", str(video), "--max-frames", "5"]) == 0
    assert video.stat().st_size > 0
    assert stat.S_IMODE(video.stat().st_mode) == 0o644
    # an extension OpenCV cannot write: an error, and nothing left behind
    bad = tmp_path / "bad" / "x.nosuchcontainer"
    assert main(["replay", str(session), "--video", str(bad), "--max-frames", "5"]) == 2
    assert not bad.exists() and temps(tmp_path) == []


def test_replay_text_lines_do_not_overlap(session):
    """The "frame N" and "t = ..." texts are drawn on separate rows of the camera panel."""
    import cv2

    from robot_ssl.io.session import SessionReader
    from robot_ssl.live.replay import iter_replay_frames

    with SessionReader(session) as r:
        img = next(iter_replay_frames(r, None))
        cam = r.frame(0)
    h = 320
    w = round(cam.shape[1] * h / cam.shape[0])
    raw = cv2.resize(cam, (w, h), interpolation=cv2.INTER_NEAREST)
    changed = np.abs(img[:60, :w].astype(int) - raw[:60].astype(int)).max(axis=2) > 0
    rows = np.flatnonzero(changed.any(axis=1))
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    assert len(bands) == 2, [(b[0], b[-1]) for b in bands]  # two lines, a gap between


def test_labels_and_plots_follow_the_umask_like_sessions(session, tmp_path, umask):
    umask(0o022)
    s = tmp_path / "s.h5"
    shutil.copy(session, s)
    os.chmod(s, 0o644)
    assert main(["label", str(s), "--out", str(tmp_path / "lab")]) == 0
    files = sorted((tmp_path / "lab").iterdir())
    assert [f.suffix for f in files] == [".h5", ".png"]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644
    out = tmp_path / "new.h5"
    args = ["sim", "record", str(out), "--minutes", "0.02", "--width", "80", "--height", "64"]
    assert main([*args, "--no-progress"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert main(["sim", "generate", str(tmp_path / "w.yaml")]) == 0
    assert stat.S_IMODE((tmp_path / "w.yaml").stat().st_mode) == 0o644
    assert temps(tmp_path) == []


# -- record --overwrite ----------------------------------------------------------------------


def _record_sim(out: Path, duration: float, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *ROBOT_SSL,
            "record",
            str(out),
            "--robot",
            "sim",
            "--camera",
            "sim",
            "--width",
            "80",
            "--height",
            "64",
            "--duration",
            str(duration),
            "--drive",
            "wander",
            "--no-status",
            *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )


def test_record_overwrite_keeps_the_old_session_until_the_new_one_is_complete(session, tmp_path):
    from robot_ssl.io.session import SessionReader

    out = tmp_path / "s.h5"
    shutil.copy(session, out)
    old = sha256(out)
    with SessionReader(out) as r:
        old_frames = r.num_frames
    proc = _record_sim(out, 120, "--overwrite")
    try:
        tmp = wait_for(lambda: temps(tmp_path), 60, "the new session beside the old", proc)[0]
        assert tmp.name.startswith(".s.h5.tmp-") and tmp.suffix == ".h5"
        assert sha256(out) == old  # the old one is untouched while the new one records
        time.sleep(1.5)
        proc.kill()  # SIGKILL: nothing can be cleaned up
        proc.wait(timeout=20)
    finally:
        proc.kill()
    assert sha256(out) == old
    with SessionReader(out) as r:
        assert not r.recovered and r.num_frames == old_frames
    assert tmp.exists()  # the killed run's partial session: a recognisable temp name
    # a completed --overwrite replaces the session and removes the dead run's temp
    proc = _record_sim(out, 1.5, "--overwrite")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert sha256(out) != old and temps(tmp_path) == []
    with SessionReader(out) as r:
        assert not r.recovered and r.metadata.get("recorded_by") == "robot-ssl record"


def test_record_overwrite_sigterm_finalises_and_replaces(session, tmp_path):
    from robot_ssl.io.session import SessionReader

    out = tmp_path / "s.h5"
    shutil.copy(session, out)
    old = sha256(out)
    proc = _record_sim(out, 120, "--overwrite")
    try:
        tmp = wait_for(lambda: temps(tmp_path), 60, "the new session", proc)[0]
        wait_for(lambda: tmp.stat().st_size > 50_000, 60, "some data", proc)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err  # SIGTERM stops the recording and finalises it
    assert sha256(out) != old and temps(tmp_path) == []
    with SessionReader(out) as r:
        assert not r.recovered and r.num_frames > 0


# -- label workers die with their parent -------------------------------------------------------


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            kids |= {int(x) for x in (task / "children").read_text().split()}
    return kids


def _running(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"  # a zombie has exited (nobody reaped it yet)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_label_workers_exit_when_the_parent_is_killed(session, tmp_path):
    sessions = []
    for i in range(8):
        s = tmp_path / f"s{i}.h5"
        shutil.copy(session, s)
        sessions.append(str(s))
    proc = subprocess.Popen(
        [*ROBOT_SSL, "label", "--jobs", "2", *sessions],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def workers() -> set[int]:
            w = {c for c in _children(proc.pid) if "spawn_main" in _cmdline(c)}
            return w if len(w) >= 2 else set()

        found = wait_for(workers, 60, "two label workers", proc)
        everyone = _children(proc.pid)  # the workers and multiprocessing's helper
        proc.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert len(found) == 2
    end = time.monotonic() + 10
    while time.monotonic() < end and any(_running(p) for p in everyone):
        time.sleep(0.1)
    alive = [(p, _cmdline(p)) for p in everyone if _running(p)]
    for p, _ in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, f"orphans left: {alive}"
    assert temps(tmp_path) == []  # the workers removed what they were writing


def test_output_error_is_an_oserror_and_a_one_line_error(tmp_path):
    from robot_ssl.core.errors import RobotSSLError

    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError) as e, atomic_output(tmp_path / "f" / "x.txt"):
        pass
    assert isinstance(e.value, OSError) and isinstance(e.value, RobotSSLError)
    assert str(e.value) == f"cannot write to {tmp_path / 'f'}: not a directory"


def test_run_record_overwrite_keeps_the_old_session_after_sigkill(session, tmp_path, onnx_model):
    from robot_ssl.io.session import SessionReader

    out = tmp_path / "s.h5"
    shutil.copy(session, out)
    old = sha256(out)
    cmd = [*ROBOT_SSL, "run", "--model", str(onnx_model), "--robot", "sim", "--camera", "sim"]
    cmd += ["--record", str(out), "--overwrite", "--duration", "120", "--no-status"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        tmp = wait_for(lambda: temps(tmp_path), 60, "the new session beside the old", proc)[0]
        wait_for(lambda: tmp.stat().st_size > 50_000, 60, "some data", proc)
        assert sha256(out) == old
        proc.kill()
        proc.wait(timeout=20)
    finally:
        proc.kill()
    assert sha256(out) == old
    with SessionReader(out) as r:
        assert not r.recovered and r.num_frames > 0
    cmd[cmd.index("120")] = "1.5"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sha256(out) != old and temps(tmp_path) == []
    with SessionReader(out) as r:
        assert r.metadata.get("recorded_by") == "robot-ssl run" and r.predictions() is not None
