"""Loading labelled sessions: preprocessing, filtering, caching, splits."""

from pathlib import Path

import h5py
import numpy as np
import pytest

import robot_ssl.learning.dataset as ds
from robot_ssl.inference.preprocess import ImageError
from robot_ssl.io.labels_file import LabelsMismatchError
from robot_ssl.learning.dataset import (
    DatasetError,
    FrameSet,
    SessionData,
    find_sessions,
    labels_path_for,
    load_sessions,
    prepare_images,
    split_sessions,
    write_synthetic_session,
)


def test_prepare_images_shapes_and_identity():
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    out = prepare_images(big, (80, 64))
    assert out.shape == (1, 64, 80, 3) and out.dtype == np.uint8
    # INTER_AREA on an exact 4x reduction is the block mean
    assert abs(int(out[0, 0, 0, 0]) - big[:4, :4, 0].mean()) <= 2
    small = rng.integers(0, 256, (2, 64, 80, 3), dtype=np.uint8)
    assert np.array_equal(prepare_images(small, (80, 64)), small)
    mixed = prepare_images([big, small[0]], (80, 64))
    assert mixed.shape == (2, 64, 80, 3)
    with pytest.raises(ImageError, match="uint8"):
        prepare_images(big.astype(np.float32), (80, 64))


@pytest.fixture
def sessions(tmp_path):
    paths = []
    for i, world in enumerate(["w0", "w0", "w1", "w2"]):
        paths.append(write_synthetic_session(tmp_path / f"d/s{i}.h5", 24, world=world, seed=i)[0])
    return paths


def test_load_filters_unknown_frames_and_keeps_metadata(sessions):
    labels_file = labels_path_for(sessions[0])
    with h5py.File(labels_file, "r+") as f:  # make frames 3 and 7 fully unknown
        lab = f["labels"][()]
        lab[[3, 7]] = -1
        f["labels"][...] = lab
    loaded = load_sessions([sessions[0]], progress=False)[0]
    assert len(loaded) == 22 and 3 not in loaded.frame_index and 7 not in loaded.frame_index
    assert loaded.images.shape == (22, 64, 80, 3)
    assert loaded.world == "w0" and loaded.mirror_symmetric
    assert np.allclose(loaded.distances_m, np.arange(31) * 0.01)


