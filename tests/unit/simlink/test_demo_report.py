"""The demo report's self-supervised against supervised section, from a stored study result."""

from __future__ import annotations

import json

from robot_ssl.simlink.report import DemoReport, read_supervised_share


def _result(values: dict) -> dict:
    """A stored benchmark result as benchmarks/results.py writes it (the fields read here)."""
    return {
        "name": "label_budget",
        "figures": [{"what": "study", "result": "r", "targets": [], "values": values}],
        "commit": "abc1234",
        "date": "2026-12-07",
    }


def test_the_report_quotes_the_studys_share_of_supervised(tmp_path):
    path = tmp_path / "label_budget.json"
    values = {
        "share_of_supervised_2_min": 1.012,
        "share_of_supervised_30_min": 0.964,
        "truth_auc_2_min_scratch": 0.794,
        "truth_auc_2_min_supervised": 0.784,
        "truth_auc_30_min_scratch": 0.90,
        "truth_auc_30_min_supervised": 0.934,
        "truth_auc_30_min_pretrained_rotation": 0.5,
        "share_of_supervised_5_min": None,  # a point not measured
    }
    path.write_text(json.dumps(_result(values)))
    share = read_supervised_share(path)
    assert share is not None
    assert share.share_by_budget_min == {2.0: 1.012, 30.0: 0.964}
    assert share.scratch_auc_by_budget_min == {2.0: 0.794, 30.0: 0.90}
    assert share.supervised_auc_by_budget_min == {2.0: 0.784, 30.0: 0.934}
    text = DemoReport(out_dir=tmp_path, supervised_share=share).to_markdown()
    assert "Self-supervised reaches **96%** of supervised at 30 minutes" in text
    assert "abc1234" in text
    assert "| 2 | 0.794 | 0.784 | 101.2% |" in text
    assert "| 30 | 0.900 | 0.934 | 96.4% |" in text


def test_a_missing_or_damaged_result_says_how_to_measure(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\x00garbage{")
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(_result({"truth_auc_2_min_scratch": 0.8})))
    for path in (tmp_path / "absent.json", bad, empty):
        assert read_supervised_share(path) is None
    text = DemoReport(out_dir=tmp_path).to_markdown()
    assert "Not measured in this run: `python -m benchmarks label_budget`" in text
    assert "reaches" not in text


def test_the_report_shows_the_auc_against_truth_when_evaluated_with_truth(tmp_path):
    report = {
        "mean_auc": 0.95,
        "auc_by_band": {},
        "truth": {"overall": {"truth": {"mean_auc": 0.931}}},
    }
    text = DemoReport(out_dir=tmp_path, eval_report=report).to_markdown()
    assert "same frames: mean ROC AUC **0.931**" in text
    assert (
        "simulator's truth"
        not in DemoReport(out_dir=tmp_path, eval_report={"mean_auc": 0.95})
        .to_markdown()
        .split("## Self-supervised")[0]
    )
