"""The demo report: one markdown page with the figures and numbers of a pipeline run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ClosedLoopRow:
    """One closed-loop condition: controller, speed and what happened in the unseen worlds."""

    controller: str
    cruise_speed: int
    minutes: float
    collisions: int
    mean_forward_speed_m_s: float
    latency_median_ms: float | None = None
    latency_p99_ms: float | None = None

    @property
    def collisions_per_10_min(self) -> float:
        return 10.0 * self.collisions / self.minutes if self.minutes > 0 else float("nan")


@dataclass
class DemoReport:
    """Everything the report page shows; paths are files inside the output folder."""

    out_dir: Path
    sessions: list[dict[str, Any]] = field(default_factory=list)  # name, world, split, minutes
    label_summary: list[dict[str, Any]] = field(default_factory=list)
    eval_report: dict[str, Any] | None = None
    closed_loop: list[ClosedLoopRow] = field(default_factory=list)
    images: dict[str, Path] = field(default_factory=dict)  # caption -> PNG
    video: Path | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def _rel(self, p: Path) -> str:
        return os.path.relpath(p, self.out_dir)

    def to_markdown(self) -> str:
        lines = ["# robot-ssl demo report", ""]
        lines += [
            "Simulated sessions were recorded in several worlds, labelled automatically from the",
            "proximity sensors and odometry, used to train the camera detector, which was then",
            "evaluated on held-out worlds (unseen colours and textures) and used to drive the",
            "robot with the camera alone in an unseen world.",
            "",
        ]
        if self.sessions:
            lines += [
                "## Sessions",
                "",
                "| session | world | split | minutes |",
                "|---|---|---|---|",
            ]
            for s in self.sessions:
                lines.append(f"| {s['name']} | {s['world']} | {s['split']} | {s['minutes']:.1f} |")
            lines.append("")
        if self.label_summary:
            lines += ["## Labels", "", "| session | frames | known cells | positive cells |"]
            lines.append("|---|---|---|---|")
            for s in self.label_summary:
                lines.append(
                    f"| {s['name']} | {s['frames']} | {100 * s['known']:.1f}% | {100 * s['positive']:.1f}% |"
                )
            lines.append("")
        if self.eval_report is not None:
            r = self.eval_report
            bands = r.get("auc_by_band", {})
            lines += ["## Detector on held-out worlds", ""]
            lines.append(f"Mean ROC AUC over the grid: **{_fmt(r.get('mean_auc'))}**")
            lines.append("")
            lines += ["| band (cm) | mean AUC |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in bands.items()]
            lines.append("")
        for caption, path in self.images.items():
            lines += [f"### {caption}", "", f"![{caption}]({self._rel(path)})", ""]
        if self.video is not None:
            lines += [
                "## Replay",
                "",
                f"[{self._rel(self.video)}]({self._rel(self.video)}): camera, trajectory, labels",
                "and predicted grid, frame by frame, on a held-out session.",
                "",
            ]
        if self.closed_loop:
            lines += [
                "## Closed loop in an unseen world",
                "",
                "| controller | cruise speed (units) | minutes | collisions / 10 min |"
                " mean forward speed (cm/s) | capture-to-command latency, simulated time, median / p99 (ms) |",
                "|---|---|---|---|---|---|",
            ]
            for c in self.closed_loop:
                lat = (
                    f"{c.latency_median_ms:.1f} / {c.latency_p99_ms:.1f}"
                    if c.latency_median_ms is not None
                    else "-"
                )
                lines.append(
                    f"| {c.controller} | {c.cruise_speed} | {c.minutes:.1f} |"
                    f" {c.collisions_per_10_min:.1f} | {100 * c.mean_forward_speed_m_s:.2f} | {lat} |"
                )
            lines.append("")
        if self.timings_s:
            lines += ["## Time per step", "", "| step | seconds |", "|---|---|"]
            lines += [f"| {k} | {v:.0f} |" for k, v in self.timings_s.items()]
            lines.append(f"| total | {sum(self.timings_s.values()):.0f} |")
            lines.append("")
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(lines)

    def write(self, name: str = "report.md") -> Path:
        from robot_ssl.core.outputs import atomic_output

        path = self.out_dir / name
        text = self.to_markdown()
        with atomic_output(path) as tmp:
            tmp.write_text(text)
        return path


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.3f}"
