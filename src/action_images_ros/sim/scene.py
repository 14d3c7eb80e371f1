"""MuJoCo model of the simulated cell: Panda arm + gripper on a table, lights, camera rig.

Frames. The world frame IS the robot base frame (``base_link``): origin at the
base of link0 on the table top, x forward (away from the robot, towards the
front camera), y to the robot's left, z up. The table top is the plane z = 0.

Tool frame (TCP, site ``tcp``). Like Franka's ``fr3_hand_tcp``: 0.1034 m along
the hand's z axis from the flange/hand frame, between the fingertips. Its z axis
is the approach direction (out of the gripper, pointing down when grasping from
above), its y axis is the direction the fingers slide along and x = y cross z is
fixed to the hand. With the arm in Franka's "ready" posture the TCP quaternion
is ``[1, 0, 0, 0]`` (xyzw): x forward, y to the right, z down.

Rendering speed. Visual meshes are decimated (vertex clustering, ``mesh_cell``),
arm-link collision meshes are dropped (the arm links do not collide; hand and
fingers do), there is no anti-aliasing and only one render pass per view.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import mujoco
import numpy as np

from ..geometry import Camera
from .assets import GRIPPER_XML, ROBOT_XML, decimate_mesh, robosuite_assets_dir
from .cameras import fovy_deg, mujoco_camera_pose

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
ARM_ACTUATORS = tuple(f"torq_j{i}" for i in range(1, 8))
GRIPPER_PREFIX = "gripper_"
FINGER_JOINTS = (GRIPPER_PREFIX + "finger_joint1", GRIPPER_PREFIX + "finger_joint2")
FINGER_ACTUATORS = (GRIPPER_PREFIX + "gripper_finger_joint1", GRIPPER_PREFIX + "gripper_finger_joint2")
#: Bodies whose geoms make up the gripper (hand, fingers, fingertips).
GRIPPER_BODIES = tuple(
    GRIPPER_PREFIX + b for b in ("right_gripper", "leftfinger", "rightfinger", "finger_joint1_tip", "finger_joint2_tip")
)
FINGER_PAD_GEOMS = (GRIPPER_PREFIX + "finger1_pad_collision", GRIPPER_PREFIX + "finger2_pad_collision")
TCP_SITE = "tcp"
#: TCP offset from the hand frame along its z axis (Franka's fr3_hand_tcp), metres.
TCP_OFFSET = 0.1034
#: Finger travel per finger (metres): openness 1 = 0.04 m each, 0.08 m between the fingers.
FINGER_TRAVEL = 0.04
#: Franka "ready" posture (rad).
READY_Q = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])

#: Geom groups: 0 collision-only (never rendered), 1 robot visuals, 2 scene objects.
GROUP_COLLISION, GROUP_ROBOT, GROUP_SCENE = 0, 1, 2
VISIBLE_GROUPS = (GROUP_ROBOT, GROUP_SCENE)


@dataclasses.dataclass
class SceneConfig:
    """Physics and rendering settings of the cell.

    Attributes:
        physics_dt: MuJoCo time step (s).
        mesh_cell: vertex-clustering cell (m) for the robot's visual meshes; 0 keeps the full meshes
            (~150k triangles, ~4x slower rendering).
        table_half_extent: half sizes (x, y) of the table top (m); the table spans x in
            [table_x_center - hx, table_x_center + hx].
        table_x_center: x of the table centre (m).
        light_scale: factor on every light's ambient and diffuse intensity (robustness checks).
        key_light_dir: direction of the directional key light (base frame).
        table_rgba, floor_rgba: colours of the table top and of the floor around it.
    """

    physics_dt: float = 0.002
    mesh_cell: float = 0.006
    table_half_extent: tuple[float, float] = (0.65, 0.75)
    table_x_center: float = 0.35
    light_scale: float = 1.0
    key_light_dir: tuple[float, float, float] = (-0.3, -0.15, -1.0)
    table_rgba: tuple[float, float, float, float] = (0.72, 0.62, 0.50, 1.0)
    floor_rgba: tuple[float, float, float, float] = (0.35, 0.37, 0.40, 1.0)

    def __post_init__(self) -> None:
        if not 0 < self.physics_dt <= 0.01:
            raise ValueError(f"physics_dt must be in (0, 0.01] s, got {self.physics_dt}")
        if self.mesh_cell < 0:
            raise ValueError(f"mesh_cell must be >= 0 (0 = full meshes), got {self.mesh_cell}")
        if len(self.table_half_extent) != 2 or min(self.table_half_extent) <= 0:
            raise ValueError(f"table_half_extent must be two positive numbers, got {self.table_half_extent}")
        if not 0.0 < self.light_scale <= 3.0:
            raise ValueError(f"light_scale must be in (0, 3], got {self.light_scale}")
        if len(self.key_light_dir) != 3 or not np.any(np.asarray(self.key_light_dir, float)):
            raise ValueError(f"key_light_dir must be a non-zero 3-vector, got {self.key_light_dir}")
        for name in ("table_rgba", "floor_rgba"):
            v = getattr(self, name)
            if len(v) != 4 or not all(0.0 <= c <= 1.0 for c in v):
                raise ValueError(f"{name} must be 4 values in [0, 1], got {v}")


def _robot_spec() -> mujoco.MjSpec:
    """Panda arm with the Panda gripper attached to its hand, every geom named."""
    assets = robosuite_assets_dir()
    robot = mujoco.MjSpec.from_file(str(assets / ROBOT_XML))
    gripper = mujoco.MjSpec.from_file(str(assets / GRIPPER_XML))
    robot.body("right_hand").add_frame().attach_body(gripper.body("right_gripper"), GRIPPER_PREFIX, "")
    for i, geom in enumerate(robot.geoms):
        if not geom.name:
            geom.name = f"panda_geom{i}"
    return robot


@functools.lru_cache(maxsize=4)
def _decimated_visuals(cell: float) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per visual mesh geom: decimated (vertices, faces) in the compiled mesh frame, geom pos, quat.

    Pure function of ``cell`` and the installed asset files (cached: compiling the
    full meshes takes ~0.7 s). The compiled mesh frame plus the compiled geom
    pose place the geom exactly; MuJoCo keeps the placement when it recentres
    the decimated mesh again.
    """
    spec = _robot_spec()
    model = spec.compile()
    out = {}
    for g in range(model.ngeom):
        if model.geom_type[g] != mujoco.mjtGeom.mjGEOM_MESH or model.geom_group[g] != GROUP_ROBOT:
            continue
        mid = model.geom_dataid[g]
        va, vn = model.mesh_vertadr[mid], model.mesh_vertnum[mid]
        fa, fn = model.mesh_faceadr[mid], model.mesh_facenum[mid]
        verts, faces = decimate_mesh(model.mesh_vert[va:va + vn], model.mesh_face[fa:fa + fn], cell)
        if len(faces) < 4:  # too small to survive clustering: keep it whole
            verts, faces = model.mesh_vert[va:va + vn].astype(np.float64), model.mesh_face[fa:fa + fn]
        for arr in (verts, faces):
            arr.setflags(write=False)
        out[model.geom(g).name] = (verts, faces, model.geom_pos[g].copy(), model.geom_quat[g].copy())
    return out


