"""Forward pinhole camera renderer in numpy + OpenCV (no GPU, no display).

How a frame is made (all vectorised, about a hundred array operations per frame):

1. A *level panorama* is traced in (heading, elevation) coordinates: one 2-D ray per
   panorama column (a fixed heading relative to the robot) is cast against every
   box, cylinder and the arena walls. Because every obstacle is an upright prism
   standing on the floor, each hit covers one interval of elevations in its column:
   from its base (-z / t_in) to its top ((h - z) / t_in), plus its lid up to
   (h - z) / t_out when it is lower than the camera (for the arena wall: the far floor
   up to the horizon). Sorting the hits from near to far and taking the running
   maximum of their row bounds gives, per column, a short list of runs (floor, face,
   lid, ..., arena wall, far floor, backdrop) with exact occlusion.
2. For each run the atlas coordinate is an affine function of one per-row quantity
   (tan(elevation) on faces, floor distance on floor and lids), so the whole
   panorama's texture coordinates come from `np.repeat` of per-run coefficients
   and two multiply-adds, and one `cv2.remap` of the lit texture atlas colours it.
3. The panorama goes into the pitched pinhole image: above 160x120 by a fixed gather
   (each pixel takes its nearest panorama pixel: computed once per camera), smaller
   images by a fixed bilinear `cv2.remap` (anti-aliased). Perspective, converging
   verticals and the horizon at cy - fy tan(pitch) come out exact.
4. Optional motion blur (a line kernel, `Renderer.render(blur_px=...)`), then frame
   brightness (slow flicker), vignetting, sensor noise (a pre-drawn noise bank at a
   random offset per frame) and optional optical blur are applied last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from pinhole import Pinhole
from sim.atlas import BACKDROP_TAN_MAX, Atlas, build_atlas
from sim.checks import check_fields
from sim.errors import SimError
from sim.world import World

__all__ = ["CameraParams", "Renderer", "motion_blur", "motion_blur_kernel"]

_MAX_FLOOR_DIST_M = 1e3
_MAP_WIDTH_PX = 256  # the fast path remaps its panorama pixels as rows of this many
# Layer sort keys: column * _KEY_SPAN + distance (m) for hits, + _KEY_ARENA for the arena
# wall (after every object, as objects stand inside the arena), + _KEY_MISS for misses.
_KEY_SPAN, _KEY_ARENA, _KEY_MISS = 4096.0, 2048.0, 3072.0
# Layer fields (float64): the tan(elevation) where its four runs end is _NUM + k over
# _DEN + k: -z / t_in (base), (h - z) / t_in (top), lid (h - z) / t_out (or -inf: no lid),
# extra -inf / 1 (the arena wall's: +inf, the backdrop to the top); -px/m of its face.
_NUM, _TOP, _LID, _EXTRA, _DEN, _ONE, _NEG_PPM, _N_FIELDS = 0, 1, 2, 3, 4, 7, 8, 9
_FACE_A, _LID_A, _LID_G = 0, 1, 2  # complex layer fields
# Four runs per layer (floor, face, lid, extra): the face and the extra run (the backdrop
# after the arena wall) are affine in tan(elevation), floor and lids in floor distance.
_RUN_USES_T = np.array([0, 0xFFFFFFFF, 0, 0xFFFFFFFF], np.uint32)


@dataclass(frozen=True)
class CameraParams(Pinhole):
    """The simulated camera: the project's one pinhole model (`pinhole.Pinhole`: resolution,
    intrinsics, mount, their geometry; the defaults of robot_ssl's CameraSpec), plus its
    rate and the image degradations."""

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


def pixel_angles(params: CameraParams) -> tuple[np.ndarray, np.ndarray]:
    """Heading psi (left positive) and elevation e (up positive), radians, of every pixel's
    ray relative to the robot's level frame: (H, W) each (`Pinhole.pixel_angles`)."""
    return params.pixel_angles()


