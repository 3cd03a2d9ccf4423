"""Contacts from the robot's own signals: wheel stalls, accelerometer shocks, the tap event.

A robot that touches an obstacle stops; its wheels stall (the measured speed falls while the
target stays), its accelerometer feels the shock, and a Thymio's firmware fires its `tap`
event above a threshold. Becker and Ebner (2019) found 13 of 14 collisions with no false
positive from an accelerometer and the motor commands; this module combines the same
evidence into contact onsets, with no range sensor at all.

- **Stall.** The wheel-speed loop follows a target with a lag (a Thymio's motors, plus the
  firmware's speed measured at 100 Hz and averaged over 40 ms), so a robot that starts,
  reverses or turns has its target above its measured speed for a moment: that is no
  contact. The rule compares the measured *forward* speed (mean of both wheels) with the
  least speed a free robot would have by now: the forward target passed through a
  first-order lag, once with the fastest and once with the slowest time constant of
  `motor_lag_s`, the smaller of the two (0 when they disagree in sign: a reversal). A
  slow model alone would expect motion from a robot that braked; a fast one alone, from
  one still accelerating. Turning in place has a forward target of 0 and never stalls.
  A stall is the measured forward speed below `stall_ratio` of that expected speed, the
  expected speed at least `min_target`, for `stall_s` (pauses shorter than `stall_s` do
  not break it); its onset is the first row of the episode, which ends once the rule
  has not held for `stall_s`.
- **Shock.** The horizontal axes of the accelerometer (firmware units, ~23 per g) against
  a slow running baseline (tilt, calibration offset): a deviation of `shock_threshold` or
  more is a shock, one per excursion.
- **Tap.** A row whose `tap` is set (the firmware's own shock detector fired).

Evidence closer than `refractory_s` to the previous evidence of a contact belongs to that
contact (the shock, the tap and the stall of one collision are one contact); a contact's
onset is its earliest evidence, its cause that evidence's kind.

`ContactMonitor` applies the rule online, sample by sample (the contact drive reacts to
it); `detect_contacts` runs the same monitor over a session's arrays, so the two never
disagree. The rule is a recursive filter (the lag model and the baseline depend on the
previous sample), so it is a loop over samples: about 4 us per sample, a 10-minute session
in well under a second. `score_contacts` matches detections to true contacts.

Pure computation: arrays in, arrays out; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robot_ssl.core.config import bounded, check_bounds, check_field_types
from robot_ssl.core.errors import RobotSSLError

__all__ = [
    "CAUSES",
    "Contact",
    "ContactConfig",
    "ContactError",
    "ContactEvents",
    "ContactMonitor",
    "ContactScore",
    "detect_contacts",
    "score_contacts",
]

CAUSES = ("stall", "shock", "tap")
"""The kinds of evidence of a contact, in the order they are listed."""

_NS = 1_000_000_000


class ContactError(RobotSSLError, ValueError):
    """Contact detection got arrays of the wrong shape or a setting out of range."""


@dataclass(frozen=True)
class ContactConfig:
    """The contact rule's settings. Speeds in the firmware's raw wheel units, accelerations
    in its accelerometer units (~23 per g), durations in seconds.

    The defaults are tuned on the simulator's Thymio (benchmarks/contact_detector.py):
    motor lag 0.1 s and a 40 ms speed average, 16 Hz accelerometer averaged over 50 ms.
    """

    use_stall: bool = True
    use_shock: bool = True
    use_tap: bool = True
    stall_ratio: float = bounded(0.7, 0, 1, min_inclusive=False, max_inclusive=False)
    """Stalled: measured forward speed below this fraction of the lag-model's speed."""
    min_target: float = bounded(50.0, 1, 1000)
    """The lag-model's forward speed must be at least this (raw units) for a stall."""
    stall_s: float = bounded(0.2, 0, 10, min_inclusive=False)
    """How long the stall must last on end (motor lag alone lasts less)."""
    motor_lag_s: tuple[float, float] = bounded((0.05, 0.25), 0, 5)
    """(fastest, slowest) time constant of the measured speed behind the target: about
    0.12 s in the simulator (motor + 40 ms average); a real motor anywhere in the range
    never stalls by its lag, and at cruise both models reach the target."""
    max_gap_s: float = bounded(0.3, 0, 60, min_inclusive=False)
    """A gap between rows longer than this restarts the lag model (or the baseline)."""
    shock_threshold: float = bounded(6.0, 0, 128, min_inclusive=False)
    """Horizontal acceleration this far from the baseline (firmware units) is a shock."""
    shock_baseline_s: float = bounded(0.5, 0, 60, min_inclusive=False)
    """Time constant of the running baseline of the horizontal acceleration."""
    horizontal_axes: tuple[int, ...] = bounded((0, 1), 0, 2)
    """The accelerometer axes in the floor's plane (a Thymio's x and y)."""
    refractory_s: float = bounded(1.0, 0, 60)
    """Evidence this close to the previous evidence of a contact belongs to that contact."""

    def __post_init__(self) -> None:
        check_field_types(self, "contact", ContactError)
        check_bounds(self, "contact", ContactError)
        lags = self.motor_lag_s
        if len(lags) != 2 or lags[0] > lags[1]:
            raise ContactError("contact.motor_lag_s: must be (fastest, slowest), fastest first")
        if not self.horizontal_axes or len(set(self.horizontal_axes)) != len(self.horizontal_axes):
            raise ContactError("contact.horizontal_axes: one or more distinct axes in 0..2")
        if not (self.use_stall or self.use_shock or self.use_tap):
            raise ContactError("contact: use_stall, use_shock and use_tap are all off")


