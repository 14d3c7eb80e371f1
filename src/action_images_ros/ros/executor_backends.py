"""Where executor_node sends commands that passed the safety envelope.

Every backend implements :class:`ExecutorBackend`: ``send(pose (8,), stamp)`` for one
approved command (robot base frame; gripper 0 or 1), ``hold(current_pose)`` to stop
where the arm is, ``status()`` (a short text when the arm side reports a problem, else
None) and ``close()``. Backends never check safety themselves: executor_node applies the
envelope before calling them.

* ``sim``: the simulated arm of sim_node. Each tick it publishes one
  ``trajectory_msgs/MultiDOFJointTrajectory`` on ``sim/command`` (``trajectory_conversion``
  layout) stamped with the tick: one point = the new target (pose + gripper), no point = the
  last target stands. In lockstep that message is also the tick's acknowledgement: sim_node
  advances simulated time when it arrives.
* ``servo``: MoveIt Servo (Jazzy ``servo_node``) in pose mode, closed loop. At start the
  backend switches Servo to POSE commands (``moveit_msgs/srv/ServoCommandType`` on
  ``<servo>/switch_command_type``) and fails if that service does not answer; then it
  streams ``PoseStamped`` to ``<servo>/pose_target_cmds`` and follows
  ``moveit_msgs/msg/ServoStatus`` on ``<servo>/status`` (halts, singularity, collision,
  joint bounds -> :meth:`status`). Servo drops a pose whose stamp is older than its
  ``incoming_command_timeout`` (0.1 s by default) and halts, so commands carry the time
  they are sent and the control rate must stay above 1 / that timeout.
* ``moveit``: moveit_py (``MoveItPy``) plans and executes each pose goal for the arm
  group, newest goal first (a worker thread; a goal arriving while one executes replaces
  the pending one). MoveItPy needs the robot's MoveIt configuration (URDF, SRDF,
  kinematics, planning pipelines), given as parameter files (``moveit_config_files``) or
  built from a MoveIt config package with moveit_configs_utils
  (``moveit_config_package``); a missing piece fails at start with what is missing and how
  to provide it.

Grippers: ``topic`` publishes ``std_msgs/Float32`` openness on ``gripper_target``;
``franka`` calls franka_gripper's ``Move`` / ``Grasp`` actions (franka_msgs, imported
only when chosen).

The API each call was checked against is listed in ``notes/real_cell_apis.md``.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import threading
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float32
from trajectory_msgs.msg import MultiDOFJointTrajectory

from .franka import FRANKA_ARM_GROUP, FRANKA_BASE_FRAME, FRANKA_GRIPPER_NS, FRANKA_TCP_LINK
from .pose_conversions import pose_to_stamped

__all__ = ["BackendUnavailable", "BackendConfig", "ExecutorBackend", "Gripper", "TopicGripper", "FrankaGripper",
           "SimBackend", "ServoBackend", "MoveItBackend", "BACKENDS", "GRIPPERS", "make_backend",
           "FRANKA_BASE_FRAME", "FRANKA_TCP_LINK", "FRANKA_ARM_GROUP", "FRANKA_GRIPPER_NS",
           "SERVO_STATUS", "servo_status_text", "REQUIRED_MOVEIT_PARAMS", "load_moveit_params",
           "missing_moveit_params"]

logger = logging.getLogger(__name__)


# moveit_msgs/msg/ServoStatus codes (= moveit_servo StatusCode) -> (name, Servo's own description, is a halt)
SERVO_STATUS = {
    -1: ("INVALID", "Invalid", True),
    0: ("NO_WARNING", "No warnings", False),
    1: ("DECELERATE_FOR_APPROACHING_SINGULARITY", "Moving closer to a singularity, decelerating", False),
    2: ("HALT_FOR_SINGULARITY", "Very close to a singularity, emergency stop", True),
    3: ("DECELERATE_FOR_LEAVING_SINGULARITY", "Moving away from a singularity, decelerating", False),
    4: ("DECELERATE_FOR_COLLISION", "Close to a collision, decelerating", False),
    5: ("HALT_FOR_COLLISION", "Collision detected, emergency stop", True),
    6: ("JOINT_BOUND", "Close to a joint bound (position or velocity), halting", True),
}

# parameters MoveItPy (MoveItCpp) needs -> how to provide each
REQUIRED_MOVEIT_PARAMS = {
    "robot_description": "the URDF (franka: xacro franka_bringup/urdf/franka_arm.urdf.xacro robot_type:=fr3)",
    "robot_description_semantic": "the SRDF (franka: xacro franka_description/robots/fr3/fr3.srdf.xacro)",
    "robot_description_kinematics": "kinematics.yaml of the MoveIt config (franka_fr3_moveit_config/config)",
    "planning_pipelines.pipeline_names": "MoveItCpp's pipeline list, e.g. [ompl] (move_group's flat "
                                         "'planning_pipelines: [ompl]' is not read by MoveItCpp)",
}


class BackendUnavailable(RuntimeError):
    """A backend or gripper that cannot start here: ROS packages not importable, configuration or
    server missing (the message says what and how to fix it)."""


@dataclasses.dataclass
class BackendConfig:
    """Backend settings (executor_node parameters of the same names).

    ``base_frame`` keeps the simulation's ``base_link`` as default; the real FR3 cell sets
    ``base_frame:=fr3_link0`` (:data:`FRANKA_BASE_FRAME`), the frame franka_ros2 reports
    ``current_pose`` in. ``moveit_tcp_link`` / ``moveit_group`` default to the franka_ros2 names.

    Attributes:
        base_frame: frame of every pose command (the robot base).
        gripper: ``topic`` or ``franka`` (``sim`` always uses its own topic).
        sim_command_topic: topic of the ``sim`` backend (one message per tick).
        servo_pose_topic: MoveIt Servo's pose command topic (``pose_command_in_topic``).
        servo_command_type_service: Servo's ``moveit_msgs/srv/ServoCommandType`` service.
        servo_status_topic: Servo's ``moveit_msgs/msg/ServoStatus`` topic (``status_topic``).
        servo_service_timeout_s: how long start-up waits for the command-type service (s).
        gripper_topic: topic of the ``topic`` gripper.
        franka_gripper_ns: franka_gripper node (actions ``<ns>/move``, ``<ns>/grasp``).
        gripper_max_width_m: finger opening for openness 1 (Franka hand: 0.08 m).
        grasp_force_n: force of a Franka grasp (N).
        gripper_speed_mps: finger speed (m/s).
        moveit_group: MoveIt planning group of the arm.
        moveit_tcp_link: link whose pose the goals set (the TCP).
        moveit_config_files: comma-separated ROS 2 parameter files for MoveItPy
            (``launch_params_filepaths``); sections ``/**`` or ``<moveit_node_name>`` are read.
        moveit_config_package: MoveIt config package built with moveit_configs_utils
            (``MoveItConfigsBuilder(moveit_robot_name, package_name=...)``) when no files are given.
        moveit_robot_name: robot name for ``MoveItConfigsBuilder``.
        moveit_node_name: name of MoveItPy's own node.
        moveit_provide_planning_service: MoveItPy also serves ``/get_planning_scene`` (off when
            move_group already does, as in franka_fr3_moveit_config's moveit.launch.py).
    """

    base_frame: str = "base_link"
    gripper: str = "topic"
    sim_command_topic: str = "sim/command"
    servo_pose_topic: str = "/servo_node/pose_target_cmds"
    servo_command_type_service: str = "/servo_node/switch_command_type"
    servo_status_topic: str = "/servo_node/status"
    servo_service_timeout_s: float = 5.0
    gripper_topic: str = "gripper_target"
    franka_gripper_ns: str = FRANKA_GRIPPER_NS
    gripper_max_width_m: float = 0.08
    grasp_force_n: float = 20.0
    gripper_speed_mps: float = 0.1
    moveit_group: str = FRANKA_ARM_GROUP
    moveit_tcp_link: str = FRANKA_TCP_LINK
    moveit_config_files: str = ""
    moveit_config_package: str = ""
    moveit_robot_name: str = "fr3"
    moveit_node_name: str = "moveit_py"
    moveit_provide_planning_service: bool = False

    def __post_init__(self) -> None:
        if self.gripper not in GRIPPERS:
            raise ValueError(f"gripper must be one of {sorted(GRIPPERS)}, got {self.gripper!r}")
        for name in ("gripper_max_width_m", "grasp_force_n", "gripper_speed_mps", "servo_service_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("base_frame", "moveit_tcp_link", "moveit_node_name"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")

    @property
    def moveit_config_file_list(self) -> list[str]:
        """``moveit_config_files`` split at commas (empty entries dropped)."""
        return [p.strip() for p in self.moveit_config_files.split(",") if p.strip()]


def _command_qos(depth: int = 1) -> QoSProfile:
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


# ---------------------------------------------------------------------------- pure helpers
def servo_status_text(code: int, message: str = "") -> str | None:
    """``ServoStatus`` (code, message) -> ``"NAME: message"``, or None for ``NO_WARNING``.

    Unknown codes give ``"UNKNOWN(<code>): ..."``; an empty message uses Servo's own description.
    """
    code = int(code)
    name, description, _ = SERVO_STATUS.get(code, (f"UNKNOWN({code})", "unknown Servo status code", True))
    if code == 0:
        return None
    return f"{name}: {message or description}"


def _flatten(params: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _node_sections(doc: dict, node_name: str) -> list[dict]:
    """The ``ros__parameters`` of a parameter file that apply to ``node_name`` (no namespace)."""
    sections = []
    for key, body in (doc or {}).items():
        if not isinstance(body, dict) or "ros__parameters" not in body:
            continue
        k = str(key)
        if k in ("/**", "**") or k.lstrip("/") == node_name or k.endswith(f"/{node_name}"):
            sections.append(body["ros__parameters"] or {})
    return sections


def load_moveit_params(files: list[str], node_name: str) -> dict:
    """Dot-flattened parameters that ``files`` give the node ``node_name`` (later files win).

    Raises:
        BackendUnavailable: a file is missing, unreadable, or has no section for the node.
    """
    import yaml

    params: dict = {}
    for path in files:
        p = Path(path).expanduser()
        if not p.is_file():
            raise BackendUnavailable(f"MoveIt parameter file {path!r} (moveit_config_files) does not exist")
        try:
            doc = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise BackendUnavailable(f"MoveIt parameter file {path!r} is not valid YAML: {exc}") from exc
        sections = _node_sections(doc if isinstance(doc, dict) else {}, node_name)
        if not sections:
            found = sorted(map(str, doc)) if isinstance(doc, dict) else []
            raise BackendUnavailable(
                f"MoveIt parameter file {path!r} has no 'ros__parameters' section for MoveItPy's node "
                f"{node_name!r} (expected key '/**' or '{node_name}', found {found}); "
                f"set moveit_node_name or rename the section")
        for section in sections:
            params.update(_flatten(section))
    return params


def missing_moveit_params(params: dict) -> list[str]:
    """Names of :data:`REQUIRED_MOVEIT_PARAMS` absent from dot-flattened ``params``
    (a name counts as present when it or any ``name.<sub>`` key is set and not empty)."""
    missing = []
    for name in REQUIRED_MOVEIT_PARAMS:
        present = any((k == name or k.startswith(name + ".")) and v not in (None, "", [], {})
                      for k, v in params.items())
        if not present:
            missing.append(name)
    return missing


def _moveit_missing_message(missing: list[str], source: str) -> str:
    lines = [f"executor backend 'moveit': MoveItPy's configuration ({source}) lacks: " + ", ".join(missing)]
    lines += [f"  - {name}: {REQUIRED_MOVEIT_PARAMS[name]}" for name in missing]
    lines.append("Provide it with moveit_config_files:=<params.yaml>[,<more.yaml>] (sections '/**' or "
                 "'<moveit_node_name>: ros__parameters:'; a launch file can dump "
                 "MoveItConfigsBuilder(...).to_moveit_configs().to_dict() there) or "
                 "moveit_config_package:=<pkg> with moveit_robot_name:=<robot> (needs moveit_configs_utils).")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- grippers
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
            self.problem = f"franka gripper action server {self._namespace}/{action} is not available"
            logger.error("%s; gripper command dropped", self.problem)
            self.forget()
            return
        self.problem = None
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

    def status(self) -> str | None:
        """A short text when the arm side reports a problem (e.g. a Servo halt), else None."""
        return None

    def tick_done(self, stamp) -> None:
        """The executor finished the control tick stamped ``stamp`` (only the sim uses it: lockstep)."""

    def reset(self) -> None:
        """A new episode: forget what belonged to the previous one (e.g. the last gripper command)."""

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

    def status(self) -> str | None:
        return self._gripper.problem


class SimBackend(ExecutorBackend):
    """The simulated arm of sim_node: one ``sim/command`` message per control tick (see the module docstring)."""

    name = "sim"

    def __init__(self, node, config: BackendConfig) -> None:
        from .trajectory_conversion import trajectory_to_msg

        self._to_msg = trajectory_to_msg
        self._node = node
        self._frame = config.base_frame
        self._tcp = config.moveit_tcp_link
        self._pub = node.create_publisher(MultiDOFJointTrajectory, config.sim_command_topic, _command_qos(depth=10))
        self._gripper: float | None = None  # last commanded openness (None: nothing commanded this episode)
        self._sent_this_tick = False
        self._tick_stamp = None  # stamp of the latest tick: a hold belongs to it (never acknowledges a later one)

    def _publish(self, pose: np.ndarray | None, stamp) -> None:
        from .stamps import stamp_to_ns

        poses = np.zeros((0, 8)) if pose is None else np.asarray(pose, dtype=np.float64).reshape(1, 8)
        n = len(poses)
        self._pub.publish(self._to_msg(poses, np.ones(n), np.zeros(n), stamp_to_ns(stamp), self._frame, self._tcp))

    def send(self, pose: np.ndarray, stamp) -> None:
        self._gripper = float(pose[7])
        self._tick_stamp = stamp
        self._publish(pose, stamp)
        self._sent_this_tick = True

    def hold(self, current_pose: np.ndarray | None) -> None:
        # a target at the measured pose stops the arm (gripper as last commanded, else as measured);
        # without a pose the last target stands
        if current_pose is not None and np.all(np.isfinite(current_pose)):
            current = np.asarray(current_pose, dtype=np.float64)
            grip = self._gripper if self._gripper is not None else (1.0 if current[7] > 0.5 else 0.0)
            # before any tick the stamp is 0: a hold then acknowledges no lockstep tick
            self._publish(np.concatenate([current[:7], [grip]]), self._tick_stamp or Time())

    def reset(self) -> None:
        self._gripper = None

    def tick_done(self, stamp) -> None:
        self._tick_stamp = stamp
        if not self._sent_this_tick:
            self._publish(None, stamp)  # "nothing new": the lockstep acknowledgement of this tick
        self._sent_this_tick = False


class ServoBackend(_PoseTopicBackend):
    """MoveIt Servo pose commands (closed loop), switched to POSE at start; Servo's status is followed."""

    name = "servo"

    def __init__(self, node, config: BackendConfig) -> None:
        try:
            from moveit_msgs.msg import ServoStatus
            from moveit_msgs.srv import ServoCommandType
        except ImportError as exc:
            raise BackendUnavailable(
                "executor backend 'servo' needs moveit_msgs (ros-jazzy-moveit-msgs; with MoveIt Servo "
                "ros-jazzy-moveit-servo) from a sourced ROS 2 install; use backend:=sim otherwise"
            ) from exc
        super().__init__(node, config, config.servo_pose_topic, make_gripper(node, config))
        self._servo_status: str | None = None
        self._status_lock = threading.Lock()
        self._status_sub = node.create_subscription(ServoStatus, config.servo_status_topic, self._on_status, 10)
        self._switch_to_pose(node, ServoCommandType, config)

    @staticmethod
    def _switch_to_pose(node, srv_type, config: BackendConfig) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        name, timeout = config.servo_command_type_service, config.servo_service_timeout_s
        client = node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise BackendUnavailable(
                    f"executor backend 'servo': MoveIt Servo's command-type service {name} "
                    f"(moveit_msgs/srv/ServoCommandType) did not appear within {timeout} s; start servo_node "
                    f"(moveit_servo) first or set servo_command_type_service to its '~/switch_command_type'")
            future = client.call_async(srv_type.Request(command_type=srv_type.Request.POSE))
            # the node is not spun yet (we run inside its constructor): spin it here until the answer
            executor = SingleThreadedExecutor(context=node.context)
            try:
                rclpy.spin_until_future_complete(node, future, executor=executor, timeout_sec=timeout)
            finally:
                executor.shutdown()
            if not future.done() or future.result() is None:
                raise BackendUnavailable(f"executor backend 'servo': {name} did not answer within {timeout} s")
            if not future.result().success:
                raise BackendUnavailable(f"executor backend 'servo': MoveIt Servo refused POSE commands ({name})")
        finally:
            node.destroy_client(client)
        logger.info("MoveIt Servo switched to POSE commands (%s)", name)

    def _on_status(self, msg) -> None:
        text = servo_status_text(msg.code, msg.message)
        with self._status_lock:
            changed, self._servo_status = text != self._servo_status, text
        if changed and text is not None:
            logger.warning("MoveIt Servo: %s", text)

    def status(self) -> str | None:
        with self._status_lock:
            servo = self._servo_status
        return servo or self._gripper.problem


class MoveItBackend(ExecutorBackend):
    """moveit_py plan + execute per pose goal, in a worker thread (newest goal wins)."""

    name = "moveit"

    def __init__(self, node, config: BackendConfig) -> None:
        try:
            from moveit.planning import MoveItPy
        except ImportError as exc:
            raise BackendUnavailable(
                "executor backend 'moveit' needs moveit_py (ros-jazzy-moveit-py) and a sourced ROS 2 install with "
                "the FR3 MoveIt config; use backend:=servo or backend:=sim otherwise"
            ) from exc
        self._config = config
        self._moveit = MoveItPy(**self._moveit_kwargs(MoveItPy, config))
        self._arm = self._moveit.get_planning_component(config.moveit_group)
        self._gripper = make_gripper(node, config)
        self._last_error: str | None = None
        self._goal: tuple[np.ndarray, object] | None = None
        self._cv = threading.Condition()
        self._stop = False
        self._worker = threading.Thread(target=self._run, name="moveit_executor", daemon=True)
        self._worker.start()

    @staticmethod
    def _moveit_kwargs(moveit_py_cls, config: BackendConfig) -> dict:
        """MoveItPy keyword arguments; raises :class:`BackendUnavailable` when the configuration is incomplete."""
        kwargs = {"node_name": config.moveit_node_name,
                  "provide_planning_service": config.moveit_provide_planning_service}
        # moveit_py >= 2.9 (Jazzy) takes launch_params_filepaths (a list); older ones one launch_params_filepath
        doc = getattr(moveit_py_cls.__init__, "__doc__", None) or ""
        plural = "launch_params_filepaths" in doc or "launch_params_filepath" not in doc
        files = config.moveit_config_file_list
        if files:
            missing = missing_moveit_params(load_moveit_params(files, config.moveit_node_name))
            if missing:
                raise BackendUnavailable(_moveit_missing_message(missing, f"files {files}"))
            if plural:
                kwargs["launch_params_filepaths"] = files
            elif len(files) == 1:
                kwargs["launch_params_filepath"] = files[0]
            else:
                raise BackendUnavailable("this moveit_py takes one launch_params_filepath: merge moveit_config_files")
            return kwargs
        if config.moveit_config_package:
            config_dict = _config_dict_from_package(config.moveit_config_package, config.moveit_robot_name)
            missing = missing_moveit_params(_flatten(config_dict))
            if missing:
                raise BackendUnavailable(_moveit_missing_message(missing, f"package {config.moveit_config_package}"))
            kwargs["config_dict"] = config_dict
            if plural:  # else MoveItPy also applies this process's --params-file arguments (executor's own)
                kwargs["launch_params_filepaths"] = []
            return kwargs
        raise BackendUnavailable(_moveit_missing_message(list(REQUIRED_MOVEIT_PARAMS),
                                                         "moveit_config_files and moveit_config_package are empty"))

    def send(self, pose: np.ndarray, stamp) -> None:
        with self._cv:
            self._goal = (np.asarray(pose, dtype=np.float64).copy(), stamp)
            self._cv.notify()

    def hold(self, current_pose: np.ndarray | None) -> None:
        with self._cv:
            self._goal = None  # pending goal dropped
        # stop a running execution (TrajectoryExecutionManager.stop_execution, moveit_py >= 2.9)
        manager = getattr(self._moveit, "get_trajectory_execution_manager", None)
        if manager is not None:
            try:
                manager().stop_execution(True)
            except Exception:  # noqa: BLE001 - stopping is best effort; the next goal is still refused upstream
                logger.exception("MoveIt stop_execution failed")
        self._gripper.forget()

    def status(self) -> str | None:
        return self._last_error or self._gripper.problem

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
                    self._last_error = f"MoveIt found no plan to {np.round(pose[:7], 3).tolist()}"
                    logger.error(self._last_error)
                    continue
                # Jazzy: execute(robot_trajectory, controllers) -> ExecutionStatus; <= 2.7:
                # execute(robot_trajectory, blocking=True, controllers) -> bool. This call fits both.
                result = self._moveit.execute(plan.trajectory, controllers=[])
                if result is not None and not result:
                    self._last_error = f"MoveIt execution failed: {getattr(result, 'status', result)}"
                    logger.error(self._last_error)
                    continue
                self._last_error = None
                self._gripper.command(pose[7])
            except Exception as exc:  # a failed goal must not kill the worker; the next goal is tried
                self._last_error = f"MoveIt goal failed: {exc}"
                logger.exception("MoveIt goal failed")


def _config_dict_from_package(package: str, robot_name: str) -> dict:
    """``MoveItConfigsBuilder(robot_name, package_name=package)`` as a MoveItPy ``config_dict``."""
    try:
        from moveit_configs_utils import MoveItConfigsBuilder
    except ImportError as exc:
        raise BackendUnavailable(
            "moveit_config_package needs moveit_configs_utils (ros-jazzy-moveit-configs-utils) in a sourced "
            "ROS 2 install; or pass moveit_config_files instead") from exc
    try:
        config_dict = MoveItConfigsBuilder(robot_name, package_name=package).to_moveit_configs().to_dict()
    except Exception as exc:  # noqa: BLE001 - the builder raises many kinds (missing files, xacro errors)
        raise BackendUnavailable(f"MoveItConfigsBuilder({robot_name!r}, package_name={package!r}) failed: {exc}; "
                                 "write a parameter file and pass moveit_config_files instead") from exc
    # the builder sets move_group's flat 'planning_pipelines: [...]'; MoveItCpp reads planning_pipelines.pipeline_names
    pipelines = config_dict.get("planning_pipelines")
    if isinstance(pipelines, list):
        config_dict.pop("planning_pipelines")
        config_dict["planning_pipelines"] = {"pipeline_names": pipelines, "namespace": ""}
    return config_dict


BACKENDS = {"sim": SimBackend, "servo": ServoBackend, "moveit": MoveItBackend}
GRIPPERS = ("topic", "franka")


def make_backend(name: str, node, config: BackendConfig) -> ExecutorBackend:
    """The backend called ``name`` (``sim``, ``servo``, ``moveit``) on ``node``."""
    if name not in BACKENDS:
        raise ValueError(f"unknown executor backend {name!r}; valid backends: {', '.join(BACKENDS)}")
    return BACKENDS[name](node, config)
