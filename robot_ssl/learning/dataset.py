"""Labelled frames for training and evaluation, decoded and resized once.

A session file (robot_ssl/io/session.py) holds the camera frames; its labels file
(``<stem>.labels.h5`` next to it or in a labels directory, written by
robot_ssl/labelling/labeller.py, format in docs/CONTRACTS.md) holds, per labelled frame,
a grid ``(S, D)`` of {-1 unknown, 0 free, 1 obstacle}. This module joins them:
it keeps only frames with at least one known cell, decodes and resizes each of
them exactly once with :func:`prepare_images` (the one image preprocessing
function of the project: training, evaluation, export checks and the live loop
all call it) and keeps the result as uint8 in memory, optionally also in an
on-disk cache keyed by the session's SHA-256, size and the target resolution,
so no epoch and no later run decodes a JPEG again.

Splits are made over whole sessions (or whole worlds), or over time blocks of
each session with a guard gap between the two sides, never over single frames:
consecutive frames are near duplicates, and a frame split would measure
memorisation rather than generalisation.

This module is torch-free (numpy, OpenCV, h5py) so that the live loop can use
:func:`prepare_images` with ONNX Runtime alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.outputs import atomic_output
from robot_ssl.inference.preprocess import prepare_images
from robot_ssl.learning.train_config import DEFAULT_INPUT_SIZE, SPLIT_GROUPS  # re-exported

__all__ = [
    "DEFAULT_INPUT_SIZE",
    "DatasetError",
    "FrameSet",
    "SessionData",
    "find_sessions",
    "labels_path_for",
    "load_sessions",
    "prepare_images",
    "split_sessions",
    "synthetic_frames",
    "synthetic_frameset",
    "synthetic_label_set",
    "write_synthetic_session",
]

LABELS_SUFFIX = ".labels.h5"
_CACHE_VERSION = 1


class DatasetError(RobotSSLError):
    """Sessions or labels cannot be loaded, do not match, or cannot be split as asked."""


# -- labels files --------------------------------------------------------------------------


def labels_path_for(session: str | Path, labels_dir: str | Path | None = None) -> Path:
    """Where the labels of `session` live: `<labels_dir or session dir>/<stem>.labels.h5`."""
    from robot_ssl.io.labels_file import default_labels_path

    return default_labels_path(session, labels_dir)


def find_sessions(paths: Iterable[str | Path]) -> list[Path]:
    """Session files named by `paths`: files as given, folders searched recursively for `*.h5`.

    Labels files (`robot_ssl.io.labels_file.is_labels_file`) are skipped: silently in
    folders, with a note on stderr when named as files (`dir/*.h5` matches them).
    Order is stable (sorted per folder) and duplicates are removed.
    """
    from robot_ssl.io.labels_file import is_labels_file, skip_labels_files

    paths = list(paths)
    found: list[Path] = []
    skipped = 0
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.h5") if not is_labels_file(q))
        elif p.is_file():
            kept = skip_labels_files([p])
            skipped += not kept
            found += kept
        else:
            raise DatasetError(f"no such session file or folder: {p}")
    unique = list(dict.fromkeys(q.resolve() for q in found))
    if not unique:
        where = ", ".join(map(str, paths))
        if skipped:
            raise DatasetError(f"no session files among {where} (only labels files)")
        raise DatasetError(f"no session files (*.h5) found in {where}")
    return unique


# -- sessions ------------------------------------------------------------------------------


@dataclass
class SessionData:
    """The labelled frames of one session, resized, as uint8 arrays in memory."""

    name: str
    path: Path
    world: str | None
    frame_index: np.ndarray  # int64 (N,) frame numbers in the session
    images: np.ndarray  # uint8 (N, H, W, 3) BGR, already at the network input size
    labels: np.ndarray  # int8 (N, S, D)
    distances_m: np.ndarray  # float64 (D,)
    sensor_indices: np.ndarray  # int64 (S,)
    mirror_symmetric: bool = True  # sensors s and S-1-s are mirror images (flip is valid)
    sha256: str = ""  # the session file's SHA-256, from its labels file's identity
    t_s: np.ndarray | None = None  # float64 (N,) frame stamps from the session start, seconds
    camera: Any = None  # the session's CameraSpec (a pinhole.Pinhole): the model's viewpoint
    weights: np.ndarray | None = None  # float32 (N, S, D) label confidence; None: all 1

    def __len__(self) -> int:
        return len(self.frame_index)

    def times_s(self) -> np.ndarray:
        """Frame stamps in seconds from the first frame (30 fps spacing when unknown)."""
        if self.t_s is not None:
            return np.asarray(self.t_s, np.float64)
        return np.arange(len(self), dtype=np.float64) / 30.0

    def subset(self, mask: np.ndarray) -> SessionData:
        """The frames where `mask` (N,) holds, as a SessionData of the same session."""
        mask = np.asarray(mask, bool)
        return replace(
            self,
            frame_index=self.frame_index[mask],
            images=self.images[mask],
            labels=self.labels[mask],
            t_s=self.times_s()[mask],
            weights=None if self.weights is None else self.weights[mask],
        )


def _sensors_mirror_symmetric(robot: Any, sensor_indices: np.ndarray, tol: float = 2e-3) -> bool:
    """True when sensor s is the left-right mirror of sensor S-1-s (y -> -y, theta -> -theta)."""
    try:
        poses = np.array(robot.prox_poses(), dtype=np.float64)[sensor_indices]
    except (AttributeError, IndexError):
        return False
    mirrored = poses[::-1] * np.array([1.0, -1.0, -1.0])
    return bool(np.all(np.abs(poses - mirrored) < np.array([tol, tol, 1e-2])))


def _decode_resize(jpeg: bytes, shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray | None:
    """One stored JPEG frame at the network input `size`, or None when it is damaged."""
    from robot_ssl.io.session import decode_jpeg

    image = decode_jpeg(jpeg, shape)
    return None if image is None else prepare_images(image, size)[0]


def _decode_frames(
    reader: Any, indices: np.ndarray, size: tuple[int, int], workers: int, desc: str, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Decode + resize the given frames, skipping damaged ones (robot_ssl.io.session.decode_jpeg):
    (images of the intact frames, bool (len(indices),) which frames are intact). JPEG
    decoding runs in `workers` threads."""
    from tqdm import tqdm

    width, height = size
    out = np.empty((len(indices), height, width, 3), dtype=np.uint8)
    intact = np.ones(len(indices), dtype=bool)
    shape = getattr(reader, "frame_shape", None)
    bar = tqdm(
        total=len(indices), desc=desc, unit="frame", disable=None if progress else True, leave=False
    )  # None: bars only on a terminal
    chunk = 256
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(indices), chunk):
            part = indices[start : start + chunk]
            if getattr(reader, "frame_format", "jpeg") == "jpeg":
                blobs = [reader.jpeg(int(i)) for i in part]  # h5py reads are serial anyway
                images = pool.map(_decode_resize, blobs, [shape] * len(blobs), [size] * len(blobs))
                for k, image in enumerate(images, start):
                    if image is None:
                        intact[k] = False
                    else:
                        out[k] = image
            else:
                out[start : start + len(part)] = prepare_images(
                    [reader.frame(int(i)) for i in part], size
                )
            bar.update(len(part))
    bar.close()
    return (out if intact.all() else out[intact]), intact


