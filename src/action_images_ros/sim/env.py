"""The simulated Franka cell as an environment: reset from a seed, step with 8-D EE targets, render views.

Frames and conventions (see ``scene`` for details): every pose is in the robot
base frame (= MuJoCo world frame; origin at the robot base on the table top,
z up, table top at z = 0). Actions and ``Observation.ee_pose`` are
``[x, y, z, qx, qy, qz, qw, gripper]`` of the TCP (between the fingertips, tool
z = approach direction, tool y = finger axis), gripper openness 1 = open.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import mujoco
import numpy as np

from ..geometry import Camera, load_rig, matrix_to_quat, quat_to_matrix
from .cameras import cameras_for_image, mujoco_camera_pose
from .controller import ArmController, ControllerConfig
from .expert import WaypointExpert
from .renderer import MultiViewRenderer
from .scene import READY_Q, SceneConfig, build_model
from .tasks import TASK_NAMES, make_task
from .tasks.base import occluded, topdown_rotation

logger = logging.getLogger(__name__)

RIG_FILE = "cameras_sim.yaml"
#: Task placements tried per reset until its key objects are visible in every view.
MAX_RESET_ATTEMPTS = 50


def default_rig_path() -> Path:
    """``config/cameras_sim.yaml`` of the source checkout, else of the installed ROS package share."""
    candidates = [Path(__file__).resolve().parents[3] / "config" / RIG_FILE,
                  Path(sys.prefix) / "share" / "action_images_ros" / "config" / RIG_FILE]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"default camera rig not found; looked in {[str(p) for p in candidates]}")


def continuous_quat(quat: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``quat`` (xyzw) or its negation, whichever is closer to ``reference`` (same rotation, no sign jumps)."""
    return -quat if float(np.dot(quat, reference)) < 0 else quat


#: Quaternion hemisphere each episode starts in: the TCP pointing down, tool x forward.
TOPDOWN_QUAT = np.array([1.0, 0.0, 0.0, 0.0])


def _image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)):
        h = w = int(image_size)
    else:
        try:
            h, w = (int(v) for v in image_size)
        except (TypeError, ValueError):
            raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}") from None
    if not (16 <= h <= 2048 and 16 <= w <= 2048):
        raise ValueError(f"image size must be within 16..2048 px, got (height, width) = ({h}, {w})")
    return h, w


@dataclasses.dataclass
class EnvConfig:
    """Settings of a simulated episode.

    Attributes:
        task: one of ``TASK_NAMES``.
        image_size: ``(height, width)`` of every rendered view (pixels).
        rig_path: camera rig YAML (``geometry.load_rig`` format, base frame); None = ``config/cameras_sim.yaml``.
        render_depth: also render metric depth (``Observation.depth``); off is a little faster.
        control_dt: seconds per ``step`` (one action).
        workspace_min, workspace_max: box (m, base frame) the TCP target is clamped into.
        init_tcp_pos: mean initial TCP position (m); the TCP starts pointing down.
        init_pos_noise: half-ranges (m) of the uniform initial TCP position noise.
        init_yaw_noise_deg: half-range of the uniform initial TCP yaw noise (degrees).
        scene: physics / rendering settings.
        controller: IK and joint-control settings.
    """

    task: str = "reach_target"
    image_size: tuple[int, int] = (128, 128)
    rig_path: str | None = None
    render_depth: bool = True
    control_dt: float = 0.1
    workspace_min: tuple[float, float, float] = (0.25, -0.35, 0.005)
    workspace_max: tuple[float, float, float] = (0.85, 0.35, 0.60)
    init_tcp_pos: tuple[float, float, float] = (0.45, 0.0, 0.38)
    init_pos_noise: tuple[float, float, float] = (0.05, 0.08, 0.04)
    init_yaw_noise_deg: float = 20.0
    scene: SceneConfig = dataclasses.field(default_factory=SceneConfig)
    controller: ControllerConfig = dataclasses.field(default_factory=ControllerConfig)

    def __post_init__(self) -> None:
        if self.task not in TASK_NAMES:
            raise ValueError(f"unknown task {self.task!r}; valid tasks: {', '.join(TASK_NAMES)}")
        self.image_size = _image_hw(self.image_size)
        if not 0.01 <= self.control_dt <= 1.0:
            raise ValueError(f"control_dt must be in [0.01, 1] s, got {self.control_dt}")
        if self.control_dt < self.scene.physics_dt:
            raise ValueError(f"control_dt ({self.control_dt}) must be >= physics_dt ({self.scene.physics_dt})")
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f"workspace_min must be below workspace_max in x, y, z; got {lo} and {hi}")
        init = np.asarray(self.init_tcp_pos, float)
        noise = np.asarray(self.init_pos_noise, float)
        if np.any(noise < 0) or np.any(init - noise < lo) or np.any(init + noise > hi):
            raise ValueError("init_tcp_pos +- init_pos_noise must lie inside the workspace box")


