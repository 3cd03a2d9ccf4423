"""Atomic output files: the one way robot_ssl writes a file that must appear whole or not at all.

    with atomic_output("runs/r1/best.pt") as tmp:
        torch.save(state, tmp)

The body writes to a temporary file in the target's folder, named
``.NAME.tmp-PID`` + the target's suffix (``.best.pt.tmp-4242.pt``: tools that
pick a format from the extension, such as OpenCV's video writer, still work).
On success the file is fsync'ed and renamed over the target with
:func:`os.replace` (atomic on POSIX and Windows), then the folder is fsync'ed;
on any exception, KeyboardInterrupt and SystemExit included, the temporary
file is removed. SIGTERM is turned into a clean exit while an output is being
written (when the process has no SIGTERM handler of its own), so a terminated
command leaves nothing behind either; if that exit is swallowed (the handler ran in a
weakref callback or a __del__), the process ends `SIGTERM_GRACE_S` later regardless.

The temporary file is created at once (``O_CREAT | O_EXCL``, mode ``0o666``
less the umask, as for any other new file, unlike :func:`tempfile.mkstemp`'s
``0o600``), which also checks that the folder is writable before any work is
done: a folder that cannot be written raises :class:`OutputError` ("cannot
write to DIR: permission denied"), an :class:`OSError` and a
:class:`~robot_ssl.core.errors.RobotSSLError`, so the CLI prints it in one line.

A SIGKILL (or a power cut) cannot be caught: it may leave one temporary file.
It is never mistaken for the output (the target keeps its old content or stays
absent), and the next write of the same target removes temporary files of
that target whose process is gone, so they never accumulate.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from robot_ssl.core.errors import RobotSSLError

__all__ = [
    "OutputError",
    "atomic_output",
    "check_writable",
    "ensure_dir",
    "free_bytes",
    "remove_active_temps",
    "remove_stale_temps",
    "replacing_output",
    "temp_name_pattern",
    "write_error",
]

TEMP_MARK = ".tmp-"


class OutputError(RobotSSLError, OSError):
    """An output file or folder cannot be written (read-only, permission denied, not a folder)."""


_lock = threading.Lock()
_active: set[Path] = set()  # temporary files this process is writing now
_handler_installed = False


def _reason(e: OSError) -> str:
    text = e.strerror or str(e) or type(e).__name__
    return text[:1].lower() + text[1:]


def write_error(path: str | os.PathLike, e: OSError) -> OutputError:
    """The one-line OutputError for a write to `path` that failed with `e` (a full disk, a
    read-only one, an I/O error): "cannot write PATH: no space left on device"."""
    return OutputError(f"cannot write {path}: {_reason(e)}")


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create folder `path` (and its parents) if needed; OutputError when that is impossible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file (or a link to one) where the folder should be
        raise OutputError(f"cannot write to {path}: not a directory") from None
    except OSError as e:
        raise OutputError(f"cannot write to {path}: {_reason(e)}") from None
    return path


def check_writable(folder: str | os.PathLike) -> Path:
    """Create `folder` if needed and check that a file can be created in it (by creating and
    removing one); OutputError with a one-line reason otherwise. Root ignores permission bits,
    so this is the only reliable check."""
    folder = ensure_dir(folder)
    probe = folder / f".robot-ssl-probe{TEMP_MARK}{os.getpid()}-{threading.get_ident()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o666)
    except FileExistsError:
        return folder
    except OSError as e:
        raise OutputError(f"cannot write to {folder}: {_reason(e)}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()
    return folder


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def temp_name_pattern(path: str | os.PathLike) -> re.Pattern[str]:
    """The names of `path`'s temporary files; group 1 is the writer's process id."""
    p = Path(path)
    return re.compile(
        rf"^\.{re.escape(p.name)}{re.escape(TEMP_MARK)}(\d+)(?:-\d+)?{re.escape(p.suffix)}$"
    )


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's live process
        return True
    except OSError:
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove temporary files of target `path` left by processes that no longer run (a
    SIGKILL or a power cut during a write); returns the files removed."""
    p = Path(path)
    pattern = temp_name_pattern(p)
    removed = []
    try:
        candidates = list(p.parent.glob(f".{_glob_escape(p.name)}{TEMP_MARK}*"))
    except OSError:
        return removed
    me = os.getpid()
    for c in candidates:
        m = pattern.match(c.name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid == me or _pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            c.unlink()
            removed.append(c)
    return removed


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def remove_active_temps() -> None:
    """Remove every temporary file this process is writing now (for signal handlers and for
    code about to call os._exit)."""
    for tmp in _active.copy():  # one C call: safe while other threads add or remove
        with contextlib.suppress(OSError):
            os.unlink(tmp)


SIGTERM_GRACE_S = 5.0
"""After SIGTERM, the process exits this long after the handler ran even if the
SystemExit it raised was swallowed: a signal handler runs wherever the main thread
is, also inside a weakref callback or a __del__, where Python ignores exceptions."""


def _on_sigterm(signum: int, frame: object) -> None:
    remove_active_temps()
    code = 128 + signum
    timer = threading.Timer(SIGTERM_GRACE_S, _exit_now, (code,))
    timer.daemon = True  # a clean exit before the grace ends does not wait for it
    timer.start()
    raise SystemExit(code)


def _exit_now(code: int) -> None:
    """The SIGTERM's exit, when the SystemExit did not end the process in time."""
    remove_active_temps()
    with contextlib.suppress(Exception):
        sys.stderr.write(f"terminated (SIGTERM): exiting after {SIGTERM_GRACE_S:g} s of cleanup\n")
        sys.stderr.flush()
    os._exit(code)


def _install_sigterm_handler() -> None:
    """While outputs are open, SIGTERM exits cleanly (unless the program handles it itself)."""
    global _handler_installed
    if threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
            _handler_installed = True


def _restore_sigterm_handler() -> None:
    global _handler_installed
    if not _handler_installed or _active:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _handler_installed = False


def _create_temp(path: Path) -> Path:
    """Create and register this process's temporary file for `path`."""
    pid = os.getpid()
    k = 0
    while True:
        extra = f"-{k}" if k else ""
        tmp = path.with_name(f".{path.name}{TEMP_MARK}{pid}{extra}{path.suffix}")
        with _lock:
            if tmp in _active:  # another thread of this process writes the same target
                k += 1
                continue
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o666)
            except FileExistsError:
                # our pid, but not ours: left by an earlier process that had this pid
                try:
                    os.unlink(tmp)
                except OSError:
                    k += 1
                continue
            except OSError as e:
                raise OutputError(f"cannot write to {path.parent}: {_reason(e)}") from None
            _active.add(tmp)
        os.close(fd)
        return tmp


