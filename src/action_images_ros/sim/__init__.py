"""Simulated Franka cell (MuJoCo 3.3): scene, calibrated cameras, tasks and scripted experts.

Quick start::

    from action_images_ros.sim import make_env, TASK_NAMES
    env = make_env("pick_cube", image_size=128)     # or (height, width)
    obs = env.reset(seed=0)                         # deterministic from the seed
    expert = env.make_expert()
    while not expert.done:
        obs, info = env.step(expert.act(obs))       # action (8,) = TCP target + gripper
    env.success(); env.close()

Frames and conventions
    * Base frame = MuJoCo world frame = ``base_link``: origin at the robot base on
      the table top, x forward, y left, z up; the table top is z = 0.
    * Poses/actions ``[x y z qx qy qz qw gripper]`` of the TCP, metres, quaternion
      scalar-last, gripper openness 1 = open (0.08 m between the fingers), 0 = closed.
    * TCP: 0.1034 m along the hand z axis from the flange (Franka's ``fr3_hand_tcp``),
      between the fingertips. Tool z = approach direction (out of the gripper),
      tool y = finger sliding axis, tool x = y cross z. ``[1, 0, 0, 0]`` = pointing
      down with tool x along base x.
    * Cameras: ``env.cameras`` are exact ``geometry.Camera`` objects (OpenCV, K for the
      rendered size, T_world_cam in the base frame) from ``config/cameras_sim.yaml``.
      ``obs.depth`` is camera-frame z in metres.

Control (``env.step``): the target is clamped into the workspace box, solved by
damped-least-squares IK within the joint limits and tracked for ``control_dt``
(0.1 s) by computed-torque joint PD; clamping and unreachable poses are reported in
``info`` (``clamped``, ``reason``), never raised. NaN/inf or a zero quaternion raise
ValueError.

Tasks (``TASK_NAMES``): ``reach_target`` (TCP within 3 cm of the named sphere, two
distractors), ``pick_cube`` (cube lifted 8 cm, held), ``place_cube`` (cube resting
within 3 cm of the green square, released), ``stack_cubes`` (red cube resting on the
blue one within 2 cm, released). Initial arm pose, object poses and colours are
drawn from the reset seed; key objects are guaranteed unoccluded in every view.

Rendering is headless: ``MUJOCO_GL`` defaults to ``egl`` here unless it is set
(this only has an effect when ``mujoco`` has not been imported yet).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

from .env import EnvConfig, FrankaEnv, Observation, default_rig_path, make_env  # noqa: E402
from .expert import Waypoint, WaypointExpert  # noqa: E402
from .rollout import ExpertEpisode, run_expert_episode  # noqa: E402
from .tasks import TASK_NAMES  # noqa: E402

__all__ = ["EnvConfig", "ExpertEpisode", "FrankaEnv", "Observation", "TASK_NAMES", "Waypoint", "WaypointExpert",
           "default_rig_path", "make_env", "run_expert_episode"]
