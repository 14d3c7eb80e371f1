"""Simulated cell: MuJoCo camera_node (owns the arm) + policy + decoder + executor (sim backend).

    ros2 launch action_images_ros sim.launch.py task:=reach_target rviz:=true

Arguments: see ``action_images_ros.ros.graph.GraphOptions`` (``ros2 launch ... --show-args``).
"""

from action_images_ros.ros.launch_support import generate_launch_description as _describe


def generate_launch_description():
    return _describe(use_sim="true", executor="sim")
