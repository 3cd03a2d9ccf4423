"""Exceptions of the firmware bridge: one base class, one subclass per thing that goes wrong.

Messages are one line and say what to do, so that a command line can print them as they are.
"""

from __future__ import annotations


class FirmwareBridgeError(Exception):
    """Base class of every error firmware_bridge raises on purpose."""


class PortError(FirmwareBridgeError):
    """The serial port or URL could not be opened."""


class PortNotFound(PortError):
    """No such serial device, or nothing listens at the socket address."""


class PortBusy(PortError):
    """Another program (Thymio Suite, Aseba Studio, another bridge) holds the port."""


class PortPermissionDenied(PortError):
    """The user may not open the device (join the dialout group or add a udev rule)."""


class NotAThymio(FirmwareBridgeError):
    """The device does not behave like a Thymio (no Aseba node, or lacks its variables)."""


class NoNodeFound(NotAThymio):
    """Nothing answered Aseba node discovery before the timeout."""


class ProtocolError(FirmwareBridgeError):
    """The node sent something inconsistent (e.g. an incomplete description)."""


class UnknownVariable(FirmwareBridgeError, KeyError):
    """A variable name that the node's description does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LinkTimeout(FirmwareBridgeError, TimeoutError):
    """A reply did not come in time."""


class LinkDown(LinkTimeout):
    """The link is lost and being re-established; the request could not be served in time."""


class LinkClosed(FirmwareBridgeError):
    """The link was closed by its owner; no more requests are possible."""
