"""``config/action_images.rviz`` against the running graph: every display's topic, message type and QoS.

RViz 2 cannot be installed here (DESIGN.md §8), so nobody can open the config and look. Instead the
simulated graph is started (in process: sim_node, policy_node, executor_node) and asked, as RViz
would be, what it publishes (``get_topic_names_and_types``, ``get_publishers_info_by_topic``). Each
display must subscribe to a topic that is published with the type the display class reads, with a
QoS the display can receive (a reliable display needs a reliable publisher, a transient-local one a
transient-local publisher). Topics that this venv cannot run the publisher of are listed in
``NOT_RUNNABLE_HERE`` with who publishes them; those are checked against the graph's declaration.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RVIZ = REPO / "config" / "action_images.rviz"

#: display class -> the message type it subscribes to (None: no topic)
DISPLAY_TYPES = {
    "rviz_default_plugins/Grid": None,
    "rviz_default_plugins/TF": None,
    "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
    "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
    "rviz_default_plugins/Pose": "geometry_msgs/msg/PoseStamped",
    "rviz_default_plugins/RobotModel": "std_msgs/msg/String",
}
#: topic -> (who publishes it, why it cannot run in this venv)
NOT_RUNNABLE_HERE = {
    "/action_images/cell_description": "robot_state_publisher of the graph with rviz:=true (a ROS install's package)",
    "/robot_description": "franka_ros2's robot_state_publisher on the real FR3 (not part of this graph)",
}


def rviz_displays() -> list[dict]:
    """Every display of the config with its class, name, topic and QoS (None where it has no topic)."""
    manager = yaml.safe_load(RVIZ.read_text())["Visualization Manager"]
    out = []
    for d in manager["Displays"]:
        if d["Class"] not in DISPLAY_TYPES:
            raise AssertionError(f"display {d['Name']!r} of class {d['Class']} is not mapped in DISPLAY_TYPES")
        topic = d.get("Topic") or (d.get("Description Topic") if d.get("Description Source") == "Topic" else None)
        out.append({"class": d["Class"], "name": d["Name"], "enabled": d.get("Enabled", True),
                    "topic": topic["Value"] if topic else None, "qos": topic or {}})
    return out


def test_every_display_class_is_known_and_topics_are_absolute():
    displays = rviz_displays()
    assert {d["class"] for d in displays} >= {"rviz_default_plugins/Image", "rviz_default_plugins/MarkerArray"}
    for d in displays:
        if DISPLAY_TYPES[d["class"]] is None:
            assert d["topic"] is None, d
        else:
            assert d["topic"] and d["topic"].startswith("/"), d


def test_the_rviz_config_matches_what_the_running_graph_publishes(ros_context):
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from action_images_ros.ros.graph import GraphOptions, build_graph
    from action_images_ros.ros.runner import InProcessGraph

    displays = [d for d in rviz_displays() if d["topic"]]
    wanted = {d["topic"] for d in displays} - set(NOT_RUNNABLE_HERE)
    probe = Node("rviz_probe", context=ros_context)
    graph = InProcessGraph(build_graph(GraphOptions()), context=ros_context)
    try:
        deadline = time.monotonic() + 60.0
        while True:  # discovery: until every topic the config names is seen (or the deadline)
            published = {name: set(types) for name, types in probe.get_topic_names_and_types()}
            if wanted <= set(published) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        problems = []
        for d in displays:
            want_type = DISPLAY_TYPES[d["class"]]
            if d["topic"] in NOT_RUNNABLE_HERE:
                continue
            if d["topic"] not in published:
                problems.append(f"{d['name']}: nothing publishes {d['topic']}")
                continue
            if want_type not in published[d["topic"]]:
                problems.append(f"{d['name']}: {d['topic']} is {sorted(published[d['topic']])}, the display reads "
                                f"{want_type}")
                continue
            for info in probe.get_publishers_info_by_topic(d["topic"]):
                qos = info.qos_profile
                if d["qos"].get("Reliability Policy") == "Reliable" and qos.reliability != ReliabilityPolicy.RELIABLE:
                    problems.append(f"{d['name']}: reliable display, {info.node_name} publishes best effort")
                if (d["qos"].get("Durability Policy") == "Transient Local"
                        and qos.durability != DurabilityPolicy.TRANSIENT_LOCAL):
                    problems.append(f"{d['name']}: transient-local display, {info.node_name} publishes volatile")
        assert not problems, "\n".join(problems)
    finally:
        graph.shutdown()
        probe.destroy_node()


def test_topics_rviz_needs_from_outside_this_venv_are_declared_by_the_graph():
    from action_images_ros.ros.graph import GraphOptions, build_graph

    names = {d["topic"] for d in rviz_displays() if d["topic"]}
    assert set(NOT_RUNNABLE_HERE) <= names, "NOT_RUNNABLE_HERE lists a topic the config no longer uses"
    nodes = {n.name: n for n in build_graph(GraphOptions(rviz=True))}
    publisher = nodes["cell_state_publisher"]
    assert publisher.package == "robot_state_publisher"
    assert ("robot_description", "/action_images/cell_description") in publisher.remappings
    assert dict(publisher.overrides)["robot_description"].lstrip().startswith("<?xml")
