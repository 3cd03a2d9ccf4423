"""Worlds: a rectangular arena with walls, boxes and cylinders on a textured floor.

A `World` is plain, immutable data (what a scenario file holds); `World.geometry()`
compiles it once into numpy arrays for ray casting and collisions. Frame: x, y on
the floor, z up, metres and radians; the arena is centred on the origin.
Colours are RGB in [0, 1] (scenario files are written by people); the renderer
converts to BGR.

Scenario files are YAML (or JSON, which YAML reads): see `World.to_dict()` and the
files under data/worlds/.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Union

import numpy as np
import yaml

from sim.errors import WorldError
from sim.textures import TEXTURE_KINDS

__all__ = [
    "WORLDS_DIR",
    "Arena",
    "Backdrop",
    "Box",
    "Cylinder",
    "Geometry",
    "Lighting",
    "Obstacle",
    "Surface",
    "Wall",
    "World",
    "list_worlds",
    "load_world",
    "save_world",
]

WORLDS_DIR = Path(__file__).resolve().parents[1] / "data" / "worlds"
"""Where named worlds live (`load_world("corridor")` reads data/worlds/corridor.yaml)."""

Color = tuple[float, float, float]


def _color(value: Any, what: str) -> Color:
    try:
        c = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise WorldError(f"{what}: expected [r, g, b] in 0..1, got {value!r}") from None
    if len(c) != 3 or not all(0.0 <= v <= 1.0 for v in c):
        raise WorldError(f"{what}: expected [r, g, b] in 0..1, got {value!r}")
    return c  # type: ignore[return-value]


def _positive(obj: object, *names: str) -> None:
    for name in names:
        v = getattr(obj, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise WorldError(f"{type(obj).__name__.lower()}.{name} must be > 0, got {v!r}")


@dataclass(frozen=True)
class Surface:
    """How a face looks (colour, texture) and how much infrared it reflects.

    `texture` is one of `sim.textures.TEXTURE_KINDS`; `scale_m` is its feature
    size (stripe width, tile size, plank width...), `angle_rad` rotates it, and
    `seed` fixes its random parts so that a world renders the same every time.
    `color2` is the texture's second colour (None: a darker shade of `color`).
    `ir_reflectance` scales the proximity sensors' response (1 = white paper).
    """

    color: Color = (0.7, 0.7, 0.7)
    texture: str = "flat"
    color2: Color | None = None
    scale_m: float = 0.05
    angle_rad: float = 0.0
    seed: int = 0
    ir_reflectance: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "color", _color(self.color, "surface.color"))
        if self.color2 is not None:
            object.__setattr__(self, "color2", _color(self.color2, "surface.color2"))
        if self.texture not in TEXTURE_KINDS:
            raise WorldError(
                f"surface.texture {self.texture!r} unknown; one of {sorted(TEXTURE_KINDS)}"
            )
        _positive(self, "scale_m")
        if not 0.0 <= self.ir_reflectance <= 2.0:
            raise WorldError(f"surface.ir_reflectance must be in 0..2, got {self.ir_reflectance}")

    @property
    def second_color(self) -> Color:
        """`color2`, or `color` darkened when it is not given."""
        if self.color2 is not None:
            return self.color2
        return tuple(0.6 * c for c in self.color)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"color": [round(c, 4) for c in self.color], "texture": self.texture}
        if self.color2 is not None:
            d["color2"] = [round(c, 4) for c in self.color2]
        d.update(
            scale_m=self.scale_m,
            angle_rad=self.angle_rad,
            seed=self.seed,
            ir_reflectance=self.ir_reflectance,
        )
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Surface:
        return cls(**_check_keys(cls, d, "surface"))


@dataclass(frozen=True)
class Box:
    """An upright box: centre, yaw, footprint (length along its x axis, width), height."""

    x_m: float
    y_m: float
    length_m: float
    width_m: float
    height_m: float
    yaw_rad: float = 0.0
    surface: Surface = field(default_factory=Surface)

    def __post_init__(self) -> None:
        _positive(self, "length_m", "width_m", "height_m")

    def corners(self) -> np.ndarray:
        """(4, 2) footprint corners, counter-clockwise."""
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        hx, hy = self.length_m / 2, self.width_m / 2
        local = np.array([[hx, -hy], [hx, hy], [-hx, hy], [-hx, -hy]])
        rot = np.array([[c, -s], [s, c]])
        return local @ rot.T + np.array([self.x_m, self.y_m])

    def as_box(self) -> Box:
        return self


@dataclass(frozen=True)
class Wall:
    """A straight wall piece from (x0, y0) to (x1, y1) with a thickness and a height."""

    x0_m: float
    y0_m: float
    x1_m: float
    y1_m: float
    thickness_m: float = 0.03
    height_m: float = 0.25
    surface: Surface = field(default_factory=Surface)

    def __post_init__(self) -> None:
        _positive(self, "thickness_m", "height_m")
        if math.hypot(self.x1_m - self.x0_m, self.y1_m - self.y0_m) <= 0:
            raise WorldError("wall: the two ends must differ")

    def as_box(self) -> Box:
        """The wall as a box (its footprint is the segment thickened on both sides)."""
        dx, dy = self.x1_m - self.x0_m, self.y1_m - self.y0_m
        return Box(
            x_m=(self.x0_m + self.x1_m) / 2,
            y_m=(self.y0_m + self.y1_m) / 2,
            length_m=math.hypot(dx, dy),
            width_m=self.thickness_m,
            height_m=self.height_m,
            yaw_rad=math.atan2(dy, dx),
            surface=self.surface,
        )


@dataclass(frozen=True)
class Cylinder:
    """An upright cylinder: centre, radius, height."""

    x_m: float
    y_m: float
    radius_m: float
    height_m: float
    surface: Surface = field(default_factory=Surface)

    def __post_init__(self) -> None:
        _positive(self, "radius_m", "height_m")


Obstacle = Union[Box, Wall, Cylinder]  # noqa: UP007 (runtime alias)
_OBSTACLE_TYPES: dict[str, type] = {"box": Box, "wall": Wall, "cylinder": Cylinder}


@dataclass(frozen=True)
class Arena:
    """The enclosing walls: x in [-width/2, width/2], y in [-depth/2, depth/2]."""

    width_m: float = 3.0
    depth_m: float = 3.0
    wall_height_m: float = 0.3
    surface: Surface = field(
        default_factory=lambda: Surface(color=(0.85, 0.85, 0.82), texture="plaster")
    )

    def __post_init__(self) -> None:
        _positive(self, "width_m", "depth_m", "wall_height_m")

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in metres."""
        return (-self.width_m / 2, -self.depth_m / 2, self.width_m / 2, self.depth_m / 2)