@lru_cache(maxsize=512)
def _line_kernel(bx_16th: int, by_16th: int) -> np.ndarray:
    """motion_blur_kernel for a blur vector given in 1/16 pixel (cached: read-only)."""
    bx, by = bx_16th / 16.0, by_16th / 16.0
    n = math.ceil(16 * math.hypot(bx, by)) + 1
    s = (np.arange(n) + 0.5) / n - 0.5  # midpoints of n equal pieces of the exposure
    rx, ry = math.floor(abs(bx) / 2) + 1, math.floor(abs(by) / 2) + 1
    x, y = s * bx + rx, s * by + ry  # sample points, kernel pixel coordinates
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    k = np.zeros((2 * ry + 2, 2 * rx + 2))
    for dy, wy in ((0, 1 - fy), (1, fy)):  # bilinear splat of each sample point
        for dx, wx in ((0, 1 - fx), (1, fx)):
            np.add.at(k, (y0 + dy, x0 + dx), wy * wx)
    k = k[: 2 * ry + 1, : 2 * rx + 1]  # the extra row/column only ever gets zero weight
    while k.shape[0] > 1 and not k[0].any() and not k[-1].any():  # trim, keeping it centred
        k = k[1:-1]
    while k.shape[1] > 1 and not k[:, 0].any() and not k[:, -1].any():
        k = k[:, 1:-1]
    k = (k / k.sum()).astype(np.float32)
    k.flags.writeable = False
    return k


def motion_blur_kernel(bx_px: float, by_px: float) -> np.ndarray:
    """Normalised float32 kernel (odd sizes, centred) of a linear smear along the pixel
    vector (bx, by): the segment from -b/2 to +b/2 (the exposure centred on the frame
    time), sampled densely and splatted bilinearly, so that the smear grows continuously
    with |b| (quantised to 1/16 pixel). Pure horizontal vectors give a single row."""
    qx, qy = round(bx_px * 16), round(by_px * 16)
    if qx < 0 or (qx == 0 and qy < 0):  # the centred segment does not depend on the sign
        qx, qy = -qx, -qy
    return _line_kernel(qx, qy)


def motion_blur(image: np.ndarray, bx_px: float, by_px: float) -> np.ndarray:
    """`image` smeared along the pixel vector (bx, by) (camera motion during the exposure)
    with motion_blur_kernel; the image itself when |b| < 0.5 pixel. Borders replicate."""
    if math.hypot(bx_px, by_px) < 0.5:
        return image
    kernel = motion_blur_kernel(bx_px, by_px)
    if kernel.size == 3:  # [a, 1 - 2a, a] (|b| < 2) is a Gaussian: OpenCV's fixed-point
        # Gaussian filter is ~1.7x faster than filter2D (weights rounded to 1/256).
        edge, centre = float(kernel.flat[0]), float(kernel.flat[1])
        sigma = math.sqrt(-0.5 / math.log(edge / centre))
        return cv2.GaussianBlur(
            image, kernel.shape[::-1], sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE
        )
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)


