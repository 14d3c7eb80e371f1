"""Poses and decoded trajectories <-> geometry_msgs / std_msgs / sensor_msgs.

Pose convention: ``(8,) = [x, y, z, qx, qy, qz, qw, gripper]`` (metres, base frame,
quaternion scalar-last, gripper openness 1 = open). ROS poses carry the first 7;
the gripper travels separately.

A decoded trajectory goes out as two messages (published together by the decoder):

* ``geometry_msgs/PoseArray``: the ``T`` poses; ``header.stamp`` = stamp of the camera
  frames it was predicted from, ``header.frame_id`` = the robot base frame.
* ``std_msgs/Float32MultiArray``: ``(T, 2)`` row-major ``[gripper, confidence]`` per step.
  The message has no header, so the first dimension's label carries the same stamp:
  ``"steps stamp=<sec>.<nanosec:09d>"`` (second dimension ``"gripper,confidence"``).
  Consumers pair the two by that stamp (:func:`trajectory_info_stamp_ns`).
"""

from __future__ import annotations

import re

import numpy as np
from geometry_msgs.msg import Pose, PoseArray, PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, MultiArrayDimension

from .stamps import ns_to_stamp, stamp_to_ns

__all__ = ["TrajectoryMessageError", "pose_to_msg", "msg_to_pose", "pose_to_stamped", "stamped_to_pose",
           "trajectory_to_msgs", "msgs_to_trajectory", "trajectory_info_stamp_ns", "gripper_openness"]

_STAMP_LABEL = re.compile(r"^steps stamp=(\d+)\.(\d{9})$")


class TrajectoryMessageError(ValueError):
    """Trajectory messages that are malformed or do not belong together."""


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


def trajectory_to_msgs(actions: np.ndarray, confidence: np.ndarray, stamp_ns: int,
                       frame_id: str = "base_link") -> tuple[PoseArray, Float32MultiArray]:
    """A decoded trajectory ``(T, 8)`` + confidence ``(T,)`` -> (PoseArray, Float32MultiArray).

    Non-finite values are sent as they are (the executor refuses them with a logged reason).
    """
    a = np.asarray(actions, dtype=np.float64)
    c = np.asarray(confidence, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 8:
        raise ValueError(f"actions must have shape (T, 8), got {a.shape}")
    if c.shape != (a.shape[0],):
        raise ValueError(f"confidence must have shape ({a.shape[0]},), got {c.shape}")
    stamp = ns_to_stamp(stamp_ns)
    poses = PoseArray()
    poses.header.stamp = stamp
    poses.header.frame_id = frame_id
    poses.poses = [pose_to_msg(p) for p in a]
    info = Float32MultiArray()
    T = a.shape[0]
    info.layout.dim = [
        MultiArrayDimension(label=f"steps stamp={stamp.sec}.{stamp.nanosec:09d}", size=T, stride=2 * T),
        MultiArrayDimension(label="gripper,confidence", size=2, stride=2),
    ]
    info.data = np.stack([a[:, 7], c], axis=1).astype(np.float32).reshape(-1).tolist()
    return poses, info


def trajectory_info_stamp_ns(info: Float32MultiArray) -> int:
    """The stamp (ns) a ``[gripper, confidence]`` array was labelled with."""
    m = _STAMP_LABEL.match(info.layout.dim[0].label) if info.layout.dim else None
    if m is None:
        raise TrajectoryMessageError(
            "trajectory info has no stamp label (expected layout.dim[0].label = 'steps stamp=<sec>.<nanosec>')"
        )
    return int(m.group(1)) * 1_000_000_000 + int(m.group(2))


def msgs_to_trajectory(poses: PoseArray, info: Float32MultiArray) -> tuple[np.ndarray, np.ndarray, int]:
    """(PoseArray, Float32MultiArray) -> (actions ``(T, 8)``, confidence ``(T,)``, stamp ns).

    Raises:
        TrajectoryMessageError: stamps differ, sizes disagree, or the layout is not ``(T, 2)``.
    """
    stamp_ns = stamp_to_ns(poses.header.stamp)
    info_ns = trajectory_info_stamp_ns(info)
    if info_ns != stamp_ns:
        raise TrajectoryMessageError(f"trajectory info stamp {info_ns} ns does not match the poses' {stamp_ns} ns")
    T = len(poses.poses)
    dims = [(d.size, d.label) for d in info.layout.dim]
    if len(dims) != 2 or dims[0][0] != T or dims[1][0] != 2 or len(info.data) != 2 * T:
        raise TrajectoryMessageError(
            f"trajectory info must be (T={T}, 2) [gripper, confidence]; got dims {dims} and {len(info.data)} values"
        )
    if T == 0:
        raise TrajectoryMessageError("empty trajectory")
    gc = np.asarray(info.data, dtype=np.float64).reshape(T, 2)
    actions = np.stack([msg_to_pose(p, g) for p, g in zip(poses.poses, gc[:, 0])])
    return actions, gc[:, 1].copy(), stamp_ns


def gripper_openness(msg: JointState, max_width_m: float = 0.08, joint_prefix: str = "") -> float | None:
    """Openness in [0, 1] from finger joint positions (sum of the finger joints / ``max_width_m``).

    Uses the joints whose names contain ``finger`` (and start with ``joint_prefix``); Franka's
    two finger joints each move 0..0.04 m. Returns None when the message has no finger joint.
    """
    vals = [p for n, p in zip(msg.name, msg.position) if "finger" in n and n.startswith(joint_prefix)]
    if not vals:
        return None
    return float(np.clip(sum(vals) / max_width_m, 0.0, 1.0))