@dataclass(frozen=True)
class Lighting:
    """One directional light plus ambient light, with a colour cast and slow flicker.

    `brightness` scales everything (exposure), `tint` is an RGB gain (colour
    temperature), `azimuth_rad`/`elevation_rad` point towards the light,
    `ambient` is the share of light that reaches faces turned away from it,
    `shadow_strength` darkens the floor in the obstacles' shadows, and the
    frame brightness varies by +-`flicker` (relative) with period `flicker_period_s`.
    """

    brightness: float = 1.0
    tint: Color = (1.0, 1.0, 1.0)
    azimuth_rad: float = 0.8
    elevation_rad: float = 0.9
    ambient: float = 0.55
    shadow_strength: float = 0.35
    flicker: float = 0.02
    flicker_period_s: float = 7.0

    def __post_init__(self) -> None:
        _positive(self, "brightness", "flicker_period_s")
        tint = tuple(float(v) for v in self.tint)
        if len(tint) != 3 or not all(0.2 <= v <= 2.0 for v in tint):
            raise WorldError(f"lighting.tint must be 3 gains in 0.2..2, got {self.tint!r}")
        object.__setattr__(self, "tint", tint)
        if not 0.0 < self.elevation_rad <= math.pi / 2:
            raise WorldError("lighting.elevation_rad must be in (0, pi/2]")
        if not 0.0 <= self.ambient <= 1.0 or not 0.0 <= self.shadow_strength <= 1.0:
            raise WorldError("lighting.ambient and shadow_strength must be in 0..1")
        if not 0.0 <= self.flicker < 0.5:
            raise WorldError("lighting.flicker must be in [0, 0.5)")


