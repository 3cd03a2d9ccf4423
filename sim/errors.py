"""The simulator's error classes: one base class, precise subclasses."""

from __future__ import annotations


class SimError(Exception):
    """Base class of every error the simulator raises on purpose."""


class WorldError(SimError):
    """A world (scenario file or generator settings) is invalid or cannot be read."""


class ServeError(SimError):
    """The virtual Thymio cannot open a transport (port in use, unknown host, no pty)."""
