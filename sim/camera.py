"""Forward pinhole camera renderer in numpy + OpenCV (no GPU, no display).

How a frame is made (all vectorised, a few dozen array operations per frame):

1. A *level panorama* is traced in (heading, elevation) coordinates: one 2-D ray per
   panorama column (a fixed heading relative to the robot) is cast against every
   box, wall and cylinder footprint. Because every obstacle is an upright prism
   standing on the floor, each hit covers one interval of elevations in its column:
   from its base (-z / t_in) to its top ((h - z) / t_in), plus its lid up to
   (h - z) / t_out when it is lower than the camera. Walking the hits from near to
   far gives, per column, a short list of runs (floor, face, lid, ..., arena wall,
   backdrop) with exact occlusion.
2. For each run the atlas coordinate is an affine function of one per-row quantity
   (tan(elevation) on faces, floor distance on floor and lids), so the whole
   panorama's texture coordinates come from `np.repeat` of per-run coefficients
   and two multiply-adds, and one `cv2.remap` of the lit texture atlas colours it.
3. A fixed `cv2.remap` (computed once per camera) warps the panorama into the
   pitched pinhole image: perspective, converging verticals and the horizon at
   cy - fy tan(pitch) come out exact.
4. Frame brightness (slow flicker), vignetting, sensor noise (a pre-drawn noise
   bank at a random offset per frame) and optional blur are applied last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sim.atlas import BACKDROP_TAN_MAX, Atlas, build_atlas
from sim.checks import check_fields
from sim.errors import SimError
from sim.world import World

__all__ = ["CameraParams", "Renderer"]

_MAX_FLOOR_DIST_M = 1e3


@dataclass(frozen=True)
class CameraParams:
    """Resolution, intrinsics (from the horizontal field of view unless given), mount, rate
    and image degradations. Defaults mirror robot_ssl's CameraSpec (Raspberry Pi camera v2
    on a Thymio); the mount is the optical centre in the robot frame, pitch > 0 looks down.
    """

    width: int = 320
    height: int = 240
    hfov_rad: float = math.radians(102.0)  # as robot_ssl CameraSpec: Pi Camera Module 3 Wide
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    x_m: float = 0.03
    y_m: float = 0.0
    z_m: float = 0.095
    pitch_rad: float = math.radians(20.0)
    fps: float = 30.0
    noise_std: float = 2.5  # Gaussian sensor noise, grey levels
    vignette: float = 0.25  # relative darkening in the image corners
    blur_sigma_px: float = 0.0  # extra optical/JPEG-like blur (0: none)
    oversample: float = 1.0  # panorama resolution relative to the image centre's
    antialias: bool | None = None  # smooth silhouettes (2 resamplings); None: below 160x120
    texture_px_per_m: float = 200.0

    def __post_init__(self) -> None:
        check_fields(self, "camera")
        if self.width <= 0 or self.height <= 0:
            raise SimError("camera: width and height must be > 0")
        if not 0 < self.hfov_rad < math.pi:
            raise SimError("camera: hfov_rad must be in (0, pi)")
        if self.fps <= 0 or self.z_m <= 0 or self.oversample <= 0:
            raise SimError("camera: fps, z_m and oversample must be > 0")
        if self.noise_std < 0 or self.blur_sigma_px < 0 or not 0 <= self.vignette < 1:
            raise SimError("camera: noise_std, blur_sigma_px >= 0 and vignette in [0, 1)")
        _, fy, _, cy = self.intrinsics()
        half_v = max(math.atan(cy / fy), math.atan((self.height - 1 - cy) / fy))
        if abs(self.pitch_rad) + half_v >= math.radians(85):
            raise SimError("camera: the view must stay 5 degrees away from straight up/down")

    def intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels, as CameraSpec.intrinsics()."""
        f = self.width / 2.0 / math.tan(self.hfov_rad / 2.0)
        fx = self.fx if self.fx is not None else f
        fy = self.fy if self.fy is not None else fx
        cx = self.cx if self.cx is not None else (self.width - 1) / 2.0
        cy = self.cy if self.cy is not None else (self.height - 1) / 2.0
        return fx, fy, cx, cy

    def horizon_row(self) -> float:
        """Image row of the horizon (may be outside the image)."""
        _, fy, _, cy = self.intrinsics()
        return cy - fy * math.tan(self.pitch_rad)