@dataclass(frozen=True)
class Backdrop:
    """What the camera sees above the arena walls: a room, blurred by distance."""

    color: Color = (0.78, 0.8, 0.82)  # upper part
    color2: Color = (0.55, 0.52, 0.5)  # lower part, furniture blobs
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "color", _color(self.color, "backdrop.color"))
        object.__setattr__(self, "color2", _color(self.color2, "backdrop.color2"))


@dataclass(frozen=True, eq=False)
class Geometry:
    """A world compiled to arrays. Boxes include the wall pieces; every box edge and the
    four arena walls are also listed as segments (for collisions and proximity rays).

    Objects are numbered boxes first, then cylinders; `segments_object` gives the object
    of each segment (-1 for the arena walls).
    """

    box_corners: np.ndarray  # (B, 4, 2) counter-clockwise
    box_height_m: np.ndarray  # (B,)
    box_reflectance: np.ndarray  # (B,)
    box_source: tuple[int, ...]  # index in World.obstacles
    circles: np.ndarray  # (C, 3): x_m, y_m, radius_m
    circle_height_m: np.ndarray  # (C,)
    circle_reflectance: np.ndarray  # (C,)
    circle_source: tuple[int, ...]
    arena_bounds: tuple[float, float, float, float]
    arena_height_m: float
    arena_reflectance: float
    segments: np.ndarray  # (S, 4): x0, y0, x1, y1 (box edges, then the 4 arena walls)
    segments_height_m: np.ndarray  # (S,)
    segments_reflectance: np.ndarray  # (S,)
    segments_object: np.ndarray  # (S,) int

    @property
    def num_boxes(self) -> int:
        return int(self.box_corners.shape[0])

    @property
    def num_circles(self) -> int:
        return int(self.circles.shape[0])