def _fsync_path(p: Path, directory: bool = False) -> None:
    fd = os.open(p, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it vanishes.

    The folder is created if needed; OutputError when it cannot be written. The
    temporary file exists (empty) when the body starts; writers may truncate or
    reopen it. See the module docstring for names, modes and signals.
    """
    path = Path(path)
    ensure_dir(path.parent)
    remove_stale_temps(path)
    _install_sigterm_handler()
    try:
        tmp = _create_temp(path)
    except BaseException:
        _restore_sigterm_handler()
        raise
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        with _lock:
            _active.discard(tmp)
        _restore_sigterm_handler()
    with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
        _fsync_path(path.parent, directory=True)


@contextlib.contextmanager
def replacing_output(path: str | os.PathLike, overwrite: bool) -> Iterator[Path]:
    """Where to write a long recording to `path`: `path` itself when it does not exist,
    else (with `overwrite`) a temporary file beside it that replaces it at the end, so the
    old file stays whole until the new one is complete (a kill -9 leaves both)."""
    path = Path(path)
    if overwrite and path.exists():
        with atomic_output(path) as tmp:
            yield tmp
    else:
        yield path


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes that may still be written to `path`: free space on its file system, or less
    under a file-size limit (RLIMIT_FSIZE); None when unknown."""
    path = Path(path)
    try:
        st = os.statvfs(path.parent if not path.is_dir() else path)
    except (OSError, AttributeError):
        return None
    free = st.f_bavail * st.f_frsize
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY:
            size = path.stat().st_size if path.exists() else 0
            free = min(free, soft - size)
    except (ImportError, OSError, ValueError):
        pass
    return free