@dataclass(frozen=True)
class Contact:
    """One detected contact: onset (earliest evidence), what showed it first, and when the
    monitor fired (the onset plus the time the evidence took to be sure)."""

    t_ns: int
    cause: str
    fired_t_ns: int


@dataclass(frozen=True)
class ContactEvents:
    """Detected contacts of a session, in onset order: onset `t_ns` int64 (K,), `cause`
    ("stall", "shock" or "tap", the earliest evidence) and `fired_t_ns` int64 (K,)."""

    t_ns: np.ndarray
    cause: tuple[str, ...]
    fired_t_ns: np.ndarray

    def __len__(self) -> int:
        return len(self.cause)

    def counts(self) -> dict[str, int]:
        """How many contacts each cause showed first."""
        return {c: self.cause.count(c) for c in CAUSES}

    @classmethod
    def of(cls, contacts: list[Contact]) -> ContactEvents:
        order = sorted(contacts, key=lambda c: c.t_ns)
        return cls(
            np.array([c.t_ns for c in order], np.int64),
            tuple(c.cause for c in order),
            np.array([c.fired_t_ns for c in order], np.int64),
        )


@dataclass
class _Open:
    """The contact evidence is still merging into."""

    onset_ns: int
    cause: str
    fired_ns: int
    last_ns: int  # newest evidence


