"""Child process for the onboard-watchdog tests: a host that drives a Thymio until killed.

Usage: python host_killer.py URL [LEFT RIGHT] [--poll]
Connects with firmware_bridge's ThymioRobot (the onboard program unless --poll), prints
"driving <mode>" once the first wheel command is out, then commands LEFT/RIGHT (default
200/200) at 30 Hz forever. The test SIGKILLs it: nothing of the host survives to stop the
motors, so only the robot's own watchdog can.
"""

import sys
import time

from firmware_bridge import ThymioRobot


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--poll"]
    url = args[0]
    left, right = (int(v) for v in args[1:3]) if len(args) >= 3 else (200, 200)
    robot = ThymioRobot.open(url, poll="--poll" in sys.argv)
    robot.set_wheel_targets(left, right)
    print(f"driving {robot.mode}", flush=True)
    while True:
        time.sleep(1 / 30)
        robot.set_wheel_targets(left, right)


if __name__ == "__main__":
    main()
