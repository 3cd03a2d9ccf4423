"""online_learning's summary over seeds: one seed's curve and gain, the mean over seeds
with its t-interval, the mean curve, the targets' verdicts and the options' checks
(benchmarks/online_learning.py)."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.label_budget import seed_interval
from benchmarks.online_learning import (
    TARGET_GAIN,
    figures,
    mean_curve,
    parse,
    plot,
    seed_result,
    summarise,
)


def trial(seed: int, collisions_s: list[float], path_speed_m_s: float = 0.04) -> dict:
    """A closed_loop_trial result of 5 minutes with collisions at `collisions_s`."""
    return {
        "seed": seed,
        "minutes": 5.0,
        "collisions": len(collisions_s),
        "collision_poses": [(t, 0.0, 0.0) for t in collisions_s],
        "collisions_per_10min": 2.0 * len(collisions_s),
        "path_speed_m_s": path_speed_m_s,
        "mean_forward_speed_m_s": path_speed_m_s,
        "learner": {"steps": 100 + seed, "labelled": 50, "kept": [1, 2], "error": None},
    }


def score(auc: float) -> dict:
    return {"truth_auc": auc, "truth_auc_ci": [auc - 0.01, auc + 0.01], "labels_auc": auc}


def one(seed: int, aucs: list[float], start: float = 0.90) -> dict:
    """A seed scored at 0, 30, 60 ... s: the start model, then `aucs`."""
    snaps = [{"t_s": 30.0 * (i + 1), **score(a)} for i, a in enumerate(aucs)]
    return seed_result(seed, score(start), snaps, trial(seed, [200.0]), trial(seed, [8.0, 9.0]))


def test_seed_result_gain_is_last_minus_start_and_best_is_the_peak() -> None:
    r = one(7, [0.95, 0.92])
    assert [p["t_s"] for p in r["auc_over_time"]] == [0.0, 30.0, 60.0]
    assert r["auc_gain"] == pytest.approx(0.02)
    assert r["best_gain"] == pytest.approx(0.05)
    # one collision in the second half of the learn drive, two in the first of the fixed
    assert r["collisions_by_half"]["learn"] == [0.0, 4.0]
    assert r["collisions_by_half"]["fixed"] == [8.0, 0.0]
    assert r["drives"]["learn"]["path_m"] == pytest.approx(12.0)


def test_summarise_takes_the_mean_and_t_interval_over_seeds() -> None:
    seeds = [one(7, [0.91, 0.93]), one(8, [0.92, 0.96]), one(9, [0.90, 0.90])]
    r = summarise(seeds)
    gains = [0.03, 0.06, 0.0]
    expected = seed_interval(gains)
    assert r["auc_gain"] == pytest.approx(0.03)
    assert r["auc_gain_ci"] == pytest.approx(list(expected.ci))
    assert r["auc_gain_ci"][0] < 0.0 < 0.06 < r["auc_gain_ci"][1]  # 3 noisy seeds: wide
    assert r["auc_gain_by_seed"] == pytest.approx({"7": 0.03, "8": 0.06, "9": 0.0})
    assert r["collisions"] == {"learn": 3, "fixed": 6}
    assert r["learner_steps"] == [107, 108, 109]
    assert [p["truth_auc"] for p in r["mean_curve"]] == pytest.approx([0.90, 0.91, 0.93])


def test_mean_curve_keeps_times_only_some_seeds_reached() -> None:
    curve = mean_curve([one(7, [0.92, 0.94]), one(8, [0.96])])
    assert [p["t_s"] for p in curve] == [0.0, 30.0, 60.0]
    assert [p["seeds"] for p in curve] == [2, 2, 1]
    assert curve[1]["truth_auc"] == pytest.approx(0.94)


def test_one_seed_has_no_interval() -> None:
    r = summarise([one(7, [0.95])])
    assert r["auc_gain_ci"] is None and math.isclose(r["auc_gain"], 0.05)


def args_of(**kw: object) -> argparse.Namespace:
    base = dict(
        minutes=5.0,
        speed=150,
        lr=3e-4,
        ema=0.99,
        every_s=30.0,
        drives=3,
        drive_minutes=3.0,
        score_stride=3,
    )
    return argparse.Namespace(**{**base, **kw})


def test_target_is_met_only_when_every_world_gains_enough_on_average() -> None:
    good = summarise([one(7, [0.90 + TARGET_GAIN + 0.01]), one(8, [0.90 + TARGET_GAIN])])
    poor = summarise([one(7, [0.95]), one(8, [0.90])])  # mean +0.025
    args = args_of(worlds=["hard_tiles", "hard_shadow"])
    runs = {"demo / hard_tiles": good, "demo / hard_shadow": good}
    (fig,) = figures({"seeds": [7, 8], "runs": runs}, args)
    target = fig.targets[0]
    assert target.met is True and "from the demo's model in 2 unseen hard worlds" in target.name
    assert "tiles +0.035" in target.note
    runs["demo / hard_shadow"] = poor
    (fig,) = figures({"seeds": [7, 8], "runs": runs}, args)
    assert fig.targets[0].met is False and "shadow +0.025" in fig.targets[0].note
    assert fig.targets[1].met is None  # no latency measured
    assert fig.targets[2].met is True and fig.targets[2].note.startswith("-4")  # 4 x (1 - 2)
    assert fig.values["auc_gain demo / hard_shadow"] == pytest.approx(0.025)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    runs = {"demo / hard_tiles": summarise([one(7, [0.92, 0.94]), one(8, [0.93, 0.91])])}
    plot(runs, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parse_checks_seeds_and_models(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"x")
    args = parse(False, ["--models", f"m={ckpt}", "--work", str(tmp_path / "w")])
    assert args is not None and args.seeds == 3 and args.drives_dir == tmp_path / "w" / "drives"
    quick = parse(True, ["--models", f"m={ckpt}", "--work", str(tmp_path / "w")])
    assert quick is not None and quick.seeds == 1 and quick.work == tmp_path / "w" / "quick"
    for bad, says in (
        (["--models", f"m={ckpt}", "--seeds", "0"], "--seeds must be >= 1"),
        (["--models", str(ckpt)], "NAME=CHECKPOINT"),
        (["--models", f"m={tmp_path / 'none.pt'}"], "no checkpoint at"),
    ):
        with pytest.raises(SystemExit) as exit_:
            parse(False, bad)
        assert exit_.value.code == 2 and says in capsys.readouterr().err


def test_cli_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks", "online_learning", "--models", "x=nope.pt"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no checkpoint at nope.pt" in r.stderr


def test_drive_scorer_keeps_every_stride_th_frame_of_each_drive(tmp_path: Path) -> None:
    from benchmarks.online_learning import DriveScorer
    from robot_ssl.simlink.sim_sessions import labelled_session

    drives = [
        labelled_session("arena_boxes", 0.1, seed, tmp_path / f"d{seed}.h5", tmp_path)
        for seed in (3, 4)
    ]
    full, thin = DriveScorer(drives), DriveScorer(drives, stride=3)
    for i, (a, b) in enumerate(zip(full.targets, thin.targets)):
        rows_a = full.frames.session_ids == i
        rows_b = thin.frames.session_ids == i
        assert rows_b.sum() == len(b.t_s) == math.ceil(rows_a.sum() / 3) > 5
        np.testing.assert_array_equal(b.t_s, a.t_s[::3])
        np.testing.assert_array_equal(b.truth, a.truth[::3])
        np.testing.assert_array_equal(thin.frames.images[rows_b], full.frames.images[rows_a][::3])
        np.testing.assert_array_equal(thin.frames.labels[rows_b], full.frames.labels[rows_a][::3])
