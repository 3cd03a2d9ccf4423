"""Damaged and inconsistent model files, unwritable outputs, and runs that were killed.

Every case uses real files damaged the way storage damages them (bytes flipped
inside a weight tensor, a truncated copy), real read-only folders and a real
SIGKILL; the commands must refuse in one line with exit status 2.
"""

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from paths import REPO

from robot_ssl.cli.main import main
from robot_ssl.inference.integrity import (
    ONNX_CHECKSUM_KEY,
    ModelIntegrityError,
    stamp_onnx_checksum,
)
from robot_ssl.inference.predictor import ModelFileError
from robot_ssl.learning.checkpoint import Checkpoint
from robot_ssl.learning.dataset import DatasetError, synthetic_frameset, write_synthetic_session
from robot_ssl.learning.evaluate import EvalError, evaluate
from robot_ssl.learning.export import export_model
from robot_ssl.learning.models import ModelConfig, build_model
from robot_ssl.learning.torch_predictor import load_any_predictor
from robot_ssl.learning.train import TrainConfig, TrainError, _score, train

torch.set_num_threads(1)
ROOT = REPO


# -- damaging files ------------------------------------------------------------------------


def flip_zip_member(path: Path, out: Path) -> str:
    """Copy zip archive `path` to `out` with one byte flipped in its largest member's data
    (a weight tensor); the member's stored CRC-32 then no longer matches. Returns its name."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        big = max(z.infolist(), key=lambda i: i.file_size)
    assert big.compress_type == zipfile.ZIP_STORED  # torch stores tensors uncompressed
    at = big.header_offset  # local file header: 30 bytes, then name and extra field
    name_len, extra_len = struct.unpack("<HH", data[at + 26 : at + 30])
    start = at + 30 + name_len + extra_len
    data[start + big.file_size // 2] ^= 0x40
    out.write_bytes(bytes(data))
    return big.filename


def flip_onnx_weight(path: Path, out: Path) -> None:
    """Copy ONNX file `path` to `out` with one byte flipped inside its largest initializer."""
    import onnx

    raw = max((t.raw_data for t in onnx.load(str(path)).graph.initializer), key=len)
    data = bytearray(path.read_bytes())
    i = data.find(raw)
    assert i >= 0 and data.find(raw, i + 1) < 0
    data[i + len(raw) // 2] ^= 0x40
    out.write_bytes(bytes(data))


def error_line(capsys, verb: str) -> str:
    """The one line a failed command printed on stderr."""
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and "\x1b" not in err, err
    assert err.startswith(f"robot-ssl {verb}: error: "), err
    return err


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A checkpoint, its TorchScript and ONNX exports, damaged copies, and a labelled session."""
    d = tmp_path_factory.mktemp("models")
    cfg = ModelConfig(arch="paper", distances_m=tuple(np.arange(31) * 0.01))
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict(), "model_config": cfg.to_dict()}, d / "m.pt")
    export_model(d / "m.pt", "torchscript", d / "m.ts")
    export_model(d / "m.pt", "onnx", d / "m.onnx")
    flip_zip_member(d / "m.pt", d / "bad.pt")
    flip_zip_member(d / "m.ts", d / "bad.ts")
    flip_onnx_weight(d / "m.onnx", d / "bad.onnx")
    write_synthetic_session(d / "data" / "s0.h5", 16, seed=1)
    return d


# -- damaged model files -------------------------------------------------------------------


def test_flipped_weight_bytes_go_unnoticed_by_the_runtimes(models):
    """Why the checks exist: torch and ONNX Runtime load the damaged files without a word."""
    import onnxruntime as ort

    assert zipfile.ZipFile(models / "bad.pt").testzip() is not None
    state = torch.load(models / "bad.pt", weights_only=True)["model"]
    good = torch.load(models / "m.pt", weights_only=True)["model"]
    assert any(not torch.equal(state[k], good[k]) for k in good)
    ort.InferenceSession(str(models / "bad.onnx"), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["bad.pt", "bad.ts", "bad.onnx"])
