"""Scripted experts: follow TCP waypoints at a bounded speed with the same controller as any policy."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..geometry import matrix_to_quat


@dataclasses.dataclass
class Waypoint:
    """A TCP goal of a scripted expert.

    Attributes:
        position: ``(3,)`` TCP position (m, base frame).
        rotation: ``(3, 3)`` TCP rotation (base frame).
        gripper: commanded openness in [0, 1] while moving to and holding this waypoint.
        speed: largest TCP translation per control step (m) on the way here.
        tolerance: measured TCP distance (m) under which the waypoint counts as reached.
        hold: control steps to stay after reaching it (e.g. to let the fingers close).
        label: phase name (debugging, logging).
    """

    position: np.ndarray
    rotation: np.ndarray
    gripper: float
    speed: float = 0.03
    tolerance: float = 0.01
    hold: int = 0
    label: str = ""

    def __post_init__(self) -> None:
        self.position = np.asarray(self.position, dtype=np.float64).reshape(3)
        self.rotation = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        if not 0.0 <= self.gripper <= 1.0:
            raise ValueError(f"waypoint gripper must be in [0, 1], got {self.gripper}")
        if self.speed <= 0 or self.tolerance <= 0 or self.hold < 0:
            raise ValueError(f"waypoint {self.label!r}: speed/tolerance must be > 0 and hold >= 0")


class WaypointExpert:
    """Turns waypoints into 8-D actions, closed loop on the measured TCP.

    The commanded target moves from the current command towards the active
    waypoint by at most ``speed`` metres (and ``max_rot_step_deg``) per step;
    the waypoint is passed once the command has arrived, the measured TCP is
    within ``tolerance`` and ``hold`` further steps have elapsed (or after
    ``patience`` steps at the waypoint, so a blocked motion cannot stall it).

    Args:
        waypoints: the plan, in order.
        max_rot_step_deg: largest rotation of the command per step (degrees).
        patience: steps at an arrived command before moving on regardless.
    """

    def __init__(self, waypoints: Sequence[Waypoint], max_rot_step_deg: float = 12.0, patience: int = 8) -> None:
        if not waypoints:
            raise ValueError("an expert needs at least one waypoint")
        self.waypoints = list(waypoints)
        self.max_rot_step = np.radians(max_rot_step_deg)
        self.patience = int(patience)
        self.index = 0
        self._cmd_pos: np.ndarray | None = None
        self._cmd_rot: Rotation | None = None
        self._held = 0
        self._waited = 0

    @property
    def done(self) -> bool:
        """True once every waypoint was reached (and held)."""
        return self.index >= len(self.waypoints)

    @property
    def phase(self) -> str:
        return "done" if self.done else self.waypoints[self.index].label

    def act(self, obs) -> np.ndarray:
        """Next action ``(8,)`` = ``[x y z qx qy qz qw gripper]`` from an observation (uses ``obs.ee_pose``)."""
        ee = np.asarray(obs.ee_pose, dtype=np.float64)
        if self._cmd_pos is None:
            self._cmd_pos = ee[:3].copy()
            self._cmd_rot = Rotation.from_quat(ee[3:7])
        wp = self.waypoints[min(self.index, len(self.waypoints) - 1)]
        if not self.done:
            self._advance(wp, ee)
            wp = self.waypoints[min(self.index, len(self.waypoints) - 1)]
        # Move the command towards the (possibly new) waypoint.
        delta = wp.position - self._cmd_pos
        dist = np.linalg.norm(delta)
        self._cmd_pos = wp.position.copy() if dist <= wp.speed else self._cmd_pos + delta * (wp.speed / dist)
        goal_rot = Rotation.from_matrix(wp.rotation)
        angle = (self._cmd_rot.inv() * goal_rot).magnitude()
        if angle <= self.max_rot_step:
            self._cmd_rot = goal_rot
        else:
            self._cmd_rot = Slerp([0.0, 1.0], Rotation.concatenate([self._cmd_rot, goal_rot]))(
                self.max_rot_step / angle)
        quat = matrix_to_quat(self._cmd_rot.as_matrix())
        if float(np.dot(quat, ee[3:7])) < 0:  # same rotation, sign continuous with the observation
            quat = -quat
        return np.concatenate([self._cmd_pos, quat, [wp.gripper]])

    def _advance(self, wp: Waypoint, ee: np.ndarray) -> None:
        arrived = np.linalg.norm(self._cmd_pos - wp.position) < 1e-9 and \
            (self._cmd_rot.inv() * Rotation.from_matrix(wp.rotation)).magnitude() < 1e-6
        if not arrived:
            return
        self._waited += 1
        if np.linalg.norm(ee[:3] - wp.position) < wp.tolerance or self._waited > self.patience:
            self._held += 1
        if self._held > wp.hold:
            self.index += 1
            self._held = 0
            self._waited = 0
