"""place_cube: pick the cube and put it down on the marked square."""

from __future__ import annotations

import mujoco
import numpy as np

from ..expert import Waypoint
from .base import COLORS, Task, add_free_box, add_marker, free_pose, sample_separated, set_free_pose, set_mocap_pos
from .pick_cube import GRASP_BELOW_CENTRE, HALF, YAW_RANGE, grasp_waypoints

LOW, HIGH = (0.40, -0.20), (0.66, 0.20)
PAD_HALF = 0.04
CARRY_Z = 0.15


class PlaceCube(Task):
    """Success: the cube rests on the table within ``tolerance`` (xy) of the square's centre, released."""

    name = "place_cube"
    max_steps = 120
    moved_geom = "cube"
    tolerance = 0.03

    def add_objects(self, spec) -> None:
        add_free_box(spec, "cube", HALF, COLORS["red"])
        add_marker(spec, "target_pad", mujoco.mjtGeom.mjGEOM_BOX, [PAD_HALF, PAD_HALF, 0.001], COLORS["green"])

    def bind(self, model) -> None:
        super().bind(model)
        self.pad_body = model.body("target_pad").id

    def reset(self, model, data, rng) -> str:
        cube_xy, pad_xy = sample_separated(rng, 2, LOW, HIGH, min_dist=0.15)
        set_free_pose(model, data, "cube", [cube_xy[0], cube_xy[1], HALF], rng.uniform(-YAW_RANGE, YAW_RANGE))
        set_mocap_pos(model, data, "target_pad", [pad_xy[0], pad_xy[1], 0.001])
        return "put the red cube on the green square"

    def _pad_xy(self, model, data) -> np.ndarray:
        return data.mocap_pos[model.body_mocapid[self.pad_body]][:2].copy()

    def object_positions(self, model, data):
        return {"object": free_pose(model, data, "cube")[0].copy(),
                "target": np.array([*self._pad_xy(model, data), 0.001])}

    def must_be_visible(self, model, data):
        pad = np.array([*self._pad_xy(model, data), 0.001])
        return [(free_pose(model, data, "cube")[0], model.body("cube").id), (pad, self.pad_body)]

    def success(self, model, data) -> bool:
        pos, _ = free_pose(model, data, "cube")
        on_pad = np.linalg.norm(pos[:2] - self._pad_xy(model, data)) < self.tolerance
        resting = pos[2] < HALF + 0.005
        return bool(on_pad and resting and not self.touching_gripper(model, data, self.object_geom))

    def expert_waypoints(self, model, data, tcp_rot):
        pos, rot = free_pose(model, data, "cube")
        wps = grasp_waypoints(pos, rot, tcp_rot, lift_z=CARRY_Z)
        grip_rot = wps[-1].rotation
        pad = self._pad_xy(model, data)
        release_z = HALF - GRASP_BELOW_CENTRE + 0.005
        wps += [
            Waypoint([pad[0], pad[1], CARRY_Z], grip_rot, gripper=0.0, speed=0.03, tolerance=0.01, label="carry"),
            Waypoint([pad[0], pad[1], release_z], grip_rot, gripper=0.0, speed=0.02, tolerance=0.005, label="lower"),
            Waypoint([pad[0], pad[1], release_z], grip_rot, gripper=1.0, speed=0.02, tolerance=0.01, hold=3,
                     label="release"),
            Waypoint([pad[0], pad[1], release_z + 0.08], grip_rot, gripper=1.0, speed=0.03, tolerance=0.01,
                     label="retreat"),
        ]
        return wps
