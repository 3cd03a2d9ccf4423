"""`robot-ssl robot`: list the serial ports that may hold a Thymio, and probe one.

`probe` connects (serial device or socket://host:port), prints the node, its protocol
version, its variable count and one reading of proximity and wheel speeds. It writes to
the robot: it uploads the onboard program (replacing the robot's own), streams a second
and stops the program on exit; with `--poll` it uploads nothing, and on exit it sets the
wheel targets to zero either way. Errors are one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

HELP = "robot tools: list serial ports, probe a Thymio"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Nested subcommands: `ports [--all]` and `probe [--port URL] [--timeout S]`."""
    from robot_ssl.cli import argtypes as t

    sub = parser.add_subparsers(dest="robot_command", metavar="COMMAND")
    p_ports = sub.add_parser("ports", help="list serial ports with a Thymio's USB id (0x0617)")
    p_ports.add_argument("--all", action="store_true", help="list every serial port")
    p_probe = sub.add_parser(
        "probe", help="connect to a Thymio, print its description and one reading"
    )
    p_probe.add_argument(
        "--port",
        default=None,
        metavar="URL",
        help="serial device (/dev/ttyACM0, COM3) or socket://host:port "
        "(default: the first Thymio serial port)",
    )
    p_probe.add_argument(
        "--timeout",
        type=t.positive_float(),
        default=3.0,
        metavar="S",
        help="seconds to wait for the robot to answer (default 3)",
    )
    t.add_robot_link_options(p_probe)


def _ports(args: argparse.Namespace) -> int:
    from firmware_bridge import ports

    found = ports(include_all=args.all)
    if not found:
        print("no Thymio serial port found (USB vendor id 0x0617); try --all", file=sys.stderr)
        return 0
    for q in found:
        ids = f"{q.vid:04x}:{q.pid:04x}" if q.vid is not None and q.pid is not None else "-"
        print(f"{q.device}\t{q.kind}\t{ids}\t{q.description}")
    return 0


def _probe(args: argparse.Namespace) -> int:
    import time

    from firmware_bridge import AsebaLink, ThymioRobot, find_thymio_port
    from robot_ssl.cli.argtypes import robot_link_from

    if args.timeout <= 0:
        print("robot-ssl robot probe: error: --timeout must be positive", file=sys.stderr)
        return 2
    robot_link = robot_link_from(args)
    url = args.port or find_thymio_port()
    link = AsebaLink(url, timeout_s=args.timeout, connect_timeout_s=args.timeout, reconnect=False)
    node = link.connect()
    try:
        robot = ThymioRobot(link, close_link=False, **robot_link.options())
        try:
            t0 = time.monotonic_ns()
            reading = robot.read()
            rtt_ms = (time.monotonic_ns() - t0) / 1e6
            if robot.streaming:  # one second of the stream: its rate and losses
                robot.drain_stream()
                time.sleep(1.0)
                batch = robot.drain_stream()
                c = robot.stream.counters
                acc = f", {len(batch.acc)} acc" if robot.gives_acc else ""
                stream = (
                    f"{len(batch.proximity)} proximity, {len(batch.wheels)} wheel{acc} events "
                    f"in 1 s, {c.prox_lost + c.wheels_lost + c.acc_lost} lost"
                )
                latest_acc = batch.acc[-1].acc if batch.acc else None
        finally:
            robot.close()
    finally:
        link.close()
    prox = " ".join(str(int(v)) for v in reading.proximity)
    left, right = (int(v) for v in reading.wheel_speed)
    print(f"port:             {url}")
    print(f"node:             {node.node_id} '{node.name}'")
    print(f"protocol version: {node.protocol_version}")
    print(f"variables:        {len(node.variables)} ({node.named_words} words)")
    print(f"prox.horizontal:  {prox}")
    print(f"wheel speed:      {left} {right} (left, right)")
    if robot.streaming:
        print(
            f"link:             streaming (onboard program, watchdog {robot_link.robot_watchdog_ms} ms)"
        )
        print(f"stream:           {stream}")
        if latest_acc is not None:
            acc_line = " ".join(str(int(v)) for v in latest_acc)
            print(f"acc:              {acc_line} (x, y, z; about 23 per g)")
    else:
        print(f"link:             polling ({robot.mode_reason})")
        print(f"read round trip:  {rtt_ms:.1f} ms")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch `ports` / `probe`; bridge errors become one line on stderr and status 2."""
    from firmware_bridge import FirmwareBridgeError

    command = getattr(args, "robot_command", None)
    if command is None:
        print("robot-ssl robot: choose a command: ports, probe (see --help)", file=sys.stderr)
        return 2
    try:
        return _ports(args) if command == "ports" else _probe(args)
    except FirmwareBridgeError as e:
        print(f"robot-ssl robot {command}: error: {e}", file=sys.stderr)
        return 2
