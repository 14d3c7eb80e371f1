"""stack_cubes: put the red cube on top of the blue cube."""

from __future__ import annotations

import numpy as np

from ..expert import Waypoint
from .base import COLORS, Task, add_free_box, free_pose, sample_separated, set_free_pose
from .pick_cube import GRASP_BELOW_CENTRE, HALF, YAW_RANGE, grasp_waypoints

LOW, HIGH = (0.40, -0.20), (0.66, 0.20)
BASE_HALF = 0.03
CARRY_Z = 0.18


class StackCubes(Task):
    """Success: the red cube rests on the blue one (xy within ``tolerance``, heights consistent), released."""

    name = "stack_cubes"
    max_steps = 120
    moved_geom = "cube"
    tolerance = 0.02

    def add_objects(self, spec) -> None:
        add_free_box(spec, "cube", HALF, COLORS["red"])
        add_free_box(spec, "base_cube", BASE_HALF, COLORS["blue"], mass=0.3)

    def reset(self, model, data, rng) -> str:
        cube_xy, base_xy = sample_separated(rng, 2, LOW, HIGH, min_dist=0.15)
        set_free_pose(model, data, "cube", [cube_xy[0], cube_xy[1], HALF], rng.uniform(-YAW_RANGE, YAW_RANGE))
        set_free_pose(model, data, "base_cube", [base_xy[0], base_xy[1], BASE_HALF],
                      rng.uniform(-YAW_RANGE, YAW_RANGE))
        return "stack the red cube on the blue cube"

    def object_positions(self, model, data):
        return {"object": free_pose(model, data, "cube")[0].copy(),
                "target": free_pose(model, data, "base_cube")[0].copy()}

    def must_be_visible(self, model, data):
        return [(free_pose(model, data, n)[0], model.body(n).id) for n in ("cube", "base_cube")]

    def success(self, model, data) -> bool:
        top, _ = free_pose(model, data, "cube")
        base, _ = free_pose(model, data, "base_cube")
        aligned = np.linalg.norm(top[:2] - base[:2]) < self.tolerance
        on_top = abs(top[2] - (base[2] + BASE_HALF + HALF)) < 0.006
        return bool(aligned and on_top and not self.touching_gripper(model, data, self.object_geom))

    def expert_waypoints(self, model, data, tcp_rot):
        pos, rot = free_pose(model, data, "cube")
        base, _ = free_pose(model, data, "base_cube")
        wps = grasp_waypoints(pos, rot, tcp_rot, lift_z=CARRY_Z)
        grip_rot = wps[-1].rotation
        release_z = base[2] + BASE_HALF + HALF - GRASP_BELOW_CENTRE + 0.006
        wps += [
            Waypoint([base[0], base[1], CARRY_Z], grip_rot, gripper=0.0, speed=0.03, tolerance=0.01, label="carry"),
            Waypoint([base[0], base[1], release_z], grip_rot, gripper=0.0, speed=0.015, tolerance=0.004,
                     label="lower"),
            Waypoint([base[0], base[1], release_z], grip_rot, gripper=1.0, speed=0.02, tolerance=0.01, hold=3,
                     label="release"),
            Waypoint([base[0], base[1], release_z + 0.08], grip_rot, gripper=1.0, speed=0.03, tolerance=0.01,
                     label="retreat"),
        ]
        return wps
