"""Drawing for replay videos and live views (OpenCV, BGR uint8 canvases).

Pure functions: data in, image out. The robot-centric grid draws each
(sensor, distance) cell where it lies on the floor: d ahead of sensor s along
its axis, which is what the label means.
"""

from __future__ import annotations

import cv2
import numpy as np

from robot_ssl.core.spec import RobotSpec

GREY = (110, 110, 110)
FREE = (80, 190, 80)
OBSTACLE = (40, 40, 230)
WHITE = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def put_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45) -> None:
    cv2.putText(img, text, org, FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, FONT, scale, WHITE, 1, cv2.LINE_AA)


def cell_positions_m(
    robot: RobotSpec, sensor_indices: np.ndarray, distances_m: np.ndarray
) -> np.ndarray:
    """(S, D, 2) floor positions (robot frame) of the grid cells."""
    poses = np.array(robot.prox_poses())[np.asarray(sensor_indices)]
    d = np.asarray(distances_m)[None, :]
    x = poses[:, 0:1] + d * np.cos(poses[:, 2:3])
    y = poses[:, 1:2] + d * np.sin(poses[:, 2:3])
    return np.stack([x, y], axis=-1)


def draw_grid_panel(
    size_px: int,
    robot: RobotSpec,
    sensor_indices: np.ndarray,
    distances_m: np.ndarray,
    labels: np.ndarray | None = None,
    prob: np.ndarray | None = None,
    title: str = "",
) -> np.ndarray:
    """Robot-centric top view (robot at the bottom, facing up) of labels and/or probabilities.

    labels: int8 (S, D) in {-1, 0, 1}; prob: float (S, D) in [0, 1]. With both, the
    label is the ring and the probability the fill.
    """
    img = np.full((size_px, size_px, 3), 35, np.uint8)
    reach = float(np.max(distances_m)) + 0.12
    scale = (size_px - 20) / reach

    def to_px(x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return size_px / 2 - y_m * scale, size_px - 12 - (x_m + 0.02) * scale

    bx, by = to_px(np.array([0.0]), np.array([0.0]))
    cv2.circle(img, (int(bx[0]), int(by[0])), int(robot.body_radius_m * scale), GREY, 1)
    cells = cell_positions_m(robot, sensor_indices, distances_m)
    px, py = to_px(cells[..., 0], cells[..., 1])
    r = max(2, int(0.004 * scale))
    for s in range(cells.shape[0]):
        for d in range(cells.shape[1]):
            c = (int(px[s, d]), int(py[s, d]))
            if prob is not None:
                p = float(prob[s, d])
                fill = tuple(int(v) for v in np.array(FREE) * (1 - p) + np.array(OBSTACLE) * p)
                cv2.circle(img, c, r, fill, -1)
            if labels is not None and labels[s, d] >= 0:
                colour = OBSTACLE if labels[s, d] == 1 else FREE
                cv2.circle(
                    img, c, r + 2 if prob is not None else r, colour, 1 if prob is not None else -1
                )
            elif labels is not None and prob is None:
                cv2.circle(img, c, 1, GREY, -1)
    if title:
        put_text(img, title, (6, 16))
    return img


class TopDownView:
    """Fixed top-down map of a whole trajectory, with the current pose drawn per frame."""

    def __init__(self, size_px: int, poses: list[np.ndarray], margin_m: float = 0.2) -> None:
        # a session without odometry has no poses: the map is then an empty 2 m square
        pts = np.concatenate([np.empty((0, 2))] + [p[:, :2] for p in poses if len(p)], axis=0)
        pts = pts[np.isfinite(pts).all(axis=1)]
        lo = pts.min(axis=0) - margin_m if len(pts) else np.array([-1.0, -1.0])
        hi = pts.max(axis=0) + margin_m if len(pts) else np.array([1.0, 1.0])
        self.size = size_px
        self.scale = (size_px - 10) / float(max(hi - lo))
        self.lo = lo
        self.base = np.full((size_px, size_px, 3), 245, np.uint8)

    def px(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        u = 5 + (xy[..., 0] - self.lo[0]) * self.scale
        v = self.size - 5 - (xy[..., 1] - self.lo[1]) * self.scale
        return np.stack([u, v], axis=-1).astype(np.int32)

    def draw_path(self, poses: np.ndarray, colour: tuple[int, int, int]) -> None:
        ok = np.isfinite(poses[:, :2]).all(axis=1)
        if ok.sum() > 1:
            cv2.polylines(self.base, [self.px(poses[ok, :2])], False, colour, 1, cv2.LINE_AA)

    def draw_points(self, xy: np.ndarray, colour: tuple[int, int, int]) -> None:
        for u, v in self.px(xy):
            cv2.circle(self.base, (int(u), int(v)), 1, colour, -1)

    def frame(self, poses: dict[str, tuple[np.ndarray, tuple[int, int, int]]]) -> np.ndarray:
        """Copy of the map with a robot marker for each named current pose.

        The names go in a legend in the top-left corner, one line each, not beside
        the markers: two poses close together would write their names over each other.
        """
        img = self.base.copy()
        for k, (name, (pose, colour)) in enumerate(poses.items()):
            y = 16 + 16 * k
            cv2.line(img, (6, y - 4), (22, y - 4), colour, 2)
            cv2.putText(img, name, (28, y), FONT, 0.4, (40, 40, 40), 1, cv2.LINE_AA)
            if not np.all(np.isfinite(pose)):
                continue
            c = self.px(pose[:2])
            tip = self.px(pose[:2] + 0.08 * np.array([np.cos(pose[2]), np.sin(pose[2])]))
            cv2.circle(img, (int(c[0]), int(c[1])), max(3, int(0.08 * self.scale)), colour, 1)
            cv2.line(img, (int(c[0]), int(c[1])), (int(tip[0]), int(tip[1])), colour, 2)
        return img
