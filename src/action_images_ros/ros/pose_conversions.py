"""Poses <-> geometry_msgs / sensor_msgs (trajectories: ``trajectory_conversion``).

Pose convention: ``(8,) = [x, y, z, qx, qy, qz, qw, gripper]`` (metres, base frame,
quaternion scalar-last, gripper openness 1 = open). ROS poses carry the first 7;
the gripper travels separately (finger joint states).
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Pose, PoseStamped
from sensor_msgs.msg import JointState

from ..geometry import finger_openness
from .stamps import stamp_to_ns

__all__ = ["pose_to_msg", "msg_to_pose", "pose_to_stamped", "stamped_to_pose", "gripper_openness"]


def pose_to_msg(pose: np.ndarray) -> Pose:
    """``(7,)`` or ``(8,)`` pose -> ``geometry_msgs/Pose`` (gripper dropped)."""
    p = np.asarray(pose, dtype=np.float64).reshape(-1)
    if p.shape[0] not in (7, 8):
        raise ValueError(f"pose must have 7 or 8 values [x y z qx qy qz qw (gripper)], got {p.shape}")
    msg = Pose()
    msg.position.x, msg.position.y, msg.position.z = (float(v) for v in p[:3])
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (float(v) for v in p[3:7])
    return msg


def msg_to_pose(msg: Pose, gripper: float | None = None) -> np.ndarray:
    """``geometry_msgs/Pose`` -> ``(7,)``, or ``(8,)`` when ``gripper`` is given."""
    vals = [msg.position.x, msg.position.y, msg.position.z,
            msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w]
    if gripper is not None:
        vals.append(float(gripper))
    return np.asarray(vals, dtype=np.float64)


def pose_to_stamped(pose: np.ndarray, frame_id: str, stamp=None) -> PoseStamped:
    """``(7,)``/``(8,)`` pose -> ``geometry_msgs/PoseStamped`` in ``frame_id``."""
    msg = PoseStamped()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.pose = pose_to_msg(pose)
    return msg


def stamped_to_pose(msg: PoseStamped, gripper: float | None = None) -> tuple[np.ndarray, int]:
    """``geometry_msgs/PoseStamped`` -> (pose ``(7,)``/``(8,)``, stamp in ns)."""
    return msg_to_pose(msg.pose, gripper), stamp_to_ns(msg.header.stamp)


def gripper_openness(msg: JointState, max_width_m: float = 0.08, joint_prefix: str = "") -> float | None:
    """Openness in [0, 1] of a finger ``JointState`` (``geometry.finger_openness``); None without finger joints."""
    return finger_openness(msg.name, msg.position, max_width_m, joint_prefix)
