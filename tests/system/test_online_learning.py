"""Learning while driving: the incremental labeller, the replay buffer, the learner thread,
the live loop's learning hook and `replay --live --learn`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import DISTANCES_M  # noqa: E402
from robot_cli import run_robot_ssl  # noqa: E402

from robot_ssl.cli.main import main  # noqa: E402
from robot_ssl.core.label_grid import LabelConfig  # noqa: E402
from robot_ssl.core.spec import CameraSpec  # noqa: E402
from robot_ssl.io.session import SessionReader, SessionWriter  # noqa: E402
from robot_ssl.labelling.labeller import compute_labels  # noqa: E402
from robot_ssl.labelling.online import OnlineLabeller  # noqa: E402
from robot_ssl.learning.checkpoint import Checkpoint  # noqa: E402
from robot_ssl.learning.dataset import synthetic_frames  # noqa: E402
from robot_ssl.learning.evaluate import roc_auc  # noqa: E402
from robot_ssl.learning.models import ModelConfig, build_model  # noqa: E402
from robot_ssl.learning.online import LearnConfig, LearnError, learning_for  # noqa: E402
from robot_ssl.learning.replay_buffer import ReplayBuffer, ReplayConfig  # noqa: E402
from robot_ssl.learning.step import LRSchedule  # noqa: E402
from robot_ssl.learning.torch_predictor import load_any_predictor  # noqa: E402
from robot_ssl.live.loop import LiveConfig, LiveLoop  # noqa: E402
from robot_ssl.simlink.closed_loop import make_simulator  # noqa: E402

OFFSET_S = 0.07


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained default detector saved as a training checkpoint (what --learn needs)."""
    path = tmp_path_factory.mktemp("online") / "m.pt"
    cfg = ModelConfig(distances_m=DISTANCES_M, sensor_indices=(0, 1, 2, 3, 4))
    torch.manual_seed(0)
    Checkpoint(build_model(cfg).state_dict(), cfg, CameraSpec().pinhole()).save(path)
    return path


