"""Simulated cell: sim_node (MuJoCo cell, /clock, lockstep) + policy + executor (sim backend).

    ros2 launch action_images_ros sim.launch.py task:=reach_target rviz:=true
    ros2 launch action_images_ros sim.launch.py lockstep:=false policy_delay_s:=0.3   # real time, slow policy

Arguments: see ``action_images_ros.ros.graph.GraphOptions`` (``ros2 launch ... --show-args``).
"""

from action_images_ros.ros.launch_support import generate_launch_description as _describe


def generate_launch_description():
    return _describe(use_sim="true", executor="sim")