@dataclass(frozen=True)
class World:
    """A complete scenario: arena, floor, obstacles, lighting, backdrop, optional start pose.

    `split` says which palette/texture set it was made from ("train", "heldout" or
    "custom"), so evaluation can keep unseen looks apart.
    """

    name: str = "world"
    arena: Arena = field(default_factory=Arena)
    floor: Surface = field(
        default_factory=lambda: Surface(
            color=(0.55, 0.42, 0.3), texture="wood", color2=(0.4, 0.3, 0.2), scale_m=0.12
        )
    )
    obstacles: tuple[Obstacle, ...] = ()
    lighting: Lighting = field(default_factory=Lighting)
    backdrop: Backdrop = field(default_factory=Backdrop)
    start_pose: tuple[float, float, float] | None = None
    split: str = "custom"

    def __post_init__(self) -> None:
        object.__setattr__(self, "obstacles", tuple(self.obstacles))
        if self.start_pose is not None:
            pose = tuple(float(v) for v in self.start_pose)
            if len(pose) != 3:
                raise WorldError("start_pose must be [x_m, y_m, theta_rad]")
            object.__setattr__(self, "start_pose", pose)
        xmin, ymin, xmax, ymax = self.arena.bounds
        for i, ob in enumerate(self.obstacles):
            if not isinstance(ob, (Box, Wall, Cylinder)):
                raise WorldError(f"obstacle {i}: not a Box, Wall or Cylinder: {ob!r}")
            pts = _footprint_extent(ob)
            if (
                pts[0] < xmin - 1e-6
                or pts[1] < ymin - 1e-6
                or pts[2] > xmax + 1e-6
                or pts[3] > ymax + 1e-6
            ):
                raise WorldError(f"obstacle {i} ({type(ob).__name__.lower()}) leaves the arena")

    # ------------------------------------------------------------------ geometry

    @cached_property
    def _geometry(self) -> Geometry:
        return _compile(self)

    def geometry(self) -> Geometry:
        """The world as arrays (compiled once, then cached)."""
        return self._geometry

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML/JSON; `World.from_dict(w.to_dict()) == w`."""
        obstacles = []
        for ob in self.obstacles:
            kind = next(k for k, t in _OBSTACLE_TYPES.items() if isinstance(ob, t))
            d: dict[str, Any] = {"type": kind}
            for f in fields(ob):
                v = getattr(ob, f.name)
                d[f.name] = v.to_dict() if isinstance(v, Surface) else v
            obstacles.append(d)
        out: dict[str, Any] = {
            "name": self.name,
            "split": self.split,
            "arena": {
                "width_m": self.arena.width_m,
                "depth_m": self.arena.depth_m,
                "wall_height_m": self.arena.wall_height_m,
                "surface": self.arena.surface.to_dict(),
            },
            "floor": self.floor.to_dict(),
            "lighting": {
                f.name: (list(v) if isinstance(v := getattr(self.lighting, f.name), tuple) else v)
                for f in fields(Lighting)
            },
            "backdrop": {
                "color": list(self.backdrop.color),
                "color2": list(self.backdrop.color2),
                "seed": self.backdrop.seed,
            },
            "obstacles": obstacles,
        }
        if self.start_pose is not None:
            out["start_pose"] = list(self.start_pose)
        return out

    @classmethod
    def from_dict(cls, d: Any) -> World:
        d = _check_keys(cls, d, "world")
        try:
            if "arena" in d:
                a = _check_keys(Arena, d["arena"], "arena")
                if "surface" in a:
                    a["surface"] = Surface.from_dict(a["surface"])
                d["arena"] = Arena(**a)
            if "floor" in d:
                d["floor"] = Surface.from_dict(d["floor"])
            if "lighting" in d:
                d["lighting"] = Lighting(**_check_keys(Lighting, d["lighting"], "lighting"))
            if "backdrop" in d:
                d["backdrop"] = Backdrop(**_check_keys(Backdrop, d["backdrop"], "backdrop"))
            d["obstacles"] = tuple(
                _obstacle_from_dict(o, i) for i, o in enumerate(d.get("obstacles") or [])
            )
            return cls(**d)
        except TypeError as e:  # a missing required field
            raise WorldError(f"world: {e}") from None

    def with_name(self, name: str) -> World:
        return replace(self, name=name)


def _obstacle_from_dict(d: Any, i: int) -> Obstacle:
    if not isinstance(d, dict) or d.get("type") not in _OBSTACLE_TYPES:
        raise WorldError(f"obstacle {i}: needs 'type' one of {sorted(_OBSTACLE_TYPES)}")
    cls = _OBSTACLE_TYPES[d["type"]]
    rest = {k: v for k, v in d.items() if k != "type"}
    rest = _check_keys(cls, rest, f"obstacle {i} ({d['type']})")
    if "surface" in rest:
        rest["surface"] = Surface.from_dict(rest["surface"])
    try:
        return cls(**rest)
    except TypeError as e:
        raise WorldError(f"obstacle {i} ({d['type']}): {e}") from None


def _check_keys(cls: type, d: Any, what: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise WorldError(f"{what}: expected a mapping, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise WorldError(f"{what}: unknown keys {unknown}")
    return dict(d)


def _footprint_extent(ob: Obstacle) -> tuple[float, float, float, float]:
    if isinstance(ob, Cylinder):
        return (
            ob.x_m - ob.radius_m,
            ob.y_m - ob.radius_m,
            ob.x_m + ob.radius_m,
            ob.y_m + ob.radius_m,
        )
    c = ob.as_box().corners()
    return (c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max())


def _compile(world: World) -> Geometry:
    boxes = [
        (i, ob.as_box()) for i, ob in enumerate(world.obstacles) if not isinstance(ob, Cylinder)
    ]
    cyls = [(i, ob) for i, ob in enumerate(world.obstacles) if isinstance(ob, Cylinder)]
    corners = np.array([b.corners() for _, b in boxes]).reshape(-1, 4, 2)
    box_h = np.array([b.height_m for _, b in boxes], dtype=np.float64)
    box_r = np.array([b.surface.ir_reflectance for _, b in boxes], dtype=np.float64)
    circles = np.array([[c.x_m, c.y_m, c.radius_m] for _, c in cyls], dtype=np.float64).reshape(
        -1, 3
    )
    cyl_h = np.array([c.height_m for _, c in cyls], dtype=np.float64)
    cyl_r = np.array([c.surface.ir_reflectance for _, c in cyls], dtype=np.float64)
    xmin, ymin, xmax, ymax = world.arena.bounds
    # Box edges: corner i -> corner i+1 (counter-clockwise: the outside is on the right).
    p0 = corners
    p1 = np.roll(corners, -1, axis=1)
    box_segs = np.concatenate([p0, p1], axis=2).reshape(-1, 4)
    # Arena walls, ordered so that the inside is on the right of each (clockwise loop).
    arena_segs = np.array(
        [
            [xmin, ymin, xmin, ymax],
            [xmin, ymax, xmax, ymax],
            [xmax, ymax, xmax, ymin],
            [xmax, ymin, xmin, ymin],
        ]
    )
    segments = np.concatenate([box_segs, arena_segs], axis=0)
    nb = len(boxes)
    seg_h = np.concatenate([np.repeat(box_h, 4), np.full(4, world.arena.wall_height_m)])
    seg_r = np.concatenate([np.repeat(box_r, 4), np.full(4, world.arena.surface.ir_reflectance)])
    seg_obj = np.concatenate([np.repeat(np.arange(nb), 4), np.full(4, -1)]).astype(np.int64)
    return Geometry(
        box_corners=corners,
        box_height_m=box_h,
        box_reflectance=box_r,
        box_source=tuple(i for i, _ in boxes),
        circles=circles,
        circle_height_m=cyl_h,
        circle_reflectance=cyl_r,
        circle_source=tuple(i for i, _ in cyls),
        arena_bounds=(xmin, ymin, xmax, ymax),
        arena_height_m=world.arena.wall_height_m,
        arena_reflectance=world.arena.surface.ir_reflectance,
        segments=segments,
        segments_height_m=seg_h,
        segments_reflectance=seg_r,
        segments_object=seg_obj,
    )


# --------------------------------------------------------------------------- files


def list_worlds() -> list[str]:
    """Names of the worlds shipped under data/worlds/."""
    if not WORLDS_DIR.is_dir():
        return []
    return sorted(p.stem for p in WORLDS_DIR.glob("*.yaml"))


def _resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml", ".json") or p.exists():
        return p
    named = WORLDS_DIR / f"{name_or_path}.yaml"
    if named.exists():
        return named
    known = ", ".join(list_worlds()) or "none"
    raise WorldError(f"no world file {name_or_path!r} and no world of that name (known: {known})")


def load_world(name_or_path: str | Path) -> World:
    """A world from a scenario file, or by name from data/worlds/ ("corridor")."""
    path = _resolve(name_or_path)
    try:
        text = path.read_text()
    except OSError as e:
        raise WorldError(f"cannot read world file {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise WorldError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise WorldError(f"{path}: expected a mapping at the top level")
    data.setdefault("name", path.stem)
    try:
        return World.from_dict(data)
    except WorldError as e:
        raise WorldError(f"{path}: {e}") from None


def save_world(world: World, path: str | Path) -> None:
    """Write a world as YAML (written to a temporary file first, then renamed).

    The temporary file, ``.NAME.tmp-PID`` beside `path`, is created with the usual
    mode (0o666 less the umask) and removed on any error or interruption; the YAML
    is built before it is created, so a bad world never leaves a file behind.
    """
    path = Path(path)
    text = yaml.safe_dump(world.to_dict(), sort_keys=False, default_flow_style=None)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
