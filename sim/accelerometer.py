"""The Thymio's accelerometer (`acc`, 3 axes) and its `tap` event, from the body's motion.

The Thymio II carries an MMA7660 (6-bit, +-1.5 g: about 21-23 counts per g; resting flat
it reads about (0, 0, 22)). Its firmware reads it at 16 Hz (`acc[0..2]`, the `acc`
event) and lets the chip's own tap detector raise the `tap` event. Axes, as the Thymio's
documentation gives them: acc[0] along x, right to left (positive towards the left),
acc[1] along y, front to back (positive towards the back), acc[2] along z, top to bottom
(positive towards the ground). Flat and at rest it reads +1 g on z, so the value is the
apparent gravity, gravity minus the body's acceleration a:
acc = (-a_left, +a_forward, +g) in those axes: a bump head on (a sharp deceleration)
pulls acc[1] negative, a bump on the left side (pushed to the right) acc[0] positive.

Model (per physics step, a few float operations):

- the body's acceleration is the change of its velocity (pose difference per step) per
  step, in the robot frame: the sudden stop of a collision is a velocity change of up to
  the full speed within one step;
- the sensor, mounted in a plastic shell, sees that acceleration through a first-order
  low-pass (`compliance_s`, 10 ms: an impact is spread over a few tens of milliseconds,
  as a real bump is, so a 16 Hz sample cannot miss it entirely);
- each 16 Hz value (`rate_hz`, on its own phase) is the mean of that signal since the
  previous value (62.5 ms; `window_s` sets a shorter window, e.g. 0.05, at the price of
  shocks that fall between two windows), plus Gaussian noise (`noise_std_units`),
  rounded, clipped to -32..32. A head-on bump at 400-500 raw units reads -3 to -8 on
  acc[1] (noise: +-1, rarely 2);
- `tap` fires when the per-step signal, in any horizontal axis, first exceeds
  `tap_threshold_units` (11 counts: the threshold the Thymio firmware writes into the
  MMA7660's tap-detection register, all axes), at most once per `tap_refractory_s`
  (the firmware's debounce of 12 counts at 120 Hz, ~100 ms). Normal driving stays far
  below it (the motor lag bounds a speed change to ~3 m/s^2, ~7 counts, for a full
  reversal); a bump at more than ~8 cm/s (~235 raw speed units) head on exceeds it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from sim.checks import check_fields
from sim.errors import SimError

__all__ = ["G_M_S2", "AccParams", "Accelerometer"]

G_M_S2 = 9.80665


@dataclass(frozen=True)
class AccParams:
    """The accelerometer: refresh rate, scale, averaging, shell compliance, noise, tap."""

    rate_hz: float = 16.0  # the firmware reads the chip at 16 Hz
    units_per_g: float = 22.0  # MMA7660: 21.33 nominal; a resting Thymio reads ~22
    window_s: float | None = None  # each value: the mean over this long (None: since the last)
    compliance_s: float = 0.01  # time constant of the shell between body and sensor
    noise_std_units: float = 0.6  # per axis, before rounding (readings flicker by +-1)
    limit_units: int = 32  # the 6-bit range, clipped as the firmware's values are
    tap_threshold_units: float = 11.0  # the firmware's MMA7660 tap threshold (counts)
    tap_refractory_s: float = 0.1  # the chip's debounce: one tap per ~100 ms at most

    def __post_init__(self) -> None:
        check_fields(self, "acc")
        if self.rate_hz <= 0 or self.units_per_g <= 0 or (self.window_s or 1.0) <= 0:
            raise SimError("acc: rate_hz, units_per_g and window_s must be > 0")
        if min(self.compliance_s, self.noise_std_units, self.tap_refractory_s) < 0:
            raise SimError("acc: compliance_s, noise_std_units, tap_refractory_s must be >= 0")
        if self.limit_units <= 0 or self.tap_threshold_units <= 0:
            raise SimError("acc: limit_units and tap_threshold_units must be > 0")


class Accelerometer:
    """Per-step body acceleration -> 16 Hz `acc` values and tap events (see the module).

    `step(pose, dt_s)` after each physics step; `reading(rng)` at each 16 Hz refresh;
    `taps` counts the tap events so far.
    """

    def __init__(self, params: AccParams, pose: np.ndarray, dt_s: float) -> None:
        self.params = params
        self.dt_s = float(dt_s)
        self._x, self._y = float(pose[0]), float(pose[1])
        self._vx = self._vy = 0.0  # world velocity over the last step
        self._fx = self._fy = 0.0  # filtered acceleration, robot frame (forward, left)
        self._k = 1.0 - math.exp(-dt_s / params.compliance_s) if params.compliance_s > 0 else 1.0
        # the window: the last n steps, or (window_s None) every step since the last reading
        n = max(1, round(params.window_s / dt_s)) if params.window_s is not None else 0
        self._win: deque[tuple[float, float]] = deque([(0.0, 0.0)] * n, maxlen=max(n, 1))
        self._ring = n > 0
        self._sum = [0.0, 0.0]
        self._count = 0
        scale = params.units_per_g / G_M_S2
        self._scale = scale
        self._tap_m_s2 = params.tap_threshold_units / scale
        self._refractory_steps = round(params.tap_refractory_s / dt_s)
        self._since_tap = self._refractory_steps
        self._above = False
        self._noise: list[list[float]] = []
        self._noise_i = 0
        self.taps = 0
        self.peak_m_s2 = 0.0  # largest horizontal per-step acceleration seen (diagnostics)

    def step(self, pose: np.ndarray) -> bool:
        """Account for the step that ended at `pose`; True when it fired a tap."""
        dt = self.dt_s
        x, y, th = float(pose[0]), float(pose[1]), float(pose[2])
        vx, vy = (x - self._x) / dt, (y - self._y) / dt
        ax, ay = (vx - self._vx) / dt, (vy - self._vy) / dt
        self._x, self._y, self._vx, self._vy = x, y, vx, vy
        c, s = math.cos(th), math.sin(th)
        fwd, left = ax * c + ay * s, -ax * s + ay * c
        k = self._k
        self._fx += (fwd - self._fx) * k
        self._fy += (left - self._fy) * k
        if self._ring:
            old = self._win[0]
            self._win.append((self._fx, self._fy))
            self._sum[0] += self._fx - old[0]
            self._sum[1] += self._fy - old[1]
        else:
            self._sum[0] += self._fx
            self._sum[1] += self._fy
            self._count += 1
        mag = max(abs(self._fx), abs(self._fy))
        self.peak_m_s2 = max(self.peak_m_s2, mag)
        above = mag > self._tap_m_s2
        fired = above and not self._above and self._since_tap >= self._refractory_steps
        self._above = above
        self._since_tap += 1
        if fired:
            self.taps += 1
            self._since_tap = 0
        return fired

    def mean_m_s2(self) -> tuple[float, float]:
        """Mean (forward, left) acceleration over the window (m/s^2); the whole-period
        window starts afresh after each call."""
        if self._ring:
            n = len(self._win)
            return self._sum[0] / n, self._sum[1] / n
        n = max(1, self._count)
        out = self._sum[0] / n, self._sum[1] / n
        self._sum = [0.0, 0.0]
        self._count = 0
        return out

    def reading(self, rng: np.random.Generator) -> np.ndarray:
        """The firmware's acc[0..2] now (int16 (3,)): the window's mean acceleration as
        apparent gravity, (-a_left, a_forward, g) in counts, plus noise, rounded, clipped."""
        p = self.params
        fwd, left = self.mean_m_s2()
        if self._noise_i >= len(self._noise):  # drawn in blocks: one call per 256 values
            self._noise = (rng.standard_normal((256, 3)) * p.noise_std_units).tolist()
            self._noise_i = 0
        z = self._noise[self._noise_i]
        self._noise_i += 1
        raw = (
            -left * self._scale + z[0],
            fwd * self._scale + z[1],
            p.units_per_g + z[2],
        )
        lim = p.limit_units
        return np.array([min(lim, max(-lim, round(v))) for v in raw], np.int16)
