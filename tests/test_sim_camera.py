"""Camera renderer: horizon where the pitch says, perspective projection of obstacle bases,
obstacles growing as the robot approaches, occlusion, determinism."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from sim.camera import CameraParams, Renderer
from sim.world import Arena, Backdrop, Box, Cylinder, Lighting, Surface, World

FLAT = Lighting(ambient=1.0, shadow_strength=0.0, flicker=0.0)
CLEAN = dict(noise_std=0.0, vignette=0.0)
RED = (1.0, 0.0, 0.0)
GREEN = (0.0, 0.8, 0.0)
BLUE = (0.0, 0.0, 1.0)


GREY_ARENA = Arena(4.0, 4.0, 0.3, Surface((0.5, 0.5, 0.5)))


def world(*obstacles, arena: Arena = GREY_ARENA) -> World:
    return World(
        arena=arena,
        floor=Surface(GREEN),
        obstacles=obstacles,
        lighting=FLAT,
        backdrop=Backdrop((1.0, 0.0, 0.0), (1.0, 0.0, 0.0)),
    )


def mask_of(img: np.ndarray, rgb: tuple[float, float, float], tol: int = 40) -> np.ndarray:
    """Pixels of a pure primary colour (also when shaded darker near the floor)."""
    del tol
    bgr = np.array(rgb[::-1]) > 0.5
    im = img.astype(int)
    on = im[..., bgr].min(axis=-1) if bgr.sum() > 1 else im[..., bgr][..., 0]
    off = im[..., ~bgr].max(axis=-1)
    return (on > 90) & (off < 0.45 * on)


@pytest.mark.parametrize("pitch_deg", [0.0, 10.0, 20.0, 30.0])
@pytest.mark.parametrize("size", [(320, 240), (80, 64)])
def test_horizon_sits_where_the_pitch_says(pitch_deg, size):
    """Far low walls: the floor (green) ends and the backdrop (red) starts at the horizon."""
    from robot_ssl.core.spec import CameraSpec

    w, h = size
    params = CameraParams(width=w, height=h, pitch_rad=math.radians(pitch_deg), **CLEAN)
    spec = CameraSpec(width=w, height=h, pitch_rad=math.radians(pitch_deg))
    assert params.horizon_row() == pytest.approx(spec.horizon_row())
    big = world(arena=Arena(400.0, 400.0, 0.01, Surface(GREEN)))
    img = Renderer(big, params).render(np.zeros(3))
    col = img[:, w // 2]
    red_rows = np.flatnonzero(mask_of(col[:, None], RED)[:, 0])
    green_rows = np.flatnonzero(mask_of(col[:, None], GREEN)[:, 0])
    horizon = params.horizon_row()
    if horizon < 0:
        assert red_rows.size == 0
        return
    # Rows whose centre is above the horizon show the backdrop, below it the floor.
    assert red_rows.max() <= horizon + 1.0
    assert green_rows.min() >= horizon - 1.0


def test_obstacle_base_projects_through_the_pinhole():
    """A thin blue post stands at a known floor point: its base is where the pinhole model
    puts that point (robot at the origin, camera 3 cm ahead, 9.5 cm up, pitched 20 deg)."""
    params = CameraParams(**CLEAN)
    fx, fy, cx, cy = params.intrinsics()
    px, py = 0.8, 0.15
    img = Renderer(world(Cylinder(px, py, 0.01, 0.4, Surface(BLUE))), params).render(np.zeros(3))
    m = mask_of(img, BLUE)
    rows, cols = np.nonzero(m)
    base_row = rows.max()
    base_col = cols[rows >= base_row - 2].mean()
    # Point in camera coordinates (x right, y down, z forward).
    fwd, left, up = px - params.x_m, py, -params.z_m
    cp, sp = math.cos(params.pitch_rad), math.sin(params.pitch_rad)
    zc = fwd * cp - up * sp
    yc = -(fwd * sp + up * cp)
    xc = -left
    u, v = cx + fx * xc / zc, cy + fy * yc / zc
    assert base_row == pytest.approx(v, abs=2.0)
    assert base_col == pytest.approx(u, abs=2.0)


def test_obstacle_ahead_grows_as_the_robot_approaches():
    # a narrow lens keeps most of the arena out of view, so the colour mask is the box alone
    r = Renderer(
        world(Box(1.2, 0.0, 0.2, 0.2, 0.2, surface=Surface(RED, "stripes", color2=(0.6, 0, 0)))),
        CameraParams(**CLEAN, hfov_rad=math.radians(62.2)),
    )
    areas, bases = [], []
    for x in [-1.0, -0.4, 0.2, 0.6, 0.85]:
        m = mask_of(r.render(np.array([x, 0.0, 0.0])), RED, tol=110)
        areas.append(int(m.sum()))
        bases.append(int(np.nonzero(m)[0].max()))
    assert all(a < b for a, b in itertools.pairwise(areas)), areas
    assert all(a < b for a, b in itertools.pairwise(bases)), bases  # its base moves down the image


def test_near_obstacle_occludes_far_one_and_low_box_shows_its_lid():
    params = CameraParams(**CLEAN)
    far_only = world(Box(1.5, 0.0, 0.3, 0.3, 0.3, surface=Surface(BLUE)))
    both = world(
        Box(1.5, 0.0, 0.3, 0.3, 0.3, surface=Surface(BLUE)),
        Box(0.6, 0.0, 0.1, 0.6, 0.3, surface=Surface(RED)),
    )
    blue_alone = mask_of(Renderer(far_only, params).render(np.zeros(3)), BLUE).sum()
    img = Renderer(both, params).render(np.zeros(3))
    assert mask_of(img, BLUE).sum() < 0.2 * blue_alone
    # A box lower than the camera: its lid (top) is visible above its front face.
    low = world(Box(0.5, 0.0, 0.3, 0.3, 0.05, surface=Surface(RED)))
    m = mask_of(Renderer(low, params).render(np.zeros(3)), RED, tol=110)
    rows = np.nonzero(m[:, 160])[0]
    top_front = params.intrinsics()[3] + params.intrinsics()[1] * math.tan(
        params.pitch_rad - math.atan2(0.05 - params.z_m, 0.35 - params.x_m)
    )
    assert rows.min() < top_front - 5  # the lid extends above the front face's top edge


def test_render_is_deterministic_and_well_formed():
    w = world(
        Box(1.0, 0.3, 0.2, 0.2, 0.2, surface=Surface(RED, "bricks")), Cylinder(0.8, -0.4, 0.1, 0.2)
    )
    for size in [(80, 64), (320, 240), (64, 48)]:
        params = CameraParams(width=size[0], height=size[1])
        a = Renderer(w, params).render(np.array([0.1, 0.0, 0.2]), 1.0, np.random.default_rng(3))
        b = Renderer(w, params).render(np.array([0.1, 0.0, 0.2]), 1.0, np.random.default_rng(3))
        assert a.shape == (size[1], size[0], 3) and a.dtype == np.uint8
        assert a.tobytes() == b.tobytes()
        c = Renderer(w, params).render(np.array([0.1, 0.0, 0.2]), 1.0, np.random.default_rng(4))
        assert a.tobytes() != c.tobytes()  # the noise differs


def test_antialiased_and_fast_paths_agree():
    w = world(Box(1.0, 0.3, 0.2, 0.2, 0.2, surface=Surface(RED, "checker", scale_m=0.05)))
    pose = np.array([0.0, 0.0, 0.1])
    fast = Renderer(w, CameraParams(antialias=False, **CLEAN)).render(pose).astype(float)
    smooth = Renderer(w, CameraParams(antialias=True, **CLEAN)).render(pose).astype(float)
    assert np.abs(fast - smooth).mean() < 6.0


def test_lighting_changes_the_image():
    base = world(Box(1.0, 0.0, 0.3, 0.3, 0.3, surface=Surface(RED)))
    bright = dataclasses.replace(base, lighting=Lighting(brightness=1.3, flicker=0.0))
    dim = dataclasses.replace(base, lighting=Lighting(brightness=0.6, flicker=0.0))
    p = CameraParams(**CLEAN)
    assert (
        Renderer(bright, p).render(np.zeros(3)).mean()
        > Renderer(dim, p).render(np.zeros(3)).mean() + 20
    )
