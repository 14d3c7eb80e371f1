"""The simulated arm of sim_node: one ``sim/command`` message per control tick.

Each tick it publishes one ``trajectory_msgs/MultiDOFJointTrajectory`` on ``sim/command``
(``trajectory_conversion`` layout) stamped with the tick: one point = the new target (pose + gripper),
no point = the last target stands. In lockstep that message is also the tick's acknowledgement: sim_node
advances simulated time when it arrives. The simulated arm is commanded at its TCP: no tip transform.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from trajectory_msgs.msg import MultiDOFJointTrajectory

from ..stamps import stamp_to_ns
from ..trajectory_conversion import trajectory_to_msg
from .base import BackendConfig, ExecutorBackend, command_qos

__all__ = ["SimBackend"]


class SimBackend(ExecutorBackend):
    """The simulated arm of sim_node (see the module docstring)."""

    name = "sim"

    def __init__(self, node, config: BackendConfig) -> None:
        self._node = node
        self._frame = config.base_frame
        self._tcp = config.moveit_tcp_link
        self._pub = node.create_publisher(MultiDOFJointTrajectory, config.sim_command_topic, command_qos(depth=10))
        self._gripper: float | None = None  # last commanded openness (None: nothing commanded this episode)
        self._sent_this_tick = False
        self._tick_stamp = None  # stamp of the latest tick: a hold belongs to it (never acknowledges a later one)

    def _publish(self, pose: np.ndarray | None, stamp) -> None:
        poses = np.zeros((0, 8)) if pose is None else np.asarray(pose, dtype=np.float64).reshape(1, 8)
        n = len(poses)
        self._pub.publish(trajectory_to_msg(poses, np.ones(n), np.zeros(n), stamp_to_ns(stamp), self._frame, self._tcp))

    def send(self, pose: np.ndarray, stamp) -> None:
        self._gripper = float(pose[7])
        self._tick_stamp = stamp
        self._publish(pose, stamp)
        self._sent_this_tick = True

    def hold(self, current_pose: np.ndarray | None) -> None:
        # a target at the measured pose stops the arm (gripper as last commanded, else as measured);
        # without a pose the last target stands
        if current_pose is not None and np.all(np.isfinite(current_pose)):
            current = np.asarray(current_pose, dtype=np.float64)
            grip = self._gripper if self._gripper is not None else (1.0 if current[7] > 0.5 else 0.0)
            # before any tick the stamp is 0: a hold then acknowledges no lockstep tick
            self._publish(np.concatenate([current[:7], [grip]]), self._tick_stamp or Time())

    def reset(self) -> None:
        self._gripper = None

    def tick_done(self, stamp) -> None:
        self._tick_stamp = stamp
        if not self._sent_this_tick:
            self._publish(None, stamp)  # "nothing new": the lockstep acknowledgement of this tick
        self._sent_this_tick = False
