"""The `robot-ssl` command line as tests call it: in a child process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys

ROBOT_SSL = [sys.executable, "-m", "robot_ssl"]
"""`robot-ssl` with the interpreter running the tests (the venv's, whatever PATH says)."""


def run_robot_ssl(
    *args: str, timeout: float = 120.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`robot-ssl ARGS` to completion, output captured as text; `env` is added to this
    process's environment. A run past `timeout` s raises subprocess.TimeoutExpired."""
    full = None if env is None else {**os.environ, **env}
    return subprocess.run(
        [*ROBOT_SSL, *args], capture_output=True, text=True, timeout=timeout, env=full
    )
