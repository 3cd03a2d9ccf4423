"""Capture the complete node description of Aseba Playground's Thymio II and print it as
the Python data block of sim/thymio_description.py (or write it there with --write).

Run once when the reference peer changes (Debian package `aseba`, `asebaplayground`):
it starts the playground headless (tests/playground.py), or talks to a running one with
--port, and reads the reply to GET_NODE_DESCRIPTION over a raw TCP socket with
firmware_bridge.protocol, so that nothing of the virtual Thymio is involved.

    .venv/bin/python scripts/capture_playground_description.py --write
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from firmware_bridge import protocol as p  # noqa: E402

TARGET = ROOT / "sim" / "thymio_description.py"
BEGIN = "# --- BEGIN captured playground description"
END = "# --- END captured playground description"


def capture(port: int, timeout_s: float = 10.0) -> list[p.Message]:
    """DESCRIPTION and every counted part that follows it, from the node on `port`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.settimeout(0.2)
        decoder = p.FrameDecoder()
        s.sendall(p.encode(p.ListNodes()))
        node_id: int | None = None
        msgs: list[p.Message] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except TimeoutError:
                continue
            for source, msg in decoder.feed(data):
                if node_id is None and isinstance(msg, p.NodePresent):
                    node_id = source
                    s.sendall(p.encode(p.GetNodeDescription(node_id)))
                elif source == node_id and isinstance(msg, p.Description):
                    msgs = [msg]
                elif msgs and source == node_id:
                    msgs.append(msg)
            if msgs and len(msgs) == 1 + sum(_counts(msgs[0])):
                return msgs
    raise TimeoutError(f"no complete description from port {port} within {timeout_s} s")


def _counts(head: p.Description) -> tuple[int, int, int]:
    return head.num_named_variables, head.num_local_events, head.num_native_functions


def render(msgs: list[p.Message], source: str) -> str:
    """The data block (between the BEGIN and END markers) for these messages."""
    head = msgs[0]
    assert isinstance(head, p.Description)
    variables = [m for m in msgs if isinstance(m, p.NamedVariableDescription)]
    events = [m for m in msgs if isinstance(m, p.LocalEventDescription)]
    natives = [m for m in msgs if isinstance(m, p.NativeFunctionDescription)]
    assert (len(variables), len(events), len(natives)) == _counts(head)
    out = [
        f"{BEGIN}: do not edit by hand, rerun",
        "# scripts/capture_playground_description.py --write",
        f"# ({source}).",
        f"PLAYGROUND_NAME = {head.name!r}",
        f"PLAYGROUND_PROTOCOL_VERSION = {head.protocol_version}",
        f"PLAYGROUND_BYTECODE_SIZE = {head.bytecode_size}",
        f"PLAYGROUND_STACK_SIZE = {head.stack_size}",
        f"PLAYGROUND_VARIABLES_SIZE = {head.variables_size}",
        "PLAYGROUND_VARIABLES: tuple[tuple[str, int], ...] = (",
        *(f"    ({v.name!r}, {v.size})," for v in variables),
        ")",
        "PLAYGROUND_EVENTS: tuple[tuple[str, str], ...] = (",
        *(f"    ({e.name!r}, {e.description!r})," for e in events),
        ")",
        "PLAYGROUND_NATIVES: tuple[NativeFunction, ...] = (",
    ]
    for n in natives:
        params = ", ".join(f"({q.size}, {q.name!r})" for q in n.parameters)
        params += "," if len(n.parameters) == 1 else ""
        out.append(f"    NativeFunction({n.name!r}, {n.description!r}, ({params})),")
    out += [")", END]
    return "\n".join(out) + "\n"


def write(block: str, target: Path = TARGET) -> None:
    """Replace the marked block of `target` (markers included), then ruff-format it."""
    text = target.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n", re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"markers not found in {target}")
    target.write_text(pattern.sub(lambda _m: block, text, count=1))
    ruff = ROOT / ".venv" / "bin" / "ruff"
    if ruff.exists():
        subprocess.run([str(ruff), "format", str(target)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, help="a running playground's robot port")
    ap.add_argument("--write", action="store_true", help=f"rewrite the block in {TARGET.name}")
    args = ap.parse_args()
    version = _aseba_version()
    source = f"captured over TCP from asebaplayground, Debian package aseba {version}"
    if args.port:
        msgs = capture(args.port)
    else:
        from playground import Playground, PlaygroundRobot, free_port

        port = free_port()
        with Playground([PlaygroundRobot("capture", port)]):
            msgs = capture(port)
    block = render(msgs, source)
    if args.write:
        write(block)
    else:
        sys.stdout.write(block)


def _aseba_version() -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "aseba"], capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown version"
    except OSError:
        return "unknown version"


if __name__ == "__main__":
    main()
