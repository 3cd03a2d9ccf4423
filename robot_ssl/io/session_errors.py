"""Errors of session files: one base class (a RobotSSLError: one line, exit 2 at the CLI)."""

from __future__ import annotations

from robot_ssl.core.errors import RobotSSLError

__all__ = [
    "DamagedFrameError",
    "DamagedSessionError",
    "InconsistentSessionError",
    "NotASessionError",
    "SessionError",
    "SessionWriteError",
    "UnsupportedVersionError",
]


class SessionError(RobotSSLError):
    """Base class of session file errors."""


class NotASessionError(SessionError):
    """The file is missing, not HDF5, or not a robot-ssl session."""


class UnsupportedVersionError(SessionError):
    """The session was written by a newer schema version than this reader knows."""


class InconsistentSessionError(SessionError):
    """The session's streams contradict each other (lengths, timestamp order)."""


class DamagedSessionError(SessionError):
    """The file is damaged (truncated, unreadable HDF5 metadata) beyond recovery: no data
    stream has an intact row, or the root metadata is gone."""


class DamagedFrameError(InconsistentSessionError):
    """One frame's stored JPEG bytes do not decode, or decode to another size than the
    session's camera; the other frames are usable (see IntactFrames)."""


class SessionWriteError(SessionError):
    """Writing failed (disk full, file exists, I/O error); data flushed before stays readable."""
