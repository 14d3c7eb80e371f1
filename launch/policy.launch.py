"""Real cell: RealSense cameras + policy + executor (MoveIt by default) on the FR3.

    ros2 launch action_images_ros policy.launch.py executor:=moveit model:=/path/to/checkpoint rviz:=true

Arguments: see ``action_images_ros.ros.graph.GraphOptions`` (``ros2 launch ... --show-args``).

With ``executor:=servo`` this also starts MoveIt Servo's ``servo_node`` with ``config/servo_fr3.yaml`` and
the FR3 robot built as franka_fr3_moveit_config builds it (``backends.moveit_config.franka_fr3_params``);
the executor streams its pose targets at 50 Hz (docs/real_fr3_backends.md).
"""

from action_images_ros.ros.launch_support import generate_launch_description as _describe


def _servo_node(context, *args, **kwargs):
    """MoveIt Servo for ``executor:=servo`` (nothing otherwise)."""
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from action_images_ros.ros.backends.moveit_config import franka_fr3_params
    from action_images_ros.ros.share import share_dir

    if LaunchConfiguration("executor").perform(context) != "servo":
        return []
    return [Node(package="moveit_servo", executable="servo_node", name="servo_node", output="screen",
                 parameters=[str(share_dir() / "config" / "servo_fr3.yaml"), franka_fr3_params()])]


def generate_launch_description():
    from launch.actions import OpaqueFunction

    description = _describe(use_sim="false", executor="moveit")
    description.add_action(OpaqueFunction(function=_servo_node))
    return description
