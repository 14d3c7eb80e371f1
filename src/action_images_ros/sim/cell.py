"""The simulated cell as a clocked device (no ROS): one env, its simulated clock and the held command.

``SimulatedCell`` is what ``ros/nodes/sim_node.py`` runs: it wraps :func:`~action_images_ros.sim.make_env`
(colour only), keeps the TCP + gripper command that ``step`` executes until a new one arrives,
and owns the simulated time that the node publishes on ``/clock``.

Time: ``time_s`` starts at ``clock_start_s`` (ROS time must be > 0: a zero stamp means "unset"),
advances by exactly ``control_dt`` per :meth:`SimulatedCell.step` and also per
:meth:`SimulatedCell.reset`, so it is monotonic across episodes: the first observation of a new
episode is stamped one ``control_dt`` after the last observation of the previous one. Times are
kept as integer nanoseconds (``time_ns``), so stamps never drift.

Poses are ``[x y z qx qy qz qw gripper]`` of the TCP in the robot base frame (metres,
quaternion scalar-last, gripper openness 1 = open), as everywhere in ``sim``.

Thread safety: the command setters may be called from any thread (they take a lock); ``reset``,
``step``, ``observe`` and ``close`` belong to the thread that created the cell (MuJoCo's renderer
holds an OpenGL context bound to it).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from ..geometry import Camera
from .env import Observation, make_env

__all__ = ["SimulatedCell", "validate_pose_command", "validate_gripper_command"]

logger = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000


def validate_pose_command(pose) -> np.ndarray:
    """A TCP target as a float ``(7,)`` or ``(8,)`` array (base frame; 8 = with gripper openness).

    Raises:
        ValueError: not 7 or 8 numbers, a NaN/inf value, or a zero quaternion.
    """
    try:
        p = np.asarray(pose, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"TCP target must be 7 or 8 numbers [x y z qx qy qz qw (gripper)], got {pose!r}") from None
    if p.shape[0] not in (7, 8):
        raise ValueError(f"TCP target must have 7 or 8 values [x y z qx qy qz qw (gripper)], got {p.shape[0]}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"TCP target contains NaN or infinite values: {np.round(p, 4).tolist()}")
    if np.linalg.norm(p[3:7]) < 1e-6:
        raise ValueError(f"TCP target has a zero quaternion (values 3:7): {p[3:7].tolist()}")
    return p


def validate_gripper_command(openness) -> float:
    """A gripper openness command as a float (clipped to [0, 1] later). Raises ValueError if not finite."""
    try:
        g = float(openness)
    except (TypeError, ValueError):
        raise ValueError(f"gripper command must be a number in [0, 1], got {openness!r}") from None
    if not np.isfinite(g):
        raise ValueError(f"gripper command must be finite, got {openness}")
    return g


class SimulatedCell:
    """The MuJoCo Franka cell with a held command and a simulated clock.

    Args:
        task: one of ``sim.TASK_NAMES`` (ValueError listing them otherwise).
        image_size: ``(height, width)`` of every rendered view (pixels).
        seed: seed of the first episode; each :meth:`reset` without a seed takes the next one.
        rig_path: camera rig YAML; None = ``config/cameras_sim.yaml``.
        clock_start_s: simulated time of the first observation (seconds, > 0).
        **env_overrides: further ``sim.EnvConfig`` fields (e.g. ``control_dt``).
    """

    def __init__(self, task: str, image_size: tuple[int, int] = (128, 128), seed: int = 100000,
                 rig_path: str | Path | None = None, clock_start_s: float = 1.0, **env_overrides) -> None:
        if not (np.isfinite(clock_start_s) and clock_start_s > 0):
            raise ValueError(f"clock_start_s must be > 0 (a zero ROS stamp means 'unset'), got {clock_start_s}")
        self.env = make_env(task, image_size=tuple(image_size), rig_path=rig_path, seed=seed, render_depth=False,
                            **env_overrides)
        self._dt_ns = int(round(self.env.control_dt * NS_PER_S))
        self._start_ns = int(round(clock_start_s * NS_PER_S))
        self._tick = 0  # ticks since the cell started (all episodes)
        self._lock = threading.Lock()
        self._command = np.zeros(8)
        self.episode = -1  # the first reset makes it 0
        self.step_count = 0  # steps in the current episode
        self.last_info: dict = {}
        self._seed = int(seed)
        self._start_episode(self._seed)

    # ------------------------------------------------------------------ properties
    @property
    def cameras(self) -> list[Camera]:
        """Exact calibrated cameras of the rendered views (base frame), view order."""
        return self.env.cameras

    @property
    def camera_names(self) -> list[str]:
        return self.env.camera_names

    @property
    def control_dt(self) -> float:
        """Simulated seconds per :meth:`step`."""
        return float(self.env.control_dt)

    @property
    def task(self) -> str:
        return self.env.task_name

    @property
    def seed(self) -> int:
        """Seed of the current episode."""
        return self._seed

    @property
    def instruction(self) -> str:
        """Language instruction of the current episode."""
        return self.env.instruction

    @property
    def time_ns(self) -> int:
        """Simulated time of the current observation (integer nanoseconds, monotonic across resets)."""
        return self._start_ns + self._tick * self._dt_ns

    @property
    def time_s(self) -> float:
        """Simulated time of the current observation (seconds)."""
        return self.time_ns / NS_PER_S

    @property
    def command(self) -> np.ndarray:
        """The held ``(8,)`` target that the next :meth:`step` executes."""
        with self._lock:
            return self._command.copy()

    # ------------------------------------------------------------------ commands (any thread)
    def command_pose(self, pose) -> None:
        """Hold a new TCP target ``(7,)`` or ``(8,)`` (base frame); with 7 values the gripper command stays.

        Raises:
            ValueError: see :func:`validate_pose_command`; the held command is left unchanged.
        """
        p = validate_pose_command(pose)
        with self._lock:
            self._command[:7] = p[:7]
            if p.shape[0] == 8:
                self._command[7] = float(np.clip(p[7], 0.0, 1.0))

    def command_gripper(self, openness) -> None:
        """Hold a gripper openness command (clipped to [0, 1]; 1 = open).

        Raises:
            ValueError: not a finite number; the held command is left unchanged.
        """
        g = validate_gripper_command(openness)
        with self._lock:
            self._command[7] = float(np.clip(g, 0.0, 1.0))

    # ------------------------------------------------------------------ simulation (owner thread)
    def _start_episode(self, seed: int) -> int:
        self._seed = int(seed)
        obs = self.env.reset(self._seed)
        with self._lock:  # the arm holds its new pose until commanded
            self._command = obs.ee_pose.copy()
            self._command[7] = 1.0 if obs.ee_pose[7] > 0.5 else 0.0
        self._obs = obs
        self.episode += 1
        self.step_count = 0
        self.last_info = {}
        return self._seed

    def reset(self, seed: int | None = None) -> int:
        """Start the next episode (``seed`` None = the previous seed + 1); returns its seed.

        The clock advances by one ``control_dt`` (it never rewinds); the command becomes the new
        measured pose, so the arm holds still until commanded.
        """
        self._tick += 1
        return self._start_episode(self._seed + 1 if seed is None else int(seed))

    def observe(self) -> Observation:
        """The current observation (views ``(V, H, W, 3)`` uint8, ``ee_pose (8,)``, ``joint_positions (7,)``
        rad, ...), without stepping. Its simulated time is :attr:`time_s`."""
        return self._obs

    def step(self) -> Observation:
        """Execute the held command for ``control_dt`` and return the new observation."""
        command = self.command
        obs, info = self.env.step(command)
        if info.get("physics_unstable"):
            logger.error("simulation became unstable at t=%.3f s (MuJoCo reset a diverged state); reset the "
                         "episode", self.time_s)
        self._obs = obs
        self._tick += 1
        self.step_count += 1
        self.last_info = info
        return obs

    def status(self) -> dict:
        """``{task, seed, episode, step, episode_time_s, time_s, success, instruction, tcp, command}`` of the
        current observation (JSON-serialisable; ``step`` counts steps in this episode, ``episode_time_s`` =
        ``step * control_dt``, ``time_s`` is the simulated clock; ``tcp`` the measured ``(8,)`` pose,
        ``command`` the command held when this observation is published: in lockstep the one the last
        step executed; for watching what the arm really did)."""
        return {"task": self.task, "seed": self._seed, "episode": self.episode, "step": self.step_count,
                "episode_time_s": round(self.step_count * self.control_dt, 9), "time_s": self.time_s,
                "success": bool(self.env.success()), "instruction": self.instruction,
                "tcp": [round(float(v), 6) for v in self._obs.ee_pose],
                "command": [round(float(v), 6) for v in self.command]}

    def close(self) -> None:
        """Free the renderer (idempotent)."""
        self.env.close()

    def __enter__(self) -> "SimulatedCell":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
