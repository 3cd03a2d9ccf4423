"""Talk to a Thymio II's firmware (or Aseba Playground) over the Aseba binary protocol.

`protocol` is the pure codec, `link.AsebaLink` the request/response link over pyserial
(serial device or socket:// URL), `thymio.ThymioRobot` the robot adapter. This package
imports nothing else of the project.
"""

from firmware_bridge.errors import (
    FirmwareBridgeError,
    LinkClosed,
    LinkDown,
    LinkTimeout,
    NoNodeFound,
    NotAThymio,
    PortBusy,
    PortError,
    PortNotFound,
    PortPermissionDenied,
    ProtocolError,
    UnknownVariable,
)
from firmware_bridge.link import AsebaLink, LinkEvent, NodeInfo, VariableInfo, plan_reads
from firmware_bridge.thymio import (
    PROX_SPEED_NAMES,
    REQUIRED_VARIABLES,
    PortInfo,
    ThymioReading,
    ThymioRobot,
    find_thymio_port,
    ports,
    require_thymio,
)

__all__ = [
    "PROX_SPEED_NAMES",
    "REQUIRED_VARIABLES",
    "AsebaLink",
    "FirmwareBridgeError",
    "LinkClosed",
    "LinkDown",
    "LinkEvent",
    "LinkTimeout",
    "NoNodeFound",
    "NodeInfo",
    "NotAThymio",
    "PortBusy",
    "PortError",
    "PortInfo",
    "PortNotFound",
    "PortPermissionDenied",
    "ProtocolError",
    "ThymioReading",
    "ThymioRobot",
    "UnknownVariable",
    "VariableInfo",
    "find_thymio_port",
    "plan_reads",
    "ports",
    "require_thymio",
]
