"""Draw docs/img/dataflow.png: the pipeline from robot (or simulator) to live detection."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

BOXES = {
    "robot": (0.0, 2.0, "Thymio II\n(firmware_bridge,\nAseba over serial)"),
    "sim": (0.0, 0.4, "simulator\n(sim/, virtual Thymio)"),
    "record": (2.2, 1.2, "record\nsession.h5\ncamera, prox,\nwheels, odometry"),
    "label": (4.4, 1.2, "label\n<session>.labels.h5\n(sensor x distance)"),
    "train": (6.6, 1.2, "train / eval\nbest.pt, AUC\nper cell"),
    "export": (8.8, 1.2, "export\nmodel.onnx"),
    "run": (8.8, 2.9, "run (live)\ncamera -> grid\n-> avoid"),
    "replay": (4.4, 2.9, "replay\nvideo with labels\nand predictions"),
}
ARROWS = [
    ("robot", "record"),
    ("sim", "record"),
    ("record", "label"),
    ("label", "train"),
    ("train", "export"),
    ("export", "run"),
    ("record", "replay"),
    ("label", "replay"),
    ("run", "record"),
]
W, H = 1.8, 1.1

fig, ax = plt.subplots(figsize=(11, 4.3))
for x, y, text in BOXES.values():
    ax.add_patch(
        FancyBboxPatch((x, y), W, H, boxstyle="round,pad=0.05", fc="#eef3fb", ec="#3a5a8c")
    )
    ax.text(x + W / 2, y + H / 2, text, ha="center", va="center", fontsize=9)


def edge_points(a, b):
    """Where the centre-to-centre line leaves box a and enters box b (plus a small gap)."""
    (xa, ya, _), (xb, yb, _) = BOXES[a], BOXES[b]
    ca, cb = (xa + W / 2, ya + H / 2), (xb + W / 2, yb + H / 2)
    dx, dy = cb[0] - ca[0], cb[1] - ca[1]
    t = min((W / 2 + 0.08) / abs(dx) if dx else 1e9, (H / 2 + 0.08) / abs(dy) if dy else 1e9)
    return (ca[0] + t * dx, ca[1] + t * dy), (cb[0] - t * dx, cb[1] - t * dy)


for a, b in ARROWS:
    start, end = edge_points(a, b)
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="#444"))
ax.text(
    6.6,
    0.35,
    "--record on a live run: predictions + sensors, labelled later",
    fontsize=8,
    color="#555",
)
ax.set_xlim(-0.2, 10.8)
ax.set_ylim(0.2, 4.2)
ax.axis("off")
fig.tight_layout()
fig.savefig("docs/img/dataflow.png", dpi=110)
