"""A replay buffer for learning while driving: recent frames plus a reservoir of older ones.

Frames are kept in two classes, those with at least one obstacle cell and those
with free cells only, because a robot that wanders a room sees far more free
floor than obstacles. Each class holds a ring of its newest frames (what the
robot sees now) and a reservoir of the frames the ring evicted (Vitter's
algorithm R: a uniform sample of everything older, so the model does not forget
the start of the run). `sample` draws half of a batch from each class when both
have frames, and within a class `recent_fraction` from the ring.

Pure numpy; thread-safe (the live loop adds, the learner thread samples).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from robot_ssl.core.config import bounded, check_bounds
from robot_ssl.core.errors import ConfigError

__all__ = ["ReplayBuffer", "ReplayConfig"]

# frames per class and store: preallocated, so bounded (100k 80x64 frames: 1.5 GB)
_MAX_CLASS_FRAMES = 100_000


@dataclass(frozen=True)
class ReplayConfig:
    """Sizes in frames per class (obstacle / free); `recent_fraction` of a class's share
    of each batch comes from its ring of newest frames."""

    recent: int = bounded(1500, 1, _MAX_CLASS_FRAMES)
    reservoir: int = bounded(3000, 0, _MAX_CLASS_FRAMES)
    recent_fraction: float = bounded(0.5, 0, 1)

    def __post_init__(self) -> None:
        check_bounds(self, "replay config", ConfigError)


class _Store:
    """Preallocated frames and labels with a fill count."""

    def __init__(self, n: int, image_shape: tuple[int, ...], grid_shape: tuple[int, int]) -> None:
        self.images = np.zeros((n, *image_shape), np.uint8)
        self.labels = np.full((n, *grid_shape), -1, np.int8)
        self.size = 0


class _Class:
    """One class: a ring of the newest frames, and a reservoir of what the ring evicted."""

    def __init__(self, cfg: ReplayConfig, image_shape: tuple[int, ...], grid: tuple[int, int]):
        self.ring = _Store(cfg.recent, image_shape, grid)
        self.pool = _Store(cfg.reservoir, image_shape, grid)
        self.head = 0  # next ring slot
        self.evicted = 0  # frames ever offered to the reservoir

    def __len__(self) -> int:
        return self.ring.size + self.pool.size

    def add(self, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> None:
        ring = self.ring
        if ring.size == len(ring.images):  # full: the oldest frame goes to the reservoir
            self._offer(ring.images[self.head], ring.labels[self.head], rng)
        ring.images[self.head], ring.labels[self.head] = image, labels
        ring.size = min(ring.size + 1, len(ring.images))
        self.head = (self.head + 1) % len(ring.images)

    def _offer(self, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> None:
        pool, cap = self.pool, len(self.pool.images)
        self.evicted += 1
        if cap == 0:
            return
        if pool.size < cap:
            slot = pool.size
            pool.size += 1
        else:
            slot = int(rng.integers(0, self.evicted))
            if slot >= cap:
                return
        pool.images[slot], pool.labels[slot] = image, labels

    def sample(
        self, n: int, recent_fraction: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        n_recent = n if self.pool.size == 0 else round(n * recent_fraction)
        if self.ring.size == 0:
            n_recent = 0
        parts = []
        for store, k in ((self.ring, n_recent), (self.pool, n - n_recent)):
            if k > 0 and store.size > 0:
                idx = rng.integers(0, store.size, k)
                parts.append((store.images[idx], store.labels[idx]))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class ReplayBuffer:
    """Labelled frames (uint8 images at the network's input size, int8 grids) to learn from."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        grid_shape: tuple[int, int],
        config: ReplayConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.config = config or ReplayConfig()
        self.image_shape = tuple(image_shape)
        self.grid_shape = tuple(grid_shape)
        self._classes = {
            name: _Class(self.config, self.image_shape, self.grid_shape)
            for name in ("obstacle", "free")
        }
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self.added = 0

    def __len__(self) -> int:
        with self._lock:
            return sum(len(c) for c in self._classes.values())

    def counts(self) -> dict[str, int]:
        """Frames held per class."""
        with self._lock:
            return {name: len(c) for name, c in self._classes.items()}

    def add(self, image: np.ndarray, labels: np.ndarray) -> bool:
        """Keep a frame if it has a known cell; False when it has none (nothing to learn)."""
        labels = np.asarray(labels, np.int8)
        if image.shape != self.image_shape or labels.shape != self.grid_shape:
            raise ValueError(
                f"frame {image.shape} / labels {labels.shape} do not fit the buffer's "
                f"{self.image_shape} / {self.grid_shape}"
            )
        if not (labels >= 0).any():
            return False
        name = "obstacle" if (labels == 1).any() else "free"
        with self._lock:
            self._classes[name].add(image, labels, self._rng)
            self.added += 1
        return True

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """A batch of `n` frames (copies): half per class when both have frames."""
        with self._lock:
            filled = [c for c in self._classes.values() if len(c)]
            if not filled:
                raise ValueError("the replay buffer is empty")
            shares = [n // len(filled) + (i < n % len(filled)) for i in range(len(filled))]
            parts = [
                c.sample(k, self.config.recent_fraction, self._rng)
                for c, k in zip(filled, shares)
                if k
            ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
