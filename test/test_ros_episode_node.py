"""episode_node over real DDS: the real cell's episode interface (the same services as sim_node)."""

import json

import pytest
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from action_images_ros.ros.episode import parse_episode
from action_images_ros.ros.nodes.episode_node import create_node
from action_images_ros.ros.qos import latched_qos
from action_images_ros.ros.spin import executors_for, spin_until

pytestmark = pytest.mark.ros


def test_operator_starts_stops_and_resets_trials(ros_context_factory):
    import rclpy

    node = create_node(context=ros_context_factory(), cli_args=[
        "--ros-args", "--params-file", "config/episode.yaml", "-p", "autostart:=false", "-p", "seed:=40"])
    op = rclpy.create_node("operator", context=ros_context_factory())
    marks = []
    op.create_subscription(Header, "episode", lambda m: marks.append(parse_episode(m)), latched_qos())
    clients = {k: op.create_client(Trigger, f"episode/{k}") for k in ("start", "stop", "reset")}
    exs = executors_for(node, op)

    def call(name):
        fut = clients[name].call_async(Trigger.Request())
        assert spin_until(exs, fut.done, 10.0)
        return fut.result().success, json.loads(fut.result().message)

    try:
        assert spin_until(exs, lambda: marks and all(c.service_is_ready() for c in clients.values()), 10.0)
        assert (marks[-1].episode, marks[-1].running) == (-1, False)  # late joiners learn: nothing started yet
        ok, reply = call("stop")
        assert not ok and "no episode has started" in reply["reason"]
        ok, reply = call("start")
        assert ok and (reply["episode"], reply["seed"], reply["state"]) == (0, 40, "running")
        assert spin_until(exs, lambda: marks[-1].running and marks[-1].seed == 40, 5.0)
        assert call("stop")[1]["state"] == "stopped"
        assert spin_until(exs, lambda: not marks[-1].running and marks[-1].episode == 0, 5.0)
        ok, reply = call("reset")
        assert ok and (reply["episode"], reply["seed"]) == (1, 40)  # a retry of the same trial
        assert call("start")[1]["seed"] == 41
    finally:
        for ex in exs:
            ex.shutdown()
        node.destroy_node()
        op.destroy_node()