def test_damaged_model_files_are_refused_everywhere(models, name, capsys):
    from robot_ssl.learning.torch_predictor import open_predictor

    bad = models / name
    with pytest.raises(ModelIntegrityError, match="damaged") as e:
        load_any_predictor(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(ModelIntegrityError, match="damaged"):
        open_predictor(bad)

    argv = ["eval", "--model", str(bad), "--data", str(models / "data"), "--no-cache", "--quiet"]
    assert main([*argv, "--json", str(models / f"{name}.json")]) == 2
    assert "damaged" in error_line(capsys, "eval")
    assert not (models / f"{name}.json").exists()

    # run refuses before it opens any device: the robot named here does not exist
    argv = ["run", "--model", str(bad), "--robot", "/dev/robot-ssl-absent", "--camera", "0"]
    assert main(argv) == 2
    assert "damaged" in error_line(capsys, "run")


def test_damaged_checkpoint_is_not_exported(models, capsys):
    out = models / "never.onnx"
    rc = main(["export", "--model", str(models / "bad.pt"), "--format", "onnx", "--out", str(out)])
    assert rc == 2
    line = error_line(capsys, "export")
    assert "fails its CRC check" in line and "bad.pt" in line
    assert not out.exists() and not list(models.glob(".never.onnx*"))


def test_truncated_and_checksumless_files_are_refused(models, tmp_path):
    import onnx

    for name in ("m.pt", "m.ts", "m.onnx"):
        data = (models / name).read_bytes()
        cut = tmp_path / f"cut{Path(name).suffix}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(ModelIntegrityError, match="damaged"):
            load_any_predictor(cut)
    with pytest.raises(ModelIntegrityError, match="damaged"):
        Checkpoint.load(tmp_path / "cut.pt")

    proto = onnx.load(str(models / "m.onnx"))
    kept = [p for p in proto.metadata_props if p.key != ONNX_CHECKSUM_KEY]
    assert len(kept) == len(proto.metadata_props) - 1
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    with pytest.raises(ModelIntegrityError, match="no robot-ssl checksum"):
        load_any_predictor(tmp_path / "plain.onnx")


def test_intact_exports_verify_and_match(models):
    frames = np.random.default_rng(0).integers(0, 256, (3, 120, 160, 3), dtype=np.uint8)
    expected = load_any_predictor(models / "m.pt").predict(frames)
    for name in ("m.ts", "m.onnx"):
        assert np.max(np.abs(load_any_predictor(models / name).predict(frames) - expected)) < 1e-4


def test_unsafe_pickle_is_refused_in_one_line(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": Evil(), "model_config": {}}, tmp_path / "evil.pt")
    with pytest.raises(ModelIntegrityError) as e:
        Checkpoint.load(tmp_path / "evil.pt")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'evil.pt'}: refused: not a plain-weights checkpoint")
    assert "(unsafe pickle: GLOBAL " in msg and "system" in msg and "\n" not in msg
    assert main(["export", "--model", str(tmp_path / "evil.pt"), "--format", "onnx"]) == 2
    assert "unsafe pickle" in error_line(capsys, "export")
    assert not marker.exists()


def _restamped_onnx(src: Path, dst: Path, **config_changes) -> None:
    """`src` with its robot_ssl metadata changed and a valid checksum for the new content."""
    import onnx

    proto = onnx.load(str(src))
    props = [p for p in proto.metadata_props if p.key != ONNX_CHECKSUM_KEY]
    for p in props:
        if p.key == "robot_ssl":
            meta = json.loads(p.value)
            meta["model_config"].update(config_changes)
            p.value = json.dumps(meta)
    del proto.metadata_props[:]
    proto.metadata_props.extend(props)
    dst.write_bytes(stamp_onnx_checksum(proto.SerializeToString()))


def test_onnx_shape_differing_from_metadata_is_found_at_load(models, tmp_path, capsys):
    _restamped_onnx(models / "m.onnx", tmp_path / "wide.onnx", input_width=96)
    with pytest.raises(ModelFileError, match=r"ONNX input .* its metadata says .*64, 96, 3"):
        load_any_predictor(tmp_path / "wide.onnx")
    _restamped_onnx(models / "m.onnx", tmp_path / "grid.onnx", num_distances=16, distances_m=None)
    with pytest.raises(ModelFileError, match="ONNX output"):
        load_any_predictor(tmp_path / "grid.onnx")
    # `run` loads (and checks) the model before it opens the robot and the camera
    argv = ["run", "--model", str(tmp_path / "wide.onnx"), "--robot", "/dev/robot-ssl-absent"]
    assert main([*argv, "--camera", "0"]) == 2
    assert "ONNX input" in error_line(capsys, "run")


# -- options and unwritable outputs --------------------------------------------------------


@pytest.mark.parametrize("value", ["2", "0", "nan", "-1"])
def test_eval_confidence_out_of_range(models, value, capsys):
    argv = ["eval", "--model", str(models / "m.onnx"), "--data", str(models / "data")]
    try:
        rc = main([*argv, "--confidence", value, "--no-cache", "--quiet"])
    except SystemExit as e:  # argparse's own exit
        rc = e.code
    assert rc == 2
    assert "--confidence" in capsys.readouterr().err
    with pytest.raises(EvalError, match="confidence"):
        evaluate(models / "m.onnx", [], confidence=float(value), frames=synthetic_frameset(4))


@pytest.fixture
def read_only(tmp_path):
    """A real read-only folder: permission bits for a normal user; for root (who ignores
    them) a read-only bind mount, else the immutable attribute."""
    d = tmp_path / "ro"
    d.mkdir()
    undo = []
    if os.geteuid() != 0:
        d.chmod(0o555)
        undo.append(lambda: d.chmod(0o755))
    elif subprocess.run(["mount", "--bind", str(d), str(d)], capture_output=True).returncode == 0:
        undo.append(lambda: subprocess.run(["umount", "-l", str(d)], capture_output=True))
        subprocess.run(["mount", "-o", "remount,bind,ro", str(d)], capture_output=True)
    elif subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode == 0:
        undo.append(lambda: subprocess.run(["chattr", "-i", str(d)], capture_output=True))
    try:
        try:
            (d / "probe").write_bytes(b"")
        except OSError:
            pass
        else:
            pytest.skip("cannot make a read-only folder here")
        yield d
    finally:
        for f in reversed(undo):
            f()


def test_read_only_outputs_fail_in_one_line_and_write_nothing(models, read_only, tmp_path, capsys):
    data = ["--data", str(models / "data"), "--no-cache", "--quiet"]
    small = ["--arch", "paper", "--epochs", "1", "--batch-size", "8", "--threads", "1"]
    for out in (read_only, read_only / "run"):
        assert main(["train", *data, *small, "--out", str(out), "--val-fraction", "0"]) == 2
        assert "cannot write to" in error_line(capsys, "train")

    out = read_only / "m.onnx"
    argv = ["export", "--model", str(models / "m.pt"), "--format", "onnx", "--out", str(out)]
    assert main(argv) == 2
    assert "cannot write to" in error_line(capsys, "export")

    ev = ["eval", "--model", str(models / "m.onnx"), *data, "--bootstrap", "0"]
    assert main([*ev, "--json", str(read_only / "r.json")]) == 2
    assert "cannot write to" in error_line(capsys, "eval")
    ok = tmp_path / "ok.json"
    assert main([*ev, "--json", str(ok), "--out", str(read_only)]) == 2
    assert "cannot write to" in error_line(capsys, "eval")
    assert not ok.exists()  # nothing half-written: the writable output is not written either
    assert main([*ev, "--json", str(ok), "--out", str(read_only / "ev")]) == 2
    error_line(capsys, "eval")
    assert list(read_only.iterdir()) == [] and not ok.exists()


def _relabel_every_2cm(session: Path) -> None:
    from robot_ssl.io.labels_file import default_labels_path, read_labels, write_labels

    path = default_labels_path(session)
    ls = read_labels(path)
    sub = slice(None, None, 2)
    write_labels(
        path,
        replace(
            ls,
            labels=ls.labels[:, :, sub].copy(),
            readings=ls.readings[:, :, sub].copy(),
            match_t_ns=ls.match_t_ns[:, sub].copy(),
            match_offset=ls.match_offset[:, sub].copy(),
            distances_m=ls.distances_m[sub].copy(),
            config=replace(ls.config, distances_m=tuple(ls.distances_m[sub].tolist())),
        ),
    )


@pytest.mark.parametrize("val_fraction", ["0", "0.5"])
def test_sessions_with_different_distance_grids_are_refused_before_training(
    tmp_path, val_fraction, capsys
):
    a, _ = write_synthetic_session(tmp_path / "data/a.h5", 12, seed=1)
    b, _ = write_synthetic_session(tmp_path / "data/b.h5", 12, seed=2)
    _relabel_every_2cm(b)
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "data"), "--out", str(out), "--epochs", "1"]
    rc = main([*argv, "--arch", "paper", "--val-fraction", val_fraction, "--no-cache", "--quiet"])
    assert rc == 2
    line = error_line(capsys, "train")
    assert "label grids differ" in line and str(a) in line and str(b) in line
    assert "31 distances" in line and "16 distances" in line
    assert not out.exists()


