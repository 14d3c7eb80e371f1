"""franka_ros2 names and fixed transforms of the real FR3 cell (franka_hand end effector); no rclpy here.

Checked against franka_ros2 / franka_description (see notes/real_cell_apis.md and
docs/real_fr3_backends.md): ``current_pose`` of franka_robot_state_broadcaster is the TCP pose
(``fr3_hand_tcp``) in the robot base; franka_fr3_moveit_config's planning group ``fr3_arm`` is the
chain ``fr3_link0`` -> ``fr3_link8`` (SRDF ``tip_link``), so MoveIt's and Servo's IK move
``fr3_link8`` (the flange), not the TCP; franka_gripper runs as ``/franka_gripper``.

The hand sits on the flange (franka_description ``end_effectors/common/franka_hand.xacro`` with
``franka_hand_arguments.xacro``): joint ``fr3_hand_joint`` ``fr3_link8`` -> ``fr3_hand`` has
``rpy="0 0 ${-pi/4}"``, joint ``fr3_hand_tcp_joint`` ``fr3_hand`` -> ``fr3_hand_tcp`` has
``xyz="0 0 0.1034"``. So the TCP in the flange frame is 0.1034 m along z, turned -45 deg about z
(:data:`FRANKA_TCP_IN_FLANGE`). A TCP target must be converted with :func:`tcp_to_flange` before it
goes to a controller that moves the flange; sending it as is puts the flange where the TCP should
be (the TCP ends 10.34 cm further along the tool axis and turned 45 deg).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

FRANKA_BASE_FRAME = "fr3_link0"  # frame of franka_robot_state_broadcaster/current_pose (o_t_ee)
FRANKA_TCP_LINK = "fr3_hand_tcp"  # franka_hand TCP link
FRANKA_FLANGE_LINK = "fr3_link8"  # tip_link of the fr3_arm group: what MoveIt / Servo IK move
FRANKA_ARM_GROUP = "fr3_arm"  # planning group in franka_fr3_moveit_config
FRANKA_GRIPPER_NS = "/franka_gripper"  # franka_gripper node: ~/move, ~/grasp, ~/joint_states
FRANKA_CURRENT_POSE = "/franka_robot_state_broadcaster/current_pose"
FRANKA_GRIPPER_JOINTS = "/franka_gripper/joint_states"
# the TCP in the flange frame, URDF convention "x y z roll pitch yaw" (m, rad)
FRANKA_TCP_IN_FLANGE = (0.0, 0.0, 0.1034, 0.0, 0.0, -np.pi / 4)


def xyz_rpy_to_matrix(xyz_rpy) -> np.ndarray:
    """``(x, y, z, roll, pitch, yaw)`` (URDF ``<origin>``: fixed-axis X, then Y, then Z) -> 4x4 transform."""
    v = np.asarray(xyz_rpy, dtype=np.float64).reshape(-1)
    if v.shape != (6,) or not np.all(np.isfinite(v)):
        raise ValueError(f"expected 6 finite numbers 'x y z roll pitch yaw', got {xyz_rpy!r}")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", v[3:]).as_matrix()
    T[:3, 3] = v[:3]
    return T


def parse_xyz_rpy(text: str) -> np.ndarray:
    """``"x y z roll pitch yaw"`` (spaces or commas) -> 4x4 transform; raises ValueError naming the text."""
    try:
        values = [float(t) for t in str(text).replace(",", " ").split()]
    except ValueError as exc:
        raise ValueError(f"expected 'x y z roll pitch yaw' (6 numbers), got {text!r}") from exc
    return xyz_rpy_to_matrix(values)


def _pose_matrix(pose: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(pose[3:7]).as_matrix()
    T[:3, 3] = pose[:3]
    return T


def _with_matrix(pose: np.ndarray, T: np.ndarray) -> np.ndarray:
    out = np.array(pose, dtype=np.float64, copy=True)
    out[:3] = T[:3, 3]
    q = Rotation.from_matrix(T[:3, :3]).as_quat()
    out[3:7] = -q if q[3] < 0 else q
    return out


def tcp_to_flange(pose: np.ndarray, tcp_in_flange: np.ndarray) -> np.ndarray:
    """TCP pose ``(7,)`` or ``(8,)`` ``[x y z qx qy qz qw (g)]`` in the base -> the flange (IK tip) pose that
    puts the TCP there: ``T_base_flange = T_base_tcp @ inv(T_flange_tcp)``; ``tcp_in_flange`` is 4x4.
    Extra entries (the gripper) are kept."""
    pose = np.asarray(pose, dtype=np.float64)
    return _with_matrix(pose, _pose_matrix(pose) @ np.linalg.inv(tcp_in_flange))


def flange_to_tcp(pose: np.ndarray, tcp_in_flange: np.ndarray) -> np.ndarray:
    """Inverse of :func:`tcp_to_flange`: flange pose in the base -> TCP pose in the base."""
    pose = np.asarray(pose, dtype=np.float64)
    return _with_matrix(pose, _pose_matrix(pose) @ tcp_in_flange)