@pytest.fixture(scope="module")
def sim_session(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("online") / "s.h5"
    args = ["sim", "record", "--world", "arena_boxes", "--minutes", "0.75", "--seed", "4"]
    assert main([*args, "--no-progress", str(path)]) == 0
    return path


def streams(path: Path):
    with SessionReader(path) as r:
        return r.camera_t_ns, *r.proximity(), *r.odometry()


# -- the incremental labeller ------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_online_labels_equal_the_batch_labels(sim_session, seed):
    ct, pt, pv, ot, op = streams(sim_session)
    cfg = LabelConfig(camera_offset=OFFSET_S)
    batch = compute_labels(ct, pt, pv, ot, op, cfg, camera_offset_s=OFFSET_S).labels
    assert (batch >= 0).sum() > 10_000  # the session has labels to get right

    # the three streams arrive interleaved in time, in chunks of random sizes
    rng = np.random.default_rng(seed)
    events = sorted(
        [(int(t), 0, i) for i, t in enumerate(ct)]
        + [(int(t), 1, i) for i, t in enumerate(pt)]
        + [(int(t), 2, i) for i, t in enumerate(ot)]
    )
    online = OnlineLabeller(cfg, OFFSET_S)
    got: dict[int, np.ndarray] = {}
    early = 0
    for t, kind, i in events:
        if kind == 0:
            online.add_frame(t, i)
        elif kind == 1:
            online.add_proximity(t, pv[i])
        else:
            online.add_odometry(t, op[i])
        if rng.random() < 0.05:
            for lab in online.ready():
                assert lab.key not in got and lab.t_ns == ct[lab.key]
                got[lab.key] = lab.labels
            early = len(got)
    for lab in online.flush():
        got[lab.key] = lab.labels
    assert 0.3 * len(ct) < early < len(ct)  # most frames were final before the end
    assert online.pending == 0 and online.labelled == len(ct)
    np.testing.assert_array_equal(np.stack([got[i] for i in range(len(ct))]), batch)


def test_online_labeller_is_final_only_after_the_horizon_and_keeps_memory_bounded(sim_session):
    ct, pt, pv, ot, op = streams(sim_session)
    cfg = LabelConfig(horizon_s=5.0)
    online = OnlineLabeller(cfg)
    online.add_frame(int(ct[0]), "first")
    online.add_odometry(ot[ot < ct[0] + 5.4e9], op[ot < ct[0] + 5.4e9])
    online.add_proximity(pt[pt < ct[0] + 5.4e9], pv[pt < ct[0] + 5.4e9])
    assert online.ready() == []  # 5 s horizon + 0.5 s gap not yet covered by the odometry
    later = (ot >= ct[0] + 5.4e9) & (ot < ct[0] + 6e9)
    online.add_odometry(ot[later], op[later])
    assert [lab.key for lab in online.ready()] == ["first"]
    with pytest.raises(ValueError, match="time order"):
        online.add_odometry(int(ot[0]), op[0])
    # a whole session through: only a window of the streams is held at any time
    online = OnlineLabeller(cfg)
    held = []
    oi = pi = 0
    for i, t in enumerate(ct):  # each stream up to the frame's stamp, then the frame
        oj, pj = np.searchsorted(ot, t, "right"), np.searchsorted(pt, t, "right")
        online.add_odometry(ot[oi:oj], op[oi:oj])
        online.add_proximity(pt[pi:pj], pv[pi:pj])
        oi, pi = oj, pj
        online.add_frame(int(t), i)
        online.ready()
        held.append(online.held_samples)
    rate_hz = (len(ot) + len(pt)) / ((ot[-1] - ot[0]) / 1e9)
    assert max(held) < rate_hz * (5.0 + 0.5 + 4)  # horizon, gap and margins, not 45 s


# -- the replay buffer ---------------------------------------------------------------------


def test_replay_buffer_balances_classes_keeps_recent_and_a_uniform_reservoir():
    buf = ReplayBuffer((2, 2, 3), (1, 2), ReplayConfig(recent=10, reservoir=50), seed=0)
    free, obstacle = np.array([[0, -1]], np.int8), np.array([[1, 0]], np.int8)
    assert not buf.add(np.zeros((2, 2, 3), np.uint8), np.full((1, 2), -1, np.int8))  # unknown
    with pytest.raises(ValueError, match="do not fit"):
        buf.add(np.zeros((3, 3, 3), np.uint8), free)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(4)
    for i in range(2000):  # frame i carries its number in its pixels; 1 in 20 is an obstacle
        image = np.full((2, 2, 3), i % 256, np.uint8)
        image[0, 0, 0], image[0, 0, 1] = i // 256, i % 256
        buf.add(image, obstacle if i % 20 == 0 else free)
    assert buf.counts() == {"obstacle": 60, "free": 60} and buf.added == 2000
    images, labels = buf.sample(400)
    ids = images[:, 0, 0, 0].astype(int) * 256 + images[:, 0, 0, 1]
    is_obstacle = (labels == 1).any(axis=(1, 2))
    assert is_obstacle.sum() == 200  # half of every batch, although 5% of the frames
    recent_free = ids[~is_obstacle] >= 2000 - 11
    assert 0.35 < recent_free.mean() < 0.65  # recent_fraction 0.5 from the ring
    # the reservoir is a uniform sample of the older frames: spread over the whole run
    old = np.sort(np.unique(ids[~is_obstacle][~recent_free]))
    assert old.min() < 400 and old.max() > 1400


# -- the learner thread --------------------------------------------------------------------


def test_learner_improves_publishes_and_checkpoints(checkpoint, tmp_path):
    cfg = LearnConfig(min_frames=64, publish_every=5, batch_size=32, lr=2e-3, threads=1)
    predictor, learning = learning_for(checkpoint, tmp_path / "learn", config=cfg)
    images, labels = synthetic_frames(600, seed=1)
    test_images, test_labels = synthetic_frames(200, seed=2)
    for im, lab in zip(images, labels):
        learning.buffer.add(im, lab)

    def auc() -> float:
        p = predictor.predict(test_images)
        known = test_labels >= 0
        return roc_auc(p[known], test_labels[known])

    before, original = auc(), predictor.module
    learning.start()
    deadline = time.monotonic() + 90
    while learning.learner.steps < 150 and time.monotonic() < deadline:
        time.sleep(0.2)
    learning.close()
    assert learning.learner.error is None and learning.learner.steps >= 150
    assert predictor.module is not original and learning.learner.published >= 30
    after = auc()
    assert before < 0.7 < after, (before, after)
    path = learning.learner.checkpoint_path
    saved = load_any_predictor(path)  # train's checkpoint format, weights_only
    np.testing.assert_allclose(
        saved.predict(test_images), predictor.predict(test_images), atol=1e-5
    )
    assert torch.load(path, weights_only=True)["online"]["steps"] == learning.learner.steps


def test_published_weights_are_the_moving_average_of_the_steps(checkpoint, tmp_path):
    """ema 0.8: at each step average = 0.8 average + 0.2 weights, with the weights the
    step starts from (they gave a finite loss); publish and the checkpoint carry the
    average, the raw weights are kept beside it."""
    cfg = LearnConfig(ema=0.8, threads=1)
    predictor, learning = learning_for(checkpoint, tmp_path / "learn", config=cfg)
    images, labels = synthetic_frames(100, seed=3)
    for im, lab in zip(images, labels):
        learning.buffer.add(im, lab)
    learner = learning.learner
    expected = {k: v.clone() for k, v in learner.model.state_dict().items()}
    for _ in range(4):
        for k, v in learner.model.state_dict().items():
            expected[k] = 0.8 * expected[k] + 0.2 * v if v.is_floating_point() else v
        learner.step()
    got = learner.average.state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6)
    raw = next(iter(learner.model.parameters()))
    assert not torch.allclose(next(iter(learner.average.parameters())), raw)
    learner.publish()
    assert predictor.module is not learner.average  # a copy: later steps do not leak in
    for k, v in predictor.module.state_dict().items():
        torch.testing.assert_close(v, got[k])
    saved = torch.load(learner.save(), weights_only=True)
    torch.testing.assert_close(saved["model"], got)
    torch.testing.assert_close(saved["online"]["raw_model"], learner.model.state_dict())
    with pytest.raises(ValueError, match="ema"):
        LearnConfig(ema=1.0)