# -- run folders: resume, overwrite, modes -------------------------------------------------


def _cfg(out, **kw):
    base = dict(
        out_dir=str(out),
        arch="paper",
        epochs=1,
        batch_size=16,
        warmup_steps=0,
        schedule="constant",
        progress=False,
        num_threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def tiny():
    return synthetic_frameset(32, seed=1), None


LOGS = ("metrics.csv", "metrics.json", "curves.png")


def test_resume_rebuilds_the_outputs_a_kill_left_missing(tmp_path, tiny):
    run = tmp_path / "run"
    train(_cfg(run), data=tiny)
    # the file state of a SIGKILL between last.pt and best.pt of the final epoch
    for name in ("best.pt", *LOGS):
        (run / name).unlink()
    (run / ".best.pt.tmp-999999999.pt").write_bytes(b"half a checkpoint")  # pid long gone
    result = train(_cfg(run, resume=True), data=tiny)
    assert result.best_epoch == 1
    for name in ("best.pt", "last.pt", *LOGS, "config.json"):
        assert (run / name).is_file(), name
    assert Checkpoint.load(run / "best.pt").epoch == 0
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())] == [1]
    assert not list(run.glob(".*.tmp-*"))

    # a damaged best.pt is rebuilt too; then the run continues to a second epoch
    flip_zip_member(run / "best.pt", run / "best.pt")
    (run / "metrics.json").unlink()
    result = train(_cfg(run, epochs=2, resume=True), data=tiny)
    best = Checkpoint.load(run / "best.pt")
    assert best.epoch + 1 == result.best_epoch
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())] == [1, 2]


