"""Clock models of the simulated devices: when a camera frame is exposed, delivered and
dropped (`CameraTiming`), and when the robot's readings are refreshed and reach the host
(`RobotTiming`). `ideal()` of either is the old simulator: frames stamped at exposure,
never late, never lost; proximity refreshed on the recorder's 10 Hz grid; readings
stamped when read.

Per-sample draws come from `SampleDraws`: blocks of draws seeded by (seed, stream,
block), so the draws of sample k are a pure function of the seed and k, whatever reads
the simulation and how often.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.checks import check_fields
from sim.errors import SimError

__all__ = ["CameraTiming", "RobotTiming", "SampleDraws", "bounded_jitter_ns"]


@dataclass(frozen=True)
class CameraTiming:
    """When frame k is exposed, delivered to the host and whether it is lost.

    Frame k is exposed over [t_k - exposure/2, t_k + exposure/2], t_k = start + phase +
    k / fps (`phase` drawn from the seed in [0, 1/fps) when `random_phase`), rendered at
    the pose at t_k with the motion blur of the pose change over the exposure, delivered
    and stamped at t_k + latency + jitter, or with probability `drop_rate` never.

    Defaults: a Raspberry Pi camera read through OpenCV (V4L2) on the robot's computer.
    These are estimates from how the pipeline works, not measured on this machine (no
    camera here): readout of the sensor (about one frame time at 30 fps), the ISP, one or
    two buffers queued in V4L2 and OpenCV's copy put the host's stamp some 60-100 ms after
    mid-exposure (glass-to-glass figures reported for the Pi camera are 100-130 ms with a
    display's latency on top): `latency_ms` 80. The host stamps a frame when `read()`
    returns, so its scheduler adds a few ms of jitter (std 8 ms on a loaded Pi; clipped
    to +-half a frame period so that frames keep their order, which leaves a std of
    7.7 ms at 30 fps).
    Indoors, auto-exposure at 30 fps settles at long shutter times: `exposure_ms` 20.
    OpenCV's reader loses a frame now and then when the buffer is overwritten before it
    is read: `drop_rate` 1 %.

    Units: milliseconds; `drop_rate` a probability in [0, 1).
    """

    latency_ms: float = 80.0  # mid-exposure to delivery (the host's stamp), mean
    jitter_ms: float = 8.0  # std of the Gaussian delivery jitter
    exposure_ms: float = 20.0  # shutter time: the motion blur's span
    drop_rate: float = 0.01  # share of frames never delivered
    random_phase: bool = True  # exposures start at a phase drawn from the seed (else 0)

    def __post_init__(self) -> None:
        check_fields(self, "camera timing")
        if min(self.latency_ms, self.jitter_ms, self.exposure_ms) < 0:
            raise SimError("camera timing: latency_ms, jitter_ms and exposure_ms must be >= 0")
        if not 0 <= self.drop_rate < 1:
            raise SimError("camera timing: drop_rate must be in [0, 1)")

    @classmethod
    def ideal(cls) -> CameraTiming:
        """Frames stamped at exposure (phase 0), no latency, jitter, blur or loss."""
        return cls(0.0, 0.0, 0.0, 0.0, random_phase=False)

    @property
    def is_ideal(self) -> bool:
        return self == CameraTiming.ideal()

    def as_metadata(self, phase_ns: int = 0) -> dict[str, float]:
        """The parameters for session metadata ("sim_camera_timing"), with the drawn phase."""
        return {
            "latency_ms": float(self.latency_ms),
            "jitter_ms": float(self.jitter_ms),
            "exposure_ms": float(self.exposure_ms),
            "drop_rate": float(self.drop_rate),
            "phase_ms": phase_ns / 1e6,
        }


@dataclass(frozen=True)
class RobotTiming:
    """When the robot's readings are refreshed and reach the host.

    Proximity is refreshed at `IRParams.rate_hz` starting `prox_phase_ms` after the start
    (None: drawn from the seed in [0, 1/rate), as a Thymio whose firmware runs on its own
    clock); a streamed reading (refreshes and 100 Hz wheel samples) reaches the host
    `link_latency_ms` (+ Gaussian jitter of std `link_jitter_ms`) after its instant.

    Defaults: a Thymio II on USB (CDC serial). An event of the onboard program is a
    ~30-byte message; the firmware queues it in its main loop, USB full speed polls every
    1 ms and the host's serial reader wakes for it: a few ms, spread by about 1 ms
    (estimates: no robot on the development machine). Units: milliseconds.
    """

    link_latency_ms: float = 3.0
    link_jitter_ms: float = 1.0
    prox_phase_ms: float | None = None

    def __post_init__(self) -> None:
        check_fields(self, "robot timing")
        if self.link_latency_ms < 0 or self.link_jitter_ms < 0:
            raise SimError("robot timing: link_latency_ms and link_jitter_ms must be >= 0")
        if self.prox_phase_ms is not None and self.prox_phase_ms < 0:
            raise SimError("robot timing: prox_phase_ms must be >= 0 or null")

    @classmethod
    def ideal(cls) -> RobotTiming:
        """Proximity refreshed from the start on the 10 Hz grid, readings arrive at once."""
        return cls(0.0, 0.0, 0.0)


class SampleDraws:
    """Standard normal and uniform draws of sample k of one stream, seeded by
    (seed..., k // block): the same for k however often or in which order it is asked."""

    def __init__(self, seed: list[int], block: int = 512) -> None:
        self.seed = list(seed)
        self.block = int(block)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _arrays(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        arrays = self._cache.get(b)
        if arrays is None:
            rng = np.random.default_rng([*self.seed, b])
            arrays = (rng.standard_normal(self.block), rng.random(self.block))
            if len(self._cache) >= 4:  # readers move forward: keep the few newest blocks
                del self._cache[min(self._cache)]
            self._cache[b] = arrays
        return arrays

    def normal(self, k: int) -> float:
        """N(0, 1) draw of sample k (k >= 0)."""
        b, i = divmod(int(k), self.block)
        return float(self._arrays(b)[0][i])

    def uniform(self, k: int) -> float:
        """U[0, 1) draw of sample k (k >= 0)."""
        b, i = divmod(int(k), self.block)
        return float(self._arrays(b)[1][i])


def bounded_jitter_ns(z: float, latency_ns: float, jitter_ns: float, period_ns: float) -> int:
    """Delay (ns) of a sample: latency + jitter_ns * z, the jitter clipped to
    [-min(latency, h), h] with h just under half the sample period, so delays are >= 0 and
    samples one period apart arrive in order."""
    if jitter_ns <= 0:
        return round(latency_ns)
    h = max(0.0, 0.5 * period_ns - 1000.0)
    return round(latency_ns + min(max(jitter_ns * z, -min(latency_ns, h)), h))
