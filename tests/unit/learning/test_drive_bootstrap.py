"""The drive bootstrap (issue 27): whole sessions as blocks, resampled per world
(`Blocks.by_session`, `evaluate(bootstrap_unit="session")`, `eval --bootstrap-unit session`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robot_ssl.cli.main import main
from robot_ssl.core.spec import CameraSpec
from robot_ssl.learning.checkpoint import Checkpoint
from robot_ssl.learning.dataset import write_synthetic_session
from robot_ssl.learning.eval_config import EvalConfig, EvalConfigError
from robot_ssl.learning.evaluate import (
    Blocks,
    EvalError,
    auc_report,
    evaluate,
    roc_auc,
    truth_comparison,
)
from robot_ssl.learning.models import ModelConfig, build_model

DISTANCES_M = np.array([0.05, 0.15, 0.25])  # one cell per band


def _drives(
    quality: list[list[float]], frames: int = 120, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic drives: `quality[w][k]` is how well scores separate the classes in drive
    k of world w (0: chance). Returns probs, labels (N, 2, 3), session ids (N,) and the
    world of each session."""
    rng = np.random.default_rng(seed)
    probs, labels, sid, worlds = [], [], [], []
    for w, drives in enumerate(quality):
        for q in drives:
            y = (rng.random((frames, 2, 3)) < 0.4).astype(np.int8)
            probs.append(q * y + rng.normal(size=y.shape))
            labels.append(y)
            sid.append(np.full(frames, len(worlds)))
            worlds.append(w)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(sid), np.array(worlds)


def test_by_session_blocks_are_whole_drives_drawn_within_their_world():
    sid = np.array([0, 0, 0, 1, 1, 2, 3, 3, 4])
    blocks = Blocks.by_session(sid, np.array([0, 0, 0, 1, 1]))
    assert blocks.of_frame.tolist() == sid.tolist() and blocks.stratum.tolist() == [0, 0, 0, 1, 1]
    assert blocks.unit == "session" and blocks.block_s is None and blocks.num_strata == 2
    w = blocks.weights(np.random.default_rng(0), 400)
    per_session = w[:, [0, 3, 5, 6, 8]]
    assert np.all(w[:, :3] == w[:, [0]]) and np.all(w[:, 6:8] == w[:, [6]])  # drawn whole
    assert np.all(per_session[:, :3].sum(1) == 3) and np.all(per_session[:, 3:].sum(1) == 2)
    assert set(np.unique(per_session)) == {0.0, 1.0, 2.0, 3.0}  # with replacement
    # each drive is drawn once per replicate on average
    assert per_session.mean(0) == pytest.approx(np.ones(5), abs=0.12)
    sub = blocks.subset(sid >= 3)  # world 1 alone
    assert sub.stratum.tolist() == [1, 1] and sub.unit == "session"
    with pytest.raises(ValueError, match="stratum"):
        Blocks.by_session(sid, np.array([0, 0]))


def test_drive_bootstrap_replicates_are_the_mean_auc_of_resampled_drives():
    """Each replicate's mean over the grid equals the plain AUCs, cell by cell, of the drives
    it drew, copied as often as drawn: the interval is their percentiles."""
    probs, labels, sid, worlds = _drives([[1.5, 0.5, 1.0], [2.0, 0.2]])
    labels[probs[..., 0, 0] > 2.5, 0, 0] = -1  # some unknown labels
    blocks = Blocks.by_session(sid, worlds)
    n_boot = 60
    report = auc_report(probs, labels, DISTANCES_M, n_bootstrap=n_boot, seed=7, blocks=blocks)
    weights = blocks.weights(np.random.default_rng(7), n_boot)  # auc_report's draws
    means = []
    for row in weights:
        take = np.repeat(np.arange(len(row)), row.astype(int))
        p, y = probs[take], labels[take]
        aucs = [roc_auc(p[y[:, s, d] >= 0, s, d], y[y[:, s, d] >= 0, s, d]) for s in range(2)
                for d in range(3)]  # fmt: skip
        means.append(np.nanmean(aucs))
    assert report["mean_auc_ci"] == pytest.approx(np.percentile(means, [2.5, 97.5]), abs=1e-9)
    assert report["bootstrap"]["unit"] == "session" and report["bootstrap"]["num_blocks"] == 5
    assert report["bootstrap"]["num_strata"] == 2


