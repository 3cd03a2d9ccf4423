"""The virtual Thymio is a Thymio on the wire: its description equals Aseba Playground's
message for message, the firmware-14 layout has a real robot's offsets, device info
round-trips, and Debian's Aseba clients treat it exactly as they treat asebaplayground.

The tests against the real peer skip without the Debian packages (aseba, xvfb) unless
ROBOT_SSL_REQUIRE_PLAYGROUND=1 (CI). Client processes run in their own process group
and are terminated, then killed, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playground import Playground, PlaygroundRobot, free_port, playground_or_skip, wait_for_port

from firmware_bridge import AsebaLink, ThymioRobot
from firmware_bridge import protocol as p
from sim.simulator import Simulator
from sim.thymio_description import (
    FIRMWARE14,
    PLAYGROUND,
    DeviceIdentity,
    ThymioLayout,
    describe,
    device_identity,
)
from sim.virtual_thymio import THYMIO2_VARIABLES, AsebaNode, VirtualThymio
from sim.world import load_world

PROGRAM = """<!DOCTYPE aesl-source>
<network>
<keywords flag="true"/>
<event size="0" name="ping"/>
<constant value="7" name="N"/>
<node nodeId="1" name="thymio-II">var x[N]
onevent ping
call math.fill(x, 3)
emit ping
onevent prox
x = prox.horizontal
</node>
</network>
"""  # uses a native function: compiling it needs the node's natives


def make_sim() -> Simulator:
    # facing a box: the front sensors see it, so prox.horizontal is not all zeros
    return Simulator(load_world("arena_boxes"), seed=0, camera=None, start_pose=(0.0, -0.9, 0.0))


# --------------------------------------------------------------------------- peers


@pytest.fixture(scope="module")
def playground_port() -> Iterator[int]:
    playground_or_skip()
    port = free_port()
    with Playground([PlaygroundRobot("wire", port)]):
        yield port


@pytest.fixture(scope="module")
def virtual_port() -> Iterator[int]:
    with VirtualThymio(make_sim()) as vt:
        _, port = vt.serve_tcp("127.0.0.1", 0)
        yield port


@pytest.fixture(params=["playground", "virtual"])
def peer(request) -> tuple[str, int]:
    """Each test that takes `peer` runs against asebaplayground, then the virtual Thymio."""
    return request.param, request.getfixturevalue(f"{request.param}_port")


@pytest.fixture(autouse=True)
def _playground_settles(request) -> Iterator[None]:
    """After a test that used the playground, give it a moment: a client connecting
    right after the previous one closed makes it crash (it closes a stream twice)."""
    yield
    params = getattr(request.node, "callspec", None)
    if "playground_port" in request.fixturenames or (
        params is not None and params.params.get("peer") == "playground"
    ):
        time.sleep(0.5)


def require(*exes: str) -> None:
    """Skip (or fail, where the playground is required) when a client is not installed."""
    playground_or_skip()  # same packages: aseba ships the clients too
    missing = [e for e in exes if shutil.which(e) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")


@pytest.fixture(scope="module")
def client_env(tmp_path_factory) -> dict[str, str]:
    """Environment for Debian's clients. Aseba 1.6's compiler builds the locale
    "en_US.UTF-8" by name and aborts ("_S_create_c_locale name not valid") where it is
    not generated: give it one through LOCPATH, an alias of the always-present C.utf8."""
    env = dict(os.environ)
    c_utf8 = Path("/usr/lib/locale/C.utf8")
    if c_utf8.is_dir():
        loc = tmp_path_factory.mktemp("locale")
        (loc / "en_US.UTF-8").symlink_to(c_utf8)
        env["LOCPATH"] = str(loc)
    env["QT_QPA_PLATFORM"] = "offscreen"  # the Qt clients, without a display
    env["HOME"] = str(tmp_path_factory.mktemp("home"))
    env.setdefault("XDG_RUNTIME_DIR", env["HOME"])
    return env


@contextlib.contextmanager
def client(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Run a client in its own process group; SIGTERM it (then SIGKILL) on exit."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=3)
                    break
                except subprocess.TimeoutExpired:
                    continue


def target(port: int) -> str:
    return f"tcp:127.0.0.1;{port}"


# --------------------------------------------------------------------------- raw protocol


class RawHost:
    """A bare Aseba host on a TCP socket: send messages, collect (source, message)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(0.05)
        self.decoder = p.FrameDecoder()

    def send(self, msg: p.Message) -> None:
        self.sock.sendall(p.encode(msg))

    def collect(self, until, timeout_s: float = 5.0) -> list[tuple[int, p.Message]]:
        """Messages until `until(messages)` holds or the timeout passes."""
        got: list[tuple[int, p.Message]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not until(got):
            with contextlib.suppress(TimeoutError):
                data = self.sock.recv(65536)
                if not data:
                    break
                got += self.decoder.feed(data)
        return got

    def close(self) -> None:
        self.sock.close()


def read_description(port: int) -> tuple[p.NodePresent, list[p.Message]]:
    """NODE_PRESENT, then the complete reply to GET_NODE_DESCRIPTION, from the node on `port`."""
    host = RawHost(port)
    try:
        host.send(p.ListNodes())
        present = host.collect(lambda m: any(isinstance(x, p.NodePresent) for _, x in m))
        node_id, node_present = next((s, m) for s, m in present if isinstance(m, p.NodePresent))
        host.send(p.GetNodeDescription(node_id))

        def complete(got) -> bool:
            msgs = [m for s, m in got if s == node_id and not isinstance(m, p.NodePresent)]
            if not msgs or not isinstance(msgs[0], p.Description):
                return False
            head = msgs[0]
            want = head.num_named_variables + head.num_local_events + head.num_native_functions
            return len(msgs) == 1 + want

        got = host.collect(complete)
        assert complete(got), f"incomplete description from port {port}"
        return node_present, [m for s, m in got if s == node_id and isinstance(m, _DESCRIPTIVE)]
    finally:
        host.close()


_DESCRIPTIVE = (
    p.Description,
    p.NamedVariableDescription,
    p.LocalEventDescription,
    p.NativeFunctionDescription,
)


# --------------------------------------------------------------------------- (a) description


def test_description_data_is_complete_and_consistent():
    assert (len(PLAYGROUND.variables), PLAYGROUND.named_words) == (30, 74)
    assert (len(PLAYGROUND.events), len(PLAYGROUND.natives)) == (17, 52)
    assert PLAYGROUND.variables_size == 586 and PLAYGROUND.protocol_version == 5
    assert all(doc for _, doc in PLAYGROUND.events)  # every event has its description
    assert PLAYGROUND.variables == THYMIO2_VARIABLES  # the old name still imports
    for desc in (PLAYGROUND, FIRMWARE14):
        msgs = desc.messages()
        head = msgs[0]
        assert isinstance(head, p.Description)
        assert len(msgs) == 1 + len(desc.variables) + len(desc.events) + len(desc.natives)
        assert head.num_native_functions == len(desc.natives) > 0
        assert desc.named_words <= desc.variables_size
        assert len({n.name for n in desc.natives}) == len(desc.natives)
        for m in msgs:  # each fits in one frame, and survives the codec
            frame = p.encode(m, source=1)
            assert len(frame) <= p.HEADER_BYTES + p.MAX_PAYLOAD_BYTES
            assert p.FrameDecoder().feed(frame) == [(1, m)]
    assert describe("firmware14") is FIRMWARE14 and describe() is PLAYGROUND
    with pytest.raises(ValueError, match="unknown Thymio layout"):
        describe("firmware13")


def test_description_equals_playgrounds_message_for_message(playground_port, virtual_port):
    pg_present, pg_msgs = read_description(playground_port)
    vt_present, vt_msgs = read_description(virtual_port)
    assert vt_present == pg_present
    assert len(vt_msgs) == len(pg_msgs) == 100
    for i, (ours, theirs) in enumerate(zip(vt_msgs, pg_msgs)):
        assert ours == theirs, f"message {i} differs"
    assert vt_msgs == PLAYGROUND.messages()  # the stored capture is still the peer's


def test_asebalink_sees_the_same_node_on_both(playground_port, virtual_port):
    nodes = []
    for port in (playground_port, virtual_port):
        with AsebaLink.open(f"socket://127.0.0.1:{port}") as link:
            nodes.append(link.node)
    pg, vt = nodes
    assert vt == pg
    assert len(vt.native_functions) == 52 and vt.native_functions[0] == "math.copy"
    assert len(vt.local_events) == 17


def test_get_description_is_answered_like_the_vm(peer):
    """Aseba's VM answers the old broadcast GET_DESCRIPTION only to hosts up to protocol
    4; a protocol-5 host uses LIST_NODES and GET_NODE_DESCRIPTION."""
    _, port = peer
    host = RawHost(port)
    try:
        host.send(p.GetDescription(5))
        assert host.collect(lambda m: False, timeout_s=0.6) == []
        host.send(p.GetDescription(4))
        got = host.collect(lambda m: len(m) >= 100)
        assert isinstance(got[0][1], p.Description) and len(got) == 100
    finally:
        host.close()


# --------------------------------------------------------------------------- (b) firmware 14


def test_firmware14_layout_has_a_real_thymios_offsets():
    node = AsebaNode(make_sim(), layout="firmware14")
    assert node.offsets["prox.horizontal"] == (57, 7)
    assert node.offsets["motor.left.speed"] == (92, 1)
    assert node.offsets["motor.left.target"] == (86, 1)
    assert (len(FIRMWARE14.variables), node.named_words) == (44, 128)
    assert len(node.memory) == FIRMWARE14.variables_size == 640
    assert len(FIRMWARE14.natives) == 50 and FIRMWARE14.natives[0].name == "_system.reboot"
    head = node.handle(p.GetNodeDescription(1))[0]
    assert head.num_named_variables == 44 and head.num_native_functions == 50
    assert node.handle(p.ListNodes()) == [p.NodePresent(FIRMWARE14.protocol_version)]
    fw = node.offsets["_fwversion"][0]
    assert node.handle(p.GetVariables(1, fw, 2))[0].values == (14, 0)


def test_thymio_robot_reads_and_drives_the_firmware14_layout():
    sim = make_sim()
    with VirtualThymio(sim, layout=ThymioLayout.FIRMWARE14) as vt:
        host, port = vt.serve_tcp("127.0.0.1", 0)
        with ThymioRobot.open(f"socket://{host}:{port}", timeout_s=5.0, poll=True) as robot:
            v = robot.link.variables
            assert v["prox.horizontal"].offset == 57 and v["motor.left.speed"].offset == 92
            assert robot.link.node.protocol_version == FIRMWARE14.protocol_version
            r = robot.read()
            deadline = time.monotonic() + 2.0  # prox refreshes at 10 Hz, like the robot's
            while time.monotonic() < deadline and int(r.proximity.max()) == 0:
                time.sleep(0.05)
                r = robot.read()
            assert r.proximity.shape == (7,) and int(r.proximity.max()) > 0  # faces a box
            robot.set_wheel_targets(200, -200)
            deadline = time.monotonic() + 3.0
            speed = robot.read().wheel_speed
            while time.monotonic() < deadline and not np.all(np.abs(speed - [200, -200]) < 60):
                time.sleep(0.05)
                speed = robot.read().wheel_speed
            assert np.all(np.abs(speed - [200, -200]) < 60), speed
            assert sim.robot.targets == (200, -200)
        assert sim.robot.targets == (0, 0)
        assert vt.errors == 0


def test_sim_serve_wires_the_layout_through():
    from robot_ssl.simlink.simulator import serve_virtual_thymio

    port, urls = free_port(), []
    server = threading.Thread(
        target=serve_virtual_thymio,
        args=("arena_boxes", 0),
        kwargs=dict(
            port=port, duration_s=6.0, layout="firmware14", announce=lambda u, w: urls.append(u)
        ),
        daemon=True,
    )
    server.start()
    assert wait_for_port(port, 10.0)
    with AsebaLink.open(f"socket://127.0.0.1:{port}") as link:
        assert link.variables["prox.horizontal"].offset == 57
    assert urls == [f"socket://127.0.0.1:{port}"]
    server.join(timeout=10)


# --------------------------------------------------------------------------- (c) device info


def test_device_info_answers_like_the_firmware():
    ident = DeviceIdentity(device_identity(3).uuid, "kitchen")
    node = AsebaNode(make_sim(), node_id=3, identity=ident)
    assert node.handle(p.GetDeviceInfo(3, p.DEVICE_INFO_UUID)) == [
        p.DeviceInfo(p.DEVICE_INFO_UUID, ident.uuid.bytes)
    ]
    assert node.handle(p.GetDeviceInfo(3, p.DEVICE_INFO_NAME)) == [
        p.DeviceInfo(p.DEVICE_INFO_NAME, b"kitchen")
    ]
    assert node.handle(p.GetDeviceInfo(3, 3)) == [p.DeviceInfo(3, b"")]  # no radio
    assert node.handle(p.GetDeviceInfo(3, 99)) == []  # past the firmware's ids: silence
    assert node.handle(p.GetDeviceInfo(1, p.DEVICE_INFO_UUID)) == []  # another node's
    # one UUID per virtual robot, the same in every run
    assert device_identity(1) == device_identity(1) != device_identity(2)
    assert device_identity(1).uuid != device_identity(1, seed="other").uuid
    assert AsebaNode(make_sim()).identity == device_identity(1)


def test_device_info_round_trip_over_tcp():
    ident = device_identity(1, name="Virtual Thymio Ü")
    with VirtualThymio(make_sim(), layout="firmware14", identity=ident) as vt:
        _, port = vt.serve_tcp("127.0.0.1", 0)
        host = RawHost(port)
        try:
            for info in (p.DEVICE_INFO_UUID, p.DEVICE_INFO_NAME, 99):
                host.send(p.GetDeviceInfo(1, info))
            host.send(p.ListNodes())  # a marker: everything before it has been answered
            got = host.collect(lambda m: any(isinstance(x, p.NodePresent) for _, x in m))
        finally:
            host.close()
        replies = [m for _, m in got if isinstance(m, p.DeviceInfo)]
        assert replies == [
            p.DeviceInfo(p.DEVICE_INFO_UUID, ident.uuid.bytes),
            p.DeviceInfo(p.DEVICE_INFO_NAME, "Virtual Thymio Ü".encode()),
        ]
        assert vt.errors == 0


def test_device_info_payload_has_the_firmwares_layout():
    uuid_bytes = bytes(range(16))
    payload = p.encode_payload(p.DeviceInfo(p.DEVICE_INFO_UUID, uuid_bytes))
    assert payload == bytes([p.DEVICE_INFO_UUID, 16]) + uuid_bytes  # [info u8][size u8][data]


# --------------------------------------------------------------------------- (d) Debian clients


def http_json(port: int, path: str, timeout_s: float = 8.0, until=bool):
    """GET http://127.0.0.1:port/path as JSON, retrying until `until(data)` holds (by
    default: until the server has a node)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                data = json.loads(r.read())
            if until(data):
                return data
            last = data
        except (OSError, ValueError) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"no answer on :{port}{path} (last: {last})")


def shape(value):
    """The JSON's structure: keys and types (values vary between the peers)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


@pytest.mark.parametrize("exe", ["asebahttp", "asebahttp2"])
def test_asebahttp_serves_both_peers_alike(
    exe, playground_port, virtual_port, client_env, tmp_path
):
    require(exe)
    seen = {}
    for name, port in (("playground", playground_port), ("virtual", virtual_port)):
        http = free_port()
        with client([exe, "-p", str(http), target(port)], client_env, tmp_path / f"{name}.log"):
            nodes = http_json(http, "/nodes")
            node = http_json(http, "/nodes/thymio-II")
            prox = http_json(http, "/nodes/thymio-II/prox.horizontal")
        assert len(prox) == 7 and all(isinstance(v, int) for v in prox), prox
        seen[name] = (nodes, node, prox)
    (pg_nodes, pg_node, pg_prox), (vt_nodes, vt_node, vt_prox) = seen["playground"], seen["virtual"]
    assert vt_nodes == pg_nodes  # [{"node": 1, "name": "thymio-II", "protocolVersion": 5...}]
    assert vt_node == pg_node  # the whole description as the client understood it
    assert shape(vt_prox) == shape(pg_prox)
    assert max(vt_prox) > 0  # the virtual robot faces a box


def test_asebahttp_compiles_and_loads_a_program_on_both(peer, client_env, tmp_path):
    """With -a, asebahttp compiles the program against the node's description (natives
    included) and sends it; its /nodes then lists the program's events and constants."""
    require("asebahttp")
    _, port = peer
    aesl = tmp_path / "program.aesl"
    aesl.write_text(PROGRAM)
    http = free_port()
    args = ["asebahttp", "-v", "-p", str(http), "-a", str(aesl), target(port)]
    with client(args, client_env, tmp_path / "http.log") as proc:
        # asebahttp may serve the node's description before it has compiled the program.
        node = http_json(http, "/nodes/thymio-II", until=lambda d: bool(d and d.get("events")))
        assert proc.poll() is None, (tmp_path / "http.log").read_text()[-500:]
    assert node["events"] == {"ping": 0} and node["constants"] == {"N": 7}


def test_asebamassloader_compiles_against_the_natives(peer, client_env, tmp_path):
    """The program calls math.fill: the compiler finds it only in a description that
    has the native functions (the virtual Thymio used to describe none)."""
    require("asebamassloader")
    _, port = peer
    aesl = tmp_path / "program.aesl"
    aesl.write_text(PROGRAM)
    log = tmp_path / "massloader.log"
    with client(["asebamassloader", "--once", str(aesl), target(port)], client_env, log) as proc:
        rc = proc.wait(timeout=15)
    out = log.read_text(errors="replace")
    assert rc == 0, out[-800:]
    assert re.search(r"\d+ bytecodes loaded to target thymio-II", out), out[-800:]


def dump_through_switch(port: int, env, tmp_path: Path, requests) -> list[str]:
    """asebadump's lines (timestamps and stream names cut) while `requests(switch_port)`
    talks to the node through an asebaswitch that also feeds asebadump: a passive client
    sees what the node answers to another one."""
    sw = free_port()
    with client(["asebaswitch", "-p", str(sw), target(port)], env, tmp_path / "switch.log"):
        assert wait_for_port(sw, 5.0)
        time.sleep(0.3)  # the switch connects to the node
        with client(["asebadump", target(sw)], env, tmp_path / "dump.log"):
            time.sleep(0.5)
            requests(sw)
            time.sleep(1.0)
    lines = (tmp_path / "dump.log").read_text(errors="replace").splitlines()
    cut = [re.sub(r"^\[[^\]]*\] \S+ ", "", line) for line in lines]
    return [line for line in cut if line and "connection created" not in line]


def test_asebadump_sees_the_same_conversation(playground_port, virtual_port, client_env, tmp_path):
    require("asebadump", "asebaswitch", "asebacmd")

    def requests(sw: int) -> None:
        for cmd in (["listnodes"], ["getnodedescr", "1"]):
            subprocess.run(["asebacmd", "-t", target(sw), *cmd], env=client_env, timeout=10)
        host = RawHost(sw)
        host.send(p.GetVariables(1, PLAYGROUND.offsets()["prox.horizontal"][0], 7))
        host.collect(lambda m: any(isinstance(x, p.Variables) for _, x in m))
        host.close()

    dumps = {}
    for name, port in (("playground", playground_port), ("virtual", virtual_port)):
        (tmp_path / name).mkdir()
        dumps[name] = dump_through_switch(port, client_env, tmp_path / name, requests)
    pg, vt = dumps["playground"], dumps["virtual"]
    assert "9005 variables from 1 : start 42, variables vector of size 7" in vt
    assert "9000 description from 1 : Node thymio-II using protocol version 5" in vt
    assert sorted(vt) == sorted(pg)  # the same messages (requests and replies interleave)


def test_asebamedulla_reads_prox_over_dbus(peer, client_env, tmp_path):
    require("asebamedulla", "dbus-run-session", "dbus-send")
    _, port = peer
    script = f"""
asebamedulla "{target(port)}" > {tmp_path}/medulla.log 2>&1 &
M=$!
sleep 4
dbus-send --session --print-reply --dest=ch.epfl.mobots.Aseba / \\
    ch.epfl.mobots.AsebaNetwork.GetNodesList
dbus-send --session --print-reply --dest=ch.epfl.mobots.Aseba / \\
    ch.epfl.mobots.AsebaNetwork.GetVariable string:thymio-II string:prox.horizontal
kill $M; wait $M
"""
    log = tmp_path / "dbus.log"
    with client(["dbus-run-session", "--", "sh", "-c", script], client_env, log) as proc:
        proc.wait(timeout=15)
    out = log.read_text(errors="replace")
    assert 'string "thymio-II"' in out, out[-800:]
    assert len(re.findall(r"int16 -?\d+", out)) == 7, out[-800:]


def test_asebastudio_connects_and_reads_all_variables(
    playground_port, virtual_port, client_env, tmp_path
):
    """Aseba Studio (offscreen) asks for the description, then reads every named word."""
    require("asebastudio", "asebaswitch", "asebadump")

    def requests(sw: int) -> None:
        with client(["asebastudio", target(sw)], client_env, tmp_path / "studio.log"):
            time.sleep(5.0)

    dumps = {}
    for name, port in (("playground", playground_port), ("virtual", virtual_port)):
        (tmp_path / name).mkdir()
        dumps[name] = dump_through_switch(port, client_env, tmp_path / name, requests)
    read_all = "a00b get variables from 0 : dest 1 start 0, length 74"
    assert read_all in dumps["playground"]
    assert read_all in dumps["virtual"]
    assert "9005 variables from 1 : start 0, variables vector of size 47" in dumps["virtual"]


@pytest.mark.parametrize(
    "args",
    [["asebarec"], ["asebaexec", "1", "true"]],
    ids=["asebarec", "asebaexec"],
)
def test_user_message_clients_stay_connected(args, peer, client_env, tmp_path):
    """These only pass user events (no handshake): they connect and keep running."""
    require(args[0])
    _, port = peer
    with client([*args, target(port)], client_env, tmp_path / "client.log") as proc:
        time.sleep(1.0)
        assert proc.poll() is None, (tmp_path / "client.log").read_text()[-500:]
