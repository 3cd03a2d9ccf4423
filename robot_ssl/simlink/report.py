"""The demo report: one markdown page with the figures and numbers of a pipeline run."""

from __future__ import annotations

import json
import math
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


@dataclass(frozen=True)
class SupervisedShare:
    """Self-supervised against supervised, as the label-budget study measured it: per
    budget of labelled minutes, the mean AUC against truth over seeds of the network
    trained on the auto-labels ("scratch") and of the same network trained on the
    simulator's truth labels of the same frames ("supervised"), and the best
    self-supervised method's share of supervised."""

    source: str  # the results file it was read from
    commit: str
    date: str
    share_by_budget_min: dict[float, float]
    scratch_auc_by_budget_min: dict[float, float]
    supervised_auc_by_budget_min: dict[float, float]


def read_supervised_share(path: str | os.PathLike) -> SupervisedShare | None:
    """The study's figures from a stored benchmark result (benchmarks/results/
    label_budget.json); None when the file is absent, unreadable or has no share."""
    try:
        doc = json.loads(Path(path).read_text())
        values = doc["figures"][0]["values"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None

    def by_budget(prefix: str, suffix: str = "") -> dict[float, float]:
        out = {}
        for key, v in values.items():
            if key.startswith(prefix) and key.endswith(suffix) and isinstance(v, (int, float)):
                budget = key[len(prefix) : len(key) - len(suffix)].removesuffix("_min")
                try:
                    b = float(budget)
                except ValueError:
                    continue
                if math.isfinite(v):
                    out[b] = float(v)
        return dict(sorted(out.items()))

    shares = by_budget("share_of_supervised_")
    if not shares:
        return None
    return SupervisedShare(
        source=str(path),
        commit=str(doc.get("commit", "?")),
        date=str(doc.get("date", "?")),
        share_by_budget_min=shares,
        scratch_auc_by_budget_min=by_budget("truth_auc_", "_scratch"),
        supervised_auc_by_budget_min=by_budget("truth_auc_", "_supervised"),
    )


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
    supervised_share: SupervisedShare | None = None

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
            truth = (r.get("truth") or {}).get("overall", {}).get("truth") or {}
            if truth.get("mean_auc") is not None:
                lines += [
                    "Against the simulator's truth (what a perfect annotator would mark) on the",
                    f"same frames: mean ROC AUC **{_fmt(truth['mean_auc'])}**.",
                    "",
                ]
        lines += self._supervised_section()
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

    def _supervised_section(self) -> list[str]:
        """Self-supervised against supervised: the study's figures, or where to get them."""
        lines = ["## Self-supervised against supervised", ""]
        share = self.supervised_share
        if share is None:
            return [
                *lines,
                "Not measured in this run: `python -m benchmarks label_budget` trains the same",
                "network on the auto-labels and on the simulator's truth labels of the same",
                "frames (3 seeds per budget) and stores the comparison in",
                "benchmarks/results/label_budget.json, which this report then quotes.",
                "",
            ]
        budgets = list(share.share_by_budget_min)
        last = budgets[-1]
        lines += [
            f"Self-supervised reaches **{share.share_by_budget_min[last]:.0%}** of supervised "
            f"at {last:g} minutes of labels: the label-budget study ({share.source}, commit "
            f"{share.commit}, {share.date}), mean AUC against truth on the hard suite over 3 "
            "seeds; supervised is the same network trained on the simulator's truth labels of "
            "the same frames (a stand-in for perfect human annotation).",
            "",
            "| minutes of labels | self-supervised (scratch) | supervised | best self-supervised "
            "/ supervised |",
            "|---|---|---|---|",
        ]
        for b in budgets:
            own = share.scratch_auc_by_budget_min.get(b)
            sup = share.supervised_auc_by_budget_min.get(b)
            lines.append(
                f"| {b:g} | {_fmt(own)} | {_fmt(sup)} | {share.share_by_budget_min[b]:.1%} |"
            )
        return [*lines, ""]

    def write(self, name: str = "report.md") -> Path:
        from robot_ssl.core.outputs import atomic_output

        path = self.out_dir / name
        text = self.to_markdown()
        with atomic_output(path) as tmp:
            tmp.write_text(text)
        return path


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.3f}"
