"""teleop_node: a scripted stand-in for a teleoperation device in the simulated cell.

It demonstrates the way an operator would: it drives the arm only through the arm's command topic
and reads only what an operator sees (the measured TCP and fingers); it never touches the
simulation that the recorder records. Its "knowledge of the scene" is the task's scripted expert
(``sim/expert.py``), planned on a private copy of the task reset with the episode's seed (the
``episode`` topic says which): the objects are where that seed put them.

Subscribes: ``episode`` (std_msgs/Header, ``ros/episode.py``), ``current_pose``
(geometry_msgs/PoseStamped), ``gripper_joint_states`` (sensor_msgs/JointState).
Publishes: ``sim/command`` (trajectory_msgs/MultiDOFJointTrajectory, ``trajectory_conversion``
layout), one per tick, stamped with the tick: the expert's next target, which in lockstep also
acknowledges the tick (a device's target and "ready for the next tick" in one message, so the
demonstration is the same on any machine). After the expert is done it acknowledges with no point
(the arm holds); the operator, recorder or harness then stops the episode.
Parameters: ``task`` (the simulated task), ``base_frame``, ``tcp_link``.
"""

from __future__ import annotations

import types

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Header
from trajectory_msgs.msg import MultiDOFJointTrajectory

from ..episode import parse_episode
from ..node_support import runtime_parameters
from ..pose_conversions import gripper_openness, stamped_to_pose
from ..qos import latched_qos, state_qos
from ..stamps import stamp_to_ns
from ..trajectory_conversion import trajectory_to_msg

__all__ = ["TeleopNode", "create_node", "main"]

NODE_NAME = "teleop_node"


class TeleopNode(Node):
    """See the module docstring."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        p = {k: self.declare_parameter(k, v).value for k, v in {
            "task": "reach_target", "base_frame": "base_link", "tcp_link": "fr3_hand_tcp"}.items()}
        from ...sim import TASK_NAMES, make_env

        if p["task"] not in TASK_NAMES:
            raise ValueError(f"unknown task {p['task']!r}; valid tasks: {', '.join(TASK_NAMES)}")
        self._p = p
        # the operator's knowledge of the scene: a private copy of the task, never stepped, never rendered from
        self._planner = make_env(p["task"], image_size=16, render_depth=False)
        self._expert = None
        self._episode_start_ns = 0
        self._gripper: float | None = None
        self.targets_sent = 0
        self._pub = self.create_publisher(MultiDOFJointTrajectory, "sim/command", state_qos())
        self.create_subscription(Header, "episode", self._on_episode, latched_qos())
        self.create_subscription(JointState, "gripper_joint_states", self._on_gripper, state_qos())
        self.create_subscription(PoseStamped, "current_pose", self._on_pose, state_qos())
        self.add_on_set_parameters_callback(runtime_parameters({}))
        self.get_logger().info(f"scripted teleoperation of {p['task']!r}: waiting for an episode")

    @property
    def done(self) -> bool:
        """The current episode's demonstration is complete (or none is running)."""
        return self._expert is None or self._expert.done

    def _on_episode(self, msg: Header) -> None:
        mark = parse_episode(msg)
        self._expert = None
        if mark.running and mark.seed is not None:
            self._planner.reset(seed=mark.seed)
            self._expert = self._planner.make_expert()
            self._episode_start_ns = stamp_to_ns(msg.stamp)
            self.get_logger().info(f"episode {mark.episode} seed {mark.seed}: demonstrating")

    def _on_gripper(self, msg: JointState) -> None:
        value = gripper_openness(msg)
        if value is not None:
            self._gripper = value

    def _on_pose(self, msg: PoseStamped) -> None:
        pose, stamp_ns = stamped_to_pose(msg)
        if self._expert is None or stamp_ns < self._episode_start_ns or self._gripper is None:
            targets = np.zeros((0, 8))  # nothing to demonstrate: acknowledge, the arm holds
        elif self._expert.done:
            targets = np.zeros((0, 8))
        else:
            obs = types.SimpleNamespace(ee_pose=np.concatenate([pose[:7], [self._gripper]]))
            targets = self._expert.act(obs)[None]
            self.targets_sent += 1
        n = len(targets)
        self._pub.publish(trajectory_to_msg(targets, np.ones(n), np.zeros(n), stamp_ns, self._p["base_frame"],
                                            self._p["tcp_link"]))

    def destroy_node(self) -> None:
        self._planner.close()
        super().destroy_node()


def create_node(**node_kwargs) -> TeleopNode:
    """A ``TeleopNode`` (``context=``, ``cli_args=``, ``parameter_overrides=``)."""
    return TeleopNode(**node_kwargs)


def main(args=None) -> None:
    from ..spin import run_node

    run_node(create_node, args)


if __name__ == "__main__":
    main()
