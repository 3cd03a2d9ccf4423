"""Child process for the SIGKILL test: writes a session forever, logging flushed timestamps.

Usage: python session_killer.py OUT.h5 LOG.txt
Each line of LOG is the wall-clock monotonic time (ns) of a completed flush and
the number of proximity rows it had written, so the test knows what must survive.
"""

import sys
import time

import numpy as np

from robot_ssl.io.session import SessionWriter


def main() -> None:
    out, log_path = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    with open(log_path, "w", buffering=1) as log, SessionWriter(out, flush_interval_s=0.2) as w:
        i = 0
        last_logged = 0
        while True:
            t = time.monotonic_ns()
            w.write_proximity(t, np.full(7, i % 4000))
            w.write_wheels(t, [i % 300, i % 300], [100, 100])
            w.write_odometry(t, [i * 1e-3, 0.0, 0.0])
            if i % 3 == 0:
                w.write_frame(t, image)
            i += 1
            flushed = w._counts["proximity"]
            if flushed != last_logged:
                log.write(f"{time.monotonic_ns()} {flushed}\n")
                last_logged = flushed
            time.sleep(0.001)


if __name__ == "__main__":
    main()
