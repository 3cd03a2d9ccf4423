"""The auto-labeller in incremental form: labels for frames as the robot reaches later poses.

`OnlineLabeller` takes the three streams as they arrive (camera stamps, proximity
readings, odometry poses; each in time order) and hands out a frame's labels as
soon as no later data can change them: once the odometry has passed the frame's
matching time plus the horizon plus one `max_gap_s` (every pose the window
interpolates is then decided, and with it the segment the frame belongs to), and
the proximity stream has passed the end of the window. It then runs the batch
labeller (`compute_labels`) on just the data that window needs, so its labels are
the batch labeller's on the same data by construction (tested against it on
simulated sessions). `flush()` labels the frames left at the end of a run as
the batch labeller does at the end of a session.

Data older than any pending frame's window are dropped, so memory stays bounded
on a long run. Pure numpy, no I/O, no torch: it runs on the robot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from robot_ssl.core.label_grid import UNKNOWN, LabelConfig
from robot_ssl.labelling.labeller import NothingToLabelError, compute_labels

__all__ = ["OnlineLabel", "OnlineLabeller"]

_NS_PER_S = 1_000_000_000
# a margin around each window (ns): interpolation and equal-stamp edges stay inside
_MARGIN_NS = _NS_PER_S


@dataclass(frozen=True)
class OnlineLabel:
    """The final labels of one frame: its key (whatever the caller passed), stamp and grid."""

    key: object
    t_ns: int
    labels: np.ndarray  # int8 (S, D), -1 unknown


class _Stream:
    """An append-only time series with cheap appends and trimming (chunks, joined lazily)."""

    def __init__(self, width: int | None) -> None:
        self.width = width
        self._t: list[np.ndarray] = []
        self._v: list[np.ndarray] = []
        self._joined: tuple[np.ndarray, np.ndarray] | None = None
        self.last_t_ns: int | None = None

    def add(self, t_ns: np.ndarray, values: np.ndarray) -> None:
        t = np.atleast_1d(np.asarray(t_ns, np.int64))
        if t.size == 0:
            return
        v = np.asarray(values)
        v = v.reshape(t.size, -1) if self.width is not None else v.reshape(t.size)
        if self.last_t_ns is not None and t[0] < self.last_t_ns:
            raise ValueError("stream samples must arrive in time order")
        self._t.append(t)
        self._v.append(v)
        self._joined = None
        self.last_t_ns = int(t[-1])

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._joined is None:
            if self._t:
                self._joined = (np.concatenate(self._t), np.concatenate(self._v))
            else:
                shape = (0, self.width) if self.width is not None else (0,)
                self._joined = (np.zeros(0, np.int64), np.zeros(shape))
            self._t, self._v = [self._joined[0]], [self._joined[1]]
        return self._joined

    def window(self, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
        t, v = self.arrays()
        a, b = np.searchsorted(t, start_ns, "left"), np.searchsorted(t, end_ns, "right")
        return t[a:b], v[a:b]

    def drop_before(self, t_ns: int) -> None:
        t, v = self.arrays()
        a = int(np.searchsorted(t, t_ns, "left"))
        if a:
            self._joined = (t[a:], v[a:])
            self._t, self._v = [t[a:]], [v[a:]]


class OnlineLabeller:
    """Incremental labels (see module docstring); `camera_offset_s` as in compute_labels."""

    def __init__(self, config: LabelConfig | None = None, camera_offset_s: float = 0.0) -> None:
        cfg = config if config is not None else LabelConfig()
        # no session-length check on a window: the batch labeller applies it to the whole run
        self.config = replace(cfg, min_duration_s=0.0, camera_offset=float(camera_offset_s))
        self.offset_ns = round(camera_offset_s * _NS_PER_S)
        self._wait_ns = round((cfg.horizon_s + cfg.max_gap_s) * _NS_PER_S)
        self._reach_ns = round(cfg.horizon_s * _NS_PER_S) + round(cfg.max_gap_s * _NS_PER_S)
        self._frames_t: list[int] = []
        self._frames_key: list[object] = []
        self._prox = _Stream(width=0)
        self._odom = _Stream(width=3)
        self.labelled = 0

    @property
    def held_samples(self) -> int:
        """Odometry and proximity samples held (a window around the pending frames)."""
        return len(self._odom.arrays()[0]) + len(self._prox.arrays()[0])

    @property
    def pending(self) -> int:
        """Frames waiting for later data."""
        return len(self._frames_t)

    def add_frame(self, t_ns: int, key: object = None) -> None:
        """A camera frame stamped `t_ns` (delivery time, as recorded); `key` comes back."""
        if self._frames_t and t_ns < self._frames_t[-1]:
            raise ValueError("frames must arrive in time order")
        self._frames_t.append(int(t_ns))
        self._frames_key.append(key)

    def add_proximity(self, t_ns: int | np.ndarray, values: np.ndarray) -> None:
        """Raw proximity readings (P,) at `t_ns`, or (M, P) at M stamps."""
        values = np.asarray(values)
        if self._prox.width == 0:
            self._prox.width = int(values.shape[-1])
        self._prox.add(t_ns, values)

    def add_odometry(self, t_ns: int | np.ndarray, pose: np.ndarray) -> None:
        """Odometry pose(s) (x_m, y_m, theta_rad): (3,) at `t_ns` or (K, 3) at K stamps."""
        self._odom.add(t_ns, np.asarray(pose, np.float64))

    def ready(self) -> list[OnlineLabel]:
        """Labels of every frame that no later data can change, oldest first."""
        odo_t, prox_t = self._odom.last_t_ns, self._prox.last_t_ns
        if odo_t is None or prox_t is None:
            return []
        match_t = np.asarray(self._frames_t, np.int64) - self.offset_ns
        done = (match_t + self._wait_ns <= odo_t) & (
            match_t + round(self.config.horizon_s * _NS_PER_S) <= prox_t
        )
        n = int(np.argmin(done)) if not done.all() else len(done)  # a prefix: time order
        return self._label(n)

    def flush(self) -> list[OnlineLabel]:
        """Labels of all pending frames with the data there is (the end of a run)."""
        return self._label(len(self._frames_t))

    def _label(self, n: int) -> list[OnlineLabel]:
        if n == 0:
            return []
        stamps = np.asarray(self._frames_t[:n], np.int64)
        keys = self._frames_key[:n]
        del self._frames_t[:n], self._frames_key[:n]
        start = int(stamps[0]) - self.offset_ns - round(self.config.max_gap_s * _NS_PER_S)
        end = int(stamps[-1]) - self.offset_ns + self._reach_ns
        odo_t, pose = self._odom.window(start - _MARGIN_NS, end + _MARGIN_NS)
        prox_t, values = self._prox.window(start - _MARGIN_NS, end + _MARGIN_NS)
        shape = (n, len(self.config.sensor_indices), len(self.config.distances_m))
        try:
            grid = compute_labels(
                stamps, prox_t, values, odo_t, pose, self.config,
                camera_offset_s=self.offset_ns / _NS_PER_S,
            ).labels  # fmt: skip
        except NothingToLabelError:  # no odometry or readings around these frames yet
            grid = np.full(shape, UNKNOWN, np.int8)
        self.labelled += n
        # what no pending frame can need any more
        keep_from = start if not self._frames_t else self._frames_t[0] - self.offset_ns
        keep_from -= round(self.config.max_gap_s * _NS_PER_S) + 2 * _MARGIN_NS
        self._odom.drop_before(keep_from)
        self._prox.drop_before(keep_from)
        return [OnlineLabel(k, int(t), g) for k, t, g in zip(keys, stamps, grid)]
