"""The included simulator: worlds, kinematics, IR sensors, camera renderer and a virtual
Thymio that speaks the Aseba protocol (the data-collection wander controller is the
robot's, robot_ssl.recording.wander: the same on a real robot and in the simulator).

It satisfies robot_ssl's device protocols by shape and never imports robot_ssl.
Typical use::

    from sim import Simulator, load_world
    sim = Simulator(load_world("arena_boxes"), seed=1)
    sim.robot.set_wheel_targets(200, 200)
    while sim.clock.now_ns() < 10e9:
        r = sim.robot.read()
        sim.clock.sleep_until_ns(r.t_ns + 20_000_000)
    frame = sim.camera.read()
"""

from sim.accelerometer import Accelerometer, AccParams
from sim.camera import CameraParams, Renderer
from sim.errors import SimError, WorldError
from sim.ir import THYMIO_PROX_POSES, IRParams, IRSensors, ir_response
from sim.kinematics import DiffDrive, DriveParams, integrate_arc
from sim.simulator import (
    SimAccSample,
    SimCamera,
    SimClock,
    SimContact,
    SimFrame,
    SimReading,
    SimRobot,
    SimTruth,
    Simulator,
)
from sim.world import (
    Arena,
    Backdrop,
    Box,
    Cylinder,
    Lighting,
    Surface,
    Wall,
    World,
    list_worlds,
    load_world,
    save_world,
)
from sim.worldgen import WorldGenConfig, generate_world

__all__ = [
    "THYMIO_PROX_POSES",
    "AccParams",
    "Accelerometer",
    "Arena",
    "Backdrop",
    "Box",
    "CameraParams",
    "Cylinder",
    "DiffDrive",
    "DriveParams",
    "IRParams",
    "IRSensors",
    "Lighting",
    "Renderer",
    "SimAccSample",
    "SimCamera",
    "SimClock",
    "SimContact",
    "SimError",
    "SimFrame",
    "SimReading",
    "SimRobot",
    "SimTruth",
    "Simulator",
    "Surface",
    "Wall",
    "World",
    "WorldError",
    "WorldGenConfig",
    "generate_world",
    "integrate_arc",
    "ir_response",
    "list_worlds",
    "load_world",
    "save_world",
]
