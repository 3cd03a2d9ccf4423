"""The one pinhole camera model of the project: image size, intrinsics, mount, and the
geometry built on them; `robot_ssl.core.spec.CameraSpec` and `sim.camera.CameraParams`
both derive from :class:`Pinhole`.

A top-level package of its own because two packages that may not import each other need
it: `sim` imports nothing of `robot_ssl`, and only `robot_ssl.simlink` imports `sim`
(the import contracts in pyproject.toml; docs/CONTRACTS.md). It imports nothing of the
project, only numpy.

Frames: x forward, y left, z up, origin at the wheel-axle midpoint on the floor. The
mount (x_m, y_m, z_m) is the optical centre in that frame; `pitch_rad` > 0 tilts the
optical axis down towards the floor. Intrinsics default to square pixels from the
horizontal field of view with the principal point at the image centre.

The *viewpoint* is this geometry without the image size's absolute scale: what a
detector learns to read (where the floor, the horizon and an obstacle's base fall in
the image). :meth:`Pinhole.viewpoint_differences` compares two viewpoints with the
tolerances of :data:`VIEWPOINT_TOLERANCES`, so that a camera opened at 640x480 matches
one recorded at 320x240 with the same lens and mount, while another pitch does not.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

__all__ = ["VIEWPOINT_TOLERANCES", "Pinhole", "ViewpointTolerances"]


@dataclass(frozen=True)
class ViewpointTolerances:
    """How far two viewpoints may differ and still be one: fields of view and pitch in
    degrees, principal point as a fraction of the image size, mount in metres."""

    fov_deg: float = 2.0
    pitch_deg: float = 2.0
    principal_point_fraction: float = 0.02
    mount_m: float = 0.01


VIEWPOINT_TOLERANCES = ViewpointTolerances()


@dataclass(frozen=True)
class Pinhole:
    """A forward pinhole camera on a robot (defaults: Raspberry Pi Camera Module 3 Wide,
    320x240, on a Thymio II). Subclasses validate the fields (each in its own error type)."""

    width: int = 320
    height: int = 240
    hfov_rad: float = math.radians(102.0)
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    x_m: float = 0.03
    y_m: float = 0.0
    z_m: float = 0.095
    pitch_rad: float = math.radians(20.0)

    def intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels; derived from hfov with square pixels when not given."""
        f = self.width / 2.0 / math.tan(self.hfov_rad / 2.0)
        fx = self.fx if self.fx is not None else f
        fy = self.fy if self.fy is not None else fx
        cx = self.cx if self.cx is not None else (self.width - 1) / 2.0
        cy = self.cy if self.cy is not None else (self.height - 1) / 2.0
        return fx, fy, cx, cy

    def horizon_row(self) -> float:
        """Image row (pixels, may be outside the image) where the horizon projects."""
        _, fy, _, cy = self.intrinsics()
        return cy - fy * math.tan(self.pitch_rad)

    def floor_pixels(self, xy_m: np.ndarray) -> np.ndarray:
        """(N, 2) pixel (u, v) where floor points (x forward, y left, robot frame, m)
        appear in the image; NaN for points at or behind the camera's image plane."""
        fx, fy, cx, cy = self.intrinsics()
        d = np.asarray(xy_m, np.float64).reshape(-1, 2) - (self.x_m, self.y_m)
        cp, sp = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        # camera axes in the robot frame: optical (cos p, 0, -sin p), right (0, -1, 0),
        # down (-sin p, 0, -cos p); the floor is z_m below the optical centre
        depth = d[:, 0] * cp + self.z_m * sp
        right, down = -d[:, 1], -d[:, 0] * sp + self.z_m * cp
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([cx + fx * right / depth, cy + fy * down / depth], axis=1)
        uv[depth <= 1e-6] = np.nan
        return uv

    def pixel_angles(self) -> tuple[np.ndarray, np.ndarray]:
        """Heading (left positive) and elevation (up positive), radians, of every pixel's
        ray relative to the robot's level frame: (H, W) each."""
        fx, fy, cx, cy = self.intrinsics()
        a, b = np.meshgrid((np.arange(self.width) - cx) / fx, (np.arange(self.height) - cy) / fy)
        cp, sp = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        fwd, left, up = cp - b * sp, -a, -sp - b * cp
        return np.arctan2(left, fwd), np.arctan2(up, np.hypot(fwd, left))

    # -- the viewpoint ---------------------------------------------------------------------

    def pinhole(self) -> Pinhole:
        """The pinhole geometry alone (a subclass's other fields dropped)."""
        return Pinhole(**{f.name: getattr(self, f.name) for f in fields(Pinhole)})

    def viewpoint_dict(self) -> dict[str, Any]:
        """The geometry as plain values: what a model file records of its training camera."""
        return asdict(self.pinhole())

    @classmethod
    def from_viewpoint_dict(cls, d: Any) -> Pinhole:
        """A Pinhole from `viewpoint_dict`'s output; ValueError (one line) when it is not one."""
        names = {f.name for f in fields(Pinhole)}
        if not isinstance(d, dict) or set(d) != names:
            raise ValueError(f"a viewpoint needs exactly the keys {sorted(names)}")
        for k, v in d.items():
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not (ok or (v is None and k in ("fx", "fy", "cx", "cy"))):
                raise ValueError(f"viewpoint {k}: must be a finite number, got {v!r}")
        return Pinhole(**d)

    def fields_of_view_deg(self) -> tuple[float, float]:
        """(horizontal, vertical) field of view in degrees, from the intrinsics."""
        fx, fy, _, _ = self.intrinsics()
        return (
            math.degrees(2 * math.atan(self.width / 2 / fx)),
            math.degrees(2 * math.atan(self.height / 2 / fy)),
        )

    def describe(self) -> str:
        """A short description: size, fields of view, pitch and mount."""
        h, v = self.fields_of_view_deg()
        return (
            f"{self.width}x{self.height}, fov {h:.1f}x{v:.1f} deg, pitch "
            f"{math.degrees(self.pitch_rad):.1f} deg, mount ({self.x_m:.3f}, {self.y_m:.3f}, "
            f"{self.z_m:.3f}) m"
        )

    def viewpoint_differences(
        self, other: Pinhole, tol: ViewpointTolerances = VIEWPOINT_TOLERANCES
    ) -> list[str]:
        """How `other` sees the floor differently from this camera, beyond `tol`, in words
        ("pitch 20.0 vs 35.0 deg", ...); empty when the two are one viewpoint. The image
        size itself does not count (the detector resizes every frame to its input), its
        aspect does, through the vertical field of view."""
        out = []
        for name, a, b in zip(
            ("horizontal fov", "vertical fov"),
            self.fields_of_view_deg(),
            other.fields_of_view_deg(),
        ):
            if abs(a - b) > tol.fov_deg:
                out.append(f"{name} {a:.1f} vs {b:.1f} deg")
        pa, pb = math.degrees(self.pitch_rad), math.degrees(other.pitch_rad)
        if abs(pa - pb) > tol.pitch_deg:
            out.append(f"pitch {pa:.1f} vs {pb:.1f} deg")
        for name, a, b in zip(
            ("cx", "cy"), self._principal_fraction(), other._principal_fraction()
        ):
            if abs(a - b) > tol.principal_point_fraction:
                out.append(f"principal point {name} {a:.3f} vs {b:.3f} of the image")
        for name in ("x_m", "y_m", "z_m"):
            a, b = getattr(self, name), getattr(other, name)
            if abs(a - b) > tol.mount_m:
                out.append(f"mount {name} {a:.3f} vs {b:.3f}")
        return out

    def _principal_fraction(self) -> tuple[float, float]:
        _, _, cx, cy = self.intrinsics()
        return (cx + 0.5) / self.width, (cy + 0.5) / self.height
