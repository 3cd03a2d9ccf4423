"""Learning while driving: online labels, a replay buffer and background fine-tuning.

`OnlineLearning` is an observer of the live loop (robot_ssl.live.loop.Observer):
`on_frame` with each camera frame, `on_row` with each record of the streams it
subscribes to (`streams`: odometry and proximity), the very rows that go into the
session file. It labels frames incrementally
(robot_ssl.labelling.online: the batch labeller's labels on the same data), keeps
the labelled ones in a `ReplayBuffer`, and runs an `OnlineLearner` thread that
fine-tunes a copy of the detector with the training loss and augmentation of
`robot-ssl train`, publishes an exponential moving average of its weights (`ema`;
a single step on a small, correlated buffer is noisy) into the live predictor every
`publish_every` steps (a new module swapped in by one reference assignment, so a
frame is always scored by one consistent set of weights), and writes checkpoints
in `robot-ssl train`'s format (`online_last.pt`, loadable by `run`, `eval` and
`export`) atomically every `checkpoint_every_s` and at the end.

CPU budget: the learner runs torch on `threads` intra-op threads (torch's count
is per process, so the live predictor uses the same) and, with `duty` < 1,
sleeps after each step so that it computes for that fraction of wall time.
Nothing here touches the motors: the watchdog and every safety path of the loop
are unchanged, and a learner error only stops the learning (logged). A non-finite
step (robot_ssl/learning/step.py) stops it with one line and keeps the averaged weights
of the good steps; a checkpoint that cannot be written (full disk) is said once and
tried again at the next one, and `check_saved` makes a lost last one an error.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.label_grid import LabelConfig
from robot_ssl.inference.preprocess import prepare_images
from robot_ssl.io.streams import Record
from robot_ssl.labelling.online import OnlineLabeller
from robot_ssl.learning.checkpoint import Checkpoint
from robot_ssl.learning.learn_config import LearnConfig  # re-exported (torch-free)
from robot_ssl.learning.replay_buffer import ReplayBuffer
from robot_ssl.learning.step import (
    LRSchedule,
    TrainingDiverged,
    check_finite_loss,
    make_optimizer,
    optimisation_step,
)
from robot_ssl.learning.train import augment_batch, masked_bce_loss
from robot_ssl.runtime.priority import normal

__all__ = ["LearnConfig", "LearnError", "OnlineLearner", "OnlineLearning", "learning_for"]

GRAD_CLIP = 1.0  # the gradient norm each online step is clipped to (train's default)


class OnlineLearner:
    """The background thread: sample the buffer, step, publish, checkpoint.

    `predictor` is a torch predictor (its `module` is replaced on publish);
    `base` the Checkpoint it came from (configs, viewpoint and history are carried on).
    """

    def __init__(
        self,
        predictor: Any,
        base: Checkpoint,
        buffer: ReplayBuffer,
        out_dir: Path | None,
        config: LearnConfig,
        seed: int = 0,
        feed: Any = None,
    ) -> None:
        self.predictor = predictor
        self.feed = feed  # called by the thread before each step (labels new data)
        self.base = base
        self.buffer = buffer
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.cfg = config
        torch.manual_seed(seed)
        self.model = copy.deepcopy(predictor.module).train()
        self.average = copy.deepcopy(self.model).eval()  # what is published and saved
        for p in self.average.parameters():
            p.requires_grad_(False)
        self.optimizer = make_optimizer(self.model.parameters(), config.lr, config.weight_decay)
        self.schedule = LRSchedule.constant(config.lr)
        self.gen = torch.Generator().manual_seed(seed)
        self.steps = 0
        self.published = 0
        self.losses: deque[float] = deque(maxlen=1000)
        self.error: str | None = None
        self.diverged = False  # stopped on a non-finite step; the model is the average again
        self.save_error: str | None = None  # why the latest checkpoint failed (None: saved)
        self.notify = _say  # one line for the user (the learner stopped, a save failed)
        self._said_save_error = False
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_ckpt = time.monotonic()

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / "online_last.pt"

    def start(self) -> None:
        torch.set_num_threads(self.cfg.threads)
        self._thread = threading.Thread(target=self._run, name="online-learner", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread (after its current step)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def finish(self) -> None:
        """Publish (when it trained) and write the last checkpoint (unless it crashed; after a
        divergence, the last good weights). A failed write is left in `save_error`."""
        if self.error is not None and not self.diverged:
            return
        if self.steps:
            self.publish()
        self.try_save(final=True)

    def step(self) -> float:
        """One optimiser step on a batch from the buffer; returns the loss.

        The weights join the average (what is published and saved) once a loss computed
        with them is finite, i.e. at the start of the next step: weights that are finite
        but already useless (a step far too long) never reach the live predictor.
        TrainingDiverged on a non-finite step, the model back on the average."""
        images, labels = self.buffer.sample(self.cfg.batch_size)
        x = torch.from_numpy(images).float()
        y = torch.from_numpy(labels)
        x, y = augment_batch(x, y, self.cfg.augment, self.gen)
        loss = masked_bce_loss(self.model(x), y)
        params = list(self.model.parameters())
        where = f"step {self.steps + 1}"
        try:
            check_finite_loss(loss, where)
            self._update_average()
            lr = self.schedule.at(self.steps)
            value = optimisation_step(loss, self.optimizer, params, GRAD_CLIP, where, "", lr=lr)
        except TrainingDiverged:
            self._fall_back()
            raise
        self.steps += 1
        self.losses.append(value)
        return value

    def _fall_back(self) -> None:
        """After a non-finite step: the model and a fresh optimiser start again from the
        averaged weights, the last good ones."""
        self.model.load_state_dict(self.average.state_dict())
        self.optimizer.state.clear()
        self.diverged = True

    @torch.no_grad()
    def _update_average(self) -> None:
        """average <- ema * average + (1 - ema) * weights (buffers copied)."""
        avg = list(self.average.parameters())
        torch._foreach_lerp_(avg, [p.detach() for p in self.model.parameters()], 1 - self.cfg.ema)
        for a, b in zip(self.average.buffers(), self.model.buffers()):
            a.copy_(b)

    def publish(self) -> None:
        """Swap a copy of the averaged weights into the live predictor (one assignment)."""
        self.predictor.module = copy.deepcopy(self.average)
        self.published += 1

    def save(self) -> Path | None:
        """Write `online_last.pt` (train's checkpoint format) atomically."""
        path = self.checkpoint_path
        if path is None:
            return None
        ckpt = dataclasses.replace(
            self.base,
            model={k: v.detach().clone() for k, v in self.average.state_dict().items()},
            optimizer=self.optimizer.state_dict(),
            online={
                "steps": self.steps,
                "frames_added": self.buffer.added,
                "ema": self.cfg.ema,
                "raw_model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            },
        )
        ckpt.save(path)
        self.checkpoints += 1
        self._last_ckpt = time.monotonic()
        self.save_error = None
        return path

    def try_save(self, final: bool = False) -> Path | None:
        """`save`, a failure (full disk, folder gone) kept in `save_error` and said once:
        learning goes on, and the next checkpoint tries again."""
        try:
            return self.save()
        except (RobotSSLError, OSError) as e:
            self._last_ckpt = time.monotonic()
            self.save_error = str(e).splitlines()[0]
            if not final and not self._said_save_error:
                self._said_save_error = True
                self.notify(f"{self.save_error}; learning goes on, the next checkpoint retries")
            return None

    def _run(self) -> None:
        normal()  # not at the drive loop's real-time priority, which it inherits
        try:
            while not self._stop.is_set():
                if self.feed is not None:
                    self.feed()
                if len(self.buffer) < self.cfg.min_frames:
                    self._stop.wait(0.1)
                    continue
                t0 = time.perf_counter()
                self.step()
                if self.steps % self.cfg.publish_every == 0:
                    self.publish()
                if time.monotonic() - self._last_ckpt >= self.cfg.checkpoint_every_s:
                    self.try_save()
                busy = time.perf_counter() - t0
                if self.cfg.duty < 1.0:
                    self._stop.wait(busy * (1.0 / self.cfg.duty - 1.0))
        except TrainingDiverged as e:  # learning stops; driving goes on, on good weights
            self.error = str(e).splitlines()[0]
            self.notify(f"{self.error}; learning stopped, the last good weights drive on")
        except Exception as e:  # learning stops; driving goes on
            self.error = f"{type(e).__name__}: {e}".splitlines()[0]


def _say(line: str) -> None:
    """The learner's one-line notices, on stderr."""
    print(f"learn: {line}", file=sys.stderr, flush=True)


class OnlineLearning:
    """The live loop's learning hook: frames and sensor rows in, labels, buffer, learner.

    `on_row` and `on_frame` only queue what they get (the loop's threads call them
    and must not wait); the learner thread labels the queue (`feed`) before each step.
    """

    streams = ("odometry", "proximity")  # the session streams the labeller reads

    def __init__(
        self,
        predictor: Any,
        base: Checkpoint,
        label_config: LabelConfig,
        *,
        camera_offset_s: float = 0.0,
        out_dir: Path | None = None,
        config: LearnConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.cfg = config or LearnConfig()
        mc = predictor.config
        self.size = mc.input_size
        self.labeller = OnlineLabeller(label_config, camera_offset_s)
        grid = (len(label_config.sensor_indices), len(label_config.distances_m))
        if grid != (mc.num_sensors, mc.num_distances):
            raise ValueError(
                f"the labeller's grid {grid} differs from the model's "
                f"{(mc.num_sensors, mc.num_distances)} (sensors, distances)"
            )
        width, height = self.size
        self.buffer = ReplayBuffer((height, width, 3), grid, self.cfg.replay, seed)
        self.learner = OnlineLearner(
            predictor, base, self.buffer, out_dir, self.cfg, seed, feed=self.feed
        )
        self._inbox: deque[Record] = deque()  # appends and pops are thread-safe
        self._feed_lock = threading.Lock()
        self._images: dict[int, np.ndarray] = {}
        self._next_key = 0
        self._last_label_ns: int | None = None
        self.labels_seen = 0
        self.on_labels: Any = None  # optional callback(list[OnlineLabel]), e.g. the live view

    def start(self) -> None:
        self.learner.start()

    def on_frame(self, t_ns: int, image_bgr: np.ndarray, prob: np.ndarray | None = None) -> None:
        """A camera frame as captured (queued; the prediction is not needed)."""
        self._inbox.append(Record.of("camera", t_ns, image=image_bgr))

    def on_row(self, row: Record) -> None:
        """A record of the streams subscribed to (`streams`), queued for the labeller;
        a record of another stream is ignored."""
        if row.stream in self.streams:
            self._inbox.append(row)

    def feed(self, final: bool = False) -> None:
        """Move queued data into the labeller; label what is ready (all, when `final`)."""
        with self._feed_lock:
            newest = None
            while self._inbox:
                record = self._inbox.popleft()
                t_ns = record.t_ns
                if record.stream == "camera":
                    key = self._next_key
                    self._next_key += 1
                    self._images[key] = prepare_images(record.image, self.size)[0]
                    self.labeller.add_frame(t_ns, key)
                    newest = t_ns
                elif record.stream == "odometry":
                    self.labeller.add_odometry(t_ns, record.pose)
                else:
                    self.labeller.add_proximity(t_ns, record.horizontal)
            if final:
                self._take(self.labeller.flush())
            elif newest is not None and (
                self._last_label_ns is None
                or newest - self._last_label_ns >= self.cfg.label_every_s * 1e9
            ):
                self._last_label_ns = newest
                self._take(self.labeller.ready())

    def _take(self, labels: list) -> None:
        for lab in labels:
            self.buffer.add(self._images.pop(lab.key), lab.labels)
        self.labels_seen += len(labels)
        if labels and self.on_labels is not None:
            self.on_labels(labels)

    def close(self) -> None:
        """Stop the learner, label what is left, publish and checkpoint. Never raises on a
        failed checkpoint (it runs in clean-up paths): see `unsaved`."""
        self.learner.stop()
        self.feed(final=True)
        self.learner.finish()

    @property
    def unsaved(self) -> str | None:
        """Why the last checkpoint could not be written (None: it was, or none was due)."""
        return self.learner.save_error

    def end_line(self) -> str:
        """The run's last line about learning: the status and where the checkpoint is."""
        where = "not saved" if self.unsaved else f"checkpoint {self.learner.checkpoint_path}"
        return f"{self.status()}; {where}"

    def check_saved(self) -> None:
        """LearnError (one line: exit status 2) when the last checkpoint could not be
        written; call it after the robot is stopped and the summary is printed."""
        if self.unsaved:
            raise LearnError(f"{self.unsaved}: the learning of this run is lost")

    def status(self) -> str:
        losses = list(self.learner.losses)[-50:]
        loss = f"{np.mean(losses):.3f}" if losses else "-"
        held = self.buffer.counts()
        text = (
            f"learn: {self.labels_seen} labelled ({held['obstacle']} obstacle, {held['free']} "
            f"free kept), {self.learner.steps} steps, loss {loss}"
        )
        return text + (f", stopped: {self.learner.error}" if self.learner.error else "")


class LearnError(RobotSSLError):
    """Learning while driving cannot start (model kind, label grid)."""


def learning_for(
    model_path: str | Path,
    out_dir: str | Path | None,
    *,
    camera_offset_s: float = 0.0,
    config: LearnConfig | None = None,
    seed: int = 0,
) -> tuple[Any, OnlineLearning]:
    """A PyTorch predictor for a training checkpoint and its learning hook (not started).

    Only checkpoints learn: ONNX and TorchScript files hold no trainable weights.
    The labeller uses the checkpoint's grid (sensors, distances) and default tolerances.
    `out_dir` is checked first with a real write (OutputError when it cannot be created or
    written), so a run does not learn for nothing.
    """
    from robot_ssl.learning.torch_predictor import load_any_predictor
    from robot_ssl.learning.train import _check_out_dir

    if out_dir is not None:
        _check_out_dir(Path(out_dir))
    cfg = config or LearnConfig()
    predictor = load_any_predictor(model_path, num_threads=cfg.threads)
    if predictor.kind != "checkpoint":
        raise LearnError(
            f"{model_path}: a {predictor.kind} file cannot learn; --learn needs a training "
            "checkpoint (.pt from robot-ssl train)"
        )
    mc = predictor.config
    grid = {}
    if mc.sensor_indices is not None:
        grid["sensor_indices"] = tuple(int(s) for s in mc.sensor_indices)
    if mc.distances_m is not None:
        grid["distances_m"] = tuple(float(d) for d in mc.distances_m)
    try:
        learning = OnlineLearning(
            predictor,
            Checkpoint.load(model_path),
            LabelConfig(camera_offset=float(camera_offset_s), **grid),
            camera_offset_s=camera_offset_s,
            out_dir=Path(out_dir) if out_dir is not None else None,
            config=cfg,
            seed=seed,
        )
    except ValueError as e:
        raise LearnError(f"{model_path}: {e}") from None
    return predictor, learning
