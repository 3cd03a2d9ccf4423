"""Procedural textures: patterns in physical units, painted once per world into the atlas.

Every texture is a function of position on the surface in metres, so a stripe is
as wide on a near box as on a far one and the camera sees real perspective cues.
Each returns a mix weight p in [0, 1] between the surface's two colours, plus a
lightness modulation (grain, per-plank tone). A little grain and mottling is
added to every surface: even a "flat" painted box is not a perfectly uniform
colour in a real camera image.

Texture sets: the world generator draws obstacles, floors and walls from
`TEXTURE_SETS[split][role]`; the "heldout" set shares no texture with "train".
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["TEXTURE_KINDS", "TEXTURE_SETS", "paint_surface", "value_noise"]

TEXTURE_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "obstacle": ("flat", "noise", "stripes", "checker", "bricks"),
        "floor": ("wood", "tiles", "carpet"),
        "wall": ("plaster", "panels"),
    },
    "heldout": {
        "obstacle": ("dots", "chevron", "marble", "plaid"),
        "floor": ("terrazzo", "concrete"),
        "wall": ("wallpaper", "concrete"),
    },
}


def value_noise(
    height: int, width: int, cell_px: float, rng: np.random.Generator, octaves: int = 3
) -> np.ndarray:
    """Smooth fractal noise in [0, 1], float32 (height, width); features ~cell_px wide."""
    out = np.zeros((height, width), np.float32)
    amp, total = 1.0, 0.0
    cell = max(1.0, float(cell_px))
    for _ in range(octaves):
        gh = int(np.ceil(height / cell)) + 3
        gw = int(np.ceil(width / cell)) + 3
        grid = rng.random((gh, gw), dtype=np.float32)
        big = cv2.resize(grid, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
        oy = int(cell)
        ox = int(cell)
        out += amp * big[oy : oy + height, ox : ox + width]
        total += amp
        amp *= 0.5
        cell = max(1.0, cell / 2.0)
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / (hi - lo + 1e-6)


def _smooth_step(x: np.ndarray, edge: float, width: float) -> np.ndarray:
    return np.clip((x - edge) / max(width, 1e-6) + 0.5, 0.0, 1.0)


def _soft_square(u: np.ndarray, period: float, duty: float, soft: float) -> np.ndarray:
    """1 on a band `duty * period` wide in every period of u, 0 elsewhere; edges `soft` wide."""
    half = duty * period / 2
    d = np.abs(np.mod(u - half + period / 2, period) - period / 2)  # distance to a band centre
    return np.clip((half - d) / max(soft, 1e-9) + 0.5, 0.0, 1.0).astype(np.float32)


# Each texture: (X, Y, scale_m, px_per_m, rng) -> (p, tone) with X, Y in metres on the
# surface (already rotated), p the colour2 weight, tone a lightness factor around 1.
TextureFn = Callable[
    [np.ndarray, np.ndarray, float, float, np.random.Generator], tuple[np.ndarray, np.ndarray]
]


def _flat(X, Y, s, ppm, rng):
    return np.zeros_like(X), np.ones_like(X)


def _noise(X, Y, s, ppm, rng):
    n = value_noise(X.shape[0], X.shape[1], s * ppm, rng)
    return _smooth_step(n, 0.5, 0.35), np.ones_like(X)


def _stripes(X, Y, s, ppm, rng):
    soft = 1.5 / ppm
    return _soft_square(X, 2 * s, 0.5, soft), np.ones_like(X)


def _checker(X, Y, s, ppm, rng):
    a = np.floor(X / s).astype(np.int64) + np.floor(Y / s).astype(np.int64)
    p = (a & 1).astype(np.float32)
    return cv2.GaussianBlur(p, (0, 0), 0.7), np.ones_like(X)


def _bricks(X, Y, s, ppm, rng):
    row = np.floor(Y / s).astype(np.int64)
    xs = X + s * (row & 1)  # every other row shifted by half a brick (bricks are 2s long)
    col = np.floor(xs / (2 * s)).astype(np.int64)
    mortar = 0.12 * s
    fy = np.mod(Y, s)
    fx = np.mod(xs, 2 * s)
    p = ((fy < mortar) | (fx < mortar)).astype(np.float32)
    tone = 0.85 + 0.3 * _hash01(row, col, rng)
    return cv2.GaussianBlur(p, (0, 0), 0.6), tone.astype(np.float32)


def _dots(X, Y, s, ppm, rng):
    row = np.floor(Y / s)
    xs = X + 0.5 * s * (row.astype(np.int64) & 1)
    dx = np.mod(xs, s) - s / 2
    dy = np.mod(Y, s) - s / 2
    r = np.sqrt(dx * dx + dy * dy)
    return 1.0 - _smooth_step(r, 0.3 * s, 1.5 / ppm), np.ones_like(X)


def _chevron(X, Y, s, ppm, rng):
    zig = np.abs(np.mod(X / s, 2.0) - 1.0) * s
    return _soft_square(Y + zig, 2 * s, 0.5, 1.5 / ppm), np.ones_like(X)


def _marble(X, Y, s, ppm, rng):
    n = value_noise(X.shape[0], X.shape[1], 2 * s * ppm, rng, octaves=4)
    v = np.abs(np.sin((X + Y * 0.6) / s * np.pi + 6.0 * n))
    p = 1.0 - np.clip(v * 6.0, 0.0, 1.0)  # thin veins where the sine crosses zero
    return p.astype(np.float32), (0.95 + 0.1 * n).astype(np.float32)


def _plaid(X, Y, s, ppm, rng):
    soft = 1.5 / ppm
    a = _soft_square(X, 3 * s, 0.35, soft)
    b = _soft_square(Y, 3 * s, 0.35, soft)
    c = _soft_square(X + 1.2 * s, 3 * s, 0.08, soft)
    return np.clip(0.45 * a + 0.45 * b + 0.6 * c, 0.0, 1.0), np.ones_like(X)


def _wood(X, Y, s, ppm, rng):
    """Planks `s` wide along x, random lengths, streaky grain along the plank, dark seams."""
    h, w = X.shape
    plank = np.floor(Y / s).astype(np.int64)
    offs = _hash01(plank, np.zeros_like(plank), rng) * 8 * s
    length = 6 * s
    seg = np.floor((X + offs) / length).astype(np.int64)
    seams = ((np.mod(Y, s) < 0.04 * s) | (np.mod(X + offs, length) < 0.03 * s)).astype(np.float32)
    seams = cv2.GaussianBlur(seams, (0, 0), 0.6)
    # Grain: noise stretched 10x along the planks (features >= 3 px across them).
    short = value_noise(h, max(4, w // 10), max(3.0, 0.15 * s * ppm), rng, octaves=3)
    grain = cv2.resize(short, (w, h), interpolation=cv2.INTER_LINEAR)
    p = np.clip(0.6 * grain * (0.5 + _hash01(plank, seg, rng)), 0.0, 1.0)
    p = np.maximum(p, seams)
    tone = 0.85 + 0.3 * _hash01(plank * 7 + 3, seg, rng)
    return p.astype(np.float32), tone.astype(np.float32)


def _tiles(X, Y, s, ppm, rng):
    grout = 0.06 * s
    p = ((np.mod(X, s) < grout) | (np.mod(Y, s) < grout)).astype(np.float32)
    tone = 0.9 + 0.2 * _hash01(
        np.floor(X / s).astype(np.int64), np.floor(Y / s).astype(np.int64), rng
    )
    return cv2.GaussianBlur(p, (0, 0), 0.6), tone.astype(np.float32)


def _carpet(X, Y, s, ppm, rng):
    n = value_noise(X.shape[0], X.shape[1], s * ppm, rng, octaves=4)
    fine = rng.random(X.shape, dtype=np.float32)
    return np.clip(0.6 * n + 0.4 * fine, 0, 1) * 0.6, np.ones_like(X)


def _terrazzo(X, Y, s, ppm, rng):
    h, w = X.shape
    p = np.zeros((h, w), np.float32)
    n = int(h * w / max(1.0, (s * ppm) ** 2) * 40)
    for _ in range(min(n, 40000)):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = max(1, int(rng.uniform(0.02, 0.07) * s * ppm))
        cv2.circle(p, (cx, cy), r, float(rng.uniform(0.5, 1.0)), -1)
    return cv2.GaussianBlur(p, (0, 0), 0.7), np.ones_like(X)


def _concrete(X, Y, s, ppm, rng):
    n = value_noise(X.shape[0], X.shape[1], 4 * s * ppm, rng, octaves=4)
    pores = (rng.random(X.shape, dtype=np.float32) < 0.004).astype(np.float32)
    pores = cv2.GaussianBlur(pores, (0, 0), 0.8) * 4
    return np.clip(0.5 * n + pores, 0, 1), (0.92 + 0.16 * n).astype(np.float32)


def _plaster(X, Y, s, ppm, rng):
    n = value_noise(X.shape[0], X.shape[1], s * ppm, rng, octaves=3)
    return 0.25 * n, np.ones_like(X)


def _panels(X, Y, s, ppm, rng):
    gap = (np.mod(X, s) < 0.02 * s).astype(np.float32)
    tone = 0.93 + 0.14 * _hash01(np.floor(X / s).astype(np.int64), np.zeros(X.shape, np.int64), rng)
    return cv2.GaussianBlur(gap, (0, 0), 0.6), tone.astype(np.float32)


def _wallpaper(X, Y, s, ppm, rng):
    """A diamond trellis of thin lines with a small motif in every diamond."""
    du = np.abs(np.mod((X + Y) / s, 1.0) - 0.5)
    dv = np.abs(np.mod((X - Y) / s, 1.0) - 0.5)
    lines = 1.0 - _smooth_step(np.minimum(du, dv), 0.04, 0.03)
    motif = 1.0 - _smooth_step(du + dv, 0.12, 0.05)
    return np.maximum(0.7 * lines, 0.9 * motif).astype(np.float32), np.ones_like(X)


_HASH_SALT = 0x5DEECE66D


def _hash01(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer cell (a, b)."""
    salt = np.int64((int(rng.integers(1, 1 << 30)) * _HASH_SALT) & 0x7FFFFFFFFFFFFFFF)
    h = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663) ^ salt
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return ((h & 0xFFFF).astype(np.float32)) / 65536.0


