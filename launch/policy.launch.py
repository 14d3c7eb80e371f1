"""Real cell: RealSense cameras + policy + executor (MoveIt by default) on the FR3.

    ros2 launch action_images_ros policy.launch.py executor:=moveit model:=/path/to/checkpoint rviz:=true

Arguments: see ``action_images_ros.ros.graph.GraphOptions`` (``ros2 launch ... --show-args``).
"""

from action_images_ros.ros.launch_support import generate_launch_description as _describe


def generate_launch_description():
    return _describe(use_sim="false", executor="moveit")