def test_resume_refuses_when_the_best_weights_are_gone(tmp_path, tiny):
    run = tmp_path / "run"
    train(_cfg(run), data=tiny)
    ckpt = Checkpoint.load(run / "last.pt")
    ckpt.epoch, ckpt.best_epoch = 1, 1  # last.pt of epoch 2 whose best epoch was 1
    ckpt.save(run / "last.pt")
    (run / "best.pt").unlink()
    with pytest.raises(TrainError, match="best epoch is 1 and its weights are not in") as e:
        train(_cfg(run, epochs=3, resume=True), data=tiny)
    assert "\n" not in str(e.value)


def test_overwrite_replaces_the_previous_run(tmp_path, tiny):
    run = tmp_path / "run"
    train(_cfg(run, seed=0), data=tiny)
    (run / ".best.pt.tmp-999999999.pt").write_bytes(b"left by a killed writer")
    # a new run that cannot start leaves the old run as it was
    bad = (synthetic_frameset(32, seed=1), synthetic_frameset(8, seed=2, num_distances=16))
    with pytest.raises(DatasetError, match="label grids differ"):
        train(_cfg(run, seed=1, overwrite=True), data=bad)
    assert Checkpoint.load(run / "best.pt").train_config["seed"] == 0
    train(_cfg(run, seed=1, overwrite=True), data=tiny)
    assert not list(run.glob(".*.tmp-*"))
    for name in ("best.pt", "last.pt"):
        assert Checkpoint.load(run / name).train_config["seed"] == 1
    assert json.loads((run / "config.json").read_text())["train_config"]["seed"] == 1


def test_outputs_follow_the_umask(tmp_path, tiny):
    old = os.umask(0o027)
    try:
        train(_cfg(tmp_path / "run"), data=tiny)
        export_model(tmp_path / "run/best.pt", "onnx")
        evaluate(
            tmp_path / "run/best.onnx",
            [],
            frames=tiny[0],
            n_bootstrap=0,
            json_out=tmp_path / "r.json",
            progress=False,
        )
    finally:
        os.umask(old)
    files = [*(tmp_path / "run").iterdir(), tmp_path / "r.json"]
    assert {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o640 for f in files}


def _cli_train(out: Path, data: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "robot_ssl",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--arch",
        "paper",
        "--batch-size",
        "8",
        "--val-fraction",
        "0.5",
        "--threads",
        "1",
        "--no-cache",
        "--quiet",
        *extra,
    ]


def test_sigkill_during_training_then_resume_completes_the_run(tmp_path):
    for i in range(2):
        write_synthetic_session(tmp_path / f"data/s{i}.h5", 16, world=f"w{i}", seed=i)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    first = subprocess.run(
        _cli_train(run, tmp_path / "data", "--epochs", "1", "--seed", "0"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr

    # --overwrite: killed once its first epoch is saved; no file of the old run survives
    epochs = ["--epochs", "4", "--seed", "1"]
    proc = subprocess.Popen(
        _cli_train(run, tmp_path / "data", *epochs, "--overwrite"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(Exception):
                if Checkpoint.load(run / "last.pt").train_config["seed"] == 1:
                    break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(60)
    assert proc.returncode in (-signal.SIGKILL, 0), proc.stderr.read()
    for name in ("best.pt", "last.pt"):
        if (run / name).exists():
            assert Checkpoint.load(run / name).train_config["seed"] == 1, name
    assert json.loads((run / "config.json").read_text())["train_config"]["seed"] == 1

    resumed = subprocess.run(
        _cli_train(run, tmp_path / "data", *epochs, "--resume"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    rows = json.loads((run / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    best = max(rows, key=_score)  # the first of equal scores, as training picks it
    assert Checkpoint.load(run / "best.pt").epoch + 1 == best["epoch"]
    assert Checkpoint.load(run / "last.pt").epoch == 3
    for name in ("curves.png", "metrics.csv", "config.json"):
        assert (run / name).is_file()
    assert not list(run.glob(".*.tmp-*"))
