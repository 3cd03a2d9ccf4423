"""Where things are, for tests in any tier folder: the repository root and the folder
holding the shared test helpers (playground.py, the killers, doubles/)."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
