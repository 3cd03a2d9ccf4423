"""Draw docs/img/packages.png: robot_ssl's stages (from the tree itself) and what may
import what (the contracts in pyproject.toml, checked by lint-imports)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

ROOT = Path(__file__).resolve().parents[1]
# top to bottom: each stage imports only the ones below it
STAGES = [
    "cli",
    "simlink",
    "live",
    "learning",
    "inference",
    "labelling",
    "recording",
    "runtime",
    "interop",
    "io",
    "core",
]
NOTES = {
    "cli": "argument parsing, one module per verb",
    "simlink": "the only library code that imports sim",
    "learning": "the only torch users",
    "inference": "what the robot runs: no torch, not even indirectly",
    "runtime": "the one drive loop: parts (policy, observers) injected",
    "interop": "ROS bags and MCAP in and out (rosbags)",
    "io": "the only h5py users",
}


def modules(stage: str) -> str:
    names = sorted(
        p.stem for p in (ROOT / "robot_ssl" / stage).glob("*.py") if p.stem != "__init__"
    )
    lines, line = [], ""
    for n in names:
        if len(line) + len(n) > 70:
            lines.append(line.rstrip(", "))
            line = ""
        line += n + ", "
    lines.append(line.rstrip(", "))
    return "\n".join(lines)


fig, ax = plt.subplots(figsize=(11, 9))
h, gap, x0, w = 0.85, 0.25, 0.0, 7.0
for i, stage in enumerate(STAGES):
    y = (len(STAGES) - 1 - i) * (h + gap)
    ax.add_patch(
        FancyBboxPatch((x0, y), w, h, boxstyle="round,pad=0.04", fc="#eef3fb", ec="#3a5a8c")
    )
    ax.text(x0 + 0.15, y + h - 0.18, f"robot_ssl.{stage}", fontsize=11, weight="bold", va="top")
    ax.text(x0 + 0.15, y + h - 0.45, modules(stage), fontsize=7.5, va="top", family="monospace")
    if stage in NOTES:
        ax.text(
            x0 + w - 0.1,
            y + h - 0.18,
            NOTES[stage],
            fontsize=8,
            ha="right",
            va="top",
            style="italic",
        )
    if i < len(STAGES) - 1:
        ax.annotate("", xy=(x0 + w / 2, y - gap + 0.02), xytext=(x0 + w / 2, y - 0.02),
                    arrowprops={"arrowstyle": "->", "color": "#3a5a8c"})  # fmt: skip
top = (len(STAGES) - 1) * (h + gap) + h
for j, (name, text) in enumerate([
    ("sim", "simulator: imports only\nfirmware_bridge and pinhole"),
    ("firmware_bridge", "Aseba link: imports nothing of the project"),
    ("pinhole", "one camera model (sim, robot_ssl):\nimports nothing of the project"),
]):  # fmt: skip
    y = top - h - j * 2.2 * (h + gap)
    ax.add_patch(
        FancyBboxPatch((8.0, y), 3.0, h, boxstyle="round,pad=0.04", fc="#f6f1e7", ec="#8c6a3a")
    )
    ax.text(8.15, y + h - 0.18, name, fontsize=11, weight="bold", va="top")
    ax.text(8.15, y + h - 0.5, text, fontsize=8, va="top")
ax.annotate("", xy=(8.0, top - h / 2), xytext=(7.0, (len(STAGES) - 2) * (h + gap) + h / 2),
            arrowprops={"arrowstyle": "->", "color": "#8c6a3a"})  # fmt: skip
ax.annotate("", xy=(9.5, top - h - 2.2 * (h + gap) + h), xytext=(9.5, top - h),
            arrowprops={"arrowstyle": "->", "color": "#8c6a3a"})  # fmt: skip
pin_y = top - h - 2 * 2.2 * (h + gap)  # sim and robot_ssl.core both import pinhole
ax.annotate("", xy=(10.6, pin_y + h), xytext=(10.6, top - h),
            arrowprops={"arrowstyle": "->", "color": "#8c6a3a"})  # fmt: skip
core_y = (len(STAGES) - 1 - STAGES.index("core")) * (h + gap) + h / 2
ax.annotate("", xy=(8.0, pin_y + h / 2), xytext=(7.0, core_y),
            arrowprops={"arrowstyle": "->", "color": "#8c6a3a"})  # fmt: skip
rec_y = (len(STAGES) - 1 - STAGES.index("recording")) * (h + gap) + h / 2
ax.annotate("", xy=(8.0, top - h - 2.2 * (h + gap) + h / 2), xytext=(7.0, rec_y),
            arrowprops={"arrowstyle": "->", "color": "#8c6a3a"})  # fmt: skip
ax.text(0.0, -0.45, "arrow: may import (each stage only the ones below it; lint-imports in make test)",
        fontsize=8)  # fmt: skip
ax.set_xlim(-0.2, 11.2)
ax.set_ylim(-0.6, top + 0.2)
ax.axis("off")
out = ROOT / "docs" / "img" / "packages.png"
fig.savefig(out, dpi=110, bbox_inches="tight")
print(out)