def pixel_angles(params: CameraParams) -> tuple[np.ndarray, np.ndarray]:
    """Heading psi (left positive) and elevation e (up positive), radians, of every pixel's
    ray relative to the robot's level frame: (H, W) each."""
    fx, fy, cx, cy = params.intrinsics()
    u = (np.arange(params.width) - cx) / fx
    v = (np.arange(params.height) - cy) / fy
    a, b = np.meshgrid(u, v)
    cp, sp = math.cos(params.pitch_rad), math.sin(params.pitch_rad)
    # Optical axis (cos p, 0, -sin p); image right = -left; image down = (-sin p, 0, -cos p).
    fwd = cp - b * sp
    left = -a
    up = -sp - b * cp
    return np.arctan2(left, fwd), np.arctan2(up, np.hypot(fwd, left))


class Renderer:
    """Renders one world through one camera. Build once (atlas, fixed maps), render often."""

    def __init__(self, world: World, params: CameraParams, atlas: Atlas | None = None) -> None:
        self.world = world
        self.params = params
        self.atlas = atlas if atlas is not None else build_atlas(world, params.texture_px_per_m)
        self._setup_panorama()
        self._setup_scene()
        self._setup_post()

    # ------------------------------------------------------------------ setup

    def _setup_panorama(self) -> None:
        p = self.params
        fx, fy, _, _ = p.intrinsics()
        psi, elev = pixel_angles(p)
        d_psi = 1.0 / (fx * p.oversample)
        d_e = 1.0 / (fy * p.oversample)
        psi0 = float(psi.min()) - 2 * d_psi
        e0 = float(elev.min()) - 2 * d_e
        self.n_cols = math.ceil((float(psi.max()) + 2 * d_psi - psi0) / d_psi) + 1
        self.n_rows = math.ceil((float(elev.max()) + 2 * d_e - e0) / d_e) + 1
        self.psi = (psi0 + d_psi * np.arange(self.n_cols)).astype(np.float64)
        self.e0, self.d_e = e0, d_e
        e_rows = e0 + d_e * np.arange(self.n_rows)
        self.T = np.tan(e_rows).astype(np.float32)  # tan(elevation) per panorama row
        with np.errstate(divide="ignore"):
            D = np.where(self.T < 0, p.z_m / -self.T.astype(np.float64), 0.0)
        self.D = np.minimum(D, _MAX_FLOOR_DIST_M).astype(np.float32)  # floor distance per row
        self.horizon_index = self._row(np.array(0.0))
        # Output pixel -> panorama (x = row along elevation, y = column along heading).
        map_x = ((elev - e0) / d_e).astype(np.float32)
        map_y = ((psi - psi0) / d_psi).astype(np.float32)
        self.antialias = p.antialias if p.antialias is not None else p.width * p.height <= 160 * 120
        # Rows of each panorama column that the image uses (all of them when antialiased).
        self._lo = np.zeros(self.n_cols, np.int32)
        self._hi = np.full(self.n_cols, self.n_rows, np.int32)
        if self.antialias:  # colour the panorama, then resample it bilinearly
            self._out_m1, self._out_m2 = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
        else:  # pick each pixel's panorama texture coordinate, then colour the image
            i = np.clip(np.rint(map_x), 0, self.n_rows - 1).astype(np.int64).ravel()
            j = np.clip(np.rint(map_y), 0, self.n_cols - 1).astype(np.int64).ravel()
            lo = np.full(self.n_cols, self.n_rows, np.int64)
            hi = np.zeros(self.n_cols, np.int64)
            np.minimum.at(lo, j, i)
            np.maximum.at(hi, j, i + 1)
            hi = np.maximum(hi, lo)  # unused columns: empty windows
            self._lo, self._hi = lo.astype(np.int32), hi.astype(np.int32)
            start = np.concatenate([[0], np.cumsum(hi - lo)[:-1]])
            self._out_index = start[j] + (i - lo[j])
        # Per-pixel tan(elevation) and floor distance of the (windowed) panorama, flat.
        rows = np.concatenate([np.arange(a, b) for a, b in zip(self._lo, self._hi)])
        self._T_flat = self.T[rows]
        self._D_flat = self.D[rows]

    def _row(self, tan_e: np.ndarray) -> np.ndarray:
        """First panorama row whose centre lies at or above elevation atan(tan_e)."""
        r = np.ceil((np.arctan(tan_e) - self.e0) / self.d_e)
        return np.clip(r, 0, self.n_rows).astype(np.int32)

    def _setup_scene(self) -> None:
        geo = self.world.geometry()
        at = self.atlas
        nb, nc = geo.num_boxes, geo.num_circles
        self.nb, self.nc = nb, nc
        self.box_segments = geo.segments[: 4 * nb]
        self.arena_segments = geo.segments[4 * nb :]
        self.circles = geo.circles
        seg = self.box_segments.reshape(nb, 4, 4)
        self.box_face_len = np.hypot(seg[..., 2] - seg[..., 0], seg[..., 3] - seg[..., 1])  # (B, 4)
        self.arena_len = np.hypot(
            self.arena_segments[:, 2] - self.arena_segments[:, 0],
            self.arena_segments[:, 3] - self.arena_segments[:, 1],
        )
        self.height = np.concatenate([geo.box_height_m, geo.circle_height_m])  # (N,)
        # Per-object lid frames: centre, unit axes e1/e2, half extents, atlas origin and ppm.
        centres, e1, e2, half, lid_o, lid_ppm = [], [], [], [], [], []
        for b in range(nb):
            box = self.world.obstacles[geo.box_source[b]].as_box()
            c, s = math.cos(box.yaw_rad), math.sin(box.yaw_rad)
            centres.append((box.x_m, box.y_m))
            e1.append((c, s))
            e2.append((-s, c))
            half.append((box.length_m / 2, box.width_m / 2))
            lid_o.append(at.box_lid_origin[b])
            lid_ppm.append(at.box_lid_ppm[b])
        for k in range(nc):
            x, y, r = geo.circles[k]
            centres.append((x, y))
            e1.append((1.0, 0.0))
            e2.append((0.0, 1.0))
            half.append((r, r))
            lid_o.append(at.cyl_lid_origin[k])
            lid_ppm.append(at.cyl_lid_ppm[k])
        n = nb + nc
        self.lid_c = np.array(centres, np.float64).reshape(n, 2)
        self.lid_e1 = np.array(e1, np.float64).reshape(n, 2)
        self.lid_e2 = np.array(e2, np.float64).reshape(n, 2)
        self.lid_half = np.array(half, np.float64).reshape(n, 2)
        self.lid_origin = np.array(lid_o, np.float64).reshape(n, 2)
        self.lid_ppm = np.array(lid_ppm, np.float64).reshape(n)
        self.lid_table = np.concatenate(  # gathered once per frame for the visible layers
            [self.lid_origin, self.lid_ppm[:, None], self.lid_e1, self.lid_e2], axis=1
        )
        boxes = [self.world.obstacles[i].as_box() for i in geo.box_source]
        self.box_c = np.array([(b.x_m, b.y_m) for b in boxes], np.float64).reshape(nb, 2)
        self.box_cos = np.array([math.cos(b.yaw_rad) for b in boxes], np.float64)
        self.box_sin = np.array([math.sin(b.yaw_rad) for b in boxes], np.float64)
        self.box_half = np.array(
            [(b.length_m / 2, b.width_m / 2) for b in boxes], np.float64
        ).reshape(nb, 2)
        # Bounding circles of all objects (boxes then cylinders) for view culling.
        self.obj_c = np.concatenate([self.box_c, geo.circles[:, :2]], axis=0)
        self.obj_r = np.concatenate(
            [np.hypot(self.box_half[:, 0], self.box_half[:, 1]), geo.circles[:, 2]]
        )
        self.psi_reach = float(np.abs(self.psi).max()) + 1e-3
        self._col_index = np.arange(self.n_cols)[:, None]
        self.face_origin = at.box_face_origin.reshape(nb * 4, 2)
        self.face_ppm = at.box_face_ppm.reshape(nb * 4)
        self.atlas_image = at.image

    def _setup_post(self) -> None:
        p = self.params
        fx, fy, cx, cy = p.intrinsics()
        if p.vignette > 0:
            u = (np.arange(p.width) - cx) / fx
            v = (np.arange(p.height) - cy) / fy
            r2 = u[None, :] ** 2 + v[:, None] ** 2
            corner = (p.width / 2 / fx) ** 2 + (p.height / 2 / fy) ** 2
            vig = 1.0 - p.vignette * r2 / corner
            self._vignette = np.repeat(np.round(vig * 255)[..., None], 3, axis=2).astype(np.uint8)
        else:
            self._vignette = None
        self._noise_pad = 16
        if p.noise_std > 0:
            rng = np.random.default_rng(0x5EED)
            shape = (p.height + self._noise_pad, p.width + self._noise_pad, 3)
            self._noise = [  # uint8 with an offset of 128: one cv2.addWeighted applies it
                np.clip(np.rint(rng.normal(128.0, p.noise_std, shape)), 0, 255).astype(np.uint8)
                for _ in range(4)
            ]
        else:
            self._noise = []

    # ------------------------------------------------------------------ rendering

    def camera_pose(self, robot_pose: np.ndarray) -> tuple[float, float, float]:
        """(x_m, y_m, yaw_rad) of the camera for a robot pose."""
        x, y, th = float(robot_pose[0]), float(robot_pose[1]), float(robot_pose[2])
        c, s = math.cos(th), math.sin(th)
        p = self.params
        return x + c * p.x_m - s * p.y_m, y + s * p.x_m + c * p.y_m, th

    def panorama_coords(self, robot_pose: np.ndarray) -> np.ndarray:
        """Atlas coordinates (x + i y, complex64) of the panorama pixels the image uses,
        column after column (all n_cols x n_rows of them when antialiased)."""
        p = self.params
        z = p.z_m
        ox, oy, yaw = self.camera_pose(robot_pose)
        ang = yaw + self.psi
        cos_a, sin_a = np.cos(ang), np.sin(ang)
        R = self.n_cols
        at = self.atlas
        row = self._row

        # --- every object's entry/exit along every column ---------------------------
        vis_boxes, vis_cyls = self._visible(ox, oy, yaw)
        ids = np.concatenate([vis_boxes, self.nb + vis_cyls])  # object numbers of the hits
        hits = self._object_hits(ox, oy, cos_a, sin_a, vis_boxes, vis_cyls)
        # --- floor coefficients per column -------------------------------------------
        fppm = at.floor_ppm
        fb = at.floor_bounds_m
        F_ax = at.floor_origin[0] + fppm * (ox - fb[0])
        F_ay = at.floor_origin[1] + fppm * (oy - fb[1])
        F_cx = (fppm * cos_a).astype(np.float32)
        F_cy = (fppm * sin_a).astype(np.float32)

        # --- arena wall hit per column ------------------------------------------------
        xmin, ymin, xmax, ymax = self.world.arena.bounds
        with np.errstate(divide="ignore"):
            tx = np.where(cos_a > 0, xmax - ox, xmin - ox) / cos_a
            ty = np.where(sin_a > 0, ymax - oy, ymin - oy) / sin_a
        on_x = tx < ty  # the ray leaves through a wall at x = const
        tA = np.clip(np.where(on_x, tx, ty), 1e-3, 1e3)
        hx_a, hy_a = ox + tA * cos_a, oy + tA * sin_a
        # walls (World geometry order): 0 x=xmin, 1 y=ymax, 2 x=xmax, 3 y=ymin
        wall = np.where(on_x, np.where(cos_a > 0, 2, 0), np.where(sin_a > 0, 1, 3))
        sA = np.where(
            on_x,
            np.where(cos_a > 0, ymax - hy_a, hy_a - ymin),
            np.where(sin_a > 0, hx_a - xmin, xmax - hx_a),
        )
        ppmA = at.arena_ppm[wall]
        HA = self.world.arena.wall_height_m
        botA = row(-z / tA)
        topA = row((HA - z) / tA)

        K = 0
        if hits is not None:
            K = int(np.isfinite(hits[0]).sum(axis=1).max())
        if K:
            order = np.argsort(hits[0], axis=1)[:, :K]
            obj = ids[order]
            t_in, t_out, face_ax, face_ay, face_ppm = hits[:, self._col_index, order]
            h = self.height[obj]
            ok = np.isfinite(t_in)
            t_safe = np.where(ok, t_in, 1.0)
            low = ok & (h < z)
            any_low = bool(low.any())
            if any_low:
                inv = 1.0 / np.stack([t_safe, t_safe, np.where(low, t_out, 1.0)])
                inv *= np.stack([np.full_like(h, -z), h - z, h - z])
                bot, top, lidtop = row(inv) * np.stack([ok, ok, low])
                m = np.maximum(np.maximum(bot, top), lidtop)
            else:  # no lid in view: two bounds per layer suffice
                inv = 1.0 / np.stack([t_safe, t_safe])
                inv *= np.stack([np.full_like(h, -z), h - z])
                bot, top = row(inv) * ok
                lidtop = np.zeros_like(bot)
                m = np.maximum(bot, top)
            run_max = np.maximum.accumulate(m, axis=1)
            cur = np.concatenate([np.zeros((R, 1), np.int32), run_max[:, :-1]], axis=1)
            b1 = np.maximum(cur, bot)
            b2 = np.maximum(b1, top)
            b3 = np.maximum(b2, lidtop)
            curA = run_max[:, -1]
            if any_low:  # lids: floor-like at height h, in the object's own frame
                scale = np.where(low, (z - h) / z, 0.0)
                lid = self.lid_table[obj]  # (R, K, 7): origin x/y, ppm, e1 x/y, e2 x/y
                relx, rely = ox - self.lid_c[:, 0], oy - self.lid_c[:, 1]
                base1 = relx * self.lid_e1[:, 0] + rely * self.lid_e1[:, 1] + self.lid_half[:, 0]
                base2 = relx * self.lid_e2[:, 0] + rely * self.lid_e2[:, 1] + self.lid_half[:, 1]
                cc, ss = cos_a[:, None], sin_a[:, None]
                lid_ppm = lid[..., 2]
                lid_Ax = lid[..., 0] + lid_ppm * base1[obj]
                lid_Ay = lid[..., 1] + lid_ppm * base2[obj]
                lid_Cx = lid_ppm * scale * (cc * lid[..., 3] + ss * lid[..., 4])
                lid_Cy = lid_ppm * scale * (cc * lid[..., 5] + ss * lid[..., 6])
            else:
                lid_Ax = lid_Ay = lid_Cx = lid_Cy = 0.0
        else:
            curA = np.zeros(R, np.int32)

        b1A = np.maximum(curA, botA)
        b2A = np.maximum(b1A, topA)
        hz = np.maximum(b2A, self.horizon_index)
        n_runs = 3 * K + 4
        bounds = np.empty((R, n_runs + 1), np.int32)
        bounds[:, 0] = 0
        if K:
            bounds[:, 1 : 3 * K + 1 : 3] = b1
            bounds[:, 2 : 3 * K + 1 : 3] = b2
            bounds[:, 3 : 3 * K + 1 : 3] = b3
        bounds[:, 3 * K + 1] = b1A
        bounds[:, 3 * K + 2] = b2A
        bounds[:, 3 * K + 3] = hz
        bounds[:, 3 * K + 4] = self.n_rows
        np.clip(bounds, self._lo[:, None], self._hi[:, None], out=bounds)  # used rows only
        lengths = np.diff(bounds, axis=1)

        # Per run: atlas (x + iy) = A + P * V, with V = floor distance D on floor and lid
        # runs and tan(elevation) T on faces and the backdrop (complex64 = interleaved x, y).
        A = np.empty((R, n_runs), np.complex64)
        P = np.zeros((R, n_runs), np.complex64)
        use_T = np.zeros((R, n_runs), bool)
        floor_runs = [*range(0, 3 * K, 3), 3 * K]
        A[:, floor_runs] = F_ax + 1j * F_ay
        P[:, floor_runs] = (F_cx + 1j * F_cy)[:, None]
        if K:
            A[:, 1 : 3 * K : 3] = face_ax + 1j * (face_ay + (h - z) * face_ppm)
            P[:, 1 : 3 * K : 3] = -1j * t_safe * face_ppm
            use_T[:, 1 : 3 * K : 3] = True
            A[:, 2 : 3 * K : 3] = lid_Ax + 1j * lid_Ay
            P[:, 2 : 3 * K : 3] = lid_Cx + 1j * lid_Cy
        aA = self.atlas.arena_origin[wall]
        A[:, 3 * K + 1] = aA[:, 0] + sA * ppmA + 1j * (aA[:, 1] + (HA - z) * ppmA)
        P[:, 3 * K + 1] = -1j * tA * ppmA
        A[:, 3 * K + 2] = at.far_floor[0] + 1j * at.far_floor[1]
        bo = at.backdrop_origin
        a0 = math.fmod(yaw, 2 * math.pi) + 2 * math.pi  # in (pi, 3pi): margins cover psi
        A[:, 3 * K + 3] = (bo[0] + (a0 + self.psi) * at.backdrop_px_per_rad) + 1j * (
            bo[1] + at.backdrop_px_per_tan * BACKDROP_TAN_MAX
        )
        P[:, 3 * K + 3] = -1j * at.backdrop_px_per_tan
        use_T[:, 3 * K + 1 :: 2] = True

        L = lengths.ravel()
        V = np.where(np.repeat(use_T.ravel(), L), self._T_flat, self._D_flat)
        coords = np.repeat(P.ravel(), L)
        coords *= V
        coords += np.repeat(A.ravel(), L)
        return coords

    def _visible(self, ox: float, oy: float, yaw: float) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the boxes and of the cylinders whose bounding circle overlaps the
        panorama's heading range (the others cannot appear in the image)."""
        dx, dy = self.obj_c[:, 0] - ox, self.obj_c[:, 1] - oy
        d = np.hypot(dx, dy)
        rel = np.arctan2(dy, dx) - yaw
        rel = np.abs(np.arctan2(np.sin(rel), np.cos(rel)))
        half = np.arcsin(np.minimum(1.0, self.obj_r / np.maximum(d, 1e-9)))
        vis = (rel - half < self.psi_reach) | (d <= self.obj_r)
        nb = self.nb
        return np.flatnonzero(vis[:nb]), np.flatnonzero(vis[nb:])

    def _object_hits(
        self,
        ox: float,
        oy: float,
        cos_a: np.ndarray,
        sin_a: np.ndarray,
        boxes: np.ndarray,
        cyls: np.ndarray,
    ) -> np.ndarray | None:
        """(5, columns, listed objects) (boxes then cylinders): entry and exit distance
        (inf when missed), atlas x of the entry point, atlas y origin of the entry face
        and its px/m; None when no object is listed."""
        parts = []
        cc, ss = cos_a[:, None], sin_a[:, None]
        if boxes.size:
            # Slab test in each box's own frame: ~40 operations on (columns, boxes) arrays.
            c, s = self.box_cos[boxes], self.box_sin[boxes]
            hx, hy = self.box_half[boxes, 0], self.box_half[boxes, 1]
            rx, ry = ox - self.box_c[boxes, 0], oy - self.box_c[boxes, 1]
            lx, ly = c * rx + s * ry, c * ry - s * rx
            dx = cc * c + ss * s
            dy = ss * c - cc * s
            with np.errstate(divide="ignore", invalid="ignore"):
                ix, iy = 1.0 / dx, 1.0 / dy
                tx1, tx2 = (-hx - lx) * ix, (hx - lx) * ix
                ty1, ty2 = (-hy - ly) * iy, (hy - ly) * iy
            txmin, txmax = np.minimum(tx1, tx2), np.maximum(tx1, tx2)
            tymin, tymax = np.minimum(ty1, ty2), np.maximum(ty1, ty2)
            t_in = np.maximum(txmin, tymin)
            t_out = np.minimum(txmax, tymax)
            hit = (t_in <= t_out) & (t_in > 0.0)
            t_hit = np.where(hit, t_in, 0.0)
            px, py = lx + t_hit * dx, ly + t_hit * dy
            xface = txmin > tymin
            from_px, from_py = dx < 0, dy < 0
            # faces (Box.corners order): 0 +x, 1 +y, 2 -x, 3 -y; s runs along each face.
            face = np.where(xface, np.where(from_px, 0, 2), np.where(from_py, 1, 3))
            s_m = np.where(
                xface,
                np.where(from_px, py + hy, hy - py),
                np.where(from_py, hx - px, px + hx),
            )
            fid = face + 4 * boxes
            ppm = self.face_ppm[fid]
            parts.append(
                np.stack([np.where(hit, t_in, np.inf), np.where(hit, t_out, np.inf),
                          self.face_origin[fid, 0] + s_m * ppm, self.face_origin[fid, 1], ppm])
            )  # fmt: skip
        if cyls.size:
            at = self.atlas
            circ = self.circles[cyls]
            rx, ry, r = ox - circ[:, 0], oy - circ[:, 1], circ[:, 2]
            b = cc * rx + ss * ry
            disc = b * b - (rx * rx + ry * ry - r * r)
            root = np.sqrt(np.maximum(disc, 0.0))
            t_in = -b - root
            hit = (disc >= 0.0) & (t_in > 0.0)
            t_hit = np.where(hit, t_in, 0.0)
            arc = (np.arctan2(ry + t_hit * ss, rx + t_hit * cc) + np.pi) * r  # from angle -pi
            ppm = np.broadcast_to(at.cyl_side_ppm[cyls], b.shape)
            origin = at.cyl_side_origin[cyls]
            parts.append(
                np.stack([np.where(hit, t_in, np.inf), np.where(hit, root - b, np.inf),
                          origin[:, 0] + arc * ppm, np.broadcast_to(origin[:, 1], b.shape), ppm])
            )  # fmt: skip
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)

    def render_clean(self, robot_pose: np.ndarray) -> np.ndarray:
        """The noise-free, flicker-free, unvignetted BGR image at a robot pose."""
        return cv2.cvtColor(self._render_bgra(robot_pose), cv2.COLOR_BGRA2BGR)

    def _render_bgra(self, robot_pose: np.ndarray) -> np.ndarray:
        coords = self.panorama_coords(robot_pose)
        p = self.params
        if self.antialias:
            pano_map = coords.view(np.float32).reshape(self.n_cols, self.n_rows, 2)
            pano = cv2.remap(
                self.atlas_image, pano_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            return cv2.remap(pano, self._out_m1, self._out_m2, cv2.INTER_LINEAR)
        out = np.take(coords, self._out_index).view(np.float32).reshape(p.height, p.width, 2)
        return cv2.remap(
            self.atlas_image, out, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def render(
        self, robot_pose: np.ndarray, t_s: float = 0.0, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """The camera image (BGR uint8, H x W x 3) at a robot pose and time `t_s` (for the
        slow lighting flicker); `rng` draws the per-frame noise (None: no noise, no jitter)."""
        img = cv2.cvtColor(self._render_bgra(robot_pose), cv2.COLOR_BGRA2BGR)
        lt = self.world.lighting
        gain = 1.0 + lt.flicker * math.sin(2 * math.pi * t_s / lt.flicker_period_s)
        if rng is not None:
            gain *= 1.0 + 0.005 * float(rng.standard_normal())
        if self._vignette is not None:
            img = cv2.multiply(img, self._vignette, scale=gain / 255.0)
            gain = 1.0
        if rng is not None and self._noise:
            k = int(rng.integers(len(self._noise)))
            dy, dx = (int(v) for v in rng.integers(0, self._noise_pad, 2))
            p = self.params
            noise = self._noise[k][dy : dy + p.height, dx : dx + p.width]
            img = cv2.addWeighted(img, gain, noise, 1.0, -128.0)  # noise bank is offset by 128
        elif gain != 1.0:
            img = cv2.convertScaleAbs(img, alpha=gain)
        if self.params.blur_sigma_px > 0:
            img = cv2.GaussianBlur(img, (0, 0), self.params.blur_sigma_px)
        return img