def test_cache_avoids_decoding_again(sessions, tmp_path, monkeypatch):
    first = load_sessions(sessions, cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4

    def fail(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(ds, "_decode_frames", fail)
    second = load_sessions(sessions, cache_dir=tmp_path / "cache", progress=False)
    for a, b in zip(first, second):
        assert np.array_equal(a.images, b.images)
    with pytest.raises(AssertionError, match="decoded again"):  # other size: other cache key
        load_sessions(sessions[:1], cache_dir=tmp_path / "cache", size=(40, 32), progress=False)


def test_labels_dir_and_missing_or_stale_labels(tmp_path):
    session, labels = write_synthetic_session(tmp_path / "s.h5", 8, labels_dir=tmp_path / "labels")
    assert labels == tmp_path / "labels" / "s.labels.h5"
    assert len(load_sessions([session], labels_dir=tmp_path / "labels", progress=False)) == 1
    with pytest.raises(DatasetError, match="no labels"):
        load_sessions([session], progress=False)
    with open(session, "ab") as f:  # the session changed after labelling
        f.write(b"\0")
    with pytest.raises(LabelsMismatchError, match="size"):
        load_sessions([session], labels_dir=tmp_path / "labels", progress=False)


def test_find_sessions_skips_labels(sessions, tmp_path):
    found = find_sessions([tmp_path / "d", sessions[0]])
    assert [p.name for p in found] == ["s0.h5", "s1.h5", "s2.h5", "s3.h5"]
    with pytest.raises(DatasetError, match="no such"):
        find_sessions([tmp_path / "nope"])


def _timed_session(name: str, seconds: float, seed: int) -> SessionData:
    """A SessionData of `seconds` at 30 fps with tiny images (the split needs only stamps)."""
    n = int(seconds * 30)
    rng = np.random.default_rng(seed)
    return SessionData(
        name=name,
        path=Path(f"{name}.h5"),
        world=name,
        frame_index=np.arange(n),
        images=np.zeros((n, 2, 2, 3), np.uint8),
        labels=rng.integers(-1, 2, (n, 5, 3)).astype(np.int8),
        distances_m=np.array([0.0, 0.1, 0.2]),
        sensor_indices=np.arange(5),
        t_s=np.arange(n) / 30.0,
    )


def test_block_split_covers_every_session_with_a_gap():
    sessions = [_timed_session("a", 300, 0), _timed_session("b", 200, 1)]
    train, val = split_sessions(sessions, val_fraction=0.2, group_by="block", block_s=30, gap_s=3)
    assert [s.name for s in train] == ["a", "b"] and [s.name for s in val] == ["a", "b"]
    for whole, tr, va in zip(sessions, train, val):
        n_blocks = int(np.ceil(whole.times_s()[-1] / 30 + 1e-9))
        val_blocks = np.unique(np.floor(va.t_s / 30))
        assert len(val_blocks) == int(np.ceil(0.2 * n_blocks))  # a fifth of the blocks, rounded up
        assert not set(tr.frame_index) & set(va.frame_index)
        # every training frame is at least gap_s from every validation frame
        gaps = np.abs(tr.t_s[:, None] - va.t_s[None, :]).min(axis=1)
        assert gaps.min() >= 3.0 - 1e-9
        dropped = len(whole) - len(tr) - len(va)
        assert 0 < dropped <= len(val_blocks) * 2 * 3 * 30 + 2  # at most 3 s each side
        assert np.array_equal(tr.labels, whole.labels[np.isin(whole.frame_index, tr.frame_index)])
    again = split_sessions(sessions, val_fraction=0.2, group_by="block", block_s=30, gap_s=3)
    assert np.array_equal(again[1][0].frame_index, val[0].frame_index)  # seeded
    other = split_sessions(sessions, val_fraction=0.2, group_by="block", seed=4)
    assert not np.array_equal(other[1][0].frame_index, val[0].frame_index)
    short = _timed_session("c", 20, 2)  # one block: stays whole on the training side
    train, val = split_sessions([short], val_fraction=0.2, group_by="block")
    assert len(train[0]) == len(short) and val == []
    with pytest.raises(DatasetError, match="group_by"):
        split_sessions(sessions, group_by="frame")


def test_splits_never_share_a_session_or_world(sessions):
    loaded = load_sessions(sessions, progress=False)
    assert loaded[0].t_s[0] == 0.0 and np.all(np.diff(loaded[0].t_s) > 0)  # label stamps
    train, val = split_sessions(loaded, val_worlds=["w1"])
    assert [s.world for s in val] == ["w1"] and "w1" not in {s.world for s in train}
    for seed in range(5):
        train, val = split_sessions(loaded, val_fraction=0.5, group_by="world", seed=seed)
        assert not {s.world for s in train} & {s.world for s in val}
        train, val = split_sessions(loaded, val_fraction=0.3, seed=seed)
        assert len(val) == 2 and not {s.name for s in train} & {s.name for s in val}
    assert split_sessions(loaded, val_fraction=0.0)[1] == []
    with pytest.raises(DatasetError, match="not found"):
        split_sessions(loaded, val_worlds=["mars"])
    with pytest.raises(DatasetError, match="no training"):
        split_sessions(loaded, val_worlds=["w0", "w1", "w2"])
    with pytest.raises(DatasetError, match="cannot split"):
        split_sessions(loaded[:1], val_fraction=0.2)
    fs = FrameSet.from_sessions(loaded)
    assert len(fs) == 96 and fs.grid_shape == (5, 31) and fs.session_names[2] == "s2"
    assert np.array_equal(np.bincount(fs.session_ids), [24, 24, 24, 24])
    # the identities train.py records in its checkpoints (eval's training-overlap warning)
    from robot_ssl.io.labels_file import identify_session

    assert fs.session_sha256 == [identify_session(p).sha256 for p in sessions]


def test_raw_frame_sessions_load_like_jpeg_ones(tmp_path):
    raw, _ = write_synthetic_session(tmp_path / "raw.h5", 12, frame_format="raw", seed=5)
    jpg, _ = write_synthetic_session(tmp_path / "jpg.h5", 12, seed=5)
    a, b = load_sessions([raw, jpg], progress=False)
    assert a.images.shape == b.images.shape == (12, 64, 80, 3)
    assert np.abs(a.images.astype(int) - b.images.astype(int)).mean() < 3  # JPEG loss only
    assert np.array_equal(a.labels, b.labels)
