"""The label-budget study's scratch variants: `consistency` (the state-consistency loss) and
`uncertainty` (labels with their confidence from odometry replays, written beside the
pool in their own folder once), and the frames each trains on (benchmarks/label_budget.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from labelling_sessions import write_session

from benchmarks.label_budget import (
    CONSISTENCY_WEIGHT,
    METHODS,
    UNCERTAINTY_REPLAYS,
    Method,
    PoolLabels,
    budget_frames,
    points_of,
    pretraining_gain,
    share_of_supervised,
    uncertainty_labels,
)
from robot_ssl.io.labels_file import read_labels
from robot_ssl.learning.dataset import load_sessions


def test_scratch_variants_differ_from_scratch_in_one_knob_each() -> None:
    scratch = Method.named("scratch")
    consistency, uncertainty = Method.named("consistency"), Method.named("uncertainty")
    assert consistency.consistency_weight == CONSISTENCY_WEIGHT > 0
    assert uncertainty.label_replays == UNCERTAINTY_REPLAYS > 0
    assert consistency.label_replays == 0 and uncertainty.consistency_weight == 0
    assert scratch.consistency_weight == 0 and scratch.label_replays == 0
    for m in (consistency, uncertainty):
        assert (m.arch, m.tasks, m.targets) == (scratch.arch, scratch.tasks, scratch.targets)
        assert m.self_supervised and not m.pretrained
    assert METHODS.index("scratch") < METHODS.index("consistency") < METHODS.index("uncertainty")
    assert [Method.named(m).name for m in METHODS] == list(METHODS)


def test_scratch_variants_compete_with_supervised_but_are_no_pretraining() -> None:
    runs = [
        {"budget_min": 2.0, "method": m, "seed": seed, "truth_auc": auc}
        for m, auc in (("scratch", 0.80), ("uncertainty", 0.90), ("supervised", 0.95))
        for seed in range(3)
    ]
    points = points_of(runs)
    share = share_of_supervised(points, 2.0)
    assert share is not None and share.best == "uncertainty"
    assert pretraining_gain(points, 2.0) is None  # no pretrained method ran


def test_uncertainty_labels_are_written_once_in_their_own_folder(tmp_path: Path) -> None:
    session = write_session(tmp_path / "pool" / "s.h5")
    folder = uncertainty_labels([session], tmp_path / "work", 4, jobs=1)
    assert folder == tmp_path / "work" / "pool_uncertainty_4"
    written = folder / "s.labels.h5"
    labels = read_labels(written)
    assert labels.config.uncertainty_replays == 4
    assert labels.confidence is not None and labels.confidence.min() < 1.0
    assert not (tmp_path / "pool" / "s.labels.h5").exists()  # the pool's own: untouched
    stamp = written.stat().st_mtime_ns
    assert uncertainty_labels([session], tmp_path / "work", 4, jobs=1) == folder
    assert written.stat().st_mtime_ns == stamp  # there already: not labelled again


def test_each_method_trains_on_its_own_labels_of_the_same_frames(tmp_path: Path) -> None:
    from robot_ssl.simlink.sim_sessions import labelled_session

    # a pool session as the study records them (6 s here): labelled beside itself
    session = labelled_session("arena_boxes", 0.1, 3, tmp_path / "pool" / "s.h5", tmp_path)
    pool = load_sessions([session], progress=False)
    labels = PoolLabels(pool, [session], tmp_path / "work", jobs=1)
    scratch = labels.get(Method.named("scratch"))
    uncertain = labels.get(Method.named("uncertainty"))
    assert scratch is pool and labels.get(Method.named("uncertainty")) is uncertain
    assert scratch[0].weights is None and uncertain[0].weights is not None
    assert uncertain[0].images is scratch[0].images  # same frames: images shared
    np.testing.assert_array_equal(uncertain[0].labels, scratch[0].labels)

    share_s = float(scratch[0].times_s()[-1]) / 2
    plain = budget_frames(scratch, share_s, Method.named("scratch"))
    paired = budget_frames(scratch, share_s, Method.named("consistency"))
    weighted = budget_frames(uncertain, share_s, Method.named("uncertainty"))
    assert len(plain) == len(paired) == len(weighted) < len(scratch[0].labels)
    assert plain.poses is None and weighted.weights is not None
    assert paired.poses is not None and paired.poses.shape == (len(paired), 3)
    assert np.isfinite(paired.poses).all()  # odometry at every frame's stamp
    np.testing.assert_array_equal(paired.labels, plain.labels)