def test_only_checkpoints_learn(onnx_model, tmp_path):
    with pytest.raises(LearnError, match="cannot learn"):
        learning_for(onnx_model, tmp_path)


# -- in the live loop ----------------------------------------------------------------------


def test_live_loop_learns_from_the_rows_it_records(checkpoint, tmp_path):
    """The hook sees exactly what the session file gets: its labels equal the batch
    labeller's on the recorded session; the motors end stopped."""
    sim = make_simulator("arena_boxes", 6, camera=True)
    cfg = LearnConfig(min_frames=32, threads=1)
    predictor, learning = learning_for(
        checkpoint, tmp_path / "learn", camera_offset_s=OFFSET_S, config=cfg
    )
    got: dict[int, np.ndarray] = {}
    learning.on_labels = lambda labs: got.update((lab.key, lab.labels) for lab in labs)
    path = tmp_path / "live.h5"
    learning.start()
    with SessionWriter(path, truth_sensors=7, prediction_shape=(5, 31)) as w:
        loop = LiveLoop(
            sim.robot,
            sim.camera,
            predictor,
            np.asarray(DISTANCES_M),
            LiveConfig(drive="avoid"),
            clock=sim.clock,
            writer=w,
            truth=sim.robot.truth,
            observers=[learning],
        )
        try:
            result = loop.run_stepped(35.0)
        finally:
            learning.close()
    assert sim.robot.targets == (0, 0) and result.frames > 900
    ct, pt, pv, ot, op = streams(path)
    grid = LabelConfig(sensor_indices=(0, 1, 2, 3, 4), distances_m=DISTANCES_M)
    batch = compute_labels(ct, pt, pv, ot, op, grid, camera_offset_s=OFFSET_S).labels
    assert len(got) == len(ct) and (batch >= 0).sum() > 1000
    np.testing.assert_array_equal(np.stack([got[i] for i in range(len(ct))]), batch)
    assert learning.buffer.added == int((batch >= 0).any(axis=(1, 2)).sum())
    assert "learn:" in loop.status_line()


