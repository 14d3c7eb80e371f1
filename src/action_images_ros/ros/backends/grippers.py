"""Binary gripper commands: ``topic`` (std_msgs/Float32 openness) or ``franka`` (franka_gripper actions).

franka_gripper (franka_ros2 ``franka_gripper/src/gripper_action_server.cpp``; ``franka_msgs/action``):
``~/move`` = ``Move.Goal{width, speed}``, ``~/grasp`` = ``Grasp.Goal{width, epsilon{inner, outer}, speed,
force}``, both with result ``{success, error}``. franka_msgs is imported only when this gripper is chosen.
"""

from __future__ import annotations

import abc
import logging

from rclpy.action import ActionClient
from std_msgs.msg import Float32

from .base import BackendConfig, BackendUnavailable, command_qos

__all__ = ["Gripper", "TopicGripper", "FrankaGripper", "make_gripper", "GRIPPER_OPEN_ABOVE"]

logger = logging.getLogger(__name__)

GRIPPER_OPEN_ABOVE = 0.5  # openness above this is "open" (Move), else "closed" (Grasp)


class Gripper(abc.ABC):
    """Binary gripper commands (only changes are sent)."""

    def __init__(self) -> None:
        self._last: float | None = None
        self.problem: str | None = None  # last failure, for the backend's status()

    def command(self, openness: float) -> None:
        """Open (1) or close (0); repeated equal commands are not re-sent."""
        openness = float(openness)
        if self._last is not None and openness == self._last:
            return
        self._last = openness
        self._send(openness)

    def forget(self) -> None:
        """Re-send the next command even if unchanged (after a pause)."""
        self._last = None

    @abc.abstractmethod
    def _send(self, openness: float) -> None: ...


class TopicGripper(Gripper):
    """Publishes the openness as ``std_msgs/Float32`` on ``topic``."""

    def __init__(self, node, topic: str) -> None:
        super().__init__()
        self._pub = node.create_publisher(Float32, topic, command_qos())

    def _send(self, openness: float) -> None:
        self._pub.publish(Float32(data=openness))


class FrankaGripper(Gripper):
    """franka_gripper actions: ``Move`` to open, ``Grasp`` to close (goals are not awaited; a failed
    result shows in :attr:`problem`)."""

    def __init__(self, node, namespace: str, max_width_m: float, force_n: float, speed_mps: float) -> None:
        super().__init__()
        try:
            from franka_msgs.action import Grasp, Move
        except ImportError as exc:
            raise BackendUnavailable(
                "gripper 'franka' needs franka_msgs (franka_ros2): build it in your ROS 2 workspace and source it, "
                "or set the executor parameter gripper:=topic"
            ) from exc
        self._Grasp, self._Move = Grasp, Move
        self._clients = {"move": ActionClient(node, Move, f"{namespace}/move"),
                         "grasp": ActionClient(node, Grasp, f"{namespace}/grasp")}
        self._namespace = namespace
        self._width, self._force, self._speed = max_width_m, force_n, speed_mps

    def _send(self, openness: float) -> None:
        if openness > GRIPPER_OPEN_ABOVE:
            goal, action = self._Move.Goal(width=self._width, speed=self._speed), "move"
        else:
            goal, action = self._Grasp.Goal(width=0.0, speed=self._speed, force=self._force), "grasp"
            goal.epsilon.inner = goal.epsilon.outer = self._width  # close on whatever is between the fingers
        client = self._clients[action]
        if not client.server_is_ready():
            self.problem = f"franka gripper action server {self._namespace}/{action} is not available"
            logger.error("%s; gripper command dropped", self.problem)
            self.forget()
            return
        self.problem = None
        client.send_goal_async(goal).add_done_callback(lambda f, a=action: self._on_accepted(f, a))

    def _on_accepted(self, future, action: str) -> None:
        handle = future.result()
        if handle is None or not handle.accepted:
            self.problem = f"franka gripper {action} goal rejected"
            logger.error(self.problem)
            self.forget()
            return
        handle.get_result_async().add_done_callback(lambda f, a=action: self._on_result(f, a))

    def _on_result(self, future, action: str) -> None:
        response = future.result()
        result = getattr(response, "result", None)
        if result is not None and not result.success:
            self.problem = f"franka gripper {action} failed: {result.error or 'no reason given'}"
            logger.error(self.problem)
            self.forget()  # the next command is sent again


def make_gripper(node, config: BackendConfig) -> Gripper:
    if config.gripper == "franka":
        return FrankaGripper(node, config.franka_gripper_ns, config.gripper_max_width_m, config.grasp_force_n,
                             config.gripper_speed_mps)
    return TopicGripper(node, config.gripper_topic)