def test_session_pair_counts_match_the_frame_weighted_auc():
    """The session path (pair counts between sessions, a quadratic form per replicate)
    gives the intervals the frame-weight path gives for the same blocks, ties included."""
    probs, labels, sid, worlds = _drives([[1.0, 0.4, 2.0], [0.8, 1.2]], frames=200, seed=4)
    probs = np.round(probs, 1)  # many ties
    labels[np.random.default_rng(5).random(labels.shape) < 0.1] = -1
    sessions = Blocks.by_session(sid, worlds)
    as_blocks = Blocks(sessions.of_frame, sessions.stratum, None, "block")
    common = dict(n_bootstrap=150, seed=2, chunk=40)
    fast = auc_report(probs, labels, DISTANCES_M, blocks=sessions, **common)
    slow = auc_report(probs, labels, DISTANCES_M, blocks=as_blocks, **common)
    assert fast["mean_auc_ci"] == pytest.approx(slow["mean_auc_ci"], abs=1e-6)
    for band in ("0-10", "10-20", "20-30"):
        assert fast["auc_by_band_ci"][band] == pytest.approx(slow["auc_by_band_ci"][band], abs=1e-6)
    lo_fast, lo_slow = np.array(fast["grid"]["ci_low"]), np.array(slow["grid"]["ci_low"])
    assert np.allclose(lo_fast, lo_slow, atol=1e-6) and fast["mean_auc_ci"][0] < fast["mean_auc"]


def test_drive_spread_widens_the_interval_and_one_drive_gives_none():
    """Drives of one world that disagree give a wide interval, ones that agree a narrow
    one; 10 s blocks within the drives miss the spread between them. A world with one
    drive has no drive to resample: its interval is the point."""
    probs, labels, sid, worlds = _drives([[3.0, 0.3, 1.5], [1.0, 1.0, 1.0], [1.0]], frames=300)
    blocks = Blocks.by_session(sid, worlds)
    world_of_frame = np.array(["far", "near", "single"], dtype=object)[worlds[sid]]
    common = dict(n_bootstrap=200, seed=1)
    truth = np.ones(len(probs), bool)
    by_drive = truth_comparison(
        probs, labels, labels, truth, world_of_frame, DISTANCES_M, blocks, **common
    )
    t_s = (np.arange(len(probs)) % 300) / 30.0  # 10 s drives at 30 fps
    by_time = truth_comparison(
        probs, labels, labels, truth, world_of_frame, DISTANCES_M,
        Blocks.from_times(sid, t_s, 2.0), **common,
    )  # fmt: skip

    def width(comparison: dict, world: str) -> float:
        lo, hi = comparison["by_world"][world]["truth"]["mean_auc_ci"]
        return hi - lo

    assert by_drive["bootstrap"]["unit"] == "session"
    assert width(by_drive, "far") > 3 * width(by_drive, "near")
    assert width(by_drive, "far") > 2 * width(by_time, "far")
    single = by_drive["by_world"]["single"]["truth"]
    assert single["mean_auc_ci"] == pytest.approx([single["mean_auc"]] * 2)
    drive_aucs = [
        auc_report(probs[sid == k], labels[sid == k], DISTANCES_M, n_bootstrap=0)["mean_auc"]
        for k in range(3)
    ]
    lo, hi = by_drive["by_world"]["far"]["truth"]["mean_auc_ci"]
    assert min(drive_aucs) <= lo + 0.02 and hi <= max(drive_aucs) + 1e-9


def test_eval_cli_bootstrap_unit_session(tmp_path, capsys):
    """`eval --bootstrap-unit session`: the report says so and counts the sessions as
    blocks; a world with one session is warned about; a bad unit is one line."""
    for name, world, seed in (("a0", "wa", 0), ("a1", "wa", 1), ("b0", "wb", 2)):
        write_synthetic_session(tmp_path / f"data/{name}.h5", 30, world=world, seed=seed)
    cfg = ModelConfig(arch="paper", distances_m=tuple(np.arange(31) * 0.01))
    Checkpoint(build_model(cfg).state_dict(), cfg, CameraSpec().pinhole()).save(tmp_path / "m.pt")
    args = ["eval", "--model", str(tmp_path / "m.pt"), "--data", str(tmp_path / "data")]
    args += ["--no-cache", "--quiet", "--bootstrap", "30", "--json", str(tmp_path / "r.json")]
    assert main([*args, "--bootstrap-unit", "session"]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["bootstrap"]["unit"] == "session" and report["bootstrap"]["num_blocks"] == 3
    assert report["bootstrap"]["num_strata"] == 2 and report["bootstrap"]["block_s"] is None
    err = capsys.readouterr().err
    assert "1 world(s) with one session (wb)" in err
    assert main([*args, "--bootstrap-unit", "drive"]) == 2
    assert "bootstrap" in capsys.readouterr().err
    with pytest.raises(EvalConfigError, match="bootstrap_unit"):
        EvalConfig(bootstrap_unit="drives")
    with pytest.raises(EvalError, match="bootstrap_unit"):
        evaluate(tmp_path / "m.pt", [], bootstrap_unit="frames")