class ContactMonitor:
    """The contact rule, fed sample by sample: `wheels(t_ns, speed, target)` per wheel row,
    `acc(t_ns, acc, tap)` per accelerometer row, in time order; each returns the contact it
    detected (a new one, not evidence merged into the previous contact) or None.

    `stall_s` says how long the robot has been stalled now (0.0: not stalled); `contacts`
    the contacts so far, onsets refined by evidence merged later.
    """

    def __init__(self, config: ContactConfig | None = None) -> None:
        self.config = config or ContactConfig()
        self._contacts: list[Contact] = []
        self._open: _Open | None = None
        # stall state
        self._w_t: int | None = None
        self._expected = [0.0, 0.0]  # forward speed by the fast and the slow lag model
        self._last_target = 0.0
        self._stall_since: int | None = None  # first row of the stall episode
        self._clear_since: int | None = None  # first row of a pause in it
        self._stall_reported = False
        self._w_now = 0
        # shock state
        self._a_t: int | None = None
        self._baseline = np.zeros(len(self.config.horizontal_axes))
        self._in_shock = False

    @property
    def contacts(self) -> ContactEvents:
        """Every contact so far (the last one's onset may still move earlier)."""
        items = list(self._contacts)
        if self._open is not None:
            o = self._open
            items.append(Contact(o.onset_ns, o.cause, o.fired_ns))
        return ContactEvents.of(items)

    @property
    def stall_s(self) -> float:
        """How long the stall rule has held up to the newest wheel row (0.0: not stalled)."""
        if self._stall_since is None or self._clear_since is not None:
            return 0.0
        return (self._w_now - self._stall_since) / 1e9

    @property
    def expected_speed(self) -> float:
        """The least forward speed (raw units) a free robot would have at the newest wheel
        row: the smaller of the fast and slow lag models, 0 when they differ in sign."""
        fast, slow = self._expected
        return min(fast, slow, key=abs) if fast * slow > 0 else 0.0

    @property
    def stall_since_ns(self) -> int | None:
        """Onset of the stall going on now (None: not stalled)."""
        return self._stall_since if self.stall_s > 0 else None

    # -- evidence -------------------------------------------------------------------------

    def _evidence(self, onset_ns: int, cause: str, now_ns: int) -> Contact | None:
        """Merge evidence into the open contact, or open a new one (returned)."""
        refractory_ns = self.config.refractory_s * 1e9
        o = self._open
        if o is not None and onset_ns - o.last_ns <= refractory_ns:
            if onset_ns < o.onset_ns:
                o.onset_ns, o.cause = onset_ns, cause
            o.last_ns = max(o.last_ns, onset_ns)
            return None
        if o is not None:
            self._contacts.append(Contact(o.onset_ns, o.cause, o.fired_ns))
        self._open = _Open(onset_ns, cause, now_ns, onset_ns)
        return Contact(onset_ns, cause, now_ns)

    # -- the wheels -----------------------------------------------------------------------

    def wheels(self, t_ns: int, speed: np.ndarray, target: np.ndarray) -> Contact | None:
        """One wheel row: measured speeds and targets (left, right), raw units."""
        c = self.config
        t = int(t_ns)
        fwd = 0.5 * (float(speed[0]) + float(speed[1]))
        tgt = 0.5 * (float(target[0]) + float(target[1]))
        self._w_now = t
        if self._w_t is None or not 0 < t - self._w_t <= c.max_gap_s * 1e9:
            # first row, a gap or a step back in time: assume the motors caught up
            self._w_t, self._expected, self._last_target = t, [fwd, fwd], tgt
            self._stall_since, self._clear_since, self._stall_reported = None, None, False
            return None
        dt_s = (t - self._w_t) / 1e9
        ex = self._expected
        for j, lag in enumerate(c.motor_lag_s):
            k = 1.0 - math.exp(-dt_s / lag) if lag > 0 else 1.0
            ex[j] += (self._last_target - ex[j]) * k
        self._w_t, self._last_target = t, tgt
        e = self.expected_speed
        stalled = abs(e) >= c.min_target and fwd * math.copysign(1.0, e) < c.stall_ratio * abs(e)
        if not stalled:
            # an episode ends once the rule has not held for stall_s: a robot sliding along
            # a wall near the ratio flickers across it and is one contact, not many
            if self._stall_since is not None and self._clear_since is None:
                self._clear_since = t
            if self._clear_since is not None and t - self._clear_since >= c.stall_s * 1e9:
                self._stall_since, self._clear_since, self._stall_reported = None, None, False
            return None
        self._clear_since = None
        if self._stall_since is None:
            self._stall_since = t
        if c.use_stall and not self._stall_reported and t - self._stall_since >= c.stall_s * 1e9:
            self._stall_reported = True
            return self._evidence(self._stall_since, "stall", t)
        return None

    # -- the accelerometer ----------------------------------------------------------------

    def acc(self, t_ns: int, acc: np.ndarray, tap: int = 0) -> Contact | None:
        """One accelerometer row: `acc` (3,) firmware units, `tap` 1 when the firmware's tap
        event fired since the previous row."""
        c = self.config
        t = int(t_ns)
        h = np.asarray(acc, np.float64)[list(c.horizontal_axes)]
        found: Contact | None = None
        if c.use_tap and tap:
            found = self._evidence(t, "tap", t)
        if self._a_t is None or not 0 < t - self._a_t <= c.max_gap_s * 1e9:
            self._a_t, self._baseline, self._in_shock = t, h.copy(), False
            return found
        dt_s = (t - self._a_t) / 1e9
        self._a_t = t
        deviation = float(np.sqrt(((h - self._baseline) ** 2).sum()))
        if deviation >= c.shock_threshold:
            if not self._in_shock and c.use_shock:
                found = self._evidence(t, "shock", t) or found
            self._in_shock = True
            return found  # the baseline does not follow the shock
        if deviation < 0.5 * c.shock_threshold:
            self._in_shock = False
        k = 1.0 - math.exp(-dt_s / c.shock_baseline_s)
        self._baseline += (h - self._baseline) * k
        return found


