"""Stand-in ``moveit.core.robot_state`` (test only): ``RobotState(robot_model)``,
``set_joint_group_positions(joint_model_group_name, position_values)``,
``get_joint_group_positions(joint_model_group_name)``,
``set_from_ik(joint_model_group_name, geometry_pose, tip_name, timeout=0.0)`` -> bool."""

from .._events import log


class RobotState:
    def __init__(self, robot_model) -> None:
        self._model = robot_model
        self._q = {}

    def set_joint_group_positions(self, joint_model_group_name: str, position_values) -> None:
        self._q[joint_model_group_name] = [float(v) for v in position_values]

    def get_joint_group_positions(self, joint_model_group_name: str):
        return list(self._q.get(joint_model_group_name, [0.0] * 7))

    def set_from_ik(self, joint_model_group_name: str, geometry_pose, tip_name: str, timeout: float = 0.0) -> bool:
        p, o = geometry_pose.position, geometry_pose.orientation
        pose = [p.x, p.y, p.z, o.x, o.y, o.z, o.w]
        log("ik", group=joint_model_group_name, tip=tip_name, pose=pose, timeout=timeout)
        self._q[joint_model_group_name] = pose  # any 7 numbers that follow the pose
        return True
