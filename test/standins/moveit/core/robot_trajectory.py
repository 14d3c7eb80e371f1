"""Stand-in ``moveit.core.robot_trajectory`` (test only): ``RobotTrajectory(robot_model)`` with
``joint_model_group_name``, ``set_robot_trajectory_msg(robot_state, msg)`` and
``apply_totg_time_parameterization(velocity_scaling_factor, acceleration_scaling_factor, path_tolerance=0.1,
resample_dt=0.1, min_angle_change=0.001)`` -> bool."""

from .._events import log


class RobotTrajectory:
    def __init__(self, robot_model) -> None:
        self._model = robot_model
        self.joint_model_group_name = ""
        self.points = []

    def set_robot_trajectory_msg(self, robot_state, msg) -> None:
        self.joint_names = list(msg.joint_names)
        self.points = [(p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec, list(p.positions))
                       for p in msg.points]

    def apply_totg_time_parameterization(self, velocity_scaling_factor: float, acceleration_scaling_factor: float,
                                         path_tolerance: float = 0.1, resample_dt: float = 0.1,
                                         min_angle_change: float = 0.001) -> bool:
        log("totg", velocity=velocity_scaling_factor, acceleration=acceleration_scaling_factor,
            times=[t for t, _ in self.points], joint_names=self.joint_names, group=self.joint_model_group_name)
        return True
