"""Top-down map of a world (OpenCV drawing, BGR uint8): obstacles in their colours, the
robot's body, its proximity rays (length = reading's distance, or the range), the
camera's field of view, and optionally a trajectory."""

from __future__ import annotations

import math

import cv2
import numpy as np

from sim.ir import IRSensors
from sim.world import Cylinder, World

__all__ = ["draw_topdown"]


def _bgr(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    return tuple(round(255 * c) for c in rgb[::-1])  # type: ignore[return-value]


def draw_topdown(
    world: World,
    pose: np.ndarray | None = None,
    *,
    ir: IRSensors | None = None,
    body_radius_m: float = 0.08,
    hfov_rad: float | None = None,
    camera_x_m: float = 0.03,
    trajectory: np.ndarray | None = None,
    px_per_m: float = 200.0,
    max_px: int = 1200,
) -> np.ndarray:
    """The map image; +x to the right, +y up. Sensor rays are drawn in red where the
    noise-free reading is non-zero, grey otherwise."""
    xmin, ymin, xmax, ymax = world.arena.bounds
    margin = 0.1
    ppm = min(px_per_m, max_px / (max(xmax - xmin, ymax - ymin) + 2 * margin))
    w = math.ceil((xmax - xmin + 2 * margin) * ppm)
    h = math.ceil((ymax - ymin + 2 * margin) * ppm)
    img = np.full((h, w, 3), 40, np.uint8)
    S = 16  # fixed-point sub-pixel shift for smooth lines

    def px(p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, np.float64).reshape(-1, 2)
        q = np.stack([(p[:, 0] - xmin + margin) * ppm, (ymax + margin - p[:, 1]) * ppm], axis=1)
        return np.round(q * S).astype(np.int32)

    corners = np.array([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]])
    cv2.fillConvexPoly(img, px(corners), _bgr(world.floor.color), cv2.LINE_AA, 4)
    cv2.polylines(img, [px(corners)], True, _bgr(world.arena.surface.color), 3, cv2.LINE_AA, 4)
    # grid every 0.5 m
    for gx in np.arange(math.ceil(xmin * 2) / 2, xmax, 0.5):
        cv2.line(
            img,
            tuple(px([[gx, ymin]])[0]),
            tuple(px([[gx, ymax]])[0]),
            (90, 90, 90),
            1,
            cv2.LINE_AA,
            4,
        )
    for gy in np.arange(math.ceil(ymin * 2) / 2, ymax, 0.5):
        cv2.line(
            img,
            tuple(px([[xmin, gy]])[0]),
            tuple(px([[xmax, gy]])[0]),
            (90, 90, 90),
            1,
            cv2.LINE_AA,
            4,
        )
    for ob in world.obstacles:
        color = _bgr(ob.surface.color)
        if isinstance(ob, Cylinder):
            c = px([[ob.x_m, ob.y_m]])[0]
            r = round(ob.radius_m * ppm * S)
            cv2.circle(img, tuple(c), r, color, -1, cv2.LINE_AA, 4)
            cv2.circle(img, tuple(c), r, (20, 20, 20), 1, cv2.LINE_AA, 4)
        else:
            poly = px(ob.as_box().corners())
            cv2.fillConvexPoly(img, poly, color, cv2.LINE_AA, 4)
            cv2.polylines(img, [poly], True, (20, 20, 20), 1, cv2.LINE_AA, 4)
    if trajectory is not None and len(trajectory) > 1:
        cv2.polylines(
            img, [px(np.asarray(trajectory)[:, :2])], False, (255, 255, 0), 1, cv2.LINE_AA, 4
        )
    if pose is not None:
        x, y, th = (float(v) for v in pose)
        if hfov_rad is not None:
            cam = np.array([x + camera_x_m * math.cos(th), y + camera_x_m * math.sin(th)])
            for s in (-1, 1):
                a = th + s * hfov_rad / 2
                end = cam + 1.0 * np.array([math.cos(a), math.sin(a)])
                cv2.line(
                    img, tuple(px(cam)[0]), tuple(px(end)[0]), (0, 220, 255), 1, cv2.LINE_AA, 4
                )
        if ir is not None:
            values = ir.values(pose)
            origins, heading = ir.sensor_frames(pose)
            true_d = ir.true_distances(np.asarray(pose, float))
            for k in range(len(values)):
                length = min(float(true_d[k]), ir.params.range_m)
                end = origins[k] + length * np.array([math.cos(heading[k]), math.sin(heading[k])])
                color = (0, 0, 255) if values[k] > 0 else (170, 170, 170)
                cv2.line(img, tuple(px(origins[k])[0]), tuple(px(end)[0]), color, 2, cv2.LINE_AA, 4)
        c = px([[x, y]])[0]
        cv2.circle(
            img, tuple(c), round(body_radius_m * ppm * S), (245, 245, 245), 2, cv2.LINE_AA, 4
        )
        tip = px([[x + body_radius_m * math.cos(th), y + body_radius_m * math.sin(th)]])[0]
        cv2.line(img, tuple(c), tuple(tip), (245, 245, 245), 2, cv2.LINE_AA, 4)
    return img
