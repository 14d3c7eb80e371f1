"""Where executor_node sends commands that passed the safety envelope: one module per backend.

Every backend implements :class:`~.base.ExecutorBackend`: ``send(pose (8,), stamp)`` for one approved
command (TCP in the robot base frame; gripper 0 or 1), ``hold(current_pose)`` to stop where the arm is,
``send_chunk`` (optional: a whole approved chunk as one trajectory), ``status()`` (a short text when the
arm side reports a problem, else None) and ``close()``. Backends never check safety themselves.

* ``sim`` (:mod:`.sim`): the simulated arm of sim_node, one ``sim/command`` per tick (lockstep ack).
* ``servo`` (:mod:`.servo`): MoveIt Servo in pose mode, streamed at ``servo_stream_hz``.
* ``moveit`` (:mod:`.moveit`): moveit_py in a worker process (:mod:`.moveit_worker`), configuration
  checked at start (:mod:`.moveit_config`).

Grippers (:mod:`.grippers`): ``topic`` (std_msgs/Float32 openness) or ``franka`` (franka_gripper
actions). moveit_py, moveit_msgs and franka_msgs are imported only when chosen. What each call was
checked against: ``docs/real_fr3_backends.md`` and ``notes/real_cell_apis.md``.
"""

from __future__ import annotations

from .base import GRIPPERS, BackendConfig, BackendUnavailable, ExecutorBackend, TipTransform
from .grippers import FrankaGripper, Gripper, TopicGripper, make_gripper
from .moveit import MoveItBackend
from .moveit_config import REQUIRED_MOVEIT_PARAMS, load_moveit_params, missing_moveit_params, moveit_params
from .servo import SERVO_STATUS, PoseStreamer, ServoBackend, servo_status_text
from .sim import SimBackend

__all__ = ["BackendUnavailable", "BackendConfig", "ExecutorBackend", "TipTransform", "Gripper", "TopicGripper",
           "FrankaGripper", "make_gripper", "SimBackend", "ServoBackend", "PoseStreamer", "MoveItBackend",
           "BACKENDS", "GRIPPERS", "make_backend", "SERVO_STATUS", "servo_status_text", "REQUIRED_MOVEIT_PARAMS",
           "load_moveit_params", "missing_moveit_params", "moveit_params"]

BACKENDS = {"sim": SimBackend, "servo": ServoBackend, "moveit": MoveItBackend}


def make_backend(name: str, node, config: BackendConfig) -> ExecutorBackend:
    """The backend called ``name`` (``sim``, ``servo``, ``moveit``) on ``node``."""
    if name not in BACKENDS:
        raise ValueError(f"unknown executor backend {name!r}; valid backends: {', '.join(BACKENDS)}")
    return BACKENDS[name](node, config)
