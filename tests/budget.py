"""How hard the property tests push: `make test` runs their full example counts,
`make test-fast` (ROBOT_SSL_TEST_TIER=fast) a quarter of them, to stay under a minute."""

import os

FAST = os.environ.get("ROBOT_SSL_TEST_TIER") == "fast"


def examples(n: int) -> int:
    """`n` examples, or a quarter of them (at least 5) in the fast tier."""
    return max(5, n // 4) if FAST else n
