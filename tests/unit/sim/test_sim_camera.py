"""Camera renderer: horizon where the pitch says, perspective projection of obstacle bases,
obstacles growing as the robot approaches, occlusion, determinism; the same images as a
per-pixel ray caster and as the renderer before its optimisation; motion blur."""

from __future__ import annotations

import dataclasses
import itertools
import math
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest
from paths import REPO

from sim.camera import CameraParams, Renderer, motion_blur, motion_blur_kernel, pixel_angles
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
    (CameraSpec.floor_pixels, what the live view draws the grid with) puts that point."""
    from robot_ssl.core.spec import CameraSpec

    params = CameraParams(**CLEAN)
    px, py = 0.8, 0.15
    img = Renderer(world(Cylinder(px, py, 0.01, 0.4, Surface(BLUE))), params).render(np.zeros(3))
    m = mask_of(img, BLUE)
    rows, cols = np.nonzero(m)
    base_row = rows.max()
    base_col = cols[rows >= base_row - 2].mean()
    ((u, v),) = CameraSpec().floor_pixels(np.array([[px, py]]))
    assert base_row == pytest.approx(v, abs=2.0)
    assert base_col == pytest.approx(u, abs=2.0)


@pytest.mark.parametrize("pitch_deg", [0.0, 20.0, 35.0])
def test_floor_pixels_inverts_the_renderers_pixel_rays(pitch_deg):
    """Each below-horizon pixel's ray (sim.camera.pixel_angles) meets the floor at a point
    that floor_pixels sends back to that pixel; points behind the camera give NaN."""
    from robot_ssl.core.spec import CameraSpec

    kw = dict(width=160, height=120, pitch_rad=math.radians(pitch_deg), x_m=0.04, y_m=0.01)
    params, spec = CameraParams(**kw, **CLEAN), CameraSpec(**kw)
    heading, elevation = pixel_angles(params)
    below = elevation < -0.02
    dist = params.z_m / np.tan(-elevation[below])  # horizontal range of the floor hit
    xy = np.stack(
        [params.x_m + dist * np.cos(heading[below]), params.y_m + dist * np.sin(heading[below])],
        axis=1,
    )
    v, u = np.nonzero(below)
    np.testing.assert_allclose(spec.floor_pixels(xy), np.stack([u, v], axis=1), atol=1e-6)
    assert np.isnan(spec.floor_pixels(np.array([[spec.x_m - 0.5, 0.0]]))).all()


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


# --------------------------------------------------------------------------- references
# The renderer against (1) an independent per-pixel ray caster (below) and (2) the
# renderer of commit BASELINE_REV (before it was optimised), on the same atlas.

BASELINE_REV = "e28c00f"
TEXTURED = Surface(GREEN, "checker", scale_m=0.1)


def textured_world(*obstacles, arena: Arena = GREY_ARENA) -> World:
    return World(
        arena=arena,
        floor=TEXTURED,
        obstacles=obstacles,
        backdrop=Backdrop((0.8, 0.7, 0.6), (0.3, 0.2, 0.1)),
    )


REFERENCE_WORLDS = {
    "mixed": textured_world(
        Box(1.0, 0.3, 0.2, 0.2, 0.2, surface=Surface(RED, "bricks")),
        Box(-0.9, 0.8, 0.5, 0.1, 0.4, yaw_rad=1.2, surface=Surface(BLUE, "stripes")),
        Cylinder(0.8, -0.4, 0.1, 0.2, Surface(BLUE, "dots")),
        Cylinder(-0.5, -1.2, 0.3, 0.5),
    ),
    "low_lids": textured_world(  # boxes and a cylinder lower than the camera: lids
        Box(0.5, 0.0, 0.3, 0.3, 0.05, surface=Surface(RED, "stripes")),
        Box(0.9, 0.3, 0.2, 0.4, 0.08, yaw_rad=0.7, surface=Surface(BLUE, "checker")),
        Cylinder(0.7, -0.3, 0.1, 0.06, Surface(RED, "dots")),
    ),
    "low_wall": textured_world(arena=Arena(5.0, 4.0, 0.05, Surface((0.5, 0.5, 0.5), "bricks"))),
}
REFERENCE_POSES = [
    np.array([0.0, 0.0, 0.0]),
    np.array([0.3, -0.2, 0.4]),
    np.array([-1.2, 0.5, -2.0]),
    np.array([1.6, 1.5, 0.8]),  # near a corner, facing it
    np.array([0.2, 0.9, math.pi]),
]


def reference_render(r: Renderer, pose: np.ndarray) -> np.ndarray:
    """The clean BGR image by brute force: every pixel's ray (snapped to the renderer's
    panorama grid of headings and elevations) against the floor, every box face and lid,
    cylinder side and lid and arena wall; the nearest hit's atlas coordinate; one remap."""
    p, at, w = r.params, r.atlas, r.world
    psi, elev = pixel_angles(p)
    d_psi = r.psi[1] - r.psi[0]
    psi = r.psi[0] + d_psi * np.rint((psi - r.psi[0]) / d_psi)
    tan_e = np.tan(r.e0 + r.d_e * np.rint((elev - r.e0) / r.d_e)).ravel()
    ox, oy, yaw = r.camera_pose(pose)
    z = p.z_m
    a = (yaw + psi).ravel()
    dx, dy = np.cos(a), np.sin(a)
    n = a.size
    best = np.full(n, np.inf)
    coord = np.zeros((n, 2))

    def offer(t: np.ndarray, ok: np.ndarray, xy: np.ndarray) -> None:
        take = ok & (t < best)
        best[take] = t[take]
        coord[take] = np.broadcast_to(xy, (n, 2))[take]

    def z_at(t: np.ndarray) -> np.ndarray:
        return z + t * tan_e

    with np.errstate(divide="ignore", invalid="ignore"):
        geo = w.geometry()
        for b, src in enumerate(geo.box_source):
            box = w.obstacles[src].as_box()
            c, s = math.cos(box.yaw_rad), math.sin(box.yaw_rad)
            lx, ly = (
                c * (ox - box.x_m) + s * (oy - box.y_m),
                -s * (ox - box.x_m) + c * (oy - box.y_m),
            )
            ldx, ldy = c * dx + s * dy, -s * dx + c * dy
            hx, hy = box.length_m / 2, box.width_m / 2
            t1, t2 = (-hx - lx) / ldx, (hx - lx) / ldx
            t3, t4 = (-hy - ly) / ldy, (hy - ly) / ldy
            t_in = np.maximum(np.minimum(t1, t2), np.minimum(t3, t4))
            t_out = np.minimum(np.maximum(t1, t2), np.maximum(t3, t4))
            inside = (t_in <= t_out) & (t_in > 0)
            corners = box.corners()
            px, py = ox + t_in * dx, oy + t_in * dy
            for f in range(4):  # the entry face is the one the entry point lies on
                p0, p1 = corners[f], corners[(f + 1) % 4]
                u = (p1 - p0) / np.hypot(*(p1 - p0))
                normal_dist = (px - p0[0]) * u[1] - (py - p0[1]) * u[0]
                on = np.abs(normal_dist) < 1e-9 + 1e-9 * t_in
                s_m = (px - p0[0]) * u[0] + (py - p0[1]) * u[1]
                ppm = at.box_face_ppm[b, f]
                xy = at.box_face_origin[b, f] + ppm * np.stack([s_m, box.height_m - z_at(t_in)], 1)
                offer(t_in, inside & on & (z_at(t_in) >= 0) & (z_at(t_in) < box.height_m), xy)
            t_lid = (z - box.height_m) / -tan_e
            lx2, ly2 = lx + t_lid * ldx, ly + t_lid * ldy
            xy = at.box_lid_origin[b] + at.box_lid_ppm[b] * np.stack([lx2 + hx, ly2 + hy], 1)
            on_lid = inside & (box.height_m < z) & (t_lid >= t_in) & (t_lid <= t_out)
            offer(t_lid, on_lid, xy)
        for k, (cx, cy, rad) in enumerate(geo.circles):
            h = geo.circle_height_m[k]
            rx, ry = ox - cx, oy - cy
            bb = dx * rx + dy * ry
            disc = bb * bb - (rx * rx + ry * ry - rad * rad)
            t_in, t_out = -bb - np.sqrt(disc), -bb + np.sqrt(disc)
            inside = (disc >= 0) & (t_in > 0)
            ang = np.arctan2(ry + t_in * dy, rx + t_in * dx)
            ppm = at.cyl_side_ppm[k]
            xy = at.cyl_side_origin[k] + np.stack(
                [(ang + math.pi) * rad * ppm, (h - z_at(t_in)) * ppm], 1
            )
            offer(t_in, inside & (z_at(t_in) >= 0) & (z_at(t_in) < h), xy)
            t_lid = (z - h) / -tan_e
            lid_x, lid_y = rx + t_lid * dx + rad, ry + t_lid * dy + rad
            xy = at.cyl_lid_origin[k] + at.cyl_lid_ppm[k] * np.stack([lid_x, lid_y], 1)
            offer(t_lid, inside & (h < z) & (t_lid >= t_in) & (t_lid <= t_out), xy)
        # Arena walls (geometry order, inside on the right); the floor inside them;
        # beyond them the far floor below the horizon and the backdrop above it.
        ha = w.arena.wall_height_m
        t_exit = np.full(n, np.inf)  # where the ray leaves the arena
        for k, (x0, y0, x1, y1) in enumerate(geo.segments[-4:]):
            ex, ey = x1 - x0, y1 - y0
            length = math.hypot(ex, ey)
            den = dx * ey - dy * ex
            t = ((x0 - ox) * ey - (y0 - oy) * ex) / den
            s_m = ((x0 - ox) * dy - (y0 - oy) * dx) / den * length
            ok = (t > 0) & (s_m >= 0) & (s_m <= length)
            ppm = at.arena_ppm[k]
            xy = at.arena_origin[k] + ppm * np.stack([s_m, ha - z_at(t)], 1)
            offer(t, ok & (z_at(t) >= 0) & (z_at(t) < ha), xy)
            t_exit = np.where(ok, np.minimum(t_exit, t), t_exit)
        t_floor = np.where(tan_e < 0, z / -tan_e, np.inf)
        fb = at.floor_bounds_m
        hit_x, hit_y = ox + t_floor * dx, oy + t_floor * dy
        floor_xy = np.stack([hit_x - fb[0], hit_y - fb[1]], 1) * at.floor_ppm
        offer(t_floor, t_floor < t_exit, np.asarray(at.floor_origin) + floor_xy)
        far = np.isinf(best)
        offer(np.full(n, 1e9), far & (tan_e < 0), np.asarray(at.far_floor))
        az = math.fmod(yaw, 2 * math.pi) + 2 * math.pi + psi.ravel()
        bo = at.backdrop_origin
        sky = np.stack(
            [bo[0] + az * at.backdrop_px_per_rad, bo[1] + at.backdrop_px_per_tan * (1.5 - tan_e)], 1
        )
        offer(np.full(n, 1e9), far & (tan_e >= 0), sky)
    maps = coord.astype(np.float32).reshape(p.height, p.width, 2)
    img = cv2.remap(at.image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)


