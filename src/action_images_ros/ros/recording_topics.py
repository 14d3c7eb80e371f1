"""What a training episode's recording holds: topic, type and kind per stream (no rclpy here).

Read by ``nodes/recorder_node.py`` (what it subscribes to) and by ``action-images import-bag``
(the topic names of a bag recorded with ``ros2 bag record``, which carries no topic map). The
kinds are the importer's (``data/bag_import.py``): ``image/<view>``, ``camera_info/<view>``,
``current_pose``, ``gripper_joint_states``, ``joint_states``, ``instruction``, ``episode``,
``command``, ``executor_command``, ``tcp_target``, ``gripper_target``.
"""

from __future__ import annotations

from typing import Sequence

from .franka import FRANKA_CURRENT_POSE, FRANKA_GRIPPER_JOINTS
from .graph import topic

__all__ = ["recorded_topics", "topic_map"]


def recorded_topics(views: Sequence[str], use_sim: bool = True) -> list[tuple[str, str, str, bool]]:
    """``(absolute topic, rosbag2 type, kind, latched)`` of every recorded stream.

    ``use_sim``: the simulated cell's arm topics (sim_node); false: franka_ros2's
    (``/franka_robot_state_broadcaster/current_pose``, ``/franka_gripper/joint_states``).
    """
    pose, grip = (("/" + topic("current_pose"), "/" + topic("gripper_joint_states")) if use_sim
                  else (FRANKA_CURRENT_POSE, FRANKA_GRIPPER_JOINTS))
    out = []
    for v in views:
        out.append(("/" + topic("image", v), "sensor_msgs/msg/Image", f"image/{v}", False))
        out.append(("/" + topic("camera_info", v), "sensor_msgs/msg/CameraInfo", f"camera_info/{v}", False))
    out += [
        (pose, "geometry_msgs/msg/PoseStamped", "current_pose", False),
        (grip, "sensor_msgs/msg/JointState", "gripper_joint_states", False),
        ("/" + topic("joint_states"), "sensor_msgs/msg/JointState", "joint_states", False),
        ("/" + topic("instruction"), "std_msgs/msg/String", "instruction", True),
        ("/" + topic("episode"), "std_msgs/msg/Header", "episode", True),
        ("/" + topic("sim_command"), "trajectory_msgs/msg/MultiDOFJointTrajectory", "command", False),
        ("/" + topic("executor_command"), "geometry_msgs/msg/PoseStamped", "executor_command", False),
        ("/" + topic("sim_tcp_target"), "geometry_msgs/msg/PoseStamped", "tcp_target", False),
        ("/" + topic("sim_gripper_target"), "std_msgs/msg/Float32", "gripper_target", False),
    ]
    return out


def topic_map(views: Sequence[str], use_sim: bool = True) -> dict[str, str]:
    """``{kind: absolute topic}`` of :func:`recorded_topics`."""
    return {kind: name for name, _, kind, _ in recorded_topics(views, use_sim)}
