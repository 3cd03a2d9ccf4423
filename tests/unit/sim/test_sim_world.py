"""Worlds: YAML round trips, validation, the shipped worlds, the generator and its held-out set."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from sim.errors import WorldError
from sim.textures import TEXTURE_KINDS, TEXTURE_SETS, paint_surface
from sim.world import (
    Arena,
    Box,
    Cylinder,
    Surface,
    Wall,
    World,
    list_worlds,
    load_world,
    save_world,
)
from sim.worldgen import PALETTES, WorldGenConfig, generate_world, polygon_distance

SHIPPED = ["arena_boxes", "corridor", "cluttered", "heldout_mixed", "heldout_clutter"]


def test_shipped_worlds_exist_and_load():
    names = list_worlds()
    for name in SHIPPED:
        assert name in names
        w = load_world(name)
        assert w.name == name and len(w.obstacles) >= 5
    assert load_world("heldout_mixed").split == "heldout"
    assert load_world("arena_boxes").split == "train"


@pytest.mark.parametrize(
    "world",
    [load_world(n) for n in SHIPPED]
    + [generate_world(s) for s in range(3)]
    + [generate_world(s, WorldGenConfig.heldout()) for s in range(3)],
    ids=lambda w: w.name,
)
def test_yaml_round_trip(world, tmp_path):
    assert World.from_dict(world.to_dict()) == world
    path = tmp_path / "w.yaml"
    save_world(world, path)
    assert load_world(path) == world


def test_validation_errors_are_precise(tmp_path):
    with pytest.raises(WorldError, match="texture"):
        Surface(texture="polkadots")
    with pytest.raises(WorldError, match="color"):
        Surface(color=(1.2, 0, 0))
    with pytest.raises(WorldError, match="leaves the arena"):
        World(arena=Arena(1.0, 1.0), obstacles=(Box(0.6, 0.0, 0.2, 0.2, 0.2),))
    with pytest.raises(WorldError, match="height_m"):
        Cylinder(0.0, 0.0, 0.1, -1.0)
    with pytest.raises(WorldError, match="unknown keys"):
        World.from_dict({"arena": {"width_m": 2.0, "colour": 1}})
    with pytest.raises(WorldError, match="type"):
        World.from_dict({"obstacles": [{"x_m": 0.0}]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("arena: [1, 2\n")
    with pytest.raises(WorldError, match="not valid YAML"):
        load_world(bad)
    with pytest.raises(WorldError, match="no world"):
        load_world("no_such_world")


def test_geometry_compiles_walls_boxes_cylinders():
    w = World(
        arena=Arena(2.0, 2.0, 0.3),
        obstacles=(
            Wall(-0.5, 0.0, 0.5, 0.0, 0.02, 0.2),
            Box(0.5, 0.5, 0.2, 0.1, 0.1),
            Cylinder(-0.5, -0.5, 0.1, 0.2),
        ),
    )
    g = w.geometry()
    assert g.box_corners.shape == (2, 4, 2) and g.circles.shape == (1, 3)
    assert g.segments.shape == (2 * 4 + 4, 4)
    assert g.box_source == (0, 1) and g.circle_source == (2,)
    # counter-clockwise corners: positive area
    c = g.box_corners[0]
    area = 0.5 * np.sum(c[:, 0] * np.roll(c[:, 1], -1) - np.roll(c[:, 0], -1) * c[:, 1])
    assert area == pytest.approx(1.0 * 0.02)


def test_generator_is_deterministic_and_varied():
    assert generate_world(5) == generate_world(5)
    assert generate_world(5) != generate_world(6)
    sizes = {len(generate_world(s).obstacles) for s in range(10)}
    assert len(sizes) > 2


def _hue_deg(rgb) -> tuple[float, float]:
    h, s, _ = colorsys.rgb_to_hsv(*rgb)
    return h * 360.0, s


def _in(ranges, h: float) -> bool:
    return any(lo - 0.5 <= h <= hi + 0.5 for lo, hi in ranges)


@pytest.mark.parametrize("seed", range(6))
def test_heldout_worlds_use_unseen_colours_and_textures(seed):
    train_obstacle = set(TEXTURE_SETS["train"]["obstacle"])
    train_floor = set(TEXTURE_SETS["train"]["floor"]) | set(TEXTURE_SETS["train"]["wall"])
    assert not set(TEXTURE_SETS["heldout"]["obstacle"]) & train_obstacle
    assert not set(TEXTURE_SETS["heldout"]["floor"]) & train_floor
    w = generate_world(seed, WorldGenConfig.heldout())
    assert w.split == "heldout"
    train_hues = PALETTES["train"]["obstacle"]["hues"]
    for ob in w.obstacles:
        assert ob.surface.texture not in train_obstacle
        h, s = _hue_deg(ob.surface.color)
        assert s > 0.2 and not _in(train_hues, h)
    assert w.floor.texture not in train_floor
    assert w.arena.surface.texture not in train_floor


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_generated_obstacles_keep_their_distance_and_the_start_is_free(split):
    cfg = WorldGenConfig(split=split)
    for seed in range(4):
        w = generate_world(seed, cfg)
        polys = []
        for ob in w.obstacles:
            if isinstance(ob, Cylinder):
                a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
                polys.append(
                    np.stack(
                        [ob.x_m + ob.radius_m * np.cos(a), ob.y_m + ob.radius_m * np.sin(a)], 1
                    )
                )
            else:
                polys.append(ob.as_box().corners())
        for i in range(len(polys)):
            for j in range(i + 1, len(polys)):
                assert polygon_distance(polys[i], polys[j]) >= cfg.min_gap_m - 2e-3
        assert w.start_pose is not None
        sx, sy, _ = w.start_pose
        for poly in polys:
            centre = np.array([sx, sy])
            assert np.min(np.hypot(*(poly - centre).T)) > cfg.robot_radius_m


@pytest.mark.parametrize("kind", sorted(TEXTURE_KINDS))
def test_every_texture_paints(kind):
    s = Surface(color=(0.8, 0.3, 0.2), texture=kind, scale_m=0.05, seed=3)
    img = paint_surface(s, 120, 60, 200.0)
    assert img.shape == (60, 120, 3) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert np.array_equal(img, paint_surface(s, 120, 60, 200.0))  # deterministic
    wrapped = paint_surface(s, 120, 60, 200.0, wrap_x=True)
    assert np.abs(wrapped[:, 0] - wrapped[:, -1]).mean() < 0.2  # no hard seam on cylinders