@dataclasses.dataclass
class Observation:
    """What the robot sees and feels after a reset or step.

    Attributes:
        images: ``(V, H, W, 3)`` uint8 RGB, views in ``env.camera_names`` order.
        depth: ``(V, H, W)`` float32 camera-frame z (metres) or None when depth is off.
        ee_pose: ``(8,)`` TCP ``[x y z qx qy qz qw gripper]`` in the robot base frame (measured).
        joint_positions: ``(7,)`` arm joint angles (rad).
        gripper: measured openness in [0, 1] (1 = open).
        time: simulated seconds since reset.
    """

    images: np.ndarray
    depth: np.ndarray | None
    ee_pose: np.ndarray
    joint_positions: np.ndarray
    gripper: float
    time: float


class FrankaEnv:
    """A Panda cell with one task; see :func:`make_env`."""

    def __init__(self, config: EnvConfig, seed: int | None = None) -> None:
        self.config = config
        self.task = make_task(config.task)
        rig = load_rig(config.rig_path if config.rig_path is not None else default_rig_path())
        h, w = config.image_size
        self._cameras = cameras_for_image(rig, w, h)
        self.model = build_model(rig, config.scene, self.task.add_objects, offscreen_size=(w, h))
        self.data = mujoco.MjData(self.model)
        self.task.bind(self.model)
        self.controller = ArmController(self.model, config.controller, READY_Q)
        self._renderer = MultiViewRenderer(self.model, [c.name for c in self._cameras], w, h)
        self._seeds = np.random.default_rng(seed)
        self._q_ref = READY_Q.copy()
        self._quat_ref = TOPDOWN_QUAT.copy()
        self._instruction = ""
        self._lo = np.asarray(config.workspace_min, dtype=np.float64)
        self._hi = np.asarray(config.workspace_max, dtype=np.float64)
        self.seed: int | None = None

    # ------------------------------------------------------------------ properties
    @property
    def cameras(self) -> list[Camera]:
        """Exact cameras of the rendered images (K and T_world_cam, base frame), view order."""
        return [dataclasses.replace(c, K=c.K.copy(), T_world_cam=c.T_world_cam.copy()) for c in self._cameras]

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self._cameras]

    @property
    def instruction(self) -> str:
        """Language instruction of the current episode (set by ``reset``)."""
        return self._instruction

    @property
    def task_name(self) -> str:
        return self.task.name

    @property
    def control_dt(self) -> float:
        return self.config.control_dt

    @property
    def max_episode_steps(self) -> int:
        """Step budget of an episode of this task at ``control_dt`` = 0.1 s."""
        return int(np.ceil(self.task.max_steps * 0.1 / self.config.control_dt))

    def move_cameras(self, cameras: list[Camera]) -> None:
        """Render from other extrinsics from now on (robustness checks: a shifted rig).

        ``cameras`` are the rig's cameras in view order, with new ``T_world_cam``; the intrinsics
        stay the device's. Takes effect at the next ``reset`` or ``step``; call it before ``reset``
        so the reset's visibility check uses the new viewpoints.
        """
        names = [c.name for c in cameras]
        if names != self.camera_names:
            raise ValueError(f"move_cameras needs the cameras {self.camera_names} in this order, got {names}")
        moved = []
        for old, cam in zip(self._cameras, cameras):
            T = np.asarray(cam.T_world_cam, dtype=np.float64)
            if T.shape != (4, 4) or not np.isfinite(T).all():
                raise ValueError(f"camera {cam.name!r}: T_world_cam must be a finite 4x4 matrix")
            new = dataclasses.replace(old, T_world_cam=T.copy())
            cid = self.model.camera(cam.name).id
            self.model.cam_pos[cid], self.model.cam_quat[cid] = mujoco_camera_pose(new)
            moved.append(new)
        self._cameras = moved
        mujoco.mj_forward(self.model, self.data)  # camera poses in data (cam_xpos, cam_xmat) now

    def task_state(self) -> dict:
        """What the task's objects are doing now (failure analysis): the TCP position, the task's
        object positions (``Task.object_positions``) and whether the gripper holds the object."""
        tcp, _ = self.controller.tcp_pose(self.data)
        return {"tcp": np.asarray(tcp, dtype=np.float64).copy(),
                "objects": self.task.object_positions(self.model, self.data),
                "held": self.task.holding(self.model, self.data)}

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> Observation:
        """Start an episode; the same ``seed`` gives the same episode (None draws one from the env's seed)."""
        if seed is None:
            seed = int(self._seeds.integers(2**31 - 1))
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        m, d, cfg = self.model, self.data, self.config
        mujoco.mj_resetData(m, d)
        pos = np.asarray(cfg.init_tcp_pos) + rng.uniform(-1, 1, 3) * np.asarray(cfg.init_pos_noise)
        rot = topdown_rotation(np.radians(cfg.init_yaw_noise_deg) * rng.uniform(-1, 1))
        ik = self.controller.solve_ik(pos, rot, READY_Q)
        d.qpos[self.controller.qpos_idx] = ik.q
        d.qpos[self.controller.finger_qpos_idx] = [0.04, -0.04]
        self.controller.set_gripper(d, 1.0)
        mujoco.mj_kinematics(m, d)  # tasks may place objects relative to the arm
        for _ in range(MAX_RESET_ATTEMPTS):
            self._instruction = self.task.reset(m, d, rng)
            mujoco.mj_forward(m, d)
            hidden = [(p, c.name) for p, body in self.task.must_be_visible(m, d) for c in self._cameras
                      if occluded(m, d, c.position, p, body)]
            if not hidden:
                break
        else:
            logger.warning("seed %d: %s stays hidden from %s after %d placements", self.seed,
                           np.round(hidden[0][0], 3).tolist(), hidden[0][1], MAX_RESET_ATTEMPTS)
        self._q_ref = ik.q.copy()
        self._quat_ref = TOPDOWN_QUAT.copy()
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[Observation, dict]:
        """Move towards a TCP target for ``control_dt`` seconds.

        Args:
            action: ``(8,)`` ``[x y z qx qy qz qw gripper]``, base frame, any quaternion norm > 0.

        Returns:
            The observation and ``info``: ``clamped`` (bool: the target was changed to be
            executable), ``reason`` (str or None), ``target`` (the executed ``(8,)`` target),
            ``ik_pos_err`` (m) / ``ik_rot_err_deg`` (residual of the joint goal),
            ``rate_limited`` (joint speed limit hit this step), ``physics_unstable`` (MuJoCo
            had to reset a diverged state: end the episode), ``success``.

        Raises:
            ValueError: wrong shape, NaN/inf or a zero quaternion.
            RuntimeError: called before ``reset``.
        """
        if self.seed is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (8,):
            raise ValueError(f"action must have shape (8,) = [x y z qx qy qz qw gripper], got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains NaN or infinite values: {a}")
        qn = np.linalg.norm(a[3:7])
        if qn < 1e-6:
            raise ValueError(f"action quaternion (columns 3:7) is zero: {a[3:7]}")
        reasons = []
        pos = np.clip(a[:3], self._lo, self._hi)
        if np.any(pos != a[:3]):
            reasons.append(f"position {np.round(a[:3], 3).tolist()} outside the workspace box "
                           f"{self._lo.tolist()}..{self._hi.tolist()}; clamped to {np.round(pos, 3).tolist()}")
        grip = float(np.clip(a[7], 0.0, 1.0))
        if grip != a[7]:
            reasons.append(f"gripper {a[7]:.3f} outside [0, 1]; clamped to {grip}")
        rot = quat_to_matrix(a[3:7] / qn)
        ik = self.controller.solve_ik(pos, rot, self._q_ref)
        cc = self.controller.config
        rot_err_deg = float(np.degrees(ik.rot_err))
        if ik.pos_err > cc.unreachable_pos_tol or rot_err_deg > cc.unreachable_rot_tol_deg:
            reasons.append(f"pose not reachable within the joint limits (IK residual {1000 * ik.pos_err:.1f} mm, "
                           f"{rot_err_deg:.1f} deg); moving to the closest reachable pose")
        delta = ik.q - self._q_ref
        limit = self.controller.max_joint_step(self.config.control_dt)
        biggest = float(np.max(np.abs(delta)))
        rate_limited = biggest > limit
        q_goal = self._q_ref + delta * (limit / biggest) if rate_limited else ik.q
        self.controller.set_gripper(self.data, grip)
        bad_before = int(self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number)
        self.controller.track(self.data, self._q_ref, q_goal, self.config.control_dt)
        self._q_ref = q_goal
        unstable = int(self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number) > bad_before
        if unstable:  # MuJoCo reset the state; the episode is no longer meaningful
            logger.warning("physics became unstable (MuJoCo reset the simulation state); reset the episode")
        exec_pos, exec_rot = self.controller.forward_kinematics(ik.q)
        info = {
            "clamped": bool(reasons),
            "reason": "; ".join(reasons) if reasons else None,
            "target": np.concatenate([exec_pos, continuous_quat(matrix_to_quat(exec_rot), self._quat_ref), [grip]]),
            "ik_pos_err": float(ik.pos_err),
            "ik_rot_err_deg": rot_err_deg,
            "rate_limited": bool(rate_limited),
            "physics_unstable": unstable,
            "success": self.success(),
        }
        if reasons:
            logger.debug("action clamped: %s", info["reason"])
        return self._observe(), info

    def success(self) -> bool:
        """Whether the current episode's task is achieved now."""
        return self.task.success(self.model, self.data)

    def make_expert(self) -> WaypointExpert:
        """A scripted expert for the current episode (call after ``reset``): ``expert.act(obs) -> (8,)``."""
        if self.seed is None:
            raise RuntimeError("call reset() before make_expert()")
        _, tcp_rot = self.controller.tcp_pose(self.data)
        return WaypointExpert(self.task.expert_waypoints(self.model, self.data, tcp_rot))

    # ------------------------------------------------------------------ sensing
    def ee_pose(self) -> np.ndarray:
        """Measured TCP pose ``(8,)`` in the base frame.

        The quaternion's sign is kept continuous along an episode (each episode starts
        in the hemisphere of ``[1, 0, 0, 0]``, the TCP pointing down), so trajectories
        have no sign jumps.
        """
        pos, rot = self.controller.tcp_pose(self.data)
        quat = continuous_quat(matrix_to_quat(rot), self._quat_ref)
        self._quat_ref = quat
        return np.concatenate([pos, quat, [self.controller.gripper_openness(self.data)]])

    def segmentation(self) -> np.ndarray:
        """Geom id per pixel ``(V, H, W)`` int32 (-1 = background), for checks and masks."""
        return self._renderer.segmentation(self.data)

    def _observe(self) -> Observation:
        images, depth = self._renderer.render(self.data, depth=self.config.render_depth)
        ee = self.ee_pose()
        return Observation(
            images=images,
            depth=depth,
            ee_pose=ee,
            joint_positions=self.data.qpos[self.controller.qpos_idx].copy(),
            gripper=float(ee[7]),
            time=float(self.data.time),
        )

    def close(self) -> None:
        """Free the renderer (idempotent)."""
        self._renderer.close()

    def __enter__(self) -> "FrankaEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_env(
    task: str,
    image_size: int | tuple[int, int] = 128,
    rig_path: str | Path | None = None,
    seed: int | None = None,
    **overrides,
) -> FrankaEnv:
    """Build the simulated cell for ``task``.

    Args:
        task: one of ``TASK_NAMES`` (ValueError listing them otherwise).
        image_size: pixels, an int for square views or ``(height, width)``.
        rig_path: camera rig YAML; None = ``config/cameras_sim.yaml``.
        seed: seeds the episode seeds drawn by ``reset()`` without an explicit seed.
        **overrides: further ``EnvConfig`` fields (e.g. ``render_depth=False``, ``control_dt=0.1``).
    """
    config = EnvConfig(task=task, image_size=image_size, rig_path=None if rig_path is None else str(rig_path),
                       **overrides)
    return FrankaEnv(config, seed=seed)
