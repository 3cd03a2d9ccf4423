"""Where the live view is served and saved: ports checked before the robot moves, the URL
that a browser on another machine opens, and `.rrd` files that appear whole or not at all.

Serving (`run --view`): Rerun's web viewer on the web port and its gRPC server (the
data) on the gRPC port, both on every interface. Each port is tried by binding it before
Rerun starts (:func:`check_port_free`), so a port held by another program, or by another
live view, is one line and exit 2 before the robot moves. The printed URL
(:func:`viewer_url`) names this machine's address as the rest of the network reaches it
(:func:`reachable_host`), and carries the gRPC address in its `url` parameter: the web
viewer connects to it on load.

Saving (`--view-save`, `replay --rerun`): Rerun's file sink stops writing on a full disk
and then blocks forever in flush (rerun-sdk 0.41), so it never writes to the disk itself:
:class:`RrdFile` gives it the write end of a pipe (`/dev/fd/N`, Linux and macOS) and a
thread copies the bytes into a temporary file beside the target
(robot_ssl.core.outputs.atomic_output). A write error there is kept (and reported through
`on_error`) while the pipe is still drained, so Rerun never sees it; the temporary file
is removed and the error raised as an OutputError at the end; otherwise the file is
renamed into place whole.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.outputs import (
    OutputError,
    atomic_output,
    check_writable,
    free_bytes,
    write_error,
)

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_WEB_PORT",
    "MIN_SAVE_FREE_BYTES",
    "RrdFile",
    "ViewError",
    "check_port_free",
    "check_save_target",
    "reachable_host",
    "viewer_url",
]

DEFAULT_WEB_PORT = 9090
DEFAULT_GRPC_PORT = 9876  # Rerun's own default
MIN_SAVE_FREE_BYTES = 2**20  # a saved live view is a few hundred kB a second
_PROBE_ADDRESS = ("192.0.2.1", 9)  # TEST-NET-1 (RFC 5737): only routed, nothing is sent


class ViewError(RobotSSLError):
    """The live view cannot be served (a port taken or refused)."""


def check_port_free(port: int, option: str) -> None:
    """Raise ViewError when TCP `port` cannot be served on every interface (taken by another
    program or another live view, or refused); `option` names the option that chose it.

    Binds with SO_REUSEADDR as Rerun's servers do: a port left in TIME_WAIT by an earlier
    run is free, a port another socket listens on is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ViewError(
                    f"port {port} ({option}) is in use by another program or live view;"
                    f" choose another with {option}"
                ) from None
            reason = (e.strerror or str(e)).lower()
            raise ViewError(f"cannot serve port {port} ({option}): {reason}") from None


def _routable(ip: str) -> bool:
    return not ip.startswith("127.") and ip != "0.0.0.0"


def reachable_host() -> str:
    """This machine's IPv4 address as other hosts on the network reach it: the address of
    the interface that routes outwards (a UDP connect, which sends nothing), else an
    address of the host name, else 127.0.0.1 (a machine without a network)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(_PROBE_ADDRESS)
        ip = s.getsockname()[0]
        if _routable(ip):
            return ip
    with contextlib.suppress(OSError):
        for *_, address in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            if _routable(address[0]):
                return address[0]
    return "127.0.0.1"


def grpc_url(host: str, grpc_port: int) -> str:
    """The Rerun gRPC proxy address a viewer connects to."""
    return f"rerun+http://{host}:{grpc_port}/proxy"


def viewer_url(host: str, web_port: int, grpc_port: int) -> str:
    """The web viewer's URL that connects to the live data on load (the gRPC address,
    percent-encoded, in the `url` parameter)."""
    proxy = urllib.parse.quote(grpc_url(host, grpc_port), safe="")
    return f"http://{host}:{web_port}/?url={proxy}"


def check_save_target(path: str | os.PathLike) -> Path:
    """Fail now, before the robot moves, when the view cannot be saved to `path`: a folder,
    a folder that cannot be written, or a disk with less than MIN_SAVE_FREE_BYTES free."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; name the .rrd file to write")
    check_writable(path.parent)
    free = free_bytes(path)
    if free is not None and free < MIN_SAVE_FREE_BYTES:
        raise OutputError(
            f"cannot write {path}: its disk has {max(free, 0) / 1e6:.2f} MB free"
            f" (the live view needs at least {MIN_SAVE_FREE_BYTES / 1e6:.0f} MB)"
        )
    return path


class RrdFile:
    """A `.rrd` that Rerun writes through a pipe into a temporary file beside `path`.

        rrd = RrdFile(path)                       # the temporary file exists now
        rrd.attach(rr, rec)                       # Rerun writes into the pipe
        ...log...; rec.flush(); rec.disconnect()  # the sink closes: end of the stream
        rrd.finish()                              # renamed into place, or OutputError

    `on_error(error)` is called from the copying thread at the first write error (a full
    disk); `error` holds it. `abort()` removes the temporary file. Also a context manager
    (finish on success, abort on an exception).
    """

    def __init__(
        self, path: str | os.PathLike, on_error: Callable[[OutputError], None] | None = None
    ) -> None:
        self.path = Path(path)
        self.on_error = on_error
        self.error: OutputError | None = None
        self._outputs = contextlib.ExitStack()
        tmp = self._outputs.enter_context(atomic_output(self.path))
        try:
            self._fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0))
            self._read_fd, self._write_fd = os.pipe()
        except OSError as e:
            self._outputs.__exit__(type(e), e, None)
            raise write_error(self.path, e) from None
        self._thread = threading.Thread(target=self._copy, name="rrd-file", daemon=True)
        self._thread.start()

    def attach(self, rr: Any, rec: Any, *sinks: Any) -> None:
        """Set the sinks of Rerun recording `rec`: `sinks` and a FileSink into the pipe."""
        try:
            rec.set_sinks(*sinks, rr.FileSink(f"/dev/fd/{self._write_fd}"))
        finally:
            os.close(self._write_fd)  # the sink's own descriptor stays: its close ends the stream
            self._write_fd = -1

    def check(self) -> None:
        """Raise the write error, if any (to stop early instead of encoding on)."""
        if self.error is not None:
            raise self.error

    def _copy(self) -> None:
        while chunk := os.read(self._read_fd, 1 << 16):
            view = memoryview(chunk)
            while view and self.error is None:
                try:
                    view = view[os.write(self._fd, view) :]
                except OSError as e:
                    self.error = write_error(self.path, e)
                    if self.on_error is not None:
                        self.on_error(self.error)
        os.close(self._read_fd)

    def finish(self, timeout_s: float = 30.0) -> Path:
        """After Rerun closed its sink: wait for the last bytes, then rename the file into
        place; OutputError (and no file) when a write failed."""
        self._thread.join(timeout_s)
        if self._thread.is_alive() and self.error is None:
            self.error = OutputError(f"cannot write {self.path}: Rerun did not end its stream")
        if self.error is not None:
            self.abort()
            raise self.error
        try:
            os.close(self._fd)
            self._fd = -1
            self._outputs.close()  # fsync and rename
        except OSError as e:
            self.abort()
            raise write_error(self.path, e) from None
        return self.path

    def abort(self) -> None:
        """Remove the temporary file (the target keeps its old content or stays absent)."""
        for fd in (self._fd, self._write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._write_fd = -1
        error = self.error or OutputError(f"{self.path}: not written")
        self._outputs.__exit__(type(error), error, None)

    def __enter__(self) -> RrdFile:
        return self

    def __exit__(self, exc_type: object, exc: object, _tb: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()
