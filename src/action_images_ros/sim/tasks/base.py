"""Task interface and the scene-building helpers the tasks share."""

from __future__ import annotations

import abc
from typing import ClassVar

import mujoco
import numpy as np

from ..expert import Waypoint
from ..scene import FINGER_PAD_GEOMS, GRIPPER_BODIES, GROUP_SCENE, VISIBLE_GROUPS

#: Named colours used for objects and in instructions.
COLORS = {
    "red": (0.85, 0.12, 0.10, 1.0),
    "green": (0.15, 0.70, 0.20, 1.0),
    "blue": (0.12, 0.30, 0.85, 1.0),
    "yellow": (0.95, 0.82, 0.10, 1.0),
    "purple": (0.55, 0.20, 0.70, 1.0),
    "orange": (0.95, 0.50, 0.08, 1.0),
}


class Task(abc.ABC):
    """One manipulation task: its objects, seeded initial state, instruction, success test and expert plan.

    Lifecycle: ``add_objects(spec)`` before compiling, ``bind(model)`` after, then per
    episode ``reset(model, data, rng)`` (returns the instruction), ``success`` and
    ``expert_waypoints``. All poses are in the robot base frame (= world).
    """

    name: ClassVar[str]
    #: Step budget of an episode at the default control rate (expert needs well under it).
    max_steps: ClassVar[int] = 100
    #: name of the geom of the object the task moves (None: it moves none); ``bind`` looks up its
    #: id as ``object_geom``
    moved_geom: ClassVar[str | None] = None

    @abc.abstractmethod
    def add_objects(self, spec: mujoco.MjSpec) -> None:
        """Add the task's bodies/geoms to the uncompiled cell."""

    def bind(self, model: mujoco.MjModel) -> None:
        """Look up ids in the compiled model."""
        self.gripper_geoms = {g for g in range(model.ngeom) if model.body(model.geom_bodyid[g]).name in GRIPPER_BODIES}
        self.pad_geoms = tuple(model.geom(n).id for n in FINGER_PAD_GEOMS)
        self.object_geom = None if self.moved_geom is None else model.geom(self.moved_geom).id

    @abc.abstractmethod
    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> str:
        """Randomise the objects and return the instruction.

        The arm is already in its initial posture (kinematics computed, so
        ``data.site_xpos`` holds the TCP); the caller runs ``mj_forward`` afterwards.
        """

    @abc.abstractmethod
    def success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        """Whether the task is achieved in the current state."""

    @abc.abstractmethod
    def expert_waypoints(self, model: mujoco.MjModel, data: mujoco.MjData, tcp_rot: np.ndarray) -> list[Waypoint]:
        """A waypoint plan from the current state; ``tcp_rot`` (3, 3) is the current TCP rotation."""

    def must_be_visible(self, model: mujoco.MjModel, data: mujoco.MjData) -> list[tuple[np.ndarray, int]]:
        """Points ``(3,)`` the initial state must show in every view, each with the body it belongs to.

        ``reset`` is repeated (with the same random stream) until no other visible geom
        hides any of them from any camera.
        """
        return []

    def object_positions(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """Positions ``(3,)`` of the task's objects by role, for failure analysis: ``object`` (what is
        moved), ``target`` (where it goes, or what is reached), ``distractor<i>`` (what is not)."""
        return {}

    def holding(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        """Whether the gripper is in contact with the object it has to move (False: nothing to move)."""
        return self.object_geom is not None and self.touching_gripper(model, data, self.object_geom)

    # ------------------------------------------------------------------ helpers
    def touching_gripper(self, model: mujoco.MjModel, data: mujoco.MjData, geom_id: int) -> bool:
        """Whether geom ``geom_id`` is in contact with any gripper geom."""
        for i in range(data.ncon):
            c = data.contact[i]
            if (c.geom1 == geom_id and c.geom2 in self.gripper_geoms) or \
                    (c.geom2 == geom_id and c.geom1 in self.gripper_geoms):
                return True
        return False


def add_free_box(spec: mujoco.MjSpec, name: str, half_size: float, rgba, mass: float = 0.08) -> None:
    """A cube body ``name`` with a free joint ``name`` and a geom ``name`` (pose set at reset)."""
    body = spec.worldbody.add_body(name=name, pos=[0.5, 0.0, half_size])
    body.add_freejoint(name=name)
    body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=[half_size] * 3, rgba=list(rgba), mass=mass,
                  group=GROUP_SCENE, condim=4, friction=[1.0, 0.02, 0.001], solref=[0.01, 1.0])


def add_marker(spec: mujoco.MjSpec, name: str, geom_type: mujoco.mjtGeom, size, rgba) -> None:
    """A visual-only mocap body ``name`` (no collisions) placed at reset through ``data.mocap_pos``."""
    body = spec.worldbody.add_body(name=name, mocap=True, pos=[0.5, 0.0, 0.0])
    body.add_geom(name=name, type=geom_type, size=list(size), rgba=list(rgba), group=GROUP_SCENE,
                  contype=0, conaffinity=0)


def set_free_pose(model: mujoco.MjModel, data: mujoco.MjData, joint: str, pos, yaw: float) -> None:
    """Place a free-joint body at ``pos`` (3,) rotated by ``yaw`` (rad) about z, at rest."""
    j = model.joint(joint).id
    qa, da = model.jnt_qposadr[j], model.jnt_dofadr[j]
    data.qpos[qa:qa + 3] = pos
    data.qpos[qa + 3:qa + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
    data.qvel[da:da + 6] = 0.0


def free_pose(model: mujoco.MjModel, data: mujoco.MjData, joint: str) -> tuple[np.ndarray, np.ndarray]:
    """Position ``(3,)`` and rotation matrix ``(3, 3)`` of a free-joint body."""
    body = model.jnt_bodyid[model.joint(joint).id]
    return data.xpos[body].copy(), data.xmat[body].reshape(3, 3).copy()


def set_mocap_pos(model: mujoco.MjModel, data: mujoco.MjData, body: str, pos) -> None:
    data.mocap_pos[model.body(body).mocapid[0]] = pos


def sample_separated(rng: np.random.Generator, n: int, low, high, min_dist: float, tries: int = 1000) -> np.ndarray:
    """``n`` uniform points in the box ``[low, high]`` at least ``min_dist`` apart (xy distance)."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    for _ in range(tries):
        pts = rng.uniform(low, high, size=(n, len(low)))
        d = np.linalg.norm(pts[:, None, :2] - pts[None, :, :2], axis=-1)
        if n < 2 or d[np.triu_indices(n, 1)].min() >= min_dist:
            return pts
    raise ValueError(f"could not place {n} points {min_dist} m apart in [{low}, {high}]")


def topdown_rotation(yaw: float) -> np.ndarray:
    """TCP rotation pointing straight down (tool z = -world z) with tool x at ``yaw`` (rad) in the xy plane."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


def grasp_yaw(object_rot: np.ndarray, tcp_rot: np.ndarray) -> float:
    """Yaw of a top-down grasp on a cube: a cube face direction (mod 90 deg) closest to the current tool x."""
    obj_yaw = np.arctan2(object_rot[1, 0], object_rot[0, 0])
    tool_yaw = np.arctan2(tcp_rot[1, 0], tcp_rot[0, 0])
    k = np.round((tool_yaw - obj_yaw) / (np.pi / 2))
    return float(obj_yaw + k * np.pi / 2)


def yaw_of(rot: np.ndarray) -> float:
    return float(np.arctan2(rot[1, 0], rot[0, 0]))


def occluded(model: mujoco.MjModel, data: mujoco.MjData, eye: np.ndarray, point: np.ndarray, body: int,
             groups=VISIBLE_GROUPS) -> bool:
    """Whether a geom of ``groups`` (other than body ``body``'s) lies between ``eye`` and ``point``."""
    geomgroup = np.zeros(6, dtype=np.uint8)
    geomgroup[list(groups)] = 1
    vec = np.asarray(point, dtype=np.float64) - eye
    hit = np.zeros(1, dtype=np.int32)
    x = mujoco.mj_ray(model, data, np.asarray(eye, dtype=np.float64), vec, geomgroup, 1, body, hit)
    return bool(0.0 <= x < 1.0 - 1e-6)
