"""scripts/check_contracts_doc.py (make lint): every path, name and signature quoted in
docs/CONTRACTS.md resolves, and a reference that does not is named on a line of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from paths import REPO

SCRIPT = REPO / "scripts" / "check_contracts_doc.py"


def check(*docs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, docs)], capture_output=True, text=True, cwd=REPO
    )


def test_every_reference_of_the_contracts_resolves():
    r = check()
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""


def test_a_made_up_name_a_wrong_parameter_and_a_missing_path_are_each_flagged(tmp_path: Path):
    doc = tmp_path / "CONTRACTS.md"
    doc.write_text(
        "Sessions: `robot_ssl.io.session_writer.SessionWriter(path, robot=RobotSpec)` and\n"
        "`Checkpoint.load(path)`; `record.speed` is an instance's (not checked).\n"
        "Made up: `frobnicate_session(path)`, `robot_ssl.io.streams.NO_SUCH_TABLE`,\n"
        "`robot_ssl/io/no_such_file.py`, `Checkpoint.no_such_method(path)`,\n"
        "`load_predictor(path, no_such_option=1)`.\n",
        encoding="utf-8",
    )
    r = check(doc)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{doc}:3", f"{doc}:3"] + [
        f"{doc}:4"
    ] * 2 + [f"{doc}:5"], lines
    assert "frobnicate_session is defined nowhere in robot_ssl" in lines[0]
    assert "robot_ssl.io.streams.NO_SUCH_TABLE does not import" in lines[1]
    assert "no file or folder robot_ssl/io/no_such_file.py" in lines[2]
    assert "Checkpoint has no no_such_method" in lines[3]
    assert "load_predictor has no parameter no_such_option (has: path," in lines[4]


def test_a_missing_document_is_one_line_and_exit_2(tmp_path: Path):
    r = check(tmp_path / "nothing.md")
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "no such document" in r.stderr