def _check_rows(name: str, a: np.ndarray, n: int, width: int | None) -> np.ndarray:
    if width is None:
        ok = a.shape == (n,)
    else:
        ok = a.ndim == 2 and a.shape[0] == n and a.shape[1] >= width
    if not ok:
        want = f"({n},)" if width is None else f"({n}, {width})"
        raise ContactError(f"contact detection: {name} must have shape {want}, got {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ContactError(f"contact detection: {name} has values that are not finite")
    return a


def detect_contacts(
    wheels_t_ns: np.ndarray,
    speed: np.ndarray,
    target: np.ndarray,
    acc_t_ns: np.ndarray | None = None,
    acc: np.ndarray | None = None,
    tap: np.ndarray | None = None,
    config: ContactConfig | None = None,
) -> ContactEvents:
    """Contacts of a session from its wheels rows (stamps (N,), measured speed and target
    (N, 2) raw units) and, when it has one, its accelerometer rows (stamps (M,), `acc`
    (M, 3) firmware units, `tap` (M,) 0/1; None: no accelerometer): `ContactMonitor` run
    over the rows in time order (wheel rows first at equal stamps)."""
    cfg = config or ContactConfig()
    wt = _check_rows("wheels_t_ns", np.asarray(wheels_t_ns, np.int64), len(wheels_t_ns), None)
    sp = _check_rows("speed", np.asarray(speed), len(wt), 2)
    tg = _check_rows("target", np.asarray(target), len(wt), 2)
    if acc_t_ns is None:
        at = np.zeros(0, np.int64)
        av = np.zeros((0, 3))
        tp = np.zeros(0, np.uint8)
    else:
        at = _check_rows("acc_t_ns", np.asarray(acc_t_ns, np.int64), len(acc_t_ns), None)
        if acc is None:
            raise ContactError("contact detection: acc_t_ns given without acc")
        av = _check_rows("acc", np.asarray(acc), len(at), max(cfg.horizontal_axes) + 1)
        tp = np.zeros(len(at), np.uint8) if tap is None else np.asarray(tap)
        _check_rows("tap", tp, len(at), None)
    # one time order for both streams: stable sort, wheel rows before acc rows at ties
    stamps = np.concatenate([wt, at])
    order = np.argsort(stamps, kind="stable")
    n = len(wt)
    monitor = ContactMonitor(cfg)
    sp_l, tg_l, av_l, tp_l = sp.tolist(), tg.tolist(), av.tolist(), tp.tolist()
    stamps_l = stamps.tolist()
    for i in order.tolist():
        if i < n:
            monitor.wheels(stamps_l[i], sp_l[i], tg_l[i])
        else:
            j = i - n
            monitor.acc(stamps_l[i], av_l[j], tp_l[j])
    return monitor.contacts


@dataclass(frozen=True)
class ContactScore:
    """Detected contacts against true ones: each true contact matched to at most one
    detection within the tolerance (closest pairs first).

    `precision` (matched / detected) and `recall` (matched / true) are NaN when their
    denominator is 0; `false_per_10min` counts unmatched detections per 10 minutes;
    `delay_s` the median of detection minus truth over the matched pairs (NaN: none)."""

    precision: float
    recall: float
    false_per_10min: float
    detected: int
    true: int
    matched: int
    false_positives: int
    missed: int
    duration_s: float
    tolerance_s: float
    delay_s: float
    matched_pairs: np.ndarray = field(repr=False)
    """(P, 2) int: (detection index, truth index) of each match."""


def score_contacts(
    detected_t_ns: np.ndarray,
    truth_t_ns: np.ndarray,
    duration_s: float,
    tolerance_s: float = 0.5,
) -> ContactScore:
    """Precision, recall and false contacts per 10 minutes of `detected_t_ns` against
    `truth_t_ns` over a session of `duration_s`; a detection within `tolerance_s` either
    side of a true onset matches it (one to one, closest pairs first)."""
    d = np.asarray(detected_t_ns, np.int64).reshape(-1)
    t = np.asarray(truth_t_ns, np.int64).reshape(-1)
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ContactError(f"score_contacts: duration_s must be > 0, got {duration_s!r}")
    if not (math.isfinite(tolerance_s) and tolerance_s >= 0):
        raise ContactError(f"score_contacts: tolerance_s must be >= 0, got {tolerance_s!r}")
    gap = np.abs(d[:, None] - t[None, :]) if len(d) and len(t) else np.zeros((len(d), len(t)))
    di, ti = np.nonzero(gap <= tolerance_s * _NS)
    pairs = np.argsort(gap[di, ti], kind="stable")
    used_d = np.zeros(len(d), bool)
    used_t = np.zeros(len(t), bool)
    matched: list[tuple[int, int]] = []
    for p in pairs.tolist():
        a, b = int(di[p]), int(ti[p])
        if not used_d[a] and not used_t[b]:
            used_d[a] = used_t[b] = True
            matched.append((a, b))
    m = np.array(sorted(matched), np.int64).reshape(-1, 2)
    k = len(m)
    delays = (d[m[:, 0]] - t[m[:, 1]]) / 1e9
    return ContactScore(
        precision=k / len(d) if len(d) else math.nan,
        recall=k / len(t) if len(t) else math.nan,
        false_per_10min=(len(d) - k) / duration_s * 600.0,
        detected=len(d),
        true=len(t),
        matched=k,
        false_positives=len(d) - k,
        missed=len(t) - k,
        duration_s=float(duration_s),
        tolerance_s=float(tolerance_s),
        delay_s=float(np.median(delays)) if k else math.nan,
        matched_pairs=m,
    )
