"""Label sources through the real commands: a simulated contact-seeking drive labelled
from contacts and the floor it swept only (no proximity), scored against the
simulator's truth per source, then trained on for an epoch."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from labelling_sessions import write_session
from robot_cli import run_robot_ssl

from robot_ssl.core.label_grid import SOURCE_CODES
from robot_ssl.io.labels_file import read_labels

# Floors below what 1-minute contact drives measured (seeds 1, 2, 3, 5: contact
# precision 1.000, 0.979, 0.992, 0.997 with the default bearing tolerance; traversal
# agreement 1.000 on each)
CONTACT_PRECISION_FLOOR = 0.9
TRAVERSAL_AGREEMENT_FLOOR = 0.97


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_robot_ssl(*args, timeout=timeout)


@pytest.fixture(scope="module")
def contact_session(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sources") / "data" / "touch.h5"
    path.parent.mkdir()
    r = _run("sim", "record", str(path), "--minutes", "1", "--drive", "contact", "--seed", "3",
             "--width", "64", "--height", "48", "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return path


def _source_rows(stdout: str) -> dict[str, list[str]]:
    """The 'label sources:' table's rows by source name."""
    lines = stdout.splitlines()
    start = lines.index("label sources:")
    return {row.split()[1]: row.split() for row in lines[start + 2 :] if row.strip()}


def test_contact_and_traversal_labels_are_scored_per_source(contact_session: Path):
    r = _run("label", str(contact_session), "--sources", "contact,traversal", "--truth",
             "--no-plot", "-j", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = _source_rows(r.stdout)
    assert set(rows) == {"contact", "traversal"}
    # session, source, cells, positive, truth agree, precision, recall
    contact, traversal = rows["contact"], rows["traversal"]
    assert int(contact[2]) > 1000 and contact[3] == "100.0%"  # contacts say obstacle only
    assert float(contact[5].rstrip("%")) / 100 >= CONTACT_PRECISION_FLOOR, r.stdout
    assert int(traversal[2]) > 1000 and traversal[3] == "0.0%"  # the swept floor is free
    assert float(traversal[4].rstrip("%")) / 100 >= TRAVERSAL_AGREEMENT_FLOOR, r.stdout
    labels = read_labels(contact_session.with_name("touch.labels.h5"))
    assert labels.config.sources == ("contact", "traversal")
    codes = set(np.unique(labels.source).tolist())
    assert codes == {0, SOURCE_CODES["contact"], SOURCE_CODES["traversal"]}
    np.testing.assert_array_equal(labels.source > 0, labels.labels >= 0)


def test_training_on_labels_without_proximity(contact_session: Path, tmp_path: Path):
    r = _run("label", str(contact_session), "--sources", "contact,traversal", "--no-plot")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "run"
    r = _run("train", "--data", str(contact_session.parent), "--out", str(out), "--epochs", "1",
             "--batch-size", "32", "--quiet", "--no-cache", "--threads", "1",
             "--val-fraction", "0.5")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "best epoch 1" in r.stdout and (out / "best.pt").is_file()


def test_every_source_is_the_default_and_unknown_names_are_refused(tmp_path: Path):
    session = write_session(tmp_path / "s.h5", seconds=3.0)
    bad = _run("label", str(session), "--sources", "ir,sonar", "--no-plot")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert "unknown label source 'sonar'" in bad.stderr
    ok = _run("label", str(session), "--no-plot", "-j", "1", "--camera-offset-ms", "0")
    assert ok.returncode == 0, ok.stderr
    # the fixture has no accelerometer: one line, and contacts from the wheels alone
    assert "no acc stream: contacts detected from the wheels alone" in ok.stderr
    assert "ir" in _source_rows(ok.stdout)
