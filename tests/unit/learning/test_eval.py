"""ROC AUC (exact, tie-aware), bootstrap intervals, the report and `robot-ssl eval`."""

import json
import warnings

import numpy as np
import pytest
import torch

from robot_ssl.cli.main import main
from robot_ssl.core.spec import CameraSpec
from robot_ssl.learning.checkpoint import Checkpoint
from robot_ssl.learning.dataset import DatasetError, synthetic_frameset, write_synthetic_session
from robot_ssl.learning.evaluate import (
    Blocks,
    EvalError,
    auc_report,
    band_of_distances,
    evaluate,
    load_eval_data,
    roc_auc,
    weighted_auc,
)
from robot_ssl.learning.models import ModelConfig, build_model

VIEWPOINT = CameraSpec().pinhole()  # the camera of write_synthetic_session's sessions


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
    Checkpoint(build_model(cfg).state_dict(), cfg, VIEWPOINT).save(path)
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


def _memorising_model(path, frames, cfg: ModelConfig, invert: bool = False):
    """A real TorchScript detector that knows the answers: it recognises each prepared
    image by its pixel sum and returns that frame's labels (unknown cells 0) as
    probabilities, or their complement with `invert`. Saved with the metadata a real
    export carries, so `robot-ssl eval` loads and runs it like any model file."""
    from robot_ssl.inference.predictor import META_FILE, ModelMeta

    keys = torch.from_numpy(frames.images.reshape(len(frames.images), -1).astype(np.int64).sum(1))
    assert len(torch.unique(keys)) == len(keys)  # every frame has its own key
    table = torch.from_numpy(np.clip(frames.labels, 0, 1).astype(np.float32))
    if invert:
        table = 1.0 - table

    class Memorised(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("keys", keys)
            self.register_buffer("table", table)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            k = x.reshape(x.shape[0], -1).to(torch.int64).sum(1)
            hit = k[:, None] == self.keys[None, :]
            found = hit.any(1)
            out = self.table[hit.to(torch.int64).argmax(1)]
            return torch.where(found[:, None, None], out, torch.full_like(out, 0.5))

    with warnings.catch_warnings():  # torch.jit's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(Memorised())
    torch.jit.save(
        scripted, str(path), _extra_files={META_FILE: ModelMeta(cfg, VIEWPOINT).to_json()}
    )
    return path


@pytest.mark.parametrize(("invert", "auc"), [(False, 1.0), (True, 0.0)])
def test_eval_end_to_end_scores_a_perfect_and_an_inverted_detector(tmp_path, invert, auc):
    """Sessions on disk, a model file, the `eval` command: a detector that is always right
    scores AUC 1.0 in every cell, one that is always wrong 0.0 (so the whole chain, from
    frame decoding to the labels' alignment and the report, keeps frames and labels
    together)."""
    from robot_ssl.learning.dataset import FrameSet, load_sessions

    for i in range(2):
        write_synthetic_session(tmp_path / f"data/s{i}.h5", 60, world=f"w{i}", seed=10 + i)
    cfg = ModelConfig(distances_m=tuple(np.round(np.arange(31) * 0.01, 2)))
    frames = FrameSet.from_sessions(
        load_sessions([tmp_path / "data"], size=cfg.input_size, progress=False)
    )
    model = _memorising_model(tmp_path / "m.ts", frames, cfg, invert)
    data, out = str(tmp_path / "data"), str(tmp_path / "r.json")
    rc = main(["eval", "--model", str(model), "--data", data, "--no-cache", "--json", out])
    assert rc == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["num_frames"] == 120 and report["model_kind"] == "torchscript"
    assert report["mean_auc"] == pytest.approx(auc)
    cells = np.array(report["grid"]["auc"], dtype=float)
    defined = cells[~np.isnan(cells)]
    assert defined.size > 100 and np.all(defined == auc)


# -- truth, block bootstrap, training overlap ------------------------------------------------


def _session_with_truth(path, n=150, *, world="sim", seed=0, truth=True):
    """A 30 fps session driving at 0.1 m/s towards a wall 0.4 m ahead of the centre sensor
    (simulator truth at 100 Hz) with `synthetic_frames` images and their (unrelated)
    labels as its auto-labels: the auto-labels and the truth disagree."""
    from robot_ssl.core.spec import CameraSpec
    from robot_ssl.io.labels_file import write_labels
    from robot_ssl.io.session import SessionWriter
    from robot_ssl.labelling.labeller import LabelConfig
    from robot_ssl.learning.dataset import labels_path_for, synthetic_frames, synthetic_label_set

    config = LabelConfig()
    s, d = config.num_sensors, config.num_distances
    images, labels = synthetic_frames(n, size=(64, 48), num_sensors=s, num_distances=d, seed=seed)
    t_ns = np.arange(n, dtype=np.int64) * 33_333_333
    kwargs = {"truth_sensors": 7} if truth else {}
    with SessionWriter(
        path, camera=CameraSpec(width=64, height=48), metadata={"world": world}, **kwargs
    ) as w:
        for t, image in zip(t_ns, images):
            w.write_frame(int(t), image)
        if truth:
            for t in np.arange(0, int(t_ns[-1]) + 500_000_000, 10_000_000):
                x = 0.1 * t * 1e-9
                dist = np.full(7, np.inf)
                dist[2] = 0.4 - x
                w.write_truth(int(t), np.array([x, 0.0, 0.0]), dist)
    lab = synthetic_label_set(path, t_ns, labels, config)
    write_labels(labels_path_for(path), lab)
    return path


def test_block_bootstrap_is_wider_than_frame_bootstrap_on_autocorrelated_scores():
    """Scores that drift slowly (an AR(1) process with 10 s memory at 30 fps): neighbouring
    frames carry the same information, which the frame bootstrap ignores."""
    rng = np.random.default_rng(3)
    n = 30 * 600
    drift = np.zeros(n)
    noise = rng.normal(size=n)
    for i in range(1, n):
        drift[i] = 0.997 * drift[i - 1] + noise[i] * 0.08
    labels = (rng.random((n, 1, 1)) < 0.5).astype(np.int8)
    probs = (labels[:, 0, 0] * 0.5 + drift * (labels[:, 0, 0] * 2 - 1))[:, None, None]
    t_s = np.arange(n) / 30.0
    sid = np.zeros(n, np.int64)
    common = dict(n_bootstrap=200, seed=1)
    iid = auc_report(probs, labels, [0.05], **common)
    block = auc_report(probs, labels, [0.05], blocks=Blocks.from_times(sid, t_s, 10.0), **common)
    assert block["bootstrap"]["unit"] == "block" and block["bootstrap"]["num_blocks"] == 60
    assert iid["mean_auc"] == block["mean_auc"]
    width = {k: r["mean_auc_ci"][1] - r["mean_auc_ci"][0] for k, r in (("i", iid), ("b", block))}
    assert width["b"] > 2 * width["i"]


def test_blocks_per_session_and_subset():
    sid = np.array([0, 0, 0, 1, 1, 1, 1])
    t = np.array([0.0, 4.0, 11.0, 100.0, 101.0, 115.0, 121.0])
    b = Blocks.from_times(sid, t, 10.0)
    assert b.of_frame.tolist() == [0, 0, 1, 2, 2, 3, 4] and b.stratum.tolist() == [0, 0, 1, 1, 1]
    w = b.weights(np.random.default_rng(0), 50)
    assert w.shape == (50, 7)
    assert np.all(w[:, 0] == w[:, 1])  # a block is drawn whole
    sub = b.subset(np.array([0, 0, 1, 1, 0, 0, 0], bool))
    assert sub.of_frame.tolist() == [0, 1] and sub.stratum.tolist() == [0, 1]
    assert Blocks.from_times(sid, t, 0.0).num_blocks == 7


def _truth_model(tmp_path, data_dir):
    """A memorising detector that outputs the truth where a frame has truth."""
    from dataclasses import replace

    from robot_ssl.io.labels_file import read_labels
    from robot_ssl.labelling.session_labels import session_truth_grid
    from robot_ssl.learning.dataset import FrameSet, labels_path_for, load_sessions

    cfg = ModelConfig(distances_m=tuple(np.round(np.arange(31) * 0.01, 2)))
    loaded = load_sessions([data_dir], size=cfg.input_size, progress=False)
    frames = FrameSet.from_sessions(loaded)
    target = frames.labels.copy()
    for i, s in enumerate(loaded):
        grid = session_truth_grid(s.path, read_labels(labels_path_for(s.path)))
        if grid is not None:
            target[frames.session_ids == i] = grid.labels[s.frame_index]
    return _memorising_model(tmp_path / "m.ts", replace(frames, labels=target), cfg)


def test_eval_truth_scores_a_perfect_vs_truth_detector(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    _session_with_truth(data / "a.h5", world="sim", seed=1)
    _session_with_truth(data / "b.h5", world="real", seed=2, truth=False)
    model = _truth_model(tmp_path, data)
    out = tmp_path / "r.json"
    argv = ["eval", "--model", str(model), "--data", str(data), "--no-cache", "--quiet"]
    argv += ["--json", str(out), "--truth", "--bootstrap", "100", "--block-s", "1"]
    argv += ["--out", str(tmp_path / "ev")]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    truth = report["truth"]
    assert truth["bootstrap"]["block_s"] == 1.0 and truth["sessions_with_truth"] == ["a"]
    sim, real = truth["by_world"]["sim"], truth["by_world"]["real"]
    assert sim["truth"]["mean_auc"] == pytest.approx(1.0)  # perfect against the truth
    assert sim["labels"]["mean_auc"] < 0.9  # the auto-labels disagree with the truth
    for band, value in sim["truth"]["auc_by_band"].items():
        if value is not None:
            lo, hi = sim["truth"]["auc_by_band_ci"][band]
            assert lo <= value <= hi
    assert set(sim["truth"]["auc_by_band"]) == {"0-10", "10-20", "20-30"}
    assert real["truth"] is None and real["truth_status"] == "no truth"
    assert real["labels"]["mean_auc"] == pytest.approx(1.0)  # memorised auto-labels there
    assert truth["overall"]["truth_status"] == "partial"
    assert truth["overall"]["num_truth_frames"] == sim["num_frames"]
    assert report["training_overlap"]["checked"] is False  # TorchScript: nothing recorded
    assert (tmp_path / "ev" / "auc_truth.png").stat().st_size > 0
    # loaded once, scored from memory (what the benchmarks do): the same report
    frames, targets = load_eval_data([data], truth=True, progress=False)
    again = evaluate(
        model, [], frames=frames, targets=targets, truth=True, n_bootstrap=100, block_s=1
    )
    assert again["truth"]["overall"] == truth["overall"]
    with pytest.raises(EvalError, match="session targets"):
        evaluate(model, [], frames=frames, targets=targets[:1], truth=True)
    printed = capsys.readouterr()
    assert "no truth" in printed.out and "vs truth" in printed.out
    assert "warning" not in printed.err


def test_eval_warns_when_evaluating_a_training_session(tmp_path, capsys):
    for i in range(2):
        write_synthetic_session(tmp_path / f"train/s{i}.h5", 20, world="w", seed=i)
    write_synthetic_session(tmp_path / "held/h.h5", 20, world="w", seed=5)
    cfg = ModelConfig(arch="paper", distances_m=tuple(np.arange(31) * 0.01))
    run = tmp_path / "run"
    run.mkdir()
    ckpt = {
        "model": build_model(cfg).state_dict(),
        "model_config": cfg.to_dict(),
        "viewpoint": VIEWPOINT.viewpoint_dict(),
        "train_config": {"data": [str(tmp_path / "train")], "labels_dir": None},
    }
    Checkpoint.from_dict(ckpt, "best.pt").save(run / "best.pt")
    (run / "config.json").write_text(json.dumps({"train_sessions": ["s0"], "val_sessions": ["s1"]}))

    def evaluate_on(folder):
        out = tmp_path / f"{folder}.json"
        argv = ["eval", "--model", str(run / "best.pt"), "--data", str(tmp_path / folder)]
        assert main([*argv, "--no-cache", "--quiet", "--bootstrap", "0", "--json", str(out)]) == 0
        return json.loads(out.read_text())["training_overlap"], capsys.readouterr().err

    overlap, err = evaluate_on("train")
    assert overlap["checked"] and overlap["method"] == "sha256"
    assert overlap["warning"] and overlap["sessions"] == ["s0"]  # s1 was validation only
    assert err.count("warning") == 1 and "s0" in err
    overlap, err = evaluate_on("held")
    assert overlap["checked"] and not overlap["warning"] and overlap["sessions"] == []
    assert "warning" not in err


def test_eval_reads_the_training_sessions_a_checkpoint_records(tmp_path, capsys):
    from robot_ssl.io.labels_file import read_labels
    from robot_ssl.learning.dataset import labels_path_for

    write_synthetic_session(tmp_path / "train/s0.h5", 20, world="w", seed=0)
    write_synthetic_session(tmp_path / "held/h.h5", 20, world="w", seed=5)
    sha = read_labels(labels_path_for(tmp_path / "train/s0.h5", None)).session.sha256
    cfg = ModelConfig(arch="paper", distances_m=tuple(np.arange(31) * 0.01))
    run = tmp_path / "run"
    run.mkdir()
    ckpt = {  # what train.py writes: identities, no need for the data folder or config.json
        "model": build_model(cfg).state_dict(),
        "model_config": cfg.to_dict(),
        "viewpoint": VIEWPOINT.viewpoint_dict(),
        "train_config": {"data": [], "labels_dir": None},
        "train_sessions": [{"name": "s0", "sha256": sha}],
    }
    Checkpoint.from_dict(ckpt, "best.pt").save(run / "best.pt")
    for folder, warned in (("train", True), ("held", False)):
        out = tmp_path / f"{folder}.json"
        argv = ["eval", "--model", str(run / "best.pt"), "--data", str(tmp_path / folder)]
        assert main([*argv, "--no-cache", "--quiet", "--bootstrap", "0", "--json", str(out)]) == 0
        overlap = json.loads(out.read_text())["training_overlap"]
        assert overlap["source"] == "checkpoint train_sessions"
        assert overlap["warning"] is warned
        assert ("warning" in capsys.readouterr().err) is warned