def image_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean absolute difference, share of values within 2 grey levels)."""
    d = np.abs(a.astype(int) - b.astype(int))
    return float(d.mean()), float((d <= 2).mean())


@pytest.mark.parametrize("name", sorted(REFERENCE_WORLDS))
def test_renderer_matches_a_per_pixel_ray_caster(name):
    w = REFERENCE_WORLDS[name]
    for size, pitch_deg in [((160, 120), 20.0), ((320, 240), 8.0)]:
        params = CameraParams(
            width=size[0], height=size[1], antialias=False, pitch_rad=math.radians(pitch_deg)
        )
        r = Renderer(w, params)
        for pose in REFERENCE_POSES:
            mae, close = image_difference(r.render_clean(pose), reference_render(r, pose))
            assert mae < 0.1 and close > 0.995, (name, size, pose, mae, close)


def _baseline_camera():
    """sim/camera.py of BASELINE_REV as a module (skips where git or the commit is absent)."""
    repo = REPO
    try:
        src = subprocess.run(
            ["git", "-C", str(repo), "show", f"{BASELINE_REV}:sim/camera.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git or commit {BASELINE_REV} not available")
    name = "_baseline_sim_camera"
    module = types.ModuleType(name)
    module.__file__ = f"<{BASELINE_REV}:sim/camera.py>"
    sys.modules[name] = module  # dataclasses look their module up
    try:
        exec(compile(src, module.__file__, "exec"), module.__dict__)
    except Exception as e:  # the rest of sim moved on: nothing to compare against
        pytest.skip(f"baseline renderer does not load against today's sim: {e}")
    finally:
        sys.modules.pop(name, None)
    return module


def test_renderer_matches_the_baseline_renderer():
    """Today's renderer draws what the one before its optimisation drew (same atlas)."""
    from sim import load_world
    from sim.atlas import build_atlas

    old = _baseline_camera()
    worlds = {**REFERENCE_WORLDS, "arena_boxes": load_world("arena_boxes")}
    rng = np.random.default_rng(11)
    for name, w in worlds.items():
        atlas = build_atlas(w)
        poses = REFERENCE_POSES + [
            np.array([rng.uniform(-1.3, 1.3), rng.uniform(-1.1, 1.1), rng.uniform(-3, 3)])
            for _ in range(3)
        ]
        for size in [(320, 240), (80, 64)]:
            kw = dict(width=size[0], height=size[1], noise_std=0.0, vignette=0.0)
            r_new = Renderer(w, CameraParams(**kw), atlas=atlas)
            r_old = old.Renderer(w, old.CameraParams(**kw), atlas=atlas)
            for pose in poses:
                mae, close = image_difference(r_new.render(pose), r_old.render(pose))
                assert mae < 0.25 and close > 0.995, (name, size, pose, mae, close)