def test_replay_live_learn_cli(sim_session, checkpoint, tmp_path, capsys):
    out = tmp_path / "learn"
    argv = ["replay", str(sim_session), "--live", "--model", str(checkpoint), "--speed", "8"]
    assert main([*argv, "--learn", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "learn:" in printed and "labelled" in printed
    assert load_any_predictor(out / "online_last.pt").kind == "checkpoint"
    assert main(["replay", str(sim_session), "--learn", str(out)]) == 2  # needs --live --model
    assert "--learn needs" in capsys.readouterr().err


# -- divergence, unwritable folders and full disks -----------------------------------------


def _filled(checkpoint: Path, out_dir: Path, **config) -> tuple:
    """A predictor and its learning hook into `out_dir`, the buffer filled, notices kept."""
    cfg = LearnConfig(min_frames=32, threads=1, **config)
    predictor, learning = learning_for(checkpoint, out_dir, config=cfg)
    images, labels = synthetic_frames(64, seed=1)
    for im, lab in zip(images, labels):
        learning.buffer.add(im, lab)
    said: list[tuple[str, int]] = []
    learning.learner.notify = lambda line: said.append((line, learning.learner.steps))
    return predictor, learning, said


def _wait(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition()


def test_a_diverging_learner_stops_once_and_keeps_the_last_good_weights(checkpoint, tmp_path):
    """A learning rate far too high (set on the running optimiser): the first non-finite
    step stops the learning, said once; the live predictor and the checkpoint keep the
    averaged weights of the good steps (finite), and driving goes on."""
    predictor, learning, said = _filled(checkpoint, tmp_path / "learn", publish_every=1)
    learner = learning.learner
    learning.start()
    _wait(lambda: learner.steps >= 3)
    learner.schedule = LRSchedule.constant(1e12)  # the schedule every step reads
    _wait(lambda: learner.error is not None)
    learning.close()
    assert len(said) == 1 and said[0][0].startswith("training diverged at step "), said
    assert said[0][0].endswith("learning stopped, the last good weights drive on")
    assert "stopped: training diverged at step" in learning.status()
    assert not learner._thread.is_alive() and learning.unsaved is None
    good = predictor.module.state_dict()
    assert all(torch.isfinite(v).all() for v in good.values() if v.is_floating_point())
    assert np.isfinite(predictor.predict(synthetic_frames(4, seed=5)[0])).all()
    saved = torch.load(learner.checkpoint_path, weights_only=True)
    torch.testing.assert_close(saved["model"], good)
    torch.testing.assert_close(saved["online"]["raw_model"], good)  # nothing NaN is written


def test_a_full_disk_keeps_learning_says_so_once_and_leaves_no_partial_file(
    checkpoint, mount_tmpfs
):
    full = mount_tmpfs("64k")
    out = full / "learn"
    _, learning, said = _filled(checkpoint, out, checkpoint_every_s=0.05)
    learner = learning.learner
    learning.start()
    _wait(lambda: len(said) == 1 and learner.steps >= said[0][1] + 5)  # it goes on learning
    learning.close()
    assert len(said) == 1, said  # every later checkpoint failed too, silently
    line = said[0][0]
    assert line == (
        f"cannot write {out / 'online_last.pt'}: no space left on device; "
        "learning goes on, the next checkpoint retries"
    )
    assert learner.error is None and learning.unsaved.endswith("no space left on device")
    assert "not saved" in learning.end_line()
    with pytest.raises(LearnError, match="no space left on device: the learning of this run"):
        learning.check_saved()
    assert not out.exists() or list(out.iterdir()) == []  # no half-written checkpoint


def _cli(*args: str) -> subprocess.CompletedProcess:
    return run_robot_ssl(*args, env={"OMP_NUM_THREADS": "1"})


def test_an_unwritable_learn_folder_is_refused_before_anything_starts(
    sim_session, checkpoint, tmp_path, mount_tmpfs
):
    read_only = mount_tmpfs("1m", read_only=True)
    file = tmp_path / "file"
    file.write_text("not a folder")
    replay = ["replay", str(sim_session), "--live", "--model", str(checkpoint), "--speed", "8"]
    run = ["run", "--model", str(checkpoint), "--robot", "sim", "--camera", "sim"]
    run += ["--drive", "avoid", "--duration", "5", "--record", str(tmp_path / "run.h5")]
    cases = [  # command, --learn DIR, the error
        (replay, read_only / "learn", f"cannot write to {read_only}: read-only file system"),
        (replay, file, f"cannot write to {file}: {file} is not a directory"),
        (run, read_only / "learn", f"cannot write to {read_only}: read-only file system"),
        (run, file / "learn", f"cannot write to {file / 'learn'}: {file} is not a directory"),
    ]
    for argv, folder, error in cases:
        r = _cli(*argv, "--learn", str(folder))
        assert r.returncode == 2 and r.stderr == f"robot-ssl {argv[0]}: error: {error}\n"
        assert r.stdout == "" and not (tmp_path / "run.h5").exists()  # nothing started


def test_a_full_disk_at_the_end_of_a_run_is_an_error_after_the_motors_stopped(
    sim_session, checkpoint, mount_tmpfs
):
    full = mount_tmpfs("64k")
    out = full / "learn"
    replay = ["replay", str(sim_session), "--live", "--model", str(checkpoint), "--speed", "8"]
    replay += ["--max-frames", "150"]
    run = ["run", "--model", str(checkpoint), "--robot", "sim", "--camera", "sim"]
    run += ["--drive", "avoid", "--duration", "2"]
    for argv, name in ((replay, "replay"), (run, "run")):
        r = _cli(*argv, "--learn", str(out))
        assert r.returncode == 2, r.stderr
        lines = (r.stdout + r.stderr).strip().splitlines()
        assert lines[-1] == (
            f"robot-ssl {name}: error: cannot write {out / 'online_last.pt'}: no space left "
            "on device: the learning of this run is lost"
        ), lines
        assert "Traceback" not in r.stderr and "not saved" in lines[-2]
        if name == "run":
            assert "wheel targets (0, 0)" in r.stderr  # stopped before the error
        assert not out.exists() or list(out.iterdir()) == []
