"""reach_target: move the TCP into the sphere of the named colour (two distractors of other colours)."""

from __future__ import annotations

import mujoco
import numpy as np

from ..expert import Waypoint
from .base import COLORS, Task, add_marker, sample_separated, set_mocap_pos

N_SPHERES = 3
RADIUS = 0.025
#: Region of the sphere centres (m, base frame).
LOW, HIGH = (0.35, -0.22, 0.06), (0.70, 0.22, 0.30)
#: Smallest distance (m) of any sphere from the initial TCP.
MIN_TCP_DISTANCE = 0.15


class ReachTarget(Task):
    """Success: the TCP is within ``success_radius`` of the target sphere's centre."""

    name = "reach_target"
    max_steps = 60
    success_radius = 0.03

    def add_objects(self, spec: mujoco.MjSpec) -> None:
        for i in range(N_SPHERES):
            add_marker(spec, f"sphere{i}", mujoco.mjtGeom.mjGEOM_SPHERE, [RADIUS, 0, 0], COLORS["red"])

    def bind(self, model: mujoco.MjModel) -> None:
        super().bind(model)
        self.sphere_geoms = [model.geom(f"sphere{i}").id for i in range(N_SPHERES)]
        self.target_pos = np.zeros(3)

    def reset(self, model, data, rng) -> str:
        names = rng.choice(sorted(COLORS), size=N_SPHERES, replace=False)
        tcp = data.site_xpos[model.site("tcp").id]
        for _ in range(1000):  # keep the spheres clear of the gripper (visible, and a real reach)
            pts = sample_separated(rng, N_SPHERES, LOW, HIGH, min_dist=0.12)
            if np.linalg.norm(pts - tcp, axis=1).min() > MIN_TCP_DISTANCE:
                break
        for i in range(N_SPHERES):
            model.geom_rgba[self.sphere_geoms[i]] = COLORS[names[i]]
            set_mocap_pos(model, data, f"sphere{i}", pts[i])
        self.target_pos = pts[0].copy()  # sphere0 is the target
        return f"reach the {names[0]} target"

    def object_positions(self, model, data):
        spheres = [data.mocap_pos[model.body_mocapid[model.body(f"sphere{i}").id]].copy() for i in range(N_SPHERES)]
        return {"target": spheres[0], **{f"distractor{i}": spheres[i] for i in range(1, N_SPHERES)}}

    def must_be_visible(self, model, data):
        return [(self.target_pos.copy(), model.body("sphere0").id)]

    def success(self, model, data) -> bool:
        tcp = data.site_xpos[model.site("tcp").id]
        return bool(np.linalg.norm(tcp - self.target_pos) < self.success_radius)

    def expert_waypoints(self, model, data, tcp_rot):
        return [Waypoint(self.target_pos, tcp_rot, gripper=1.0, speed=0.012, tolerance=0.005, hold=3, label="reach")]
