"""Procedural worlds from a seed: arena, clutter, colours, textures and lighting.

`generate_world(seed, WorldGenConfig())` gives a training-style world;
`generate_world(seed, WorldGenConfig.heldout())` draws colours and textures that
no training world uses (other hues, other texture kinds), so that a model
evaluated there is tested on looks it never saw. Same seed and config, same world.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, fields

import numpy as np

from sim.errors import WorldError
from sim.textures import TEXTURE_SETS
from sim.world import Arena, Backdrop, Box, Cylinder, Lighting, Obstacle, Surface, Wall, World

__all__ = ["PALETTES", "WorldGenConfig", "generate_world"]

# Hue ranges (degrees) per split and role, with saturation/value ranges; "neutral" is the
# share of (at most slightly warm) greys. Held-out hues and tints appear in no train role.
PALETTES: dict[str, dict[str, dict[str, object]]] = {
    "train": {
        "obstacle": {"hues": ((0, 22), (42, 68), (95, 150), (205, 245)), "neutral": 0.15},
        "floor": {"hues": ((20, 42),), "sat": (0.15, 0.55), "val": (0.35, 0.8), "neutral": 0.35},
        "wall": {"hues": ((30, 60),), "sat": (0.0, 0.12), "val": (0.6, 0.95), "neutral": 0.5},
    },
    "heldout": {
        "obstacle": {"hues": ((268, 318), (168, 195), (326, 346)), "neutral": 0.0},
        "floor": {
            "hues": ((185, 235), (150, 175)),
            "sat": (0.18, 0.4),
            "val": (0.3, 0.75),
            "neutral": 0.0,
        },
        "wall": {
            "hues": ((268, 318), (168, 195)),
            "sat": (0.18, 0.35),
            "val": (0.6, 0.9),
            "neutral": 0.0,
        },
    },
}


@dataclass(frozen=True)
class WorldGenConfig:
    """Knobs of the generator. Ranges are (low, high), uniform unless said otherwise."""

    split: str = "train"  # palette and texture set: "train" or "heldout"
    arena_width_m: tuple[float, float] = (2.0, 3.5)
    arena_depth_m: tuple[float, float] = (1.8, 3.0)
    arena_wall_height_m: tuple[float, float] = (0.2, 0.4)
    num_boxes: tuple[int, int] = (3, 8)
    num_cylinders: tuple[int, int] = (1, 5)
    num_walls: tuple[int, int] = (0, 3)
    box_size_m: tuple[float, float] = (0.05, 0.4)
    box_height_m: tuple[float, float] = (0.05, 0.35)
    cylinder_radius_m: tuple[float, float] = (0.025, 0.15)
    cylinder_height_m: tuple[float, float] = (0.06, 0.35)
    wall_length_m: tuple[float, float] = (0.3, 1.2)
    wall_thickness_m: tuple[float, float] = (0.015, 0.06)
    wall_height_m: tuple[float, float] = (0.08, 0.35)
    min_gap_m: float = 0.24  # free space between obstacles (the robot is 0.16 m wide)
    start_clearance_m: float = 0.12  # free space around the robot's body at the start
    flat_share: float = 0.2  # share of obstacles with a plain (untextured) surface
    texture_scale_m: tuple[float, float] = (0.015, 0.08)
    ir_reflectance: tuple[float, float] = (0.6, 1.0)
    brightness: tuple[float, float] = (0.65, 1.3)
    warmth: tuple[float, float] = (-0.15, 0.15)  # colour temperature: + warm, - cool
    light_elevation_rad: tuple[float, float] = (0.45, 1.3)
    ambient: tuple[float, float] = (0.4, 0.7)
    shadow_strength: tuple[float, float] = (0.15, 0.5)
    flicker: tuple[float, float] = (0.0, 0.04)
    robot_radius_m: float = 0.08

    def __post_init__(self) -> None:
        if self.split not in PALETTES:
            raise WorldError(
                f"worldgen: split must be one of {sorted(PALETTES)}, got {self.split!r}"
            )
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and (len(v) != 2 or v[0] > v[1]):
                raise WorldError(f"worldgen: {f.name} must be (low, high) with low <= high")
            if isinstance(v, tuple) and f.name != "warmth" and v[0] < 0:
                raise WorldError(f"worldgen: {f.name} must not be negative")

    @classmethod
    def heldout(cls, **overrides: object) -> WorldGenConfig:
        """The held-out look: unseen hues and texture kinds, same geometry statistics."""
        return cls(split="heldout", **overrides)  # type: ignore[arg-type]


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _i(rng: np.random.Generator, r: tuple[int, int]) -> int:
    return int(rng.integers(r[0], r[1] + 1))


def _round(x: float) -> float:
    return round(float(x), 4)


def _color(rng: np.random.Generator, spec: dict[str, object]) -> tuple[float, float, float]:
    hues = spec["hues"]
    sat = spec.get("sat", (0.45, 0.9))
    val = spec.get("val", (0.35, 0.9))
    if rng.random() < float(spec.get("neutral", 0.0)):  # type: ignore[arg-type]
        h = rng.uniform(20, 60) / 360.0  # greys, at most slightly warm
        s = rng.uniform(0.0, 0.1)
        v = rng.uniform(0.2, 0.9)
    else:
        lo, hi = hues[int(rng.integers(len(hues)))]  # type: ignore[index,arg-type]
        h = rng.uniform(lo, hi) / 360.0
        s = rng.uniform(*sat)  # type: ignore[misc]
        v = rng.uniform(*val)  # type: ignore[misc]
    return tuple(_round(c) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _second_color(rng: np.random.Generator, c: tuple[float, float, float], spec) -> tuple:
    if rng.random() < 0.5:  # a shade of the same colour
        k = rng.uniform(0.45, 0.8) if rng.random() < 0.7 else rng.uniform(1.2, 1.5)
        return tuple(_round(min(1.0, x * k)) for x in c)
    return _color(rng, spec)


def _surface(
    rng: np.random.Generator, cfg: WorldGenConfig, role: str, flat_share: float = 0.0
) -> Surface:
    spec = PALETTES[cfg.split][role]
    kinds = TEXTURE_SETS[cfg.split][role]
    kind = "flat" if rng.random() < flat_share else str(kinds[int(rng.integers(len(kinds)))])
    if cfg.split == "heldout" and kind == "flat":
        kind = str(kinds[int(rng.integers(len(kinds)))])  # "flat" belongs to the train set
    color = _color(rng, spec)
    scale = _u(rng, cfg.texture_scale_m)
    if role == "floor":
        scale = _u(rng, (0.08, 0.3))
    elif role == "wall":
        scale = _u(rng, (0.05, 0.4))
    return Surface(
        color=color,
        texture=kind,
        color2=_second_color(rng, color, spec),
        scale_m=_round(scale),
        angle_rad=_round(rng.choice([0.0, 0.0, math.pi / 2, rng.uniform(-0.8, 0.8)])),
        seed=int(rng.integers(0, 2**31 - 1)),
        ir_reflectance=_round(_u(rng, cfg.ir_reflectance)),
    )


def _polygon(ob: Obstacle) -> np.ndarray:
    if isinstance(ob, Cylinder):
        a = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        r = ob.radius_m / math.cos(math.pi / 16)  # circumscribed: conservative
        return np.stack([ob.x_m + r * np.cos(a), ob.y_m + r * np.sin(a)], axis=1)
    return ob.as_box().corners()


def _seg_point_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    e = b - a
    u = np.clip(
        ((p[:, None, :] - a[None]) * e[None]).sum(-1) / np.maximum((e * e).sum(-1), 1e-12), 0, 1
    )
    q = a[None] + u[..., None] * e[None]
    return np.hypot(*(p[:, None, :] - q).transpose(2, 0, 1))


def _inside(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Points (P, 2) inside a convex counter-clockwise polygon."""
    a, b = poly, np.roll(poly, -1, axis=0)
    cross = (b[:, 0] - a[:, 0]) * (p[:, None, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (
        p[:, None, 0] - a[:, 0]
    )
    return (cross >= 0).all(axis=1)


def polygon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Distance between two convex polygons (0 when they overlap)."""
    if _inside(p, q).any() or _inside(q, p).any():
        return 0.0
    d1 = _seg_point_dist(p, q, np.roll(q, -1, axis=0)).min()
    d2 = _seg_point_dist(q, p, np.roll(p, -1, axis=0)).min()
    return float(min(d1, d2))


def _ccw(poly: np.ndarray) -> np.ndarray:
    area = np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
    return poly if area > 0 else poly[::-1]


def generate_world(
    seed: int, config: WorldGenConfig | None = None, name: str | None = None
) -> World:
    """A random world (deterministic for a seed and config). Obstacles keep `min_gap_m`
    between each other and the arena walls, so the robot can pass everywhere."""
    cfg = config or WorldGenConfig()
    rng = np.random.default_rng([int(seed), 0x3D])
    width = _round(_u(rng, cfg.arena_width_m))
    depth = _round(_u(rng, cfg.arena_depth_m))
    arena = Arena(
        width, depth, _round(_u(rng, cfg.arena_wall_height_m)), _surface(rng, cfg, "wall")
    )
    xmin, ymin, xmax, ymax = arena.bounds
    bounds = np.array([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]])
    placed: list[tuple[Obstacle, np.ndarray]] = []
    gap = cfg.min_gap_m

    def fits(ob: Obstacle) -> bool:
        poly = _ccw(_polygon(ob))
        if (poly.min(0) < bounds[0] + gap).any() or (poly.max(0) > bounds[2] - gap).any():
            return False
        return all(polygon_distance(poly, other) >= gap for _, other in placed)

    def place(make) -> None:
        for _ in range(60):
            ob = make()
            if fits(ob):
                placed.append((ob, _ccw(_polygon(ob))))
                return

    def rand_xy(margin: float) -> tuple[float, float]:
        return (
            _round(rng.uniform(xmin + margin, xmax - margin)),
            _round(rng.uniform(ymin + margin, ymax - margin)),
        )

    def make_wall() -> Obstacle:
        length = _u(rng, cfg.wall_length_m)
        x, y = rand_xy(gap)
        a = rng.choice([0.0, math.pi / 2, rng.uniform(-math.pi, math.pi)])
        dx, dy = 0.5 * length * math.cos(a), 0.5 * length * math.sin(a)
        return Wall(
            _round(x - dx), _round(y - dy), _round(x + dx), _round(y + dy),
            thickness_m=_round(_u(rng, cfg.wall_thickness_m)),
            height_m=_round(_u(rng, cfg.wall_height_m)),
            surface=_surface(rng, cfg, "obstacle", cfg.flat_share),
        )  # fmt: skip

    def make_box() -> Obstacle:
        x, y = rand_xy(gap)
        return Box(
            x, y,
            length_m=_round(_u(rng, cfg.box_size_m)),
            width_m=_round(_u(rng, cfg.box_size_m)),
            height_m=_round(_u(rng, cfg.box_height_m)),
            yaw_rad=_round(rng.uniform(-math.pi, math.pi)),
            surface=_surface(rng, cfg, "obstacle", cfg.flat_share),
        )  # fmt: skip

    def make_cylinder() -> Obstacle:
        x, y = rand_xy(gap)
        return Cylinder(
            x, y,
            radius_m=_round(_u(rng, cfg.cylinder_radius_m)),
            height_m=_round(_u(rng, cfg.cylinder_height_m)),
            surface=_surface(rng, cfg, "obstacle", cfg.flat_share),
        )  # fmt: skip

    for _ in range(_i(rng, cfg.num_walls)):
        place(make_wall)
    for _ in range(_i(rng, cfg.num_boxes)):
        place(make_box)
    for _ in range(_i(rng, cfg.num_cylinders)):
        place(make_cylinder)

    # Start pose: the robot's body clear of everything by start_clearance_m.
    r = cfg.robot_radius_m + cfg.start_clearance_m
    start = None
    for _ in range(2000):
        x, y = rand_xy(r)
        disc = np.stack([x + r * np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
                         y + r * np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))], 1)  # fmt: skip
        if all(polygon_distance(disc, other) > 0 for _, other in placed):
            start = (x, y, _round(rng.uniform(-math.pi, math.pi)))
            break

    warm = _u(rng, cfg.warmth)
    lighting = Lighting(
        brightness=_round(_u(rng, cfg.brightness)),
        tint=(_round(1.0 + warm), 1.0, _round(1.0 - warm)),
        azimuth_rad=_round(rng.uniform(-math.pi, math.pi)),
        elevation_rad=_round(_u(rng, cfg.light_elevation_rad)),
        ambient=_round(_u(rng, cfg.ambient)),
        shadow_strength=_round(_u(rng, cfg.shadow_strength)),
        flicker=_round(_u(rng, cfg.flicker)),
        flicker_period_s=_round(rng.uniform(3.0, 12.0)),
    )
    wall_spec = PALETTES[cfg.split]["wall"]
    backdrop = Backdrop(
        color=_color(rng, {**wall_spec, "val": (0.7, 0.95)}),
        color2=_color(
            rng, {**PALETTES[cfg.split]["obstacle"], "sat": (0.05, 0.3), "val": (0.3, 0.6)}
        ),
        seed=int(rng.integers(0, 2**31 - 1)),
    )
    return World(
        name=name or f"gen_{cfg.split}_{seed}",
        arena=arena,
        floor=_surface(rng, cfg, "floor"),
        obstacles=tuple(ob for ob, _ in placed),
        lighting=lighting,
        backdrop=backdrop,
        start_pose=start,
        split=cfg.split,
    )
