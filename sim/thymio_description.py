"""The complete Aseba node description of a Thymio II as frozen data, in two layouts.

"playground" (the default) is Aseba Playground's simulated Thymio II, captured from the
Debian package's `asebaplayground` message for message: 30 variables in 74 words
(`prox.horizontal` at 42, `motor.left.speed` at 59), 17 local events, 52 natives.
"firmware14" is a real Thymio II on firmware 14: 44 variables in 128 words
(`prox.horizontal` at 57, `motor.left.speed` at 92), the same 17 events, 50 natives.
A client that reads offsets from the description works with both; one that hard-codes
them finds out here. Device information (UUID, name) is per virtual robot.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

from firmware_bridge import protocol as p

__all__ = [
    "DEVICE_INFO_KNOWN",
    "FIRMWARE14",
    "LAYOUTS",
    "PLAYGROUND",
    "DeviceIdentity",
    "NativeFunction",
    "ThymioDescription",
    "ThymioLayout",
    "describe",
    "device_identity",
]


@dataclass(frozen=True)
class NativeFunction:
    """One native function; a parameter is (size in words, name), a negative size being a
    template (parameters with the same negative size have the same length)."""

    name: str
    description: str
    parameters: tuple[tuple[int, str], ...] = ()


# --- BEGIN captured playground description: do not edit by hand, rerun
# scripts/capture_playground_description.py --write
# (captured over TCP from asebaplayground, Debian package aseba 1.6.99+dfsg-7).
PLAYGROUND_NAME = "thymio-II"
PLAYGROUND_PROTOCOL_VERSION = 5
PLAYGROUND_BYTECODE_SIZE = 1534
PLAYGROUND_STACK_SIZE = 32
PLAYGROUND_VARIABLES_SIZE = 586
PLAYGROUND_VARIABLES: tuple[tuple[str, int], ...] = (
    ("_id", 1),
    ("event.source", 1),
    ("event.args", 32),
    ("_productId", 1),
    ("_fwversion", 2),
    ("button.backward", 1),
    ("button.left", 1),
    ("button.center", 1),
    ("button.forward", 1),
    ("button.right", 1),
    ("prox.horizontal", 7),
    ("prox.comm.rx", 1),
    ("prox.comm.tx", 1),
    ("prox.ground.ambiant", 2),
    ("prox.ground.reflected", 2),
    ("prox.ground.delta", 2),
    ("motor.left.target", 1),
    ("motor.right.target", 1),
    ("motor.left.speed", 1),
    ("motor.right.speed", 1),
    ("motor.left.pwm", 1),
    ("motor.right.pwm", 1),
    ("acc", 3),
    ("temperature", 1),
    ("rc5.address", 1),
    ("rc5.command", 1),
    ("mic.intensity", 1),
    ("mic.threshold", 1),
    ("timer.period", 2),
    ("sd.present", 1),
)
PLAYGROUND_EVENTS: tuple[tuple[str, str], ...] = (
    ("button.backward", "Backward button status changed"),
    ("button.left", "Left button status changed"),
    ("button.center", "Center button status changed"),
    ("button.forward", "Forward button status changed"),
    ("button.right", "Right button status changed"),
    ("buttons", "Buttons values updated"),
    ("prox", "Proximity values updated"),
    ("prox.comm", "Data received on the proximity communication"),
    ("tap", "A tap is detected"),
    ("acc", "Accelerometer values updated"),
    ("mic", "Fired when microphone intensity is above threshold"),
    ("sound.finished", "Fired when the playback of a user initiated sound is finished"),
    ("temperature", "Temperature value updated"),
    ("rc5", "RC5 message received"),
    ("motor", "Motor timer"),
    ("timer0", "Timer 0"),
    ("timer1", "Timer 1"),
)
PLAYGROUND_NATIVES: tuple[NativeFunction, ...] = (
    NativeFunction(
        "math.copy", "copies src to dest element by element", ((-1, "dest"), (-1, "src"))
    ),
    NativeFunction("math.fill", "fills dest with constant value", ((-1, "dest"), (1, "value"))),
    NativeFunction(
        "math.addscalar",
        "add scalar to each element of src and store result to dest",
        ((-1, "dest"), (-1, "src"), (1, "scalar")),
    ),
    NativeFunction(
        "math.add",
        "adds src1 and src2, write to dest, element by element",
        ((-1, "dest"), (-1, "src1"), (-1, "src2")),
    ),
    NativeFunction(
        "math.sub",
        "substracts src2 from src1 to dest, element by element",
        ((-1, "dest"), (-1, "src1"), (-1, "src2")),
    ),
    NativeFunction(
        "math.mul",
        "multiplies src1 and src2 to dest, element by element",
        ((-1, "dest"), (-1, "src1"), (-1, "src2")),
    ),
    NativeFunction(
        "math.div",
        "divides src1 by src2 to dest, element by element",
        ((-1, "dest"), (-1, "src1"), (-1, "src2")),
    ),
    NativeFunction(
        "math.min",
        "writes the minimum of src1 and src2 to dest, element by element",
        ((-1, "dest"), (-1, "src1"), (-1, "src2")),
    ),
    NativeFunction(
        "math.max",
        "writes the maximum of src1 and src2 to dest, element by element",
        ((-1, "dest"), (-1, "src1"), (-1, "src2")),
    ),
    NativeFunction(
        "math.clamp",
        "clamp src to low/high bounds into dest, element by element",
        ((-1, "dest"), (-1, "src"), (-1, "low"), (-1, "high")),
    ),
    NativeFunction(
        "math.dot",
        "writes the dot product of src1 and src2 to dest, after a shift",
        ((1, "dest"), (-1, "src1"), (-1, "src2"), (1, "shift")),
    ),
    NativeFunction(
        "math.stat",
        "performs statistics on src",
        ((-1, "src"), (1, "min"), (1, "max"), (1, "mean")),
    ),
    NativeFunction(
        "math.argbounds",
        "get the indices (argmin, argmax) of the limit values of src",
        ((-1, "src"), (1, "argmin"), (1, "argmax")),
    ),
    NativeFunction("math.sort", "sort array in place", ((-1, "array"),)),
    NativeFunction(
        "math.muldiv",
        "performs dest = (a*b)/c in 32 bits element by element",
        ((-1, "dest"), (-1, "a"), (-1, "b"), (-1, "c")),
    ),
    NativeFunction(
        "math.atan2",
        "performs dest = atan2(y,x) element by element",
        ((-1, "dest"), (-1, "y"), (-1, "x")),
    ),
    NativeFunction(
        "math.sin", "performs dest = sin(x) element by element", ((-1, "dest"), (-1, "x"))
    ),
    NativeFunction(
        "math.cos", "performs dest = cos(x) element by element", ((-1, "dest"), (-1, "x"))
    ),
    NativeFunction("math.rot2", "rotates v of angle a to dest", ((2, "dest"), (2, "v"), (1, "a"))),
    NativeFunction(
        "math.sqrt", "performs dest = sqrt(x) element by element", ((-1, "dest"), (-1, "x"))
    ),
    NativeFunction("math.rand", "fill array with random values", ((-1, "dest"),)),
    NativeFunction("deque.size", "report size of dest", ((-1, "deque"), (1, "size"))),
    NativeFunction(
        "deque.get", "fill dest from deque at index", ((-1, "deque"), (-2, "dest"), (1, "index"))
    ),
    NativeFunction(
        "deque.set", "copies src to deque at index", ((-1, "deque"), (-2, "src"), (1, "index"))
    ),
    NativeFunction(
        "deque.insert",
        "shift deque at index by len(src) and insert src",
        ((-1, "deque"), (-2, "src"), (1, "index")),
    ),
    NativeFunction(
        "deque.erase",
        "shift deque at index by len to erase",
        ((-1, "deque"), (1, "index"), (1, "len")),
    ),
    NativeFunction(
        "deque.push_front", "insert src before the front of deque", ((-1, "deque"), (-2, "src"))
    ),
    NativeFunction(
        "deque.push_back", "insert src after the back of deque", ((-1, "deque"), (-2, "src"))
    ),
    NativeFunction(
        "deque.pop_front",
        "fill dest from front of deque then erase elements",
        ((-1, "deque"), (-2, "dest")),
    ),
    NativeFunction(
        "deque.pop_back",
        "fill dest from back of deque then erase elements",
        ((-1, "deque"), (-2, "dest")),
    ),
    NativeFunction("sound.record", "Start recording of rN.wav", ((1, "N"),)),
    NativeFunction("sound.play", "Start playback of pN.wav", ((1, "N"),)),
    NativeFunction("sound.replay", "Start playback of rN.wav", ((1, "N"),)),
    NativeFunction("sound.system", "Start playback of system sound N", ((1, "N"),)),
    NativeFunction(
        "leds.circle",
        "Set circular ring leds",
        (
            (1, "led 0"),
            (1, "led 1"),
            (1, "led 2"),
            (1, "led 3"),
            (1, "led 4"),
            (1, "led 5"),
            (1, "led 6"),
            (1, "led 7"),
        ),
    ),
    NativeFunction("leds.top", "Set RGB top led", ((1, "red"), (1, "green"), (1, "blue"))),
    NativeFunction(
        "leds.bottom.right", "Set RGB botom right led", ((1, "red"), (1, "green"), (1, "blue"))
    ),
    NativeFunction(
        "leds.bottom.left", "Set RGB botom left led", ((1, "red"), (1, "green"), (1, "blue"))
    ),
    NativeFunction("sound.freq", "Play frequency", ((1, "Hz"), (1, "ds"))),
    NativeFunction(
        "leds.buttons", "Set buttons leds", ((1, "led 0"), (1, "led 1"), (1, "led 2"), (1, "led 3"))
    ),
    NativeFunction(
        "leds.prox.h",
        "Set horizontal proximity leds",
        (
            (1, "led 0"),
            (1, "led 1"),
            (1, "led 2"),
            (1, "led 3"),
            (1, "led 4"),
            (1, "led 5"),
            (1, "led 6"),
            (1, "led 7"),
        ),
    ),
    NativeFunction("leds.prox.v", "Set vertical proximity leds", ((1, "led 0"), (1, "led 1"))),
    NativeFunction("leds.rc", "Set rc led", ((1, "led"),)),
    NativeFunction("leds.sound", "Set sound led", ((1, "led"),)),
    NativeFunction("leds.temperature", "Set ntc led", ((1, "red"), (1, "blue"))),
    NativeFunction("sound.wave", "Set the primary wave of the tone generator", ((142, "wave"),)),
    NativeFunction(
        "prox.comm.enable", "Enable or disable the proximity communication", ((1, "state"),)
    ),
    NativeFunction("sd.open", "Open a file on the SD card", ((1, "number"), (1, "status"))),
    NativeFunction("sd.write", "Write data to the opened file", ((-1, "data"), (1, "written"))),
    NativeFunction("sd.read", "Read data from the opened file", ((-1, "data"), (1, "read"))),
    NativeFunction("sd.seek", "Seek the opened file", ((1, "position"), (1, "status"))),
    NativeFunction(
        "sound.duration", "Give duration in 1/10s of rN.wav", ((1, "N"), (1, "duration"))
    ),
)
# --- END captured playground description

# Firmware 14 of a real Thymio II, from the firmware sources (Mobsya/aseba-target-thymio2:
# skel-usb-user.c `vmDescription` for the variables and events, skel-usb-user.h
# `struct _vmVariables` for the memory: the named words, then 512 free words), with the
# five variables that firmware adds after the pwm (`_integrator`, `leds.*`) as listed by
# Mobsya's Aseba compiler (A3a.thymioDescr, "validated with current Thymio firmware").
FIRMWARE14_VARIABLES: tuple[tuple[str, int], ...] = (
    ("_id", 1),
    ("event.source", 1),
    ("event.args", 32),
    ("_fwversion", 2),
    ("_productId", 1),
    ("buttons._raw", 5),
    ("button.backward", 1),
    ("button.left", 1),
    ("button.center", 1),
    ("button.forward", 1),
    ("button.right", 1),
    ("buttons._mean", 5),
    ("buttons._noise", 5),
    ("prox.horizontal", 7),
    ("prox.comm.rx._payloads", 7),
    ("prox.comm.rx._intensities", 7),
    ("prox.comm.rx", 1),
    ("prox.comm.tx", 1),
    ("prox.ground.ambiant", 2),
    ("prox.ground.reflected", 2),
    ("prox.ground.delta", 2),
    ("motor.left.target", 1),
    ("motor.right.target", 1),
    ("_vbat", 2),
    ("_imot", 2),
    ("motor.left.speed", 1),
    ("motor.right.speed", 1),
    ("motor.left.pwm", 1),
    ("motor.right.pwm", 1),
    ("_integrator", 2),
    ("acc", 3),
    ("leds.top", 3),
    ("leds.bottom.left", 3),
    ("leds.bottom.right", 3),
    ("leds.circle", 8),
    ("temperature", 1),
    ("rc5.address", 1),
    ("rc5.command", 1),
    ("mic.intensity", 1),
    ("mic.threshold", 1),
    ("mic._mean", 1),
    ("timer.period", 2),
    ("acc._tap", 1),
    ("sd.present", 1),
)
# The firmware's localEvents[] has the playground's 17 events, same order, same texts.
FIRMWARE14_EVENTS: tuple[tuple[str, str], ...] = PLAYGROUND_EVENTS

_L8 = tuple((1, f"l{i}") for i in range(8))
_RGB = ((1, "red"), (1, "green"), (1, "blue"))
# nativeFunctionsDescription[] of skel-usb-user.c: the four _system natives of skel-usb.c,
# Aseba's standard natives (the playground's math.* ones: same vm/natives.c; the firmware
# has no deque.*), THYMIO_NATIVES_DESCRIPTIONS of thymio_natives.h/.c, then _poweroff.
FIRMWARE14_NATIVES: tuple[NativeFunction, ...] = (
    NativeFunction("_system.reboot", "Reboot the microcontroller"),
    NativeFunction("_system.settings.read", "Read a setting", ((1, "address"), (1, "value"))),
    NativeFunction("_system.settings.write", "Write a setting", ((1, "address"), (1, "value"))),
    NativeFunction("_system.settings.flash", "Write the settings into flash"),
    *(n for n in PLAYGROUND_NATIVES if n.name.startswith("math.")),
    NativeFunction("_leds.set", "Set the led", ((1, "led"), (1, "brightness"))),
    NativeFunction("sound.record", "Start recording of rN.wav", ((1, "N"),)),
    NativeFunction("sound.play", "Start playback of pN.wav", ((1, "N"),)),
    NativeFunction("sound.replay", "Start playback of rN.wav", ((1, "N"),)),
    NativeFunction("sound.system", "Start playback of system sound N", ((1, "N"),)),
    NativeFunction("leds.circle", "Set circular ring leds", _L8),
    NativeFunction("leds.top", "Set RGB top led", _RGB),
    NativeFunction("leds.bottom.left", "Set RGB botom left led", _RGB),
    NativeFunction("leds.bottom.right", "Set RGB botom right led", _RGB),
    NativeFunction("sound.freq", "Play frequency", ((1, "Hz"), (1, "ds"))),
    NativeFunction("leds.buttons", "Set buttons leds", _L8[:4]),
    NativeFunction("leds.prox.h", "Set horizontal proximity leds", _L8),
    NativeFunction("leds.prox.v", "Set vertical proximity leds", _L8[:2]),
    NativeFunction("leds.rc", "Set rc led", ((1, "led"),)),
    NativeFunction("leds.sound", "Set sound led", ((1, "led"),)),
    NativeFunction("leds.temperature", "Set ntc led", ((1, "red"), (1, "blue"))),
    NativeFunction("sound.wave", "Set the primary wave of the tone generator", ((142, "wave"),)),
    NativeFunction(
        "prox.comm.enable", "Enable or disable the proximity communication", ((1, "state"),)
    ),
    NativeFunction("sd.open", "Open a file on the SD card", ((1, "number"), (1, "status"))),
    NativeFunction("sd.write", "Write data to the opened file", ((-1, "data"), (1, "written"))),
    NativeFunction("sd.read", "Read data from the opened file", ((-1, "data"), (1, "read"))),
    NativeFunction("sd.seek", "Seek the opened file", ((1, "position"), (1, "status"))),
    NativeFunction("_rf.nodeid", "Set Wireless Node ID", ((1, "nodeID"),)),
    NativeFunction(
        "sound.duration", "Give duration in 1/10s of rN.wav", ((1, "N"), (1, "duration"))
    ),
    NativeFunction("_poweroff", "Poweroff"),
)


class ThymioLayout(str, Enum):
    """Which Thymio II the virtual one is on the wire."""

    PLAYGROUND = "playground"
    FIRMWARE14 = "firmware14"


LAYOUTS: tuple[str, ...] = tuple(layout.value for layout in ThymioLayout)


@dataclass(frozen=True)
class ThymioDescription:
    """Everything a node says in reply to GET_NODE_DESCRIPTION, plus its firmware version."""

    layout: ThymioLayout
    name: str
    protocol_version: int
    bytecode_size: int  # words
    stack_size: int  # words
    variables_size: int  # words of VM variable memory; the named variables are a prefix
    variables: tuple[tuple[str, int], ...]  # (name, size in words), in memory order
    events: tuple[tuple[str, str], ...]  # (name, description); local event i is 0xFFFE - i
    natives: tuple[NativeFunction, ...]  # native function i is called by index i
    fwversion: tuple[int, int] = (14, 0)  # `_fwversion`

    @property
    def named_words(self) -> int:
        """Words covered by the named variables."""
        return sum(size for _, size in self.variables)

    def offsets(self) -> dict[str, tuple[int, int]]:
        """(offset, size) of every named variable: offsets are the running sum of sizes."""
        out: dict[str, tuple[int, int]] = {}
        offset = 0
        for name, size in self.variables:
            out[name] = (offset, size)
            offset += size
        return out

    def messages(self) -> list[p.Message]:
        """DESCRIPTION, then one message per variable, local event and native, in order."""
        head = p.Description(
            self.name,
            self.protocol_version,
            self.bytecode_size,
            self.stack_size,
            self.variables_size,
            len(self.variables),
            len(self.events),
            len(self.natives),
        )
        out: list[p.Message] = [head]
        out += [p.NamedVariableDescription(size, name) for name, size in self.variables]
        out += [p.LocalEventDescription(name, doc) for name, doc in self.events]
        out += [
            p.NativeFunctionDescription(
                n.name,
                n.description,
                tuple(p.NativeFunctionParameter(s, q) for s, q in n.parameters),
            )
            for n in self.natives
        ]
        return out


PLAYGROUND = ThymioDescription(
    layout=ThymioLayout.PLAYGROUND,
    name=PLAYGROUND_NAME,
    protocol_version=PLAYGROUND_PROTOCOL_VERSION,
    bytecode_size=PLAYGROUND_BYTECODE_SIZE,
    stack_size=PLAYGROUND_STACK_SIZE,
    variables_size=PLAYGROUND_VARIABLES_SIZE,
    variables=PLAYGROUND_VARIABLES,
    events=PLAYGROUND_EVENTS,
    natives=PLAYGROUND_NATIVES,
)

FIRMWARE14 = ThymioDescription(
    layout=ThymioLayout.FIRMWARE14,
    name="thymio-II",
    # as Thymio Suite reports a firmware-14 robot (Debian's Aseba 1.6 clients, protocol 5,
    # refuse such a node: use the playground layout with them)
    protocol_version=9,
    bytecode_size=1534,  # VM_BYTECODE_SIZE = 766 + 768
    stack_size=32,  # VM_STACK_SIZE
    variables_size=128 + 512,  # the named words + VM_VARIABLES_FREE_SPACE
    variables=FIRMWARE14_VARIABLES,
    events=FIRMWARE14_EVENTS,
    natives=FIRMWARE14_NATIVES,
)

_DESCRIPTIONS = {ThymioLayout.PLAYGROUND: PLAYGROUND, ThymioLayout.FIRMWARE14: FIRMWARE14}


def describe(layout: ThymioLayout | str = ThymioLayout.PLAYGROUND) -> ThymioDescription:
    """The description of a layout, by enum or name ("playground", "firmware14")."""
    try:
        return _DESCRIPTIONS[ThymioLayout(layout)]
    except ValueError:
        raise ValueError(f"unknown Thymio layout {layout!r}; choose from {LAYOUTS}") from None


# --------------------------------------------------------------------------- device info

# DeviceInfoType of Mobsya's firmware (skel-usb.c): it answers UUID and NAME, answers
# other ids up to DEVICE_INFO_ENUM_COUNT (3, the radio settings) with no data, and
# ignores ids above that.
DEVICE_INFO_KNOWN = 3
_NAMESPACE = uuid.UUID("5b0c9f8e-6d1f-4c7e-9a4e-7468796d696f")  # this project's, fixed


@dataclass(frozen=True)
class DeviceIdentity:
    """What a Thymio answers to GET_DEVICE_INFO: a 16-byte UUID and a friendly name."""

    uuid: uuid.UUID
    name: str

    def info(self, info: int) -> bytes | None:
        """The DEVICE_INFO data for `info`, or None where the firmware sends no reply."""
        if info == p.DEVICE_INFO_UUID:
            return self.uuid.bytes
        if info == p.DEVICE_INFO_NAME:
            return self.name.encode("utf-8")[:255]
        return b"" if 0 <= info <= DEVICE_INFO_KNOWN else None


def device_identity(node_id: int, name: str | None = None, seed: str = "") -> DeviceIdentity:
    """A stable identity for virtual robot `node_id`: the same UUID in every run for the
    same (node id, seed), different ones for different robots; name by default
    "Virtual Thymio <node id>"."""
    return DeviceIdentity(
        uuid.uuid5(_NAMESPACE, f"virtual-thymio/{seed}/{node_id}"),
        name if name is not None else f"Virtual Thymio {node_id}",
    )
