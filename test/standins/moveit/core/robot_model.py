"""Stand-in ``moveit.core.robot_model`` (test only): ``RobotModel.get_joint_model_group(name)`` ->
``JointModelGroup`` with ``active_joint_model_names`` (the FR3 arm's joints)."""


class JointModelGroup:
    def __init__(self, name: str) -> None:
        self.name = name
        self.active_joint_model_names = [f"fr3_joint{i}" for i in range(1, 8)]


class RobotModel:
    def get_joint_model_group(self, joint_model_group_name: str) -> JointModelGroup:
        return JointModelGroup(joint_model_group_name)
