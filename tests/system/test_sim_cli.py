"""`robot-ssl sim ...`: record through the session writer (with truth, deterministic), show,
worlds, generate, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from robot_ssl.cli.main import main


def _record(path, *extra: str) -> None:
    args = [
        "sim",
        "record",
        str(path),
        "--minutes",
        "0.05",
        "--no-progress",
        "--width",
        "80",
        "--height",
        "64",
    ]
    assert main([*args, *extra]) == 0


def test_record_writes_a_complete_session_with_truth(tmp_path):
    from robot_ssl.io.session import SessionReader

    out = tmp_path / "s.h5"
    _record(out, "--world", "corridor", "--seed", "2")
    assert not list(tmp_path.glob(".*.tmp-*"))  # no temporary file left
    with SessionReader(out) as r:
        assert r.metadata["world"] == "corridor" and r.metadata["source"] == "sim"
        assert r.metadata["seed"] == 2
        # 3 s: 30 fps camera (the first ~80 ms in flight, ~1 % lost), 10 Hz proximity,
        # 100 Hz streamed wheels/odometry, 50 Hz truth
        assert 80 <= r.num_frames <= 89 and r.frame(0).shape == (64, 80, 3)
        t, prox = r.proximity()
        assert len(t) in (29, 30) and prox.shape[1] == 7 and prox.dtype == np.int16
        tw, _speed, target = r.wheels()
        n = len(tw)
        assert 297 <= n <= 300
        assert np.abs(target).max() > 0  # the wander controller drove
        _tt, pose, dist = r.truth()
        assert pose.shape == (151, 3) and dist.shape == (151, 7)
        _to, odo = r.odometry()
        assert odo.shape == (n, 3)
        assert r.metadata["truth_geometry"] in ("sensor_cone", "sensor_axis")
        assert set(r.metadata["sim_camera_timing"]) >= {
            "latency_ms", "jitter_ms", "exposure_ms", "drop_rate"
        }  # fmt: skip
        # odometry starts at 0 and moves like the truth (the truth starts at the world pose)
        assert np.hypot(*(odo[-1, :2])) == pytest.approx(
            np.hypot(*(pose[-1, :2] - pose[0, :2])), abs=0.05
        )


def test_record_is_deterministic_and_generated_from_the_seed(tmp_path):
    from robot_ssl.io.session import SessionReader

    paths = [tmp_path / f"{i}.h5" for i in range(3)]
    _record(paths[0], "--seed", "7")
    _record(paths[1], "--seed", "7")
    _record(paths[2], "--seed", "8")
    data = []
    for path in paths:
        with SessionReader(path) as r:
            assert r.metadata["world"].startswith("gen_train_")
            blobs = [r.jpeg(i) for i in range(r.num_frames)]
            data.append((b"".join(blobs), r.proximity()[1].tobytes(), r.truth()[1].tobytes()))
    assert data[0] == data[1]
    assert data[0][0] != data[2][0] and data[0][2] != data[2][2]


def test_record_clock_options_reach_the_session(tmp_path):
    from robot_ssl.io.session import SessionReader

    out = tmp_path / "c.h5"
    _record(
        out,
        "--world", "corridor",
        "--camera-latency-ms", "50",
        "--camera-jitter-ms", "0",
        "--exposure-ms", "0",
        "--drop-rate", "0",
        "--ir-model", "enki",
    )  # fmt: skip
    with SessionReader(out) as r:
        m = r.metadata["sim_camera_timing"]
        assert (m["latency_ms"], m["jitter_ms"], m["exposure_ms"], m["drop_rate"]) == (
            50.0, 0.0, 0.0, 0.0
        )  # fmt: skip
        assert r.metadata["ir_model"] == "enki"
        t = r.camera_t_ns
        period = 1e9 / 30
        # no jitter, no loss: every frame, exactly 50 ms after its exposure
        assert np.all(np.abs(np.diff(t) - period) <= 1)
        phase = m["phase_ms"] * 1e6
        k = np.round((t - 50e6 - phase) / period)
        assert np.all(np.abs(t - (50e6 + phase + k * period)) <= 1)
    ideal = tmp_path / "i.h5"
    _record(ideal, "--world", "corridor", "--ideal-clocks")
    with SessionReader(ideal) as r:
        assert r.num_frames == 91 and len(r.wheels()[0]) == 151
        assert np.all(r.proximity()[0] % 100_000_000 == 0)
        assert r.metadata["sim_robot_timing"]["stream"] is False
    assert main(["sim", "record", str(tmp_path / "x.h5"), "--minutes", "0.01",
                 "--ideal-clocks", "--drop-rate", "0.1"]) == 2  # fmt: skip


def test_record_refuses_to_overwrite_and_reports_bad_worlds(tmp_path, capsys):
    out = tmp_path / "s.h5"
    out.write_bytes(b"x")
    assert main(["sim", "record", str(out), "--minutes", "0.01", "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == b"x"
    assert (
        main(["sim", "record", str(tmp_path / "t.h5"), "--world", "nowhere", "--minutes", "0.01"])
        == 2
    )
    err = capsys.readouterr().err
    assert "no world" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t.h5").exists()


def test_show_worlds_generate(tmp_path, capsys):
    import cv2

    assert (
        main(
            [
                "sim",
                "show",
                "cluttered",
                "--out",
                str(tmp_path),
                "--width",
                "160",
                "--height",
                "120",
            ]
        )
        == 0
    )
    top = cv2.imread(str(tmp_path / "cluttered_topdown.png"))
    cam = cv2.imread(str(tmp_path / "cluttered_camera.png"))
    assert top is not None and top.shape[0] > 200
    assert cam.shape == (120, 160, 3)
    assert main(["sim", "worlds"]) == 0
    assert "corridor" in capsys.readouterr().out
    assert (
        main(["sim", "generate", "--seed", "3", "--split", "heldout", str(tmp_path / "h.yaml")])
        == 0
    )
    from sim.world import load_world

    assert load_world(tmp_path / "h.yaml").split == "heldout"
    assert (
        main(["sim", "show", str(tmp_path / "h.yaml"), "--out", str(tmp_path), "--wander", "2"])
        == 0
    )
