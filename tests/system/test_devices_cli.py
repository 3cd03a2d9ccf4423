"""Device spellings that fit nothing, on the real command line: one line, exit 2, no file."""

from __future__ import annotations

import subprocess
import sys


def test_cli_bad_spelling_is_one_line_exit_2_and_no_file(tmp_path):
    out = tmp_path / "x.h5"
    argv = ["record", "--robot", "tcp:host:notaport", "--camera", "none", str(out)]
    p = subprocess.run([sys.executable, "-m", "robot_ssl", *argv], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "--robot tcp:host:notaport" in p.stderr and not out.exists()