def _add_robot(spec: mujoco.MjSpec, cell: float) -> None:
    robot = _robot_spec()
    # Arm links do not collide (the tasks never need it; saves collision checks).
    for geom in list(robot.geoms):
        if geom.group == GROUP_COLLISION and geom.name.startswith("link"):
            robot.delete(geom)
    if cell > 0:
        for name, (verts, faces, pos, quat) in _decimated_visuals(float(cell)).items():
            geom = robot.geom(name)
            robot.add_mesh(name=f"{name}_decimated", uservert=verts.ravel().tolist(), userface=faces.ravel().tolist())
            geom.meshname = f"{name}_decimated"
            geom.pos = pos
            geom.quat = quat
        used = {g.meshname for g in robot.geoms}
        for mesh in list(robot.meshes):
            if mesh.name not in used:
                robot.delete(mesh)
    # TCP: hand z offset, frame = hand frame (the gripper body is the hand rotated by -90 deg about z).
    hand = robot.body(GRIPPER_PREFIX + "right_gripper")
    hand.add_site(name=TCP_SITE, pos=[0.0, 0.0, TCP_OFFSET], quat=[np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)],
                  size=[0.005, 0.005, 0.005], group=4)
    spec.worldbody.add_frame().attach_body(robot.body("base"), "", "")


def _add_cameras(spec: mujoco.MjSpec, rig: Sequence[Camera]) -> None:
    for cam in rig:
        pos, quat = mujoco_camera_pose(cam)
        spec.worldbody.add_camera(name=cam.name, pos=pos, quat=quat, fovy=fovy_deg(cam))


def build_model(
    rig: Sequence[Camera],
    config: SceneConfig,
    add_objects: Callable[[mujoco.MjSpec], None] | None = None,
    offscreen_size: tuple[int, int] = (128, 128),
) -> mujoco.MjModel:
    """Compile the cell.

    Args:
        rig: cameras (world = robot base frame) added as MuJoCo cameras with the same names.
        config: physics and rendering settings.
        add_objects: called with the spec to add task objects (bodies, sites, materials).
        offscreen_size: ``(width, height)`` of the largest offscreen image to be rendered.

    Returns:
        The compiled model.
    """
    spec = mujoco.MjSpec()
    spec.modelname = "action_images_franka_cell"
    spec.option.timestep = config.physics_dt
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.compiler.degree = False
    vis = spec.visual
    vis.quality.offsamples = 0  # no multisampling
    vis.global_.offwidth = max(int(offscreen_size[0]), 64)
    vis.global_.offheight = max(int(offscreen_size[1]), 64)
    k = float(config.light_scale)
    vis.headlight.ambient = [0.35 * k] * 3
    vis.headlight.diffuse = [0.45 * k] * 3
    vis.headlight.specular = [0.05, 0.05, 0.05]
    vis.map.znear = 0.01
    vis.map.zfar = 20.0

    wb = spec.worldbody
    hx, hy = config.table_half_extent
    wb.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=[hx, hy, 0.025],
                pos=[config.table_x_center, 0.0, -0.025], rgba=list(config.table_rgba), group=GROUP_SCENE)
    wb.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3.0, 3.0, 0.1], pos=[0.0, 0.0, -0.75],
                rgba=list(config.floor_rgba), group=GROUP_SCENE, contype=0, conaffinity=0)
    wb.add_light(name="key", pos=[0.8, 0.3, 2.0], dir=list(config.key_light_dir),
                 type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, castshadow=False, diffuse=[0.55 * k] * 3,
                 specular=[0.1, 0.1, 0.1])
    _add_robot(spec, config.mesh_cell)
    _add_cameras(spec, rig)
    if add_objects is not None:
        add_objects(spec)
    return spec.compile()
