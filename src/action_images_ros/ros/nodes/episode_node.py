"""episode_node: the episode interface of a real cell (the simulated cell's sim_node serves the same).

A real cell has no simulator to reset: the operator puts the objects back and calls
``episode/start`` (or ``episode/reset`` for a retry of the same trial), and ``episode/stop`` to
end a trial where it is (the executor then holds). Every transition is announced on ``episode``
(``ros/episode.py``), which the executor, the policy and a recorder follow.

Publishes: ``episode`` (std_msgs/Header, transient local), stamped with this node's ROS time.
Services: ``episode/start``, ``episode/stop``, ``episode/reset`` (std_srvs/Trigger, JSON answers).
Parameters: ``seed`` (first trial's seed, then +1 per start), ``autostart`` (start the first trial at
launch; false = the arm does not move until the operator's first ``episode/start``).
"""

from __future__ import annotations

from rclpy.node import Node
from std_msgs.msg import Header

from ...control.episode_lifecycle import EpisodeLifecycle
from ..episode import EpisodeServices, episode_header
from ..node_support import runtime_parameters
from ..qos import latched_qos

__all__ = ["EpisodeNode", "create_node", "main"]

NODE_NAME = "episode_node"


class EpisodeNode(Node):
    """See the module docstring."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        seed = self.declare_parameter("seed", 0).value
        autostart = bool(self.declare_parameter("autostart", True).value)
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.lifecycle = EpisodeLifecycle(seed)
        self._pub = self.create_publisher(Header, "episode", latched_qos())
        self.episode_services = EpisodeServices(self, {"start": self._start, "stop": self._stop, "reset": self._reset})
        self.add_on_set_parameters_callback(runtime_parameters({}))
        if autostart:
            self._start()
        else:  # announce "nothing started": the executor holds until the operator's first episode/start
            self._announce()
        self.get_logger().info(f"episodes from seed {seed}" + ("; trial 0 started" if autostart else
                                                               "; waiting for episode/start"))

    def _announce(self) -> dict:
        now = self.get_clock().now().nanoseconds
        st = self.lifecycle.state
        self._pub.publish(episode_header(now, st.episode, max(st.seed, 0), running=st.running))
        return {"stamp_s": now * 1e-9}

    def _start(self):
        self.lifecycle.start()
        return self.lifecycle.state, self._announce()

    def _stop(self):
        self.lifecycle.stop()
        return self.lifecycle.state, self._announce()

    def _reset(self):
        self.lifecycle.reset()
        return self.lifecycle.state, self._announce()


def create_node(**node_kwargs) -> EpisodeNode:
    """An ``EpisodeNode`` (``context=``, ``cli_args=``, ``parameter_overrides=``)."""
    return EpisodeNode(**node_kwargs)


def main(args=None) -> None:
    from ..spin import run_node

    run_node(create_node, args)


if __name__ == "__main__":
    main()
