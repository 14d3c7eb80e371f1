"""Where executor_node sends commands that passed the safety envelope.

Every backend implements :class:`ExecutorBackend`: ``send(pose (8,), stamp)`` for one
approved command (robot base frame; gripper 0 or 1), ``hold(current_pose)`` to stop
where the arm is, ``close()``. Backends never check safety themselves: executor_node
applies the envelope before calling them.

* ``sim``: the simulated arm owned by camera_node (``source: sim``). Publishes the TCP
  target (``geometry_msgs/PoseStamped`` on ``sim/tcp_target``) and the gripper openness
  (``std_msgs/Float32`` on ``sim/gripper_target``); the simulation applies the latest of
  each every control step.
* ``servo``: MoveIt Servo in pose mode (closed loop). Streams ``PoseStamped`` to the
  servo pose command topic (Jazzy: ``/servo_node/pose_target_cmds``); the gripper goes
  through the chosen :class:`Gripper`.
* ``moveit``: moveit_py (``MoveItPy``) plans and executes each pose goal for the arm
  group, newest goal first (a worker thread; a goal arriving while one executes replaces
  the pending one). Needs a ROS install with moveit_py; the import fails with a clear
  message otherwise.

Grippers: ``topic`` publishes ``std_msgs/Float32`` openness on ``gripper_target``;
``franka`` calls franka_gripper's ``Move`` / ``Grasp`` actions (franka_msgs, imported
only when chosen).
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import threading

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float32

from .pose_conversions import pose_to_stamped

__all__ = ["BackendUnavailable", "BackendConfig", "ExecutorBackend", "Gripper", "TopicGripper", "FrankaGripper",
           "SimBackend", "ServoBackend", "MoveItBackend", "BACKENDS", "GRIPPERS", "make_backend"]

logger = logging.getLogger(__name__)


class BackendUnavailable(RuntimeError):
    """A backend or gripper whose ROS packages are not importable here (with an install hint)."""


@dataclasses.dataclass
class BackendConfig:
    """Backend settings (executor_node parameters of the same names).

    Attributes:
        base_frame: frame of every pose command (the robot base).
        gripper: ``topic`` or ``franka`` (``sim`` always uses its own topic).
        sim_pose_topic, sim_gripper_topic: topics of the ``sim`` backend.
        servo_pose_topic: MoveIt Servo's pose command topic.
        gripper_topic: topic of the ``topic`` gripper.
        franka_gripper_ns: namespace of franka_gripper's actions (``<ns>/move``, ``<ns>/grasp``).
        gripper_max_width_m: finger opening for openness 1 (Franka hand: 0.08 m).
        grasp_force_n: force of a Franka grasp (N).
        gripper_speed_mps: finger speed (m/s).
        moveit_group: MoveIt planning group of the arm.
        moveit_tcp_link: link whose pose the goals set.
    """

    base_frame: str = "base_link"
    gripper: str = "topic"
    sim_pose_topic: str = "sim/tcp_target"
    sim_gripper_topic: str = "sim/gripper_target"
    servo_pose_topic: str = "/servo_node/pose_target_cmds"
    gripper_topic: str = "gripper_target"
    franka_gripper_ns: str = "/franka_gripper"
    gripper_max_width_m: float = 0.08
    grasp_force_n: float = 20.0
    gripper_speed_mps: float = 0.1
    moveit_group: str = "fr3_arm"
    moveit_tcp_link: str = "fr3_hand_tcp"

    def __post_init__(self) -> None:
        if self.gripper not in GRIPPERS:
            raise ValueError(f"gripper must be one of {sorted(GRIPPERS)}, got {self.gripper!r}")
        for name in ("gripper_max_width_m", "grasp_force_n", "gripper_speed_mps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.base_frame:
            raise ValueError("base_frame must not be empty")


def _command_qos() -> QoSProfile:
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


# ---------------------------------------------------------------------------- grippers
class Gripper(abc.ABC):
    """Binary gripper commands (only changes are sent)."""

    def __init__(self) -> None:
        self._last: float | None = None

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
        self._pub = node.create_publisher(Float32, topic, _command_qos())

    def _send(self, openness: float) -> None:
        self._pub.publish(Float32(data=openness))


class FrankaGripper(Gripper):
    """franka_gripper actions: ``Move`` to open, ``Grasp`` to close (goals are not awaited)."""

    def __init__(self, node, namespace: str, max_width_m: float, force_n: float, speed_mps: float) -> None:
        super().__init__()
        try:
            from franka_msgs.action import Grasp, Move
        except ImportError as exc:
            raise BackendUnavailable(
                "gripper 'franka' needs franka_msgs (franka_ros2): build it in your ROS 2 workspace and source it, "
                "or set the executor parameter gripper:=topic"
            ) from exc
        from rclpy.action import ActionClient

        self._Grasp, self._Move = Grasp, Move
        self._clients = {"move": ActionClient(node, Move, f"{namespace}/move"),
                         "grasp": ActionClient(node, Grasp, f"{namespace}/grasp")}
        self._namespace = namespace
        self._width, self._force, self._speed = max_width_m, force_n, speed_mps

    def _send(self, openness: float) -> None:
        if openness > 0.5:
            goal, action = self._Move.Goal(width=self._width, speed=self._speed), "move"
        else:
            goal, action = self._Grasp.Goal(width=0.0, speed=self._speed, force=self._force), "grasp"
            goal.epsilon.inner = goal.epsilon.outer = self._width  # close on whatever is between the fingers
        client = self._clients[action]
        if not client.server_is_ready():
            logger.error("franka gripper action server %s/%s is not available; gripper command dropped",
                         self._namespace, action)
            self.forget()
            return
        client.send_goal_async(goal)


def make_gripper(node, config: BackendConfig) -> Gripper:
    if config.gripper == "franka":
        return FrankaGripper(node, config.franka_gripper_ns, config.gripper_max_width_m, config.grasp_force_n,
                             config.gripper_speed_mps)
    return TopicGripper(node, config.gripper_topic)


# ---------------------------------------------------------------------------- backends
class ExecutorBackend(abc.ABC):
    """Sends approved pose commands to an arm."""

    name = ""

    @abc.abstractmethod
    def send(self, pose: np.ndarray, stamp) -> None:
        """Command ``pose (8,)`` (base frame; gripper 0/1), already approved by the safety envelope."""

    @abc.abstractmethod
    def hold(self, current_pose: np.ndarray | None) -> None:
        """Stop: keep the arm where it is (``current_pose (8,)`` measured, None if unknown)."""

    def close(self) -> None:
        """Release resources (threads, clients)."""


class _PoseTopicBackend(ExecutorBackend):
    def __init__(self, node, config: BackendConfig, pose_topic: str, gripper: Gripper) -> None:
        self._node = node
        self._frame = config.base_frame
        self._pub = node.create_publisher(PoseStamped, pose_topic, _command_qos())
        self._gripper = gripper

    def send(self, pose: np.ndarray, stamp) -> None:
        self._pub.publish(pose_to_stamped(pose, self._frame, stamp))
        self._gripper.command(pose[7])

    def hold(self, current_pose: np.ndarray | None) -> None:
        # a pose target at the measured pose stops the arm; without one, the last target stands
        if current_pose is not None and np.all(np.isfinite(current_pose)):
            self._pub.publish(pose_to_stamped(current_pose, self._frame, self._node.get_clock().now().to_msg()))
        self._gripper.forget()


class SimBackend(_PoseTopicBackend):
    """The simulated arm of camera_node (``sim/tcp_target`` + ``sim/gripper_target``)."""

    name = "sim"

    def __init__(self, node, config: BackendConfig) -> None:
        super().__init__(node, config, config.sim_pose_topic, TopicGripper(node, config.sim_gripper_topic))


class ServoBackend(_PoseTopicBackend):
    """MoveIt Servo pose commands (closed loop)."""

    name = "servo"

    def __init__(self, node, config: BackendConfig) -> None:
        super().__init__(node, config, config.servo_pose_topic, make_gripper(node, config))


class MoveItBackend(ExecutorBackend):
    """moveit_py plan + execute per pose goal, in a worker thread (newest goal wins)."""

    name = "moveit"

    def __init__(self, node, config: BackendConfig) -> None:
        try:
            from moveit.planning import MoveItPy
        except ImportError as exc:
            raise BackendUnavailable(
                "executor backend 'moveit' needs moveit_py (ros-jazzy-moveit-py) and a sourced ROS 2 install with "
                "the FR3 MoveIt config; use executor:=servo or executor:=sim otherwise"
            ) from exc
        self._config = config
        self._moveit = MoveItPy(node_name=f"{node.get_name()}_moveit_py")
        self._arm = self._moveit.get_planning_component(config.moveit_group)
        self._gripper = make_gripper(node, config)
        self._goal: tuple[np.ndarray, object] | None = None
        self._cv = threading.Condition()
        self._stop = False
        self._worker = threading.Thread(target=self._run, name="moveit_executor", daemon=True)
        self._worker.start()

    def send(self, pose: np.ndarray, stamp) -> None:
        with self._cv:
            self._goal = (np.asarray(pose, dtype=np.float64).copy(), stamp)
            self._cv.notify()

    def hold(self, current_pose: np.ndarray | None) -> None:
        with self._cv:
            self._goal = None  # pending goal dropped; moveit_py offers no portable stop of a running execution
        self._gripper.forget()

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._worker.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._goal is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                pose, stamp = self._goal
                self._goal = None
            try:
                self._arm.set_start_state_to_current_state()
                self._arm.set_goal_state(pose_stamped_msg=pose_to_stamped(pose, self._config.base_frame, stamp),
                                         pose_link=self._config.moveit_tcp_link)
                plan = self._arm.plan()
                if not plan:
                    logger.error("MoveIt found no plan to %s", np.round(pose[:7], 3).tolist())
                    continue
                self._moveit.execute(plan.trajectory, controllers=[])
                self._gripper.command(pose[7])
            except Exception:  # a failed goal must not kill the worker; the next goal is tried
                logger.exception("MoveIt goal failed")


BACKENDS = {"sim": SimBackend, "servo": ServoBackend, "moveit": MoveItBackend}
GRIPPERS = ("topic", "franka")


def make_backend(name: str, node, config: BackendConfig) -> ExecutorBackend:
    """The backend called ``name`` (``sim``, ``servo``, ``moveit``) on ``node``."""
    if name not in BACKENDS:
        raise ValueError(f"unknown executor backend {name!r}; valid backends: {', '.join(BACKENDS)}")
    return BACKENDS[name](node, config)