class Renderer:
    """Renders one world through one camera. Build once (atlas, fixed maps), render often.

    Rendering keeps no per-frame state in the renderer: one renderer may serve several
    threads."""

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
        self.psi0, self.d_psi = psi0, d_psi
        self._dir_psi = np.exp(1j * self.psi)  # column headings as unit complex numbers
        self.e0, self.d_e = e0, d_e
        tan_rows = np.tan(e0 + d_e * np.arange(self.n_rows))
        self.T = tan_rows.astype(np.float32)  # tan(elevation) per panorama row
        with np.errstate(divide="ignore"):
            D = np.where(self.T < 0, p.z_m / -tan_rows, 0.0)
        self.D = np.minimum(D, _MAX_FLOOR_DIST_M).astype(np.float32)  # floor distance per row
        # Output pixel -> panorama (x = row along elevation, y = column along heading).
        map_x = ((elev - e0) / d_e).astype(np.float32)
        map_y = ((psi - psi0) / d_psi).astype(np.float32)
        self.antialias = p.antialias if p.antialias is not None else p.width * p.height <= 160 * 120
        # Rows [lo, hi) of each panorama column that the image uses (all when antialiased).
        lo = np.zeros(self.n_cols, np.int64)
        hi = np.full(self.n_cols, self.n_rows, np.int64)
        self._n_pad = 0
        if self.antialias:  # colour the panorama, then resample it bilinearly
            self._out_m1, self._out_m2 = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
        else:  # colour the used panorama pixels, then each image pixel takes its nearest
            i = np.clip(np.rint(map_x), 0, self.n_rows - 1).astype(np.int64).ravel()
            j = np.clip(np.rint(map_y), 0, self.n_cols - 1).astype(np.int64).ravel()
            lo = np.full(self.n_cols, self.n_rows, np.int64)
            hi = np.zeros(self.n_cols, np.int64)
            np.minimum.at(lo, j, i)
            np.maximum.at(hi, j, i + 1)
            hi = np.maximum(hi, lo)  # unused columns: empty windows
            start = np.concatenate([[0], np.cumsum(hi - lo)[:-1]])
            self._out_index = start[j] + (i - lo[j])
            # cv2.remap wants maps shorter than 32767 pixels a side: the colouring remap sees
            # the used pixels as rows of _MAP_WIDTH_PX, the last one padded.
            self._n_pad = -int((hi - lo).sum()) % _MAP_WIDTH_PX
        counts = hi - lo
        self._n_pixels = int(counts.sum())
        start = np.cumsum(counts) - counts  # first flat pixel of each column
        # A row bound b of column j is flat pixel start_j + clip(b, lo_j, hi_j) - lo_j.
        self._col_window = np.stack([lo, hi, start - lo], axis=1)
        # Per-pixel tan(elevation) and floor distance of the (windowed) panorama, flat.
        rows = np.arange(self._n_pixels) - np.repeat(start - lo, counts)
        pad = np.zeros(self._n_pad, np.float32)
        T_flat = np.concatenate([self.T[rows], pad])
        self._D_flat = np.concatenate([self.D[rows], pad])
        # Per-pixel choice between the two without np.where: with m = 0 or all ones per run,
        # V = D ^ ((T ^ D) & m) bit-wise is D where m = 0 and T where m = ~0.
        self._floor_bits = self._D_flat.view(np.uint32)
        self._flip_bits = T_flat.view(np.uint32) ^ self._floor_bits
        self._run_masks = np.tile(_RUN_USES_T, 1024)
        self._run_masks.flags.writeable = False

    def _row(self, tan_e: np.ndarray | float) -> np.ndarray:
        """First panorama row whose centre lies at or above elevation atan(tan_e), in
        [0, n_rows] (intp, same shape as tan_e; nan: undefined)."""
        r = np.arctan(tan_e)
        r -= self.e0
        r *= 1.0 / self.d_e
        np.ceil(r, out=r)
        np.clip(r, 0, self.n_rows, out=r)
        return r.astype(np.intp)

    def _setup_scene(self) -> None:
        geo = self.world.geometry()
        at = self.atlas
        z = self.params.z_m
        nb, nc = geo.num_boxes, geo.num_circles
        self.nb, self.nc = nb, nc
        boxes = [self.world.obstacles[i].as_box() for i in geo.box_source]
        height = np.concatenate([geo.box_height_m, geo.circle_height_m]).astype(np.float64)
        self.height = height
        # Boxes: centre, rotation into the box frame (complex), half extents (x, y), and per
        # face (row 4 b + f; faces in Box.corners order 0 +x, 1 +y, 2 -x, 3 -y) the atlas x
        # as ax0 + ax1 q (q: the entry point's local y on x faces, x on y faces), the atlas y
        # of the face's top seen from the camera height, and -px/m.
        self._box_c = np.array([complex(b.x_m, b.y_m) for b in boxes], np.complex128)
        self._box_rot = np.exp(-1j * np.array([b.yaw_rad for b in boxes], np.float64))
        half = np.array([(b.length_m / 2, b.width_m / 2) for b in boxes], np.float64)
        half = self._box_half = half.reshape(nb, 2)
        fo = at.box_face_origin.reshape(nb, 4, 2)
        fppm = at.box_face_ppm.reshape(nb, 4)
        along = self._box_half[:, [1, 0, 1, 0]]  # the half extent along each face
        sign = np.array([1.0, -1.0, -1.0, 1.0])
        self._face_table = np.stack(
            [
                fo[..., 0] + fppm * along,
                fppm * sign,
                fo[..., 1] + (height[:nb, None] - z) * fppm,
                -fppm,
            ],
            axis=-1,
        ).reshape(nb * 4, 4)
        # Cylinders: centre, r^2; atlas x = ax0 + ax1 * angle of the entry point, face top, -ppm.
        circ = geo.circles
        self._cyl_c = (circ[:, 0] + 1j * circ[:, 1]).astype(np.complex128)
        self._cyl_r2 = circ[:, 2] ** 2
        sppm = at.cyl_side_ppm
        so = at.cyl_side_origin.reshape(nc, 2)
        self._cyl_table = np.stack(
            [
                so[:, 0] + math.pi * circ[:, 2] * sppm,
                circ[:, 2] * sppm,
                so[:, 1] + (height[nb:] - z) * sppm,
                -sppm,
            ],
            axis=-1,
        ).reshape(nc, 4)
        # Lids (boxes then cylinders) are floor-like at height h in the object's own frame:
        # atlas = alpha + beta * camera position + G * ray direction * floor distance.
        rot = np.concatenate([self._box_rot, np.ones(nc, np.complex128)])
        centre = np.concatenate([self._box_c, self._cyl_c])
        lid_half = np.concatenate([half, circ[:, [2, 2]]]).reshape(nb + nc, 2)
        lid_o = np.concatenate([at.box_lid_origin.reshape(nb, 2), at.cyl_lid_origin.reshape(nc, 2)])
        lid_ppm = np.concatenate([at.box_lid_ppm, at.cyl_lid_ppm]).astype(np.float64)
        self._lid_beta = lid_ppm * rot
        self._lid_alpha = (
            lid_o[:, 0] + 1j * lid_o[:, 1]
            + lid_ppm * (lid_half[:, 0] + 1j * lid_half[:, 1] - centre * rot)
        )  # fmt: skip
        low = height < z
        self._lid_g = lid_ppm * np.where(low, (z - height) / z, 0.0) * rot
        # Per object, the layer fields _TOP.._EXTRA (no lid: the lid run ends at row 0).
        self._obj_fields = np.stack(
            [height - z, np.where(low, height - z, -np.inf), np.full(nb + nc, -np.inf)], axis=1
        )
        # Bounding circles of all objects (boxes then cylinders): the columns they may hit.
        self.obj_c = centre
        self.obj_r = np.concatenate([np.hypot(half[:, 0], half[:, 1]), circ[:, 2]])
        # Arena walls (World geometry order 0 x=xmin, 1 y=ymax, 2 x=xmax, 3 y=ymin): k, c, -px/m
        # (complex) such that the face atlas origin at the hit point h = hx + i hy is
        # Re(h k) + c (the atlas x along the wall, and i * the atlas y of the wall's top).
        # A wall's "lid" is the far floor up to the horizon (tan 0); its extra run, the
        # backdrop, ends at the top (tan +inf).
        xmin, ymin, xmax, ymax = self.world.arena.bounds
        self._arena_box = np.array([[xmin, ymin], [xmax, ymax]])
        ao, appm = at.arena_origin, at.arena_ppm
        HA = self.world.arena.wall_height_m
        top = ao[:, 1] + (HA - z) * appm
        self._wall_table = np.array(
            [
                [-1j * appm[0], ao[0, 0] - appm[0] * ymin + 1j * top[0], -appm[0]],
                [appm[1], ao[1, 0] - appm[1] * xmin + 1j * top[1], -appm[1]],
                [1j * appm[2], ao[2, 0] + appm[2] * ymax + 1j * top[2], -appm[2]],
                [-appm[3], ao[3, 0] + appm[3] * xmax + 1j * top[3], -appm[3]],
            ]
        )
        R = self.n_cols
        self._arena_layers = np.zeros((R, _N_FIELDS))  # the arena rows of the layer table
        self._arena_layers[:, _NUM] = -z
        self._arena_layers[:, _TOP : _EXTRA + 1] = [HA - z, 0.0, np.inf]
        self._arena_layers[:, _ONE] = 1.0
        self._arena_clayers = np.zeros((R, 3), np.complex128)
        self._arena_clayers[:, _LID_A] = complex(*at.far_floor)
        # Sort keys of the arena layers: after every hit of the column, before its misses.
        self._arena_key = _KEY_SPAN * np.arange(R) + _KEY_ARENA
        self._arena_cols = np.arange(R)
        self._obj_index = np.arange(nb + nc)
        self._pair_index = np.arange((nb + nc) * R)
        # Backdrop: atlas x = base + azimuth * px/rad per column, y at tan = BACKDROP_TAN_MAX.
        self._backdrop = (
            at.backdrop_origin[0] + self.psi * at.backdrop_px_per_rad
            + 1j * (at.backdrop_origin[1] + at.backdrop_px_per_tan * BACKDROP_TAN_MAX)
        )  # fmt: skip
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
        self._noise: list[tuple[np.ndarray, np.ndarray]] = []
        if p.noise_std > 0:
            rng = np.random.default_rng(0x5EED)
            shape = (p.height + self._noise_pad, p.width + self._noise_pad, 3)
            for _ in range(4):  # rounded, clipped to +-128; kept as positive and negative parts
                n = rng.standard_normal(shape, dtype=np.float32)
                n *= p.noise_std
                np.rint(n, out=n)
                np.clip(n, -128.0, 127.0, out=n)
                self._noise.append(
                    (np.maximum(n, 0).astype(np.uint8), np.maximum(-n, 0).astype(np.uint8))
                )

    # ------------------------------------------------------------------ rendering

    def camera_pose(self, robot_pose: np.ndarray) -> tuple[float, float, float]:
        """(x_m, y_m, yaw_rad) of the camera for a robot pose."""
        x, y, th = float(robot_pose[0]), float(robot_pose[1]), float(robot_pose[2])
        c, s = math.cos(th), math.sin(th)
        p = self.params
        return x + c * p.x_m - s * p.y_m, y + s * p.x_m + c * p.y_m, th

    def _coords(self, robot_pose: np.ndarray) -> np.ndarray:
        """Atlas coordinates (x + i y, complex64) of the panorama pixels the image uses,
        column after column (all n_cols x n_rows of them when antialiased), followed by the
        padding pixels of the fast path."""
        ox, oy, yaw = self.camera_pose(robot_pose)
        cam = complex(ox, oy)
        d = self._dir_psi * complex(math.cos(yaw), math.sin(yaw))  # ray directions (R,)
        at = self.atlas

        # --- layers: every (column, object) hit and each column's arena wall, sorted by
        # column, then near to far (a column's misses after its wall) -------------------
        key, cols, lay, clay = self._layers(cam, yaw, d)
        order = np.argsort(key, kind="stable")  # mostly sorted already: timsort is fast
        cols, lay, clay = cols[order], lay[order], clay[order]
        n = key.size

        # --- four runs per layer: floor up to its base, face up to its top, lid, extra
        # (the backdrop after the wall); each ends at the first row at or above a
        # tan(elevation), and the running maximum over a column's layers is the occlusion.
        with np.errstate(divide="ignore", invalid="ignore"):
            ends = self._row(lay[:, _NUM : _NUM + 4] / lay[:, _DEN : _DEN + 4])
        window = self._col_window[cols]  # lo, hi, flat offset: ends as flat pixel indices
        np.maximum(ends, window[:, :1], out=ends)
        np.minimum(ends, window[:, 1:2], out=ends)
        ends += window[:, 2:]
        flat_ends = np.maximum.accumulate(ends.ravel())
        lengths = np.empty_like(flat_ends)
        lengths[0] = flat_ends[0]
        np.subtract(flat_ends[1:], flat_ends[:-1], out=lengths[1:])
        lengths[-1] += self._n_pad

        # --- per run: atlas (x + iy) = A + P * V, V = floor distance D on floor and lid
        # runs and tan(elevation) T on faces and the backdrop (complex64: interleaved x, y).
        A = np.empty((n, 4), np.complex64)
        P = np.zeros((n, 4), np.complex64)
        fppm, fb = at.floor_ppm, at.floor_bounds_m
        A[:, 0] = complex(
            at.floor_origin[0] + fppm * (ox - fb[0]), at.floor_origin[1] + fppm * (oy - fb[1])
        )
        A[:, 1:3] = clay[:, :2]  # face and lid origins
        a0 = math.fmod(yaw, 2 * math.pi) + 2 * math.pi  # in (pi, 3pi): margins cover psi
        np.add(self._backdrop[cols], a0 * at.backdrop_px_per_rad, out=A[:, 3])
        d_layer = d[cols]
        np.multiply(d_layer, fppm, out=P[:, 0])
        with np.errstate(invalid="ignore"):  # misses: runs of no rows
            np.multiply(lay[:, _DEN], lay[:, _NEG_PPM], out=P[:, 1].imag)
            np.multiply(d_layer, clay[:, _LID_G], out=P[:, 2])
        P[:, 3] = -1j * at.backdrop_px_per_tan

        V = np.repeat(self._run_mask(n), lengths)
        V &= self._flip_bits
        V ^= self._floor_bits
        coords = np.repeat(P.ravel(), lengths)
        coords *= V.view(np.float32)
        coords += np.repeat(A.ravel(), lengths)
        coords[self._n_pixels :] = 0.0  # padding (after the last run, whatever it was)
        return coords

    def _run_mask(self, n_layers: int) -> np.ndarray:
        """(4 n_layers,) uint32 per run: all ones where it uses T, else zero."""
        mask = self._run_masks
        if mask.size < 4 * n_layers:  # grown (replaced, never written) for many layers
            mask = np.tile(_RUN_USES_T, 2 * n_layers)
            mask.flags.writeable = False
            self._run_masks = mask
        return mask[: 4 * n_layers]

    def _layers(
        self, cam: complex, yaw: float, d: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One layer per column (its arena wall) and per (column, object) pair whose ray
        may hit the object: sort keys (column major, distance minor, misses last), columns,
        float64 fields (n, _N_FIELDS) and complex128 fields (n, 3) (face atlas origin: x at
        the entry point + i y of the face top; lid atlas origin; lid direction multiplier)."""
        R = self.n_cols
        obj, col = self._candidates(cam, yaw)
        nbp = R + int(np.searchsorted(obj, self.nb))  # pairs with boxes come first
        n = R + obj.size
        key = np.empty(n)
        lay = np.empty((n, _N_FIELDS))
        clay = np.empty((n, 3), np.complex128)
        cols = np.concatenate([self._arena_cols, col])
        key[:R] = self._arena_key
        lay[:R] = self._arena_layers
        clay[:R] = self._arena_clayers
        lay[R:, _NUM] = -self.params.z_m
        lay[R:, _ONE] = 1.0
        lay[R:, _TOP : _EXTRA + 1] = self._obj_fields[obj]
        clay[R:, _LID_A] = (self._lid_alpha + self._lid_beta * cam)[obj]
        clay[R:, _LID_G] = self._lid_g[obj]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # Arena wall: where the ray leaves the arena's rectangle.
            d2 = d.view(np.float64).reshape(R, 2)
            inv = 1.0 / d2
            o_box = self._arena_box - np.array([cam.real, cam.imag])
            exit_xy = np.maximum(o_box[0] * inv, o_box[1] * inv)
            if nbp > R:  # slab test in each box's frame, x and y at once on (pairs, 2) views
                b, c = obj[: nbp - R], col[: nbp - R]
                rot = self._box_rot[b]
                dl = d[c] * rot  # ray directions in the box frames
                lo = (cam - self._box_c[b]) * rot  # camera in the box frames
                dl2 = dl.view(np.float64).reshape(-1, 2)
                inv = 1.0 / dl2
                mid = inv * lo.view(np.float64).reshape(-1, 2)
                half_w = np.abs(inv)
                half_w *= self._box_half[b]
                near, far = -mid - half_w, half_w - mid
                t_in = np.maximum(near[:, 0], near[:, 1])
                t_out = np.minimum(far[:, 0], far[:, 1])
                hit = (t_in <= t_out) & (t_in > 0.0)
                x_face = near[:, 0] > near[:, 1]
                pt = dl * t_in
                pt += lo  # entry points in the box frames
                neg = dl2 < 0.0
                face = np.where(x_face, np.where(neg[:, 0], 0, 2), np.where(neg[:, 1], 1, 3))
                ft = self._face_table[face + 4 * b]
                out = lay[R:nbp]
                out[:, _DEN : _DEN + 2] = t_in[:, None]
                out[:, _DEN + 2] = t_out
                out[:, _NEG_PPM] = ft[:, 3]
                fa = clay[R:nbp, _FACE_A]
                np.multiply(ft[:, 1], np.where(x_face, pt.imag, pt.real), out=fa.real)
                fa.real += ft[:, 0]
                fa.imag = ft[:, 2]
                key[R:nbp] = np.where(hit, t_in, _KEY_MISS)
            if nbp < n:  # ray-circle: entry at -b - sqrt(b^2 - c), b = d . rel
                k, c = obj[nbp - R :] - self.nb, col[nbp - R :]
                rel = cam - self._cyl_c[k]
                dc = d[c]
                b = (dc * rel.conj()).real
                disc = b * b
                disc -= rel.real**2 + rel.imag**2 - self._cyl_r2[k]
                root = np.sqrt(np.maximum(disc, 0.0))
                t_in = -b - root
                ct = self._cyl_table[k]
                out = lay[nbp:]
                out[:, _DEN : _DEN + 2] = t_in[:, None]
                np.subtract(root, b, out=out[:, _DEN + 2])
                out[:, _NEG_PPM] = ct[:, 3]
                fa = clay[nbp:, _FACE_A]
                pt = rel + t_in * dc  # entry points around the centres
                np.multiply(np.arctan2(pt.imag, pt.real), ct[:, 1], out=fa.real)
                fa.real += ct[:, 0]
                fa.imag = ct[:, 2]
                key[nbp:] = np.where((disc >= 0.0) & (t_in > 0.0), t_in, _KEY_MISS)
        key[R:] += _KEY_SPAN * col
        on_x = exit_xy[:, 0] < exit_xy[:, 1]  # through a wall at x = const
        tA = np.minimum(exit_xy[:, 0], exit_xy[:, 1])
        np.maximum(tA, 1e-3, out=tA)
        np.minimum(tA, 1e3, out=tA)
        pos2 = 2 * (d2 > 0.0)
        wt = self._wall_table[np.where(on_x, pos2[:, 0], 3 - pos2[:, 1])]
        pt = d * tA
        pt += cam  # where the rays leave
        lay[:R, _DEN : _DEN + 3] = tA[:, None]
        lay[:R, _NEG_PPM] = wt[:, 2].real
        clay[:R, _FACE_A] = wt[:, 1]
        clay[:R, _FACE_A].real += (pt * wt[:, 0]).real
        return key, cols, lay, clay

    def _candidates(self, cam: complex, yaw: float) -> tuple[np.ndarray, np.ndarray]:
        """(object, column) pairs whose ray may hit the object (its bounding circle spans
        the column's heading, with a margin), by object then column: two int arrays."""
        rel = (self.obj_c - cam) * complex(math.cos(yaw), -math.sin(yaw))  # camera frame
        dist = np.abs(rel)
        with np.errstate(divide="ignore"):
            half = np.arcsin(np.minimum(self.obj_r / dist, 1.0))
        half[dist <= self.obj_r] = 10.0  # inside the bounding circle: every column
        half += 2 * self.d_psi
        # Columns with |heading - mid| <= half; no wrap-around: |psi| < pi/2 < |difference|.
        mid = np.arctan2(rel.imag, rel.real)
        j0 = np.searchsorted(self.psi, mid - half)
        counts = np.searchsorted(self.psi, mid + half, side="right") - j0
        obj = np.repeat(self._obj_index, counts)
        col = self._pair_index[: obj.size] - np.repeat(np.cumsum(counts) - counts - j0, counts)
        return obj, col

    def render_clean(self, robot_pose: np.ndarray) -> np.ndarray:
        """The noise-free, flicker-free, unvignetted BGR image at a robot pose."""
        return cv2.cvtColor(self._render_bgra(robot_pose), cv2.COLOR_BGRA2BGR)

    def _render_bgra(self, robot_pose: np.ndarray) -> np.ndarray:
        coords = self._coords(robot_pose).view(np.float32)
        p = self.params
        if self.antialias:
            pano = cv2.remap(
                self.atlas_image,
                coords.reshape(self.n_cols, self.n_rows, 2),
                None,
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            return cv2.remap(pano, self._out_m1, self._out_m2, cv2.INTER_LINEAR)
        pano = cv2.remap(
            self.atlas_image,
            coords.reshape(-1, _MAP_WIDTH_PX, 2),
            None,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        # Each image pixel takes its nearest panorama pixel's colour (BGRA as one uint32).
        out = np.take(pano.view(np.uint32).ravel(), self._out_index, mode="wrap")
        return out.view(np.uint8).reshape(p.height, p.width, 4)

    def render(
        self,
        robot_pose: np.ndarray,
        t_s: float = 0.0,
        rng: np.random.Generator | None = None,
        blur_px: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """The camera image (BGR uint8, H x W x 3) at a robot pose and time `t_s` (for the
        slow lighting flicker); `rng` draws the per-frame noise (None: no noise, no jitter).

        `blur_px` = (bx, by): the camera motion during the exposure in pixels, smears the
        clean image along that vector (`motion_blur`) before vignetting and sensor noise;
        None or |b| < 0.5 pixel: no blur."""
        img = cv2.cvtColor(self._render_bgra(robot_pose), cv2.COLOR_BGRA2BGR)
        if blur_px is not None:
            img = motion_blur(img, float(blur_px[0]), float(blur_px[1]))
        lt = self.world.lighting
        gain = 1.0 + lt.flicker * math.sin(2 * math.pi * t_s / lt.flicker_period_s)
        if rng is not None:
            gain *= 1.0 + 0.005 * float(rng.standard_normal())
        if self._vignette is not None:
            img = cv2.multiply(img, self._vignette, scale=gain / 255.0)
        elif gain != 1.0:
            img = cv2.convertScaleAbs(img, alpha=gain)
        if rng is not None and self._noise:
            u = rng.random(3)  # one draw (much cheaper than three Generator.integers calls)
            k = int(u[0] * len(self._noise))
            dy, dx = int(u[1] * self._noise_pad), int(u[2] * self._noise_pad)
            p = self.params
            pos, neg = (n[dy : dy + p.height, dx : dx + p.width] for n in self._noise[k])
            cv2.add(img, pos, dst=img)  # saturating: img + noise clipped to [0, 255]
            cv2.subtract(img, neg, dst=img)
        if self.params.blur_sigma_px > 0:
            img = cv2.GaussianBlur(img, (0, 0), self.params.blur_sigma_px)
        return img
