"""ament_python package setup for action_images_ros (colcon build or pip install -e .)."""

import os
from glob import glob

from setuptools import find_packages, setup

package_name = "action_images_ros"


def tree(src_dir):
    """data_files entries installing every file under src_dir into share/<pkg>/src_dir."""
    entries = []
    for root, _dirs, files in os.walk(src_dir):
        paths = [os.path.join(root, f) for f in files if not f.startswith(".")]
        if paths:
            entries.append((os.path.join("share", package_name, root), paths))
    return entries


NODES = ["sim_node", "camera_node", "policy_node", "decoder_node", "executor_node", "episode_node", "teleop_node", "recorder_node",
         "viz_node"]

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages("src"),
    package_dir={"": "src"},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
        ("share/" + package_name + "/urdf", glob("urdf/*")),
    ]
    + tree("models"),
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="action_images_ros maintainers",
    maintainer_email="maintainers@action-images-ros.dev",
    description="Action Images: policy learning via multi-view video generation, on ROS 2.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": ["action-images = action_images_ros.cli:main"]
        + [f"{n} = action_images_ros.ros.nodes.{n}:main" for n in NODES],
    },
)