TEXTURE_KINDS: dict[str, TextureFn] = {
    "flat": _flat,
    "noise": _noise,
    "stripes": _stripes,
    "checker": _checker,
    "bricks": _bricks,
    "dots": _dots,
    "chevron": _chevron,
    "marble": _marble,
    "plaid": _plaid,
    "wood": _wood,
    "tiles": _tiles,
    "carpet": _carpet,
    "terrazzo": _terrazzo,
    "concrete": _concrete,
    "plaster": _plaster,
    "panels": _panels,
    "wallpaper": _wallpaper,
}


def paint_surface(
    surface: object,
    width_px: int,
    height_px: int,
    px_per_m: float,
    *,
    origin_m: tuple[float, float] = (0.0, 0.0),
    wrap_x: bool = False,
) -> np.ndarray:
    """RGB float32 (height_px, width_px, 3) in [0, 1]: the surface's look, unlit.

    Column j, row i shows the point (origin + ((j + 0.5), (i + 0.5)) / px_per_m) of the
    surface. `wrap_x` makes the left and right edges meet without a seam (cylinders).
    `surface` is a `sim.world.Surface` (duck-typed to avoid an import cycle).
    """
    rng = np.random.default_rng([int(surface.seed) & 0xFFFFFFFF, 0x7E57])  # type: ignore[attr-defined]
    pad = 0
    if wrap_x:
        pad = min(width_px, max(4, width_px // 6))
    w = width_px + pad
    xs = origin_m[0] + (np.arange(w, dtype=np.float32) + 0.5) / px_per_m
    ys = origin_m[1] + (np.arange(height_px, dtype=np.float32) + 0.5) / px_per_m
    X0, Y0 = np.meshgrid(xs, ys)
    ang = float(surface.angle_rad)  # type: ignore[attr-defined]
    if ang:
        c, s = np.cos(ang), np.sin(ang)
        X, Y = c * X0 + s * Y0, -s * X0 + c * Y0
    else:
        X, Y = X0, Y0
    fn = TEXTURE_KINDS[surface.texture]  # type: ignore[attr-defined]
    p, tone = fn(X, Y, float(surface.scale_m), float(px_per_m), rng)  # type: ignore[attr-defined]
    p = np.asarray(p, np.float32)
    tone = np.asarray(tone, np.float32)
    # Every real surface has some grain and mottling.
    mottle = value_noise(height_px, w, max(2.0, 0.3 * px_per_m), rng, octaves=2)
    grain = rng.normal(0.0, 1.0, (height_px, w)).astype(np.float32)
    tone = tone * (0.94 + 0.12 * mottle) * (1.0 + 0.025 * grain)
    c1 = np.asarray(surface.color, np.float32)  # type: ignore[attr-defined]
    c2 = np.asarray(surface.second_color, np.float32)  # type: ignore[attr-defined]
    rgb = (c1[None, None, :] * (1.0 - p[..., None]) + c2[None, None, :] * p[..., None]) * tone[
        ..., None
    ]
    if wrap_x and pad:
        # Cross-fade the extra columns into the first ones so that column w-1 meets column 0.
        alpha = np.linspace(0.0, 1.0, pad, dtype=np.float32)[None, :, None]
        head = rgb[:, :pad]
        tail = rgb[:, width_px:]
        rgb = rgb[:, :width_px].copy()
        rgb[:, :pad] = head * alpha + tail * (1.0 - alpha)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)