# --------------------------------------------------------------------------- motion blur


def _edges(width: int = 64, height: int = 48) -> np.ndarray:
    """A vertical edge (dark left, bright right) in the top half, a horizontal one below."""
    img = np.full((height, width, 3), 40, np.uint8)
    img[: height // 2, width // 2 :] = 220
    return img


@pytest.mark.parametrize("bx", [1.0, 2.5, 4.0, 7.5])
def test_motion_blur_smears_a_vertical_edge_over_about_bx_pixels(bx):
    img = _edges()
    for sign in (1, -1):
        out = motion_blur(img, sign * bx, 0.0)
        row = out[5, :, 0].astype(int)
        between = np.flatnonzero((row > 41) & (row < 219))  # neither side's level
        assert bx - 1 <= between.size <= bx + 1.5, (bx, row)
        assert np.all(np.diff(row) >= 0)  # a monotone ramp
        assert abs(between.mean() - 31.5) <= 0.5  # centred on the edge
    assert np.array_equal(motion_blur(img, bx, 0.0), motion_blur(img, -bx, 0.0))


def test_pure_horizontal_blur_leaves_horizontal_edges_alone():
    img = np.full((48, 64, 3), 40, np.uint8)
    img[24:] = 220  # a horizontal edge only
    for bx in (0.7, 3.0, 9.3):
        assert motion_blur_kernel(bx, 0.0).shape[0] == 1
        assert np.array_equal(motion_blur(img, bx, 0.0), img)


def test_motion_blur_kernel_is_a_normalised_centred_line():
    for b in [(0.6, 0.0), (3.3, 0.0), (0.0, 4.0), (3.0, 3.0), (-2.0, 5.0)]:
        k = motion_blur_kernel(*b)
        assert k.dtype == np.float32 and k.shape[0] % 2 == 1 and k.shape[1] % 2 == 1
        assert k.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.allclose(k, k[::-1, ::-1])  # centred: symmetric about its middle
        ys, xs = np.nonzero(k > 1e-3)
        ys, xs = ys - k.shape[0] // 2, xs - k.shape[1] // 2
        assert np.abs(xs * b[1] - ys * b[0]).max() <= 1.5 * math.hypot(*b)  # along b
        assert np.hypot(xs, ys).max() <= math.hypot(*b) / 2 + 1.5


def test_render_blur_none_or_tiny_changes_nothing_and_blur_comes_before_the_noise():
    w = textured_world(Box(1.0, 0.0, 0.3, 0.3, 0.3, surface=Surface(RED, "stripes")))
    pose = np.array([0.0, 0.1, 0.2])
    r = Renderer(w, CameraParams())
    plain = r.render(pose, 1.0, np.random.default_rng(3))
    for blur in (None, (0.3, 0.0), (0.2, -0.3)):
        assert r.render(pose, 1.0, np.random.default_rng(3), blur).tobytes() == plain.tobytes()
    clean = Renderer(w, CameraParams(**CLEAN))
    assert np.array_equal(
        clean.render(pose, blur_px=(6.0, 0.0)), motion_blur(clean.render(pose), 6.0, 0.0)
    )
    # Noise is added after the smear: it stays as sharp (pixel to pixel) as without blur.
    noisy = Renderer(dataclasses.replace(w, lighting=FLAT), CameraParams(vignette=0.0))
    smeared = motion_blur(noisy.render_clean(pose), 6.0, 0.0).astype(float)
    residual = noisy.render(pose, 0.0, np.random.default_rng(5), (6.0, 0.0)) - smeared
    assert np.std(np.diff(residual, axis=1)) > 0.8 * math.sqrt(2) * 2.5