def _cache_file(cache_dir: Path, sha: str, size_bytes: int, size: tuple[int, int]) -> Path:
    return cache_dir / f"{sha[:32]}-{size_bytes}-{size[0]}x{size[1]}-v{_CACHE_VERSION}.npz"


def _cache_load(path: Path, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Cached frames for `indices` as _decode_frames gives them (images of the intact
    frames, which are intact), or None when the cache is absent, unreadable or incomplete."""
    try:
        with np.load(path) as z:
            cached_index, images = z["frame_index"], z["images"]
            damaged = z["damaged"] if "damaged" in z.files else np.zeros(0, np.int64)
    except (OSError, KeyError, ValueError):
        return None
    intact = ~np.isin(indices, damaged)
    wanted = indices[intact]
    pos = np.searchsorted(cached_index, wanted)
    pos = np.clip(pos, 0, max(len(cached_index) - 1, 0))
    if len(cached_index) == 0 or not np.array_equal(cached_index[pos], wanted):
        return None
    return images[pos], intact


def _cache_store(path: Path, indices: np.ndarray, images: np.ndarray, intact: np.ndarray) -> None:
    """Write the cache atomically (temporary file + rename): the intact frames of
    `indices` and the damaged frame numbers; failures only cost speed."""
    try:
        with atomic_output(path) as tmp, tmp.open("wb") as f:
            np.savez(f, frame_index=indices[intact], images=images, damaged=indices[~intact])
    except OSError:
        pass


def load_session(
    path: str | Path,
    *,
    labels_dir: str | Path | None = None,
    size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    cache_dir: str | Path | None = None,
    workers: int = 2,
    progress: bool = False,
) -> SessionData:
    """Labelled frames of one session (only frames with at least one known cell); damaged
    frames are skipped with one line on stderr, a session with no intact one is refused
    (robot_ssl.io.session.report_damaged_frames)."""
    from robot_ssl.io.labels_file import read_labels
    from robot_ssl.io.session import SessionReader, report_damaged_frames

    path = Path(path)
    labels_path = labels_path_for(path, labels_dir)
    if not labels_path.is_file():
        raise DatasetError(
            f"no labels for {path}: expected {labels_path} (run `robot-ssl label {path}`)"
        )
    lab = read_labels(labels_path)
    lab.session.check(path, full_hash=False)  # size check: stale labels fail loudly
    keep = (lab.labels >= 0).any(axis=(1, 2))
    order = np.argsort(lab.frame_index[keep], kind="stable")
    frame_index = lab.frame_index[keep][order]
    labels = lab.labels[keep][order]
    weights = None if lab.confidence is None else lab.confidence[keep][order]
    t_ns = np.asarray(lab.t_ns[keep][order], np.int64)
    t_s = (t_ns - (t_ns[0] if len(t_ns) else 0)).astype(np.float64) * 1e-9
    with SessionReader(path) as reader:
        size_bytes = reader.size_bytes
        if len(frame_index) and (frame_index[0] < 0 or frame_index[-1] >= reader.num_frames):
            raise DatasetError(f"{labels_path}: frame_index out of range for {path}")
        world = reader.metadata.get("world")
        camera = reader.camera
        symmetric = _sensors_mirror_symmetric(reader.robot, lab.sensor_indices)
        decoded = None
        cache = None
        if cache_dir is not None:
            sha = lab.session.sha256
            cache = _cache_file(Path(cache_dir), sha, size_bytes, size)
            decoded = _cache_load(cache, frame_index)
        if decoded is None:
            decoded = _decode_frames(reader, frame_index, size, workers, path.name, progress)
            if cache is not None:
                _cache_store(cache, frame_index, *decoded)
    images, intact = decoded
    report_damaged_frames(path, int((~intact).sum()), len(intact), "labelled frames")
    frame_index, labels, t_s = frame_index[intact], labels[intact], t_s[intact]
    weights = None if weights is None else weights[intact]
    return SessionData(
        name=path.stem,
        path=path,
        world=None if world is None else str(world),
        frame_index=frame_index,
        images=images,
        labels=labels,
        distances_m=lab.distances_m,
        sensor_indices=lab.sensor_indices,
        mirror_symmetric=symmetric,
        sha256=lab.session.sha256,
        t_s=t_s,
        camera=camera,
        weights=weights,
    )


def load_sessions(
    paths: Iterable[str | Path],
    *,
    labels_dir: str | Path | None = None,
    size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    cache_dir: str | Path | None = None,
    workers: int = 2,
    progress: bool = True,
) -> list[SessionData]:
    """Load every session named by `paths` (files or folders) with its labels; see load_session."""
    from tqdm import tqdm

    files = find_sessions(paths)
    out = []
    show = None if progress and len(files) > 1 else True  # None: bars only on a terminal
    for f in tqdm(files, desc="sessions", unit="session", disable=show):
        out.append(
            load_session(
                f,
                labels_dir=labels_dir,
                size=size,
                cache_dir=cache_dir,
                workers=workers,
                progress=progress,
            )
        )
    return out


# -- frame sets and splits -----------------------------------------------------------------


@dataclass
class FrameSet:
    """Frames of several sessions concatenated: what training and evaluation iterate over."""

    images: np.ndarray  # uint8 (N, H, W, 3) BGR
    labels: np.ndarray  # int8 (N, S, D)
    session_ids: np.ndarray  # int32 (N,) index into session_names
    session_names: list[str] = field(default_factory=list)
    session_sha256: list[str] = field(default_factory=list)  # per session ("" unknown)
    worlds: list[str | None] = field(default_factory=list)
    distances_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sensor_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    mirror_symmetric: bool = True
    viewpoint: Any = None  # the sessions' camera (pinhole.Pinhole; None: unknown)
    weights: np.ndarray | None = None  # float32 (N, S, D) per-cell loss weights; None: all 1
    poses: np.ndarray | None = None  # float64 (N, 3) odometry poses (state-consistency loss)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[3] != 3:
            raise DatasetError("images must be uint8 (N, H, W, 3)")
        if self.labels.ndim != 3 or len(self.labels) != n or len(self.session_ids) != n:
            raise DatasetError("labels (N, S, D) and session_ids (N,) must match images (N)")
        if len(self.distances_m) == 0:
            self.distances_m = np.arange(self.labels.shape[2], dtype=np.float64) * 0.01
        if len(self.sensor_indices) == 0:
            self.sensor_indices = np.arange(self.labels.shape[1], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(S, D): sensors x distances."""
        return int(self.labels.shape[1]), int(self.labels.shape[2])

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the stored images."""
        return int(self.images.shape[2]), int(self.images.shape[1])

    @classmethod
    def from_sessions(cls, sessions: Sequence[SessionData]) -> FrameSet:
        """Concatenate sessions; they must share image size, sensors and distances."""
        if not sessions:
            raise DatasetError("no sessions to build a frame set from")
        first = sessions[0]
        for s in sessions[1:]:
            if s.images.shape[1:] != first.images.shape[1:]:
                raise DatasetError(f"{s.name}: image size differs from {first.name}")
            if s.labels.shape[1:] != first.labels.shape[1:] or not np.allclose(
                s.distances_m, first.distances_m
            ):
                raise DatasetError(f"{s.name}: label grid differs from {first.name}")
            if not np.array_equal(s.sensor_indices, first.sensor_indices):
                raise DatasetError(f"{s.name}: sensor indices differ from {first.name}")
        return cls(
            images=np.concatenate([s.images for s in sessions]),
            labels=np.concatenate([s.labels for s in sessions]),
            session_ids=np.concatenate(
                [np.full(len(s), i, dtype=np.int32) for i, s in enumerate(sessions)]
            ),
            session_names=[s.name for s in sessions],
            session_sha256=[s.sha256 for s in sessions],
            worlds=[s.world for s in sessions],
            distances_m=first.distances_m,
            sensor_indices=first.sensor_indices,
            mirror_symmetric=all(s.mirror_symmetric for s in sessions),
            viewpoint=None if first.camera is None else first.camera.pinhole(),
            weights=_concat_weights(sessions),
        )


def _concat_weights(sessions: Sequence[SessionData]) -> np.ndarray | None:
    """The sessions' label confidences end to end (1 for a session without any); None
    when no session has any, so that training without them costs nothing."""
    if all(s.weights is None for s in sessions):
        return None
    return np.concatenate(
        [np.ones(s.labels.shape, np.float32) if s.weights is None else s.weights for s in sessions]
    )


def split_sessions(
    sessions: Sequence[SessionData],
    *,
    val_worlds: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    group_by: str = "session",
    seed: int = 0,
    block_s: float = 30.0,
    gap_s: float = 3.0,
) -> tuple[list[SessionData], list[SessionData]]:
    """Split sessions into (train, validation) without ever splitting a run of frames.

    With `val_worlds`, sessions recorded in those worlds (session metadata
    "world") are the validation side. Otherwise a seeded random
    `val_fraction` of the groups (sessions, or worlds with group_by="world")
    is, rounded up to at least one group while leaving one for training;
    `val_fraction=0` gives an empty validation side. With group_by="block",
    every session is cut into `block_s`-second blocks and a seeded
    `val_fraction` of each session's blocks (at least one, never all) is
    validation, so validation covers every world; training frames within
    `gap_s` seconds of a validation block are dropped, because a frame and its
    neighbours show the same scene.
    """
    if group_by not in SPLIT_GROUPS:
        raise DatasetError(f"group_by must be one of {', '.join(SPLIT_GROUPS)}")
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError("val_fraction must be in [0, 1)")
    sessions = list(sessions)
    if val_worlds:
        wanted = set(val_worlds)
        present = {s.world for s in sessions}
        missing = sorted(wanted - present)
        if missing:
            raise DatasetError(
                f"validation worlds {missing} not found; sessions have worlds "
                f"{sorted(str(w) for w in present)}"
            )
        val = [s for s in sessions if s.world in wanted]
        train = [s for s in sessions if s.world not in wanted]
    elif val_fraction == 0.0:
        train, val = sessions, []
    elif group_by == "block":
        train, val = _split_blocks(sessions, val_fraction, seed, block_s, gap_s)
    else:
        key = (lambda s: s.name) if group_by == "session" else (lambda s: str(s.world))
        groups = sorted({key(s) for s in sessions})
        if len(groups) < 2:
            raise DatasetError(
                f"cannot split {len(groups)} {group_by}(s) into train and validation; "
                "add data, name validation worlds, or use a validation fraction of 0"
            )
        rng = np.random.default_rng(seed)
        n_val = min(max(1, math.ceil(val_fraction * len(groups))), len(groups) - 1)
        val_groups = {groups[i] for i in rng.permutation(len(groups))[:n_val]}
        val = [s for s in sessions if key(s) in val_groups]
        train = [s for s in sessions if key(s) not in val_groups]
    if not train:
        raise DatasetError("the split leaves no training sessions")
    return train, val


def _split_blocks(
    sessions: list[SessionData], val_fraction: float, seed: int, block_s: float, gap_s: float
) -> tuple[list[SessionData], list[SessionData]]:
    """Time-block split of each session (see split_sessions); sessions too short stay whole."""
    if not (block_s > 0 and gap_s >= 0):
        raise DatasetError("need block_s > 0 and gap_s >= 0")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for s in sessions:
        t = s.times_s()
        block = np.floor((t - (t[0] if len(t) else 0.0)) / block_s).astype(np.int64)
        blocks = np.unique(block)
        if len(blocks) < 2:
            train.append(s)
            continue
        n_val = min(max(1, math.ceil(val_fraction * len(blocks))), len(blocks) - 1)
        chosen = np.sort(rng.permutation(blocks)[:n_val])
        is_val = np.isin(block, chosen)
        # a training frame closer than gap_s to any validation frame is dropped
        val_t = t[is_val]
        pos = np.searchsorted(val_t, t)
        before = np.abs(t - val_t[np.clip(pos - 1, 0, len(val_t) - 1)])
        after = np.abs(val_t[np.clip(pos, 0, len(val_t) - 1)] - t)
        near = np.minimum(before, after) < gap_s
        train.append(s.subset(~is_val & ~near))
        val.append(s.subset(is_val))
    return train, val


# -- a toy task for tests, benchmarks and smoke runs ---------------------------------------


def synthetic_frames(
    n: int,
    *,
    size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    num_sensors: int = 5,
    num_distances: int = 31,
    unknown_fraction: float = 0.3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A learnable toy version of the real task: (images uint8 (n, H, W, 3) BGR, labels int8).

    Each image has a textured floor and, in each of `num_sensors` vertical
    sectors (left to right = sensor 0 to S-1, as a mirror-symmetric robot sees
    them), with probability 1/2 an obstacle block whose bottom edge is lower
    the nearer it is (k in 0..D-1 distance steps). Label (s, d) is 1 when
    sector s holds an obstacle with k <= d, else 0; a random
    `unknown_fraction` of cells is -1. Flipping an image left-right and the
    sensor axis keeps image and labels consistent, like the real data.
    """
    width, height = int(size[0]), int(size[1])
    rng = np.random.default_rng(seed)
    horizon = int(0.3 * height)
    rows = np.arange(height)[None, :, None]
    sector = (np.arange(width) * num_sensors // width)[None, None, :]
    present = rng.random((n, num_sensors)) < 0.5
    k = rng.integers(0, num_distances, (n, num_sensors))
    bottom = horizon + np.round((height - 1 - horizon) * (1.0 - k / num_distances)).astype(int)
    bottom = np.where(present, bottom, -1)
    bottom_px = np.take_along_axis(bottom[:, None, :], np.broadcast_to(sector, (n, 1, width)), 2)
    block = (rows >= horizon // 2) & (rows <= bottom_px)  # (n, H, W)
    floor = rng.integers(40, 140, (n, 1, 1, 3)) + rng.normal(0, 12, (n, height, width, 3))
    sky = rng.integers(120, 220, (n, 1, 1, 3)) + np.zeros((n, height, width, 3))
    images = np.where((rows < horizon)[..., None], sky, floor)
    colour = rng.integers(0, 256, (n, num_sensors, 3)).astype(np.float64)
    colour_px = np.take_along_axis(
        colour[:, None, :, :], np.broadcast_to(sector[..., None], (n, 1, width, 3)), 2
    )
    images = np.where(block[..., None], colour_px + rng.normal(0, 8, images.shape), images)
    images = np.clip(images, 0, 255).astype(np.uint8)
    d = np.arange(num_distances)[None, None, :]
    labels = (present[..., None] & (k[..., None] <= d)).astype(np.int8)
    labels[rng.random(labels.shape) < unknown_fraction] = -1
    return images, labels


def synthetic_frameset(n: int, *, sessions: int = 1, seed: int = 0, **kwargs: Any) -> FrameSet:
    """A FrameSet of `synthetic_frames`, spread over `sessions` fake sessions (world w<i>)."""
    images, labels = synthetic_frames(n, seed=seed, **kwargs)
    ids = (np.arange(n) * sessions // max(n, 1)).astype(np.int32)
    return FrameSet(
        images=images,
        labels=labels,
        session_ids=ids,
        session_names=[f"synthetic{seed}-{i}" for i in range(sessions)],
        worlds=[f"w{i}" for i in range(sessions)],
    )


def synthetic_label_set(path: str | Path, t_ns: np.ndarray, labels: np.ndarray, config: Any) -> Any:
    """The LabelSet of a synthetic session already written at `path`: `labels` (N, S, D) for
    its frames stamped `t_ns` under the LabelConfig `config` (readings 1000 where 1)."""
    from robot_ssl.io.labels_file import LabelSet, identify_session

    n, d = len(labels), labels.shape[2]
    return LabelSet(
        frame_index=np.arange(n, dtype=np.int64),
        t_ns=t_ns,
        labels=labels,
        readings=np.where(labels >= 0, labels.astype(np.int16) * 1000, -1).astype(np.int16),
        match_t_ns=np.full((n, d), -1, np.int64),
        match_offset=np.full((n, d, 3), np.nan, np.float32),
        sensor_indices=np.asarray(config.sensor_indices, np.int64),
        distances_m=np.asarray(config.distances_m, np.float64),
        config=config,
        session=identify_session(path),
    )


def write_synthetic_session(
    path: str | Path,
    n: int = 64,
    *,
    world: str = "synthetic",
    seed: int = 0,
    camera_size: tuple[int, int] = (160, 120),
    labels_dir: str | Path | None = None,
    frame_format: str = "jpeg",
    camera: Any = None,
) -> tuple[Path, Path]:
    """Write a session of `synthetic_frames` and its labels file; returns (session, labels) paths.

    `camera`: the session's CameraSpec (default: the default one at `camera_size`); its
    size replaces `camera_size`.

    The pipeline's file formats end to end without a simulator or robot:
    for tests, benchmarks and trying the training and evaluation commands.
    Frames are 30 Hz, the label grid is the labeller's default (Thymio front
    sensors 0..4, 0..30 cm every cm).
    """
    from robot_ssl.core.spec import CameraSpec
    from robot_ssl.io.labels_file import write_labels
    from robot_ssl.io.session import SessionWriter
    from robot_ssl.labelling.labeller import LabelConfig

    path = Path(path)
    if camera is not None:
        camera_size = (camera.width, camera.height)
    config = LabelConfig()
    s, d = config.num_sensors, config.num_distances
    images, labels = synthetic_frames(
        n, size=camera_size, num_sensors=s, num_distances=d, seed=seed
    )
    t_ns = np.arange(n, dtype=np.int64) * 33_333_333
    camera = camera or CameraSpec(width=camera_size[0], height=camera_size[1])
    with SessionWriter(
        path, camera=camera, frame_format=frame_format, metadata={"world": world}
    ) as writer:
        for t, image in zip(t_ns, images):
            writer.write_frame(int(t), image)
    label_set = synthetic_label_set(path, t_ns, labels, config)
    labels_path = write_labels(labels_path_for(path, labels_dir), label_set)
    return path, labels_path


def sample_session_frames(paths: list[str], limit: int = 64) -> list[np.ndarray]:
    """Up to `limit` decoded frames spread evenly over the sessions in `paths` (export's
    parity check on real camera frames)."""
    from robot_ssl.io.session import IntactFrames, SessionReader

    frames = []
    files = find_sessions(paths)
    per_file = max(1, limit // len(files))
    for path in files:
        with SessionReader(path) as reader:
            n = reader.num_frames
            intact = IntactFrames(reader)
            for i in np.linspace(0, n - 1, min(per_file, n)).astype(int) if n else []:
                frame = intact.get(int(i))
                if frame is not None:  # a damaged frame: the others check parity as well
                    frames.append(frame)
    return frames
