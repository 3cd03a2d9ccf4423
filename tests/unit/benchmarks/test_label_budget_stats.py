"""The label-budget study's summary maths: t-intervals over seeds, "self-supervised reaches
X % of supervised", the best pretraining's gain over scratch and whether the intervals are
apart, and the README targets' verdicts (benchmarks/label_budget.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.label_budget import (
    METHODS,
    Method,
    SeedStats,
    figures,
    intervals_apart,
    load_runs,
    points_of,
    pretraining_gain,
    save_runs,
    seed_interval,
    share_of_supervised,
    summarise,
    t_quantile,
)
from robot_ssl.learning.pretrain_config import TASKS


def runs_of(table: dict[tuple[float, str], list[float]]) -> list[dict]:
    """label_budget.json runs: one per (budget, method) and seed, AUCs as given."""
    return [
        {
            "budget_min": b,
            "method": m,
            "seed": seed,
            "truth_auc": auc,
            "truth_auc_ci": [auc - 0.01, auc + 0.01],
        }
        for (b, m), aucs in table.items()
        for seed, auc in enumerate(aucs)
    ]


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [(0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 3, 3.1824), (0.975, 4, 2.7764),
     (0.975, 9, 2.2622), (0.975, 30, 2.0423), (0.95, 7, 1.8946), (0.995, 5, 4.0321)],
)  # fmt: skip
def test_t_quantile_matches_the_tables(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-4)


def test_t_quantile_refuses_what_it_cannot_answer() -> None:
    for p, df in [(0.4, 3), (1.0, 3), (0.975, 0)]:
        with pytest.raises(ValueError):
            t_quantile(p, df)


def test_seed_interval_is_mean_plus_minus_t_sd_over_root_n() -> None:
    values = [0.80, 0.83, 0.86]
    s = seed_interval(values)
    half = 4.302653 * np.std(values, ddof=1) / math.sqrt(3)
    assert s.n == 3 and s.mean == pytest.approx(0.83)
    assert s.ci == pytest.approx((0.83 - half, 0.83 + half), abs=1e-6)
    wider = seed_interval(values, confidence=0.99)
    assert wider.ci[0] < s.ci[0] and wider.ci[1] > s.ci[1]
    assert seed_interval([0.9, 0.9, 0.9]).ci == pytest.approx((0.9, 0.9))


def test_one_seed_has_no_interval() -> None:
    assert seed_interval([0.7]) == SeedStats(0.7, 1, None)
    with pytest.raises(ValueError):
        seed_interval([])


def test_intervals_apart() -> None:
    a, b, c = SeedStats(0.9, 3, (0.88, 0.92)), SeedStats(0.8, 3, (0.78, 0.85)), None
    assert intervals_apart(a, b) and intervals_apart(b, a)
    assert not intervals_apart(a, SeedStats(0.86, 3, (0.80, 0.89)))
    assert intervals_apart(a, c) is None
    assert intervals_apart(a, SeedStats(0.8, 1, None)) is None


def test_every_pretext_task_is_a_method() -> None:
    assert {f"pretrained_{t}" for t in TASKS} <= set(METHODS)
    assert Method.named("supervised").targets == "truth"
    assert not Method.named("supervised").self_supervised
    assert Method.named("paper").arch == "paper" and not Method.named("paper").pretrained
    assert Method.named("pretrained_views").tasks == ("views",)
    assert len(Method.named("pretrained_default").tasks) > 1
    with pytest.raises(ValueError):
        Method.named("pretrained_jigsaw")


def test_share_of_supervised_takes_the_best_self_supervised_method() -> None:
    points = points_of(
        runs_of(
            {
                (30.0, "supervised"): [0.96, 0.98, 0.97],
                (30.0, "scratch"): [0.90, 0.92, 0.91],
                (30.0, "pretrained_patch"): [0.94, 0.96, 0.95],
                (30.0, "paper"): [0.80, 0.80, 0.80],
                (2.0, "scratch"): [0.80, 0.80, 0.80],
            }
        )
    )
    share = share_of_supervised(points, 30.0)
    assert share.best == "pretrained_patch"
    assert share.ratio == pytest.approx(0.95 / 0.97)
    assert share_of_supervised(points, 2.0) is None  # no supervised point at 2 min
    assert share_of_supervised(points, 5.0) is None


def test_pretraining_gain_and_whether_the_intervals_are_apart() -> None:
    apart = points_of(
        runs_of(
            {
                (2.0, "scratch"): [0.78, 0.79, 0.80],
                (2.0, "pretrained_rotation"): [0.83, 0.84, 0.85],
                (2.0, "pretrained_default"): [0.81, 0.82, 0.83],
                (2.0, "supervised"): [0.95, 0.95, 0.95],  # not a pretraining
            }
        )
    )
    gain = pretraining_gain(apart, 2.0)
    assert gain.best == "pretrained_rotation"
    assert gain.gain == pytest.approx(0.05)
    assert gain.apart is True and gain.met() is True
    assert gain.met(target=0.06) is False

    noisy = points_of(
        runs_of(
            {(2.0, "scratch"): [0.70, 0.80, 0.90], (2.0, "pretrained_patch"): [0.80, 0.85, 0.90]}
        )
    )
    gain = pretraining_gain(noisy, 2.0)
    assert gain.gain == pytest.approx(0.05) and gain.apart is False and gain.met() is False

    one_seed = points_of(runs_of({(2.0, "scratch"): [0.7], (2.0, "pretrained_patch"): [0.9]}))
    assert pretraining_gain(one_seed, 2.0).apart is None
    assert pretraining_gain(one_seed, 2.0).met() is None
    assert pretraining_gain(one_seed, 1.0) is None


def test_earlier_unseeded_runs_are_left_out() -> None:
    runs = runs_of({(2.0, "scratch"): [0.8, 0.82]})
    runs.append({"budget_min": 2.0, "net": "scratch", "truth_auc": 0.1, "truth_auc_ci": [0, 1]})
    points = points_of(runs)
    assert list(points) == [(2.0, "scratch")]
    assert points[2.0, "scratch"].aucs == (0.8, 0.82)
    assert points[2.0, "scratch"].run_cis[0] == pytest.approx((0.79, 0.81))


def test_summary_and_targets(tmp_path: Path) -> None:
    runs = runs_of(
        {
            (2.0, "scratch"): [0.78, 0.79, 0.80],
            (2.0, "pretrained_rotation"): [0.83, 0.84, 0.85],
            (30.0, "scratch"): [0.93, 0.94, 0.95],
            (30.0, "supervised"): [0.95, 0.95, 0.95],
        }
    )
    summary = json.loads(json.dumps(summarise(runs)))
    assert summary["share_of_supervised"]["30"]["ratio"] == pytest.approx(0.94 / 0.95)
    assert summary["share_of_supervised"]["2"] is None
    assert summary["pretraining_gain"]["2"]["apart"] is True
    point = next(p for p in summary["points"] if p["method"] == "pretrained_rotation")
    assert point["seeds"] == [0, 1, 2] and point["truth_auc_mean"] == pytest.approx(0.84)
    assert point["truth_auc_t_ci"][0] < 0.84 < point["truth_auc_t_ci"][1]

    (fig,) = figures(points_of(runs), [2.0, 30.0], tmp_path / "plot.png")
    gain_target, share_target = fig.targets
    assert gain_target.met is True and "+0.050" in gain_target.note
    assert share_target.met is True  # 98.9 %
    assert fig.values["share_of_supervised_30_min"] == pytest.approx(0.94 / 0.95)

    (fig,) = figures(points_of(runs_of({(2.0, "scratch"): [0.8, 0.8]})), [2.0], tmp_path / "p")
    assert [t.met for t in fig.targets] == [None, None]  # not measured
    assert fig.values["pretraining_gain_2_min"] is None


def test_runs_of_other_processes_are_kept(tmp_path: Path) -> None:
    """Processes on disjoint methods share label_budget.json: each write merges."""
    path = tmp_path / "label_budget.json"
    assert load_runs(path) == {}
    mine = {f"2_{r['method']}_s{r['seed']}": r for r in runs_of({(2.0, "scratch"): [0.8]})}
    theirs = {f"2_{r['method']}_s{r['seed']}": r for r in runs_of({(2.0, "paper"): [0.7]})}
    save_runs(path, theirs)
    merged = save_runs(path, mine, summarise([*mine.values(), *theirs.values()]))
    assert set(merged) == {"2_scratch_s0", "2_paper_s0"} == set(load_runs(path))
    assert len(json.loads(path.read_text())["summary"]["points"]) == 2
