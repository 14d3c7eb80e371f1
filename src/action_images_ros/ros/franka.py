"""franka_ros2 names of the real FR3 cell (franka_hand end effector, no namespace); no rclpy here.

Checked against franka_ros2 (see notes/real_cell_apis.md): ``current_pose`` of
franka_robot_state_broadcaster is published in ``fr3_link0``; the TCP link is ``fr3_hand_tcp``;
franka_fr3_moveit_config's planning group is ``fr3_arm``; franka_gripper runs as ``/franka_gripper``.
"""

FRANKA_BASE_FRAME = "fr3_link0"  # frame of franka_robot_state_broadcaster/current_pose (o_t_ee)
FRANKA_TCP_LINK = "fr3_hand_tcp"  # franka_hand TCP link
FRANKA_ARM_GROUP = "fr3_arm"  # planning group in franka_fr3_moveit_config
FRANKA_GRIPPER_NS = "/franka_gripper"  # franka_gripper node: ~/move, ~/grasp, ~/joint_states
FRANKA_CURRENT_POSE = "/franka_robot_state_broadcaster/current_pose"
FRANKA_GRIPPER_JOINTS = "/franka_gripper/joint_states"
