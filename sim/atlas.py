"""The texture atlas of a world: every surface painted once, lit, packed into one image.

Lighting that does not depend on the camera (face orientation against the light,
darkening near the floor, contact shadows and cast shadows on the floor) is baked
in here, so that the renderer only looks colours up. Each surface gets a region
of the 4-channel atlas (BGRA: OpenCV remaps 4-channel images much faster than
3-channel ones) with a 2-pixel border against bilinear bleeding.

Region origins are stored so that `origin + coordinate_m * px_per_m` is the atlas
pixel (x, y) of a surface point, with pixel centres at integers (cv2.remap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sim.textures import paint_surface, value_noise
from sim.world import Cylinder, World

__all__ = ["Atlas", "build_atlas"]

ATLAS_WIDTH = 2048
PAD = 2
FLOOR_MARGIN_M = 0.05
MAX_REGION_PX = ATLAS_WIDTH - 2 * PAD
BACKDROP_W = 960  # per turn; stored twice (4 pi) so no modulo is needed
BACKDROP_H = 192
BACKDROP_TAN_MAX = 1.5  # the backdrop spans elevations with tan in [0, 1.5]


@dataclass(frozen=True, eq=False)
class Atlas:
    """The atlas image and where each surface lives in it (origins already offset by -0.5)."""

    image: np.ndarray  # (H, W, 4) uint8 BGRA
    floor_origin: tuple[float, float]  # atlas (x, y) of world point (xmin - margin, ymin - margin)
    floor_ppm: float
    floor_bounds_m: tuple[float, float, float, float]  # painted floor extent
    far_floor: tuple[float, float]  # a uniform patch of the mean floor colour
    arena_origin: np.ndarray  # (4, 2) per arena wall; x along the wall, y down from its top
    arena_ppm: np.ndarray  # (4,)
    box_face_origin: np.ndarray  # (B, 4, 2)
    box_face_ppm: np.ndarray  # (B, 4)
    box_lid_origin: np.ndarray  # (B, 2) atlas of the lid's local (-L/2, -W/2) corner
    box_lid_ppm: np.ndarray  # (B,)
    cyl_side_origin: np.ndarray  # (C, 2); x = arc length from angle -pi
    cyl_side_ppm: np.ndarray  # (C,)
    cyl_lid_origin: np.ndarray  # (C, 2) atlas of the lid's local (-r, -r) corner
    cyl_lid_ppm: np.ndarray  # (C,)
    backdrop_origin: tuple[float, float]  # x = azimuth in [0, 4 pi) (two turns) * px_per_rad
    backdrop_px_per_rad: float
    backdrop_px_per_tan: float


def _light_vector(world: World) -> np.ndarray:
    lt = world.lighting
    ce = math.cos(lt.elevation_rad)
    return np.array(
        [ce * math.cos(lt.azimuth_rad), ce * math.sin(lt.azimuth_rad), math.sin(lt.elevation_rad)]
    )


def _vertical_shade(world: World, normal_xy: np.ndarray) -> np.ndarray:
    """Brightness of vertical faces with the given outward normals (..., 2)."""
    lt = world.lighting
    L = _light_vector(world)
    diffuse = np.maximum(0.0, normal_xy[..., 0] * L[0] + normal_xy[..., 1] * L[1])
    return lt.ambient + (1.0 - lt.ambient) * diffuse


def _horizontal_shade(world: World) -> float:
    lt = world.lighting
    return lt.ambient + (1.0 - lt.ambient) * math.sin(lt.elevation_rad)


def _to_bgra(rgb: np.ndarray, world: World, shade: np.ndarray | float) -> np.ndarray:
    """Lit RGB float -> BGRA uint8 (brightness and colour cast of the world's lighting)."""
    lt = world.lighting
    gain = np.asarray(lt.tint, np.float32) * lt.brightness
    shade = np.asarray(shade, np.float32)
    if shade.ndim == 2:
        shade = shade[..., None]
    lit = np.clip(rgb * shade * gain[None, None, :], 0.0, 1.0)
    bgr = (lit[..., ::-1] * 255.0 + 0.5).astype(np.uint8)
    alpha = np.full((*bgr.shape[:2], 1), 255, np.uint8)
    return np.concatenate([bgr, alpha], axis=2)


def _face_ao(height_px: int, ppm: float, top_m: float) -> np.ndarray:
    """Darkening of a vertical face near the floor (rows from the top at `top_m`)."""
    z = top_m - (np.arange(height_px, dtype=np.float32) + 0.5) / ppm
    return (1.0 - 0.28 * np.exp(-np.maximum(z, 0.0) / 0.02))[:, None]


def _fit_ppm(ppm: float, *lengths_m: float) -> float:
    """`ppm`, lowered where needed so that the longest side fits in one atlas row."""
    longest = max(lengths_m)
    return min(ppm, (MAX_REGION_PX - 2) / max(longest, 1e-6)) if longest > 0 else ppm


class _Packer:
    """Shelf packing of padded regions into rows of ATLAS_WIDTH pixels."""

    def __init__(self) -> None:
        self.items: list[tuple[str, np.ndarray, bool]] = []

    def add(self, key: str, bgra: np.ndarray, wrap_x: bool = False) -> None:
        self.items.append((key, bgra, wrap_x))

    def pack(self) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
        order = sorted(range(len(self.items)), key=lambda i: -self.items[i][1].shape[0])
        places: dict[str, tuple[int, int]] = {}
        x = y = shelf_h = 0
        padded = {}
        for i in order:
            key, img, wrap = self.items[i]
            border = cv2.BORDER_WRAP if wrap else cv2.BORDER_REPLICATE
            p = cv2.copyMakeBorder(img, 0, 0, PAD, PAD, border)
            p = cv2.copyMakeBorder(p, PAD, PAD, 0, 0, cv2.BORDER_REPLICATE)
            h, w = p.shape[:2]
            if x + w > ATLAS_WIDTH:
                x, y, shelf_h = 0, y + shelf_h, 0
            places[key] = (x + PAD, y + PAD)
            padded[key] = (x, y, p)
            x += w
            shelf_h = max(shelf_h, h)
        height = y + shelf_h
        atlas = np.zeros((max(height, 1), ATLAS_WIDTH, 4), np.uint8)
        for x0, y0, p in padded.values():
            atlas[y0 : y0 + p.shape[0], x0 : x0 + p.shape[1]] = p
        return atlas, places


def _floor_image(world: World, ppm_wanted: float) -> tuple[np.ndarray, float, tuple]:
    xmin, ymin, xmax, ymax = world.arena.bounds
    x0, y0 = xmin - FLOOR_MARGIN_M, ymin - FLOOR_MARGIN_M
    w_m, h_m = xmax - xmin + 2 * FLOOR_MARGIN_M, ymax - ymin + 2 * FLOOR_MARGIN_M
    ppm = _fit_ppm(ppm_wanted, w_m, h_m)
    w_px, h_px = math.ceil(w_m * ppm), math.ceil(h_m * ppm)
    rgb = paint_surface(world.floor, w_px, h_px, ppm, origin_m=(x0, y0))
    # Shadows: contact darkening around every footprint, and the cast shadow away from the light.
    lt = world.lighting
    contact = np.zeros((h_px, w_px), np.float32)
    cast = np.zeros((h_px, w_px), np.float32)
    az = lt.azimuth_rad
    cot = 1.0 / math.tan(lt.elevation_rad)

    def to_px(pts: np.ndarray) -> np.ndarray:
        return np.round((pts - np.array([x0, y0])) * ppm * 16).astype(np.int32)

    for ob in world.obstacles:
        if isinstance(ob, Cylinder):
            ang = np.linspace(0, 2 * np.pi, 32, endpoint=False)
            foot = np.stack(
                [ob.x_m + ob.radius_m * np.cos(ang), ob.y_m + ob.radius_m * np.sin(ang)], 1
            )
        else:
            foot = ob.as_box().corners()
        reach = min(ob.height_m * cot, 1.5)
        shift = -reach * np.array([math.cos(az), math.sin(az)])
        hull = cv2.convexHull(to_px(np.concatenate([foot, foot + shift])).reshape(-1, 1, 2))
        cv2.fillConvexPoly(cast, hull, 1.0, lineType=cv2.LINE_AA, shift=4)
        cv2.fillConvexPoly(
            contact, to_px(foot).reshape(-1, 1, 2), 1.0, lineType=cv2.LINE_AA, shift=4
        )
    # Arena walls cast shadows and contact darkening too.
    wall_px = max(1, round(0.004 * ppm))
    corners = np.array([[xmin, ymin], [xmin, ymax], [xmax, ymax], [xmax, ymin]])
    cv2.polylines(contact, [to_px(corners).reshape(-1, 1, 2)], True, 1.0, wall_px, cv2.LINE_AA, 4)
    contact_b = np.clip(cv2.GaussianBlur(contact, (0, 0), max(0.6, 0.02 * ppm)), 0.0, 1.0)
    cast_b = np.clip(cv2.GaussianBlur(cast, (0, 0), max(0.6, 0.025 * ppm)), 0.0, 1.0)
    shade = _horizontal_shade(world) * (1.0 - lt.shadow_strength * cast_b)
    shade *= 1.0 - 0.35 * contact_b
    bgra = _to_bgra(rgb, world, shade)
    return bgra, ppm, (x0, y0, x0 + w_px / ppm, y0 + h_px / ppm)


def _backdrop_image(world: World) -> np.ndarray:
    """A room beyond the walls: light upper part, furniture-like blobs low down, blurred."""
    b = world.backdrop
    rng = np.random.default_rng([b.seed & 0xFFFFFFFF, 0xBAC])
    h, w = BACKDROP_H, BACKDROP_W
    rows = (np.arange(h, dtype=np.float32) + 0.5) / h  # 0 top .. 1 bottom (horizon)
    top = np.asarray(b.color, np.float32)
    low = np.asarray(b.color2, np.float32)
    mix = np.clip(rows * 1.4 - 0.2, 0, 1)[:, None, None]
    rgb = np.broadcast_to(top * (1 - mix) + low * mix, (h, w, 3)).copy()
    for _ in range(int(rng.integers(6, 14))):
        cw = int(rng.integers(w // 40, w // 8))
        ch = int(rng.integers(h // 6, int(h * 0.7)))
        x = int(rng.integers(0, w))
        col = np.clip(low * rng.uniform(0.6, 1.3) + rng.uniform(-0.08, 0.08, 3), 0, 1)
        for dx in (0, -w):  # draw twice so that blobs wrap around the seam
            cv2.rectangle(rgb, (x + dx, h - ch), (x + dx + cw, h), col.tolist(), -1)
    for _ in range(int(rng.integers(1, 4))):  # windows / lamps: bright patches high up
        cw = int(rng.integers(w // 30, w // 10))
        x = int(rng.integers(0, w))
        y = int(rng.integers(h // 10, h // 3))
        for dx in (0, -w):
            cv2.rectangle(rgb, (x + dx, y), (x + dx + cw, y + h // 5), (0.95, 0.95, 0.92), -1)
    rgb *= (0.9 + 0.2 * value_noise(h, w, 24, rng))[..., None]
    rgb = _wrap_blur(rgb, 3.0)
    return _to_bgra(np.clip(rgb, 0, 1), world, 1.0)


def _wrap_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    pad = int(3 * sigma) + 1
    p = cv2.copyMakeBorder(img, 0, 0, pad, pad, cv2.BORDER_WRAP)
    p = cv2.GaussianBlur(p, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return p[:, pad:-pad]


def build_atlas(world: World, px_per_m: float = 200.0) -> Atlas:
    """Paint, light and pack every surface of `world` (deterministic: seeds come from it)."""
    geo = world.geometry()
    packer = _Packer()
    hshade = _horizontal_shade(world)

    floor, floor_ppm, floor_bounds = _floor_image(world, px_per_m)
    packer.add("floor", floor)
    mean = floor[..., :3].reshape(-1, 3).mean(axis=0)
    far = np.empty((4, 4, 4), np.uint8)
    far[..., :3] = np.round(mean).astype(np.uint8)
    far[..., 3] = 255
    packer.add("far_floor", far)
    backdrop = _backdrop_image(world)
    packer.add("backdrop", np.concatenate([backdrop, backdrop], axis=1))  # covers 0..4 pi

    # Arena walls: segments ordered clockwise, inside on the right; x runs along the segment.
    arena_ppm = np.zeros(4)
    hgt = world.arena.wall_height_m
    for k in range(4):
        seg = geo.segments[geo.num_boxes * 4 + k]
        length = math.hypot(seg[2] - seg[0], seg[3] - seg[1])
        ppm = _fit_ppm(px_per_m, length, hgt)
        arena_ppm[k] = ppm
        w_px, h_px = max(1, math.ceil(length * ppm)), max(1, math.ceil(hgt * ppm))
        rgb = paint_surface(world.arena.surface, w_px, h_px, ppm, origin_m=(k * 7.31, 0.0))
        d = np.array([seg[2] - seg[0], seg[3] - seg[1]]) / length
        inward = np.array([d[1], -d[0]])
        shade = _vertical_shade(world, inward) * _face_ao(h_px, ppm, hgt)
        packer.add(f"arena{k}", _to_bgra(rgb, world, shade))

    nb, nc = geo.num_boxes, geo.num_circles
    box_face_ppm = np.zeros((nb, 4))
    box_lid_ppm = np.zeros(nb)
    for b in range(nb):
        ob = world.obstacles[geo.box_source[b]]
        box = ob.as_box()
        corners = geo.box_corners[b]
        for f in range(4):
            p0, p1 = corners[f], corners[(f + 1) % 4]
            length = float(np.hypot(*(p1 - p0)))
            ppm = _fit_ppm(px_per_m, length, box.height_m)
            box_face_ppm[b, f] = ppm
            w_px, h_px = max(1, math.ceil(length * ppm)), max(1, math.ceil(box.height_m * ppm))
            rgb = paint_surface(box.surface, w_px, h_px, ppm, origin_m=(f * 3.17, 0.0))
            d = (p1 - p0) / max(length, 1e-9)
            outward = np.array([d[1], -d[0]])
            shade = _vertical_shade(world, outward) * _face_ao(h_px, ppm, box.height_m)
            packer.add(f"box{b}f{f}", _to_bgra(rgb, world, shade))
        ppm = _fit_ppm(px_per_m, box.length_m, box.width_m)
        box_lid_ppm[b] = ppm
        w_px, h_px = max(1, math.ceil(box.length_m * ppm)), max(1, math.ceil(box.width_m * ppm))
        rgb = paint_surface(box.surface, w_px, h_px, ppm, origin_m=(11.3, 5.9))
        packer.add(f"box{b}lid", _to_bgra(rgb, world, hshade * 1.05))

    cyl_side_ppm = np.zeros(nc)
    cyl_lid_ppm = np.zeros(nc)
    for c in range(nc):
        cyl = world.obstacles[geo.circle_source[c]]
        assert isinstance(cyl, Cylinder)
        circ = 2 * math.pi * cyl.radius_m
        ppm = _fit_ppm(px_per_m, circ, cyl.height_m)
        w_px, h_px = max(4, math.ceil(circ * ppm)), max(1, math.ceil(cyl.height_m * ppm))
        ppm_x = w_px / circ  # exact wrap: the texture spans the circumference
        cyl_side_ppm[c] = ppm_x
        rgb = paint_surface(cyl.surface, w_px, h_px, ppm_x, wrap_x=True)
        ang = (np.arange(w_px) + 0.5) / w_px * 2 * math.pi - math.pi  # x = arc from angle -pi
        normals = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        shade = _vertical_shade(world, normals)[None, :] * _face_ao(h_px, ppm_x, cyl.height_m)
        packer.add(f"cyl{c}", _to_bgra(rgb, world, shade), wrap_x=True)
        ppm = _fit_ppm(px_per_m, 2 * cyl.radius_m)
        cyl_lid_ppm[c] = ppm
        n = max(1, math.ceil(2 * cyl.radius_m * ppm))
        rgb = paint_surface(cyl.surface, n, n, ppm, origin_m=(4.7, 8.1))
        packer.add(f"cyl{c}lid", _to_bgra(rgb, world, hshade * 1.05))

    image, places = packer.pack()

    def origin(key: str) -> np.ndarray:
        x, y = places[key]
        return np.array([x - 0.5, y - 0.5])

    fx, fy = places["far_floor"]
    return Atlas(
        image=image,
        floor_origin=tuple(origin("floor")),
        floor_ppm=floor_ppm,
        floor_bounds_m=floor_bounds,
        far_floor=(fx + 1.5, fy + 1.5),
        arena_origin=np.array([origin(f"arena{k}") for k in range(4)]),
        arena_ppm=arena_ppm,
        box_face_origin=np.array(
            [[origin(f"box{b}f{f}") for f in range(4)] for b in range(nb)]
        ).reshape(nb, 4, 2),
        box_face_ppm=box_face_ppm,
        box_lid_origin=np.array([origin(f"box{b}lid") for b in range(nb)]).reshape(nb, 2),
        box_lid_ppm=box_lid_ppm,
        cyl_side_origin=np.array([origin(f"cyl{c}") for c in range(nc)]).reshape(nc, 2),
        cyl_side_ppm=cyl_side_ppm,
        cyl_lid_origin=np.array([origin(f"cyl{c}lid") for c in range(nc)]).reshape(nc, 2),
        cyl_lid_ppm=cyl_lid_ppm,
        backdrop_origin=tuple(origin("backdrop")),
        backdrop_px_per_rad=BACKDROP_W / (2 * math.pi),
        backdrop_px_per_tan=BACKDROP_H / BACKDROP_TAN_MAX,
    )
