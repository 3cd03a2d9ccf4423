"""The simulated robot's and camera's clocks: proximity on its own phase, readings streamed
over a link with latency, camera frames stamped at delivery (latency, jitter, losses)
with motion blur; all seeded, and `ideal` clocks that reproduce the old alignment."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.session import SessionReader
from robot_ssl.simlink.simulator import record_session
from sim.camera import CameraParams
from sim.camera_timing import CameraTiming, RobotTiming, SampleDraws
from sim.errors import SimError
from sim.simulator import Simulator
from sim.world import load_world

SMALL = CameraParams(width=80, height=64)
SMALL_SPEC = CameraSpec(width=80, height=64)
PERIOD_NS = 100_000_000


def _sim(seed: int = 0, **kw) -> Simulator:
    kw.setdefault("camera", None)
    return Simulator(load_world("arena_boxes"), seed=seed, **kw)


def _record(path, seed: int = 3, minutes: float = 0.2, **kw) -> SessionReader:
    record_session(
        path,
        world="arena_boxes",
        seed=seed,
        minutes=minutes,
        camera_spec=SMALL_SPEC,
        progress=False,
        **kw,
    )
    return SessionReader(path)


# ------------------------------------------------------------------ proximity and stream


def test_proximity_refreshes_on_a_100_ms_grid_with_a_seeded_phase():
    phases = set()
    for seed in range(6):
        sim = _sim(seed)
        sim.robot.set_wheel_targets(150, -150)  # turning: readings change
        sim.advance_to(2_000_000_000)
        t = np.array([u[0] for u in sim.prox_updates])
        assert 0 <= sim.prox_phase_ns < PERIOD_NS
        assert t[0] == sim.prox_phase_ns or (sim.prox_phase_ns == 0 and t[0] == 0)
        assert np.all(np.diff(t) == PERIOD_NS)
        assert len(t) in (20, 21)
        phases.add(sim.prox_phase_ns)
        assert _sim(seed).prox_phase_ns == sim.prox_phase_ns  # from the seed
    assert len(phases) == 6
    fixed = _sim(0, robot_timing=RobotTiming(prox_phase_ms=25.0))
    fixed.advance_to(500_000_000)
    assert [u[0] for u in fixed.prox_updates][:3] == [25_000_000, 125_000_000, 225_000_000]


def test_stream_carries_every_refresh_and_wheel_sample_stamped_at_arrival():
    sim = _sim(1)
    sim.robot.set_wheel_targets(200, 100)
    prox, wheels, notes = [], [], []
    for _ in range(60):  # 3 s, drained every 50 ms
        sim.clock.sleep_until_ns(sim.t_ns + 50_000_000)
        b = sim.robot.drain_stream()
        assert b.streaming
        prox += b.proximity
        wheels += b.wheels
        notes += b.notes
    assert notes[0][1] == "robot_stream"
    # every refresh, each once, in order, stamped after its instant by the link
    refresh = np.array([p.refresh_t_ns for p in prox])
    assert np.all(np.diff(refresh) == PERIOD_NS) and refresh[0] == sim.prox_phase_ns
    delay = np.array([p.t_ns for p in prox]) - refresh
    assert delay.min() >= 0 and delay.max() < 10e6
    # wheels: every physics step (100 Hz), delays ~3 +- 1 ms, order kept
    t_w = np.array([w.t_ns for w in wheels])
    sample = np.array([w.sample_t_ns for w in wheels])
    assert np.all(np.diff(sample) == sim.dt_ns) and sample[0] == sim.dt_ns
    assert len(wheels) >= 298 and np.all(np.diff(t_w) > 0)
    d = (t_w - sample) / 1e6
    assert d.min() >= 0 and abs(d.mean() - 3.0) < 0.2 and 0.7 < d.std() < 1.3
    assert all(np.array_equal(w.wheel_target, [200, 100]) for w in wheels)
    assert [w.seq for w in wheels[:3]] == [1, 2, 3]
    # read(): the newest values that arrived, stamped now
    r = sim.robot.read()
    assert r.t_ns == sim.t_ns
    assert np.array_equal(r.proximity, sim.latest_prox.proximity)


def test_wait_for_targets_steps_until_the_stop_is_reported():
    sim = _sim(2)
    sim.robot.set_wheel_targets(300, 300)
    sim.advance_to(500_000_000)
    sim.robot.drain_stream()
    sim.robot.stop()
    assert sim.robot.wait_for_targets()
    assert tuple(sim.robot.drain_stream().wheels[-1].wheel_target) == (0, 0)
    polled = _sim(2, stream=False)
    assert not polled.robot.wait_for_targets()
    b = polled.robot.drain_stream()
    assert not b.streaming and not b.wheels and not b.proximity


def test_polled_simulator_reads_now():
    from sim.world import Arena, World

    sim = Simulator(
        World(arena=Arena(1.0, 1.0)),
        camera=None,
        start_pose=(0.3, 0.0, 0.0),  # 12 cm from the east wall
        stream=False,
        robot_timing=RobotTiming.ideal(),
    )
    sim.robot.set_wheel_targets(-100, -100)
    changes, last = [], sim.robot.read().proximity
    for _ in range(100):
        sim.step()
        r = sim.robot.read()
        assert r.t_ns == sim.t_ns
        if not np.array_equal(r.proximity, last):
            changes.append(r.t_ns)
        last = r.proximity
    assert changes and all(t % PERIOD_NS == 0 for t in changes)


# ------------------------------------------------------------------ camera


def test_camera_timing_parameters_and_draws():
    assert CameraTiming() == CameraTiming(80.0, 8.0, 20.0, 0.01)
    assert CameraTiming.ideal().is_ideal and not CameraTiming().is_ideal
    for bad in (dict(latency_ms=-1.0), dict(drop_rate=1.0), dict(exposure_ms=math.nan)):
        with pytest.raises(SimError):
            CameraTiming(**bad)
    a, b = SampleDraws([1, 2]), SampleDraws([1, 2])
    forward = [a.normal(k) for k in range(2000)]
    backward = [b.normal(k) for k in reversed(range(2000))][::-1]
    assert forward == backward  # sample k's draw does not depend on the order asked


def test_frames_are_stamped_at_delivery_and_some_are_lost():
    sim = _sim(4, camera=SMALL)
    cam = sim.camera
    assert 0 <= cam.phase_ns < 1e9 / 30
    k = np.arange(200_000)
    dropped = np.array([cam.dropped(int(i)) for i in k])
    n = len(k)
    assert abs(dropped.mean() - 0.01) < 4 * math.sqrt(0.01 * 0.99 / n)
    delay = np.array([cam.delivery_time_ns(int(i)) - cam.exposure_time_ns(int(i)) for i in k])
    # Gaussian, clipped to +- half a period (16.7 ms) so frames keep their order
    assert abs(delay.mean() / 1e6 - 80.0) < 0.1 and 7.5 < delay.std() / 1e6 < 8.0
    assert np.abs(delay - 80e6).max() < 1e9 / 60
    deliveries = np.array([cam.delivery_time_ns(int(i)) for i in k[:5000]])
    assert np.all(np.diff(deliveries) > 0)  # jitter never reorders frames
    # read(): the newest frame delivered by now, never a dropped one
    seen = {}
    for _ in range(300):
        sim.step()
        f = cam.read()
        if f is not None:
            assert f.t_ns <= sim.t_ns and f.t_ns == cam.delivery_time_ns(f.index)
            assert f.exposure_t_ns == cam.exposure_time_ns(f.index)
            assert not cam.dropped(f.index)
            seen[f.index] = f
    assert min(seen) <= 3 and cam.renders == len(seen)


def test_frames_do_not_depend_on_how_often_they_are_read():
    a, b = _sim(5, camera=SMALL), _sim(5, camera=SMALL)
    for s in (a, b):
        s.robot.set_wheel_targets(250, -250)
    fa, fb = {}, {}
    for i in range(200):
        a.step()
        b.step()
        f = a.camera.read()
        fa[f.index if f else -1] = f
        if i % 7 == 0:
            f = b.camera.read()
            fb[f.index if f else -1] = f
    common = set(fa) & set(fb) - {-1}
    assert len(common) > 10
    for k in common:
        assert fa[k].t_ns == fb[k].t_ns and np.array_equal(fa[k].image, fb[k].image)


def _gradient_energy(img: np.ndarray) -> tuple[float, float]:
    g = img.astype(np.float64).mean(2)
    return float((np.diff(g, axis=1) ** 2).mean()), float((np.diff(g, axis=0) ** 2).mean())


def test_motion_blur_during_a_turn():
    cam = CameraParams(width=160, height=120, noise_std=0.0)
    timing = CameraTiming(latency_ms=80.0, jitter_ms=0.0, exposure_ms=20.0, drop_rate=0.0)
    still = dataclasses.replace(timing, exposure_ms=0.0)
    sims = [
        _sim(6, camera=cam, camera_timing=t, start_pose=(0.0, 0.0, 0.3)) for t in (timing, still)
    ]
    for s in sims:
        s.robot.set_wheel_targets(400, -400)  # spinning in place
        s.advance_to(1_000_000_000)
    blurred, sharp = (s.camera.read() for s in sims)
    assert blurred.index == sharp.index
    bx, by = sims[0].camera.blur_px(blurred.index)
    assert abs(bx) > 3 and by == 0  # fx * yaw change over 20 ms
    assert sims[1].camera.blur_px(sharp.index) is None
    hb, vb = _gradient_energy(blurred.image)
    hs, vs = _gradient_energy(sharp.image)
    assert hb < 0.8 * hs  # horizontal detail smeared
    assert hb / hs < vb / vs  # more than the vertical
    # driving straight: no blur
    straight = _sim(6, camera=cam, camera_timing=timing, start_pose=(0.0, 0.0, 0.3))
    straight.robot.set_wheel_targets(300, 300)
    straight.advance_to(500_000_000)
    f = straight.camera.read()
    assert straight.camera.blur_px(f.index) is None


# ------------------------------------------------------------------ recorded sessions


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    d = tmp_path_factory.mktemp("clocks")
    out = {}
    for name, kw in (
        ("a", dict(seed=3)),
        ("b", dict(seed=3)),
        ("c", dict(seed=4)),
        ("ideal", dict(seed=3, ideal_clocks=True)),
    ):
        with _record(d / f"{name}.h5", **kw) as r:
            out[name] = dict(
                metadata=r.metadata,
                prox=r.proximity(),
                wheels=r.wheels(),
                odometry=r.odometry(),
                truth=r.truth(),
                camera_t=r.camera_t_ns.copy(),
                jpeg=[r.jpeg(i) for i in range(r.num_frames)],
                events=r.events(),
                frame_truth=r.frame_truth() if hasattr(r, "frame_truth") else None,
            )
    return out


def test_session_proximity_on_its_phase_and_wheels_at_100_hz(sessions):
    s = sessions["a"]
    m = s["metadata"]
    rt = m["sim_robot_timing"]
    assert rt["stream"] is True and rt["link_latency_ms"] == 3.0
    phase = rt["prox_phase_ms"] * 1e6
    t = s["prox"][0]
    assert len(t) in (119, 120)  # 12 s at 10 Hz
    n = np.round((t - phase) / PERIOD_NS)
    delay = t - (phase + n * PERIOD_NS)
    assert np.all(np.diff(n) == 1)  # every refresh
    assert delay.min() >= 0 and delay.max() < 10e6 and abs(np.median(delay) / 1e6 - 3) < 0.5
    tw = s["wheels"][0]
    rate = (len(tw) - 1) / ((tw[-1] - tw[0]) / 1e9)
    assert rate == pytest.approx(100, rel=0.01)
    assert len(s["odometry"][0]) == len(tw)
    tt = s["truth"][0]
    assert len(tt) == 601 and np.all(tt % 20_000_000 == 0)  # one per 50 Hz recorder step
    assert m["truth_geometry"] in ("sensor_cone", "sensor_axis")


def test_session_frames_are_exposure_plus_latency(sessions):
    s = sessions["a"]
    ct = s["metadata"]["sim_camera_timing"]
    assert ct["latency_ms"] == 80.0 and ct["jitter_ms"] == 8.0 and ct["drop_rate"] == 0.01
    t = s["camera_t"]
    period = 1e9 / 30
    phase = ct["phase_ms"] * 1e6
    k = np.round((t - ct["latency_ms"] * 1e6 - phase) / period).astype(int)
    delay_ms = (t - (phase + np.round(k * period))) / 1e6
    assert np.all(np.abs(delay_ms - 80) < 5 * 8)
    assert abs(delay_ms.mean() - 80) < 2.0 and 5.0 < delay_ms.std() < 11.0
    if s["frame_truth"] is not None:  # the per-frame truth, where the session has it
        ft, exposure = s["frame_truth"]
        assert np.array_equal(ft, t)
        np.testing.assert_allclose((t - exposure) / 1e6, delay_ms, atol=1e-5)
    # the missing frames are exactly the lost ones and those overtaken by the next within
    # one physics step (the recorder reads the newest frame once per step)
    sim = Simulator(load_world("arena_boxes"), seed=3, camera=SMALL)  # the same camera clock
    cam = sim.camera
    assert cam.phase_ns == round(phase)
    ks = set(k.tolist())
    last = int(k.max())
    step = sim.dt_ns
    expected = set()
    for i in range(last + 1):
        if cam.dropped(i):
            continue
        d = cam.delivery_time_ns(i)
        nxt = i + 1
        while cam.dropped(nxt):
            nxt += 1
        if i < last and -(-cam.delivery_time_ns(nxt) // step) == -(-d // step):
            continue  # overtaken: delivered in the same step as the next frame
        expected.add(i)
    assert ks == expected
    lost = sum(cam.dropped(i) for i in range(last + 1))
    assert len(ks) >= last + 1 - lost - 0.03 * (last + 1)


def test_same_seed_same_session_other_seed_other_clocks(sessions):
    a, b, c = sessions["a"], sessions["b"], sessions["c"]
    for key in ("prox", "wheels", "odometry", "truth"):
        for x, y in zip(a[key], b[key]):
            np.testing.assert_array_equal(x, y)
    assert np.array_equal(a["camera_t"], b["camera_t"]) and a["jpeg"] == b["jpeg"]
    assert a["events"] == b["events"] and a["metadata"] == b["metadata"]
    ra, rc = a["metadata"]["sim_robot_timing"], c["metadata"]["sim_robot_timing"]
    assert ra["prox_phase_ms"] != rc["prox_phase_ms"]


def test_ideal_clocks_reproduce_the_old_alignment(sessions):
    s = sessions["ideal"]
    m = s["metadata"]
    assert m["sim_robot_timing"]["stream"] is False
    assert m["sim_camera_timing"] == dict(CameraTiming.ideal().as_metadata())
    assert np.all(s["prox"][0] % PERIOD_NS == 0) and len(s["prox"][0]) == 121
    tw = s["wheels"][0]
    assert np.all(tw % 20_000_000 == 0) and len(tw) == 601  # polled with the recorder
    t = s["camera_t"]
    assert np.array_equal(t, np.round(np.arange(len(t)) * 1e9 / 30).astype(np.int64))
    assert len(t) == 361
    assert "robot_stream" not in [e.kind for e in s["events"]]
