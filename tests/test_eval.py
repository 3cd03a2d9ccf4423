"""ROC AUC (exact, tie-aware), bootstrap intervals, the report and `robot-ssl eval`."""

import json

import numpy as np
import pytest
import torch

from robot_ssl.cli.main import main
from robot_ssl.dataset import DatasetError, synthetic_frameset, write_synthetic_session
from robot_ssl.evaluate import (
    auc_report,
    band_of_distances,
    evaluate,
    roc_auc,
    weighted_auc,
)
from robot_ssl.models import ModelConfig, build_model


def brute_force_auc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = rng.integers(2, 60)
        scores = rng.integers(0, 5, n) / 4.0  # many ties
        labels = rng.integers(0, 2, n)
        if labels.min() == labels.max():
            continue
        assert roc_auc(scores, labels) == pytest.approx(brute_force_auc(scores, labels))
    assert roc_auc([0.1, 0.2, 0.3], [0, 1, 1]) == 1.0
    assert roc_auc([0.5, 0.5], [0, 1]) == 0.5
    assert np.isnan(roc_auc([0.1, 0.2], [1, 1]))


def test_weighted_auc_equals_auc_of_repeated_samples():
    rng = np.random.default_rng(1)
    scores, labels = rng.random(30).round(1), rng.integers(0, 2, 30)
    w = rng.integers(0, 4, (5, 30))
    got = weighted_auc(scores, labels == 1, w)
    for r in range(5):
        rep_s, rep_l = np.repeat(scores, w[r]), np.repeat(labels, w[r])
        expected = brute_force_auc(rep_s, rep_l) if 0 < rep_l.sum() < len(rep_l) else np.nan
        assert got[r] == pytest.approx(expected, nan_ok=True)


def test_bands_edges():
    d = np.arange(31) * 0.01
    bands = band_of_distances(d)
    assert bands[0] == bands[9] == "0-10" and bands[10] == bands[19] == "10-20"
    assert bands[20] == bands[30] == "20-30"  # the 30 cm cell closes the last band
    assert band_of_distances([0.35]) == ["30+"]


def test_report_single_class_cells_and_intervals():
    rng = np.random.default_rng(2)
    n, s, d = 200, 2, 31
    labels = rng.integers(0, 2, (n, s, d)).astype(np.int8)
    probs = np.clip(labels * 0.3 + rng.random((n, s, d)) * 0.7, 0, 1)
    labels[:, 0, 5] = 1  # single class
    labels[:, 1, 7] = -1  # no labels at all
    labels[rng.random((n, s, d)) < 0.2] = -1
    report = auc_report(probs, labels, np.arange(d) * 0.01, [1, 3], n_bootstrap=200, seed=0)
    grid = report["grid"]
    assert grid["auc"][0][5] is None and grid["ci_low"][0][5] is None
    assert grid["n_neg"][0][5] == 0 and grid["n_pos"][0][5] > 0
    assert report["single_class_cells"] == [[0, 5]]
    assert report["num_cells_single_class"] == 1 and report["num_cells_without_labels"] == 1
    assert report["num_cells_defined"] == s * d - 2
    finite = [v for row in grid["auc"] for v in row if v is not None]
    assert report["mean_auc"] == pytest.approx(np.mean(finite))  # nulls excluded, not 0.5
    assert set(report["auc_by_band"]) == {"0-10", "10-20", "20-30"}
    lo, hi = report["mean_auc_ci"]
    assert lo < report["mean_auc"] < hi
    for i in range(s):
        for j in range(d):
            if grid["auc"][i][j] is not None:
                assert grid["ci_low"][i][j] <= grid["auc"][i][j] + 0.02
                assert grid["ci_high"][i][j] >= grid["auc"][i][j] - 0.02
    json.dumps(report)  # JSON-ready: no NaN, no numpy types
    assert "NaN" not in json.dumps(report)


def _checkpoint(path, arch="paper"):
    cfg = ModelConfig(arch=arch, distances_m=tuple(np.arange(31) * 0.01))
    torch.save({"model": build_model(cfg).state_dict(), "model_config": cfg.to_dict()}, path)
    return path


def test_eval_cli_on_tiny_labelled_set(tmp_path, capsys):
    for i in range(2):
        write_synthetic_session(tmp_path / f"data/s{i}.h5", 40, world=f"w{i}", seed=i)
    model = _checkpoint(tmp_path / "m.pt")
    rc = main(
        [
            "eval",
            "--model",
            str(model),
            "--data",
            str(tmp_path / "data"),
            "--json",
            str(tmp_path / "r.json"),
            "--out",
            str(tmp_path / "ev"),
            "--bootstrap",
            "50",
            "--no-cache",
            "--quiet",
        ]
    )
    assert rc == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert {"mean_auc", "auc_by_band", "grid"} <= set(report)
    assert set(report["auc_by_band"]) >= {"0-10", "10-20", "20-30"}
    assert {"auc", "ci_low", "ci_high", "n_pos", "n_neg"} <= set(report["grid"])
    assert len(report["grid"]["auc"]) == 5 and len(report["grid"]["auc"][0]) == 31
    assert report["num_frames"] == 80 and report["worlds"] == ["w0", "w1"]
    for name in ("report.json", "auc_heatmap.png", "auc_vs_distance.png"):
        assert (tmp_path / "ev" / name).stat().st_size > 0
    assert "mean AUC" in capsys.readouterr().out


def test_eval_rejects_mismatched_grid(tmp_path):
    cfg = ModelConfig(arch="paper", num_distances=10)
    torch.save(
        {"model": build_model(cfg).state_dict(), "model_config": cfg.to_dict()}, tmp_path / "m.pt"
    )
    with pytest.raises(DatasetError, match="grid"):
        evaluate(tmp_path / "m.pt", [], frames=synthetic_frameset(8), n_bootstrap=0, progress=False)
