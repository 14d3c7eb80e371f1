"""pick_cube: grasp the cube from above and lift it."""

from __future__ import annotations

import numpy as np

from ..expert import Waypoint
from .base import COLORS, Task, add_free_box, free_pose, grasp_yaw, set_free_pose, topdown_rotation

HALF = 0.025
#: Region of the cube centre (m, base frame) and its yaw range (rad).
LOW, HIGH = (0.40, -0.20), (0.66, 0.20)
YAW_RANGE = np.pi / 4
#: Grasp point below the cube centre: the finger pads' centre is 1 cm above the TCP.
GRASP_BELOW_CENTRE = 0.005


def grasp_waypoints(cube_pos: np.ndarray, cube_rot: np.ndarray, tcp_rot: np.ndarray,
                    lift_z: float = 0.20, approach_height: float = 0.10) -> list[Waypoint]:
    """Approach above a cube, descend, close the fingers, lift to ``lift_z`` (m)."""
    rot = topdown_rotation(grasp_yaw(cube_rot, tcp_rot))
    grasp = cube_pos - [0.0, 0.0, GRASP_BELOW_CENTRE]
    above = grasp + [0.0, 0.0, approach_height]
    lifted = np.array([grasp[0], grasp[1], lift_z])
    return [
        Waypoint(above, rot, gripper=1.0, speed=0.03, tolerance=0.01, label="approach"),
        Waypoint(grasp, rot, gripper=1.0, speed=0.02, tolerance=0.004, label="descend"),
        Waypoint(grasp, rot, gripper=0.0, speed=0.02, tolerance=0.01, hold=4, label="close"),
        Waypoint(lifted, rot, gripper=0.0, speed=0.025, tolerance=0.01, label="lift"),
    ]


class PickCube(Task):
    """Success: the cube's bottom is at least ``lift_height`` above the table and it touches the gripper."""

    name = "pick_cube"
    max_steps = 80
    moved_geom = "cube"
    lift_height = 0.08

    def __init__(self) -> None:
        self.color = "red"

    def add_objects(self, spec) -> None:
        add_free_box(spec, "cube", HALF, COLORS["red"])

    def reset(self, model, data, rng) -> str:
        xy = rng.uniform(LOW, HIGH)
        set_free_pose(model, data, "cube", [xy[0], xy[1], HALF], rng.uniform(-YAW_RANGE, YAW_RANGE))
        return f"pick up the {self.color} cube"

    def must_be_visible(self, model, data):
        return [(free_pose(model, data, "cube")[0], model.body("cube").id)]

    def object_positions(self, model, data):
        return {"object": free_pose(model, data, "cube")[0].copy()}

    def success(self, model, data) -> bool:
        pos, _ = free_pose(model, data, "cube")
        return bool(pos[2] - HALF > self.lift_height and self.touching_gripper(model, data, self.object_geom))

    def expert_waypoints(self, model, data, tcp_rot):
        pos, rot = free_pose(model, data, "cube")
        wps = grasp_waypoints(pos, rot, tcp_rot, lift_z=0.20)
        wps[-1].hold = 2
        return wps
