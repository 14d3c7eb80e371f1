"""What every executor backend shares: the interface, the settings, the start-up error, the TCP->tip transform."""

from __future__ import annotations

import abc
import dataclasses

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ..franka import FRANKA_ARM_GROUP, FRANKA_FLANGE_LINK, FRANKA_GRIPPER_NS, FRANKA_TCP_IN_FLANGE, \
    FRANKA_TCP_LINK, flange_to_tcp, parse_xyz_rpy, tcp_to_flange

__all__ = ["BackendUnavailable", "BackendConfig", "ExecutorBackend", "TipTransform", "command_qos", "GRIPPERS"]

GRIPPERS = ("topic", "franka")


class BackendUnavailable(RuntimeError):
    """A backend or gripper that cannot start here: ROS packages not importable, configuration or
    server missing (the message says what and how to fix it)."""


def command_qos(depth: int = 1) -> QoSProfile:
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


@dataclasses.dataclass
class BackendConfig:
    """Backend settings (executor_node parameters of the same names; scalars only, so each is a ROS parameter).

    ``base_frame`` keeps the simulation's ``base_link`` as default; the real FR3 cell sets
    ``base_frame:=fr3_link0`` (franka_ros2 ``current_pose`` is in the URDF root ``base``, identical to
    ``fr3_link0``). The executor's poses are TCP poses (``moveit_tcp_link``); MoveIt and Servo move the
    IK tip of ``moveit_group`` (``tip_link``, ``fr3_link8`` for ``fr3_arm``), so the ``servo`` and ``moveit``
    backends convert every target, the holds included, with ``tcp_in_tip``.

    Attributes:
        base_frame: frame of every pose command (the robot base).
        gripper: ``topic`` or ``franka`` (``sim`` always uses its own topic).
        sim_command_topic: topic of the ``sim`` backend (one message per tick).
        tip_link: the link MoveIt / Servo place at a pose target (the IK tip of ``moveit_group``).
        tcp_in_tip: the TCP's pose in ``tip_link``, ``"x y z roll pitch yaw"`` (m, rad, URDF convention);
            the franka hand on ``fr3_link8``: ``0 0 0.1034 0 0 -pi/4``; ``"0 0 0 0 0 0"`` when the tip is the TCP.
        servo_pose_topic: MoveIt Servo's pose command topic (``moveit_servo.pose_command_in_topic``).
        servo_command_type_service: Servo's ``moveit_msgs/srv/ServoCommandType`` service.
        servo_status_topic: Servo's ``moveit_msgs/msg/ServoStatus`` topic (``moveit_servo.status_topic``).
        servo_service_timeout_s: how long start-up waits for the command-type service (s).
        servo_stream_hz: rate at which pose targets are streamed to Servo, interpolated between the
            executor's commands (Hz); at least ``3 / servo_command_timeout_s``.
        servo_command_timeout_s: Servo's ``incoming_command_timeout`` (s, ``config/servo_fr3.yaml``).
        servo_keepalive_s: streaming stops when the executor sent nothing for this long (s): Servo then
            halts by its own timeout.
        gripper_topic: topic of the ``topic`` gripper.
        franka_gripper_ns: franka_gripper node (actions ``<ns>/move``, ``<ns>/grasp``).
        gripper_max_width_m: finger opening for openness 1 (Franka hand: 0.08 m).
        grasp_force_n: force of a Franka grasp (N).
        gripper_speed_mps: finger speed (m/s).
        moveit_group: MoveIt planning group of the arm.
        moveit_tcp_link: the TCP link (what the executor's poses describe).
        moveit_cell_config: this cell's MoveItPy parameters (pipelines, ``plan_request_params`` with the
            scaling, controllers, execution), applied after ``moveit_config_package``; the shipped
            ``config/moveit_fr3.yaml`` by default ("" = none).
        moveit_config_files: comma-separated ROS 2 parameter files for MoveItPy, applied last
            (sections ``/**`` or ``<moveit_node_name>`` are read; relative paths as ``safety_config``).
        moveit_config_package: ``franka_fr3_moveit_config`` (URDF/SRDF by xacro from franka_description and
            its kinematics / controllers, as its moveit.launch.py does) or another MoveIt config package
            built with ``MoveItConfigsBuilder``; ``moveit_config_files`` are applied on top.
        moveit_robot_name: robot name for ``MoveItConfigsBuilder``.
        moveit_node_name: name of MoveItPy's own node.
        moveit_provide_planning_service: MoveItPy also serves ``/get_planning_scene`` (off when
            move_group already does, as in franka_fr3_moveit_config's moveit.launch.py).
        moveit_max_velocity_scaling: the most ``plan_request_params.max_velocity_scaling_factor`` may be,
            and the scaling of a chunk's time parameterisation (0..1].
        moveit_max_acceleration_scaling: the same for acceleration (0..1].
        moveit_start_timeout_s: how long start-up waits for MoveItPy in its worker process (s).
        moveit_ik_timeout_s: IK time per keyframe of a chunk (s).
    """

    base_frame: str = "base_link"
    gripper: str = "topic"
    sim_command_topic: str = "sim/command"
    tip_link: str = FRANKA_FLANGE_LINK
    tcp_in_tip: str = " ".join(repr(float(v)) for v in FRANKA_TCP_IN_FLANGE)
    servo_pose_topic: str = "/servo_node/pose_target_cmds"
    servo_command_type_service: str = "/servo_node/switch_command_type"
    servo_status_topic: str = "/servo_node/status"
    servo_service_timeout_s: float = 5.0
    servo_stream_hz: float = 50.0
    servo_command_timeout_s: float = 0.1
    servo_keepalive_s: float = 0.5
    gripper_topic: str = "gripper_target"
    franka_gripper_ns: str = FRANKA_GRIPPER_NS
    gripper_max_width_m: float = 0.08
    grasp_force_n: float = 20.0
    gripper_speed_mps: float = 0.1
    moveit_group: str = FRANKA_ARM_GROUP
    moveit_tcp_link: str = FRANKA_TCP_LINK
    moveit_cell_config: str = "config/moveit_fr3.yaml"
    moveit_config_files: str = ""
    moveit_config_package: str = ""
    moveit_robot_name: str = "fr3"
    moveit_node_name: str = "moveit_py"
    moveit_provide_planning_service: bool = False
    moveit_max_velocity_scaling: float = 0.1
    moveit_max_acceleration_scaling: float = 0.1
    moveit_start_timeout_s: float = 60.0
    moveit_ik_timeout_s: float = 0.05

    def __post_init__(self) -> None:
        if self.gripper not in GRIPPERS:
            raise ValueError(f"gripper must be one of {sorted(GRIPPERS)}, got {self.gripper!r}")
        for name in ("gripper_max_width_m", "grasp_force_n", "gripper_speed_mps", "servo_service_timeout_s",
                     "servo_stream_hz", "servo_command_timeout_s", "servo_keepalive_s", "moveit_start_timeout_s",
                     "moveit_ik_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("moveit_max_velocity_scaling", "moveit_max_acceleration_scaling"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.servo_stream_hz * self.servo_command_timeout_s < 3:
            raise ValueError(
                f"servo_stream_hz {self.servo_stream_hz} is too slow for servo_command_timeout_s "
                f"{self.servo_command_timeout_s}: Servo halts when a pose is older than its timeout, so stream "
                f"at least 3 poses per timeout (>= {3 / self.servo_command_timeout_s:g} Hz)")
        for name in ("base_frame", "moveit_tcp_link", "moveit_node_name", "tip_link"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        parse_xyz_rpy(self.tcp_in_tip)  # raises ValueError naming the text

    @property
    def moveit_config_file_list(self) -> list[str]:
        """``moveit_config_files`` split at commas (empty entries dropped)."""
        return [p.strip() for p in self.moveit_config_files.split(",") if p.strip()]


class TipTransform:
    """TCP poses <-> poses of the link the arm's controller moves (``BackendConfig.tip_link``)."""

    def __init__(self, config: BackendConfig) -> None:
        self.link = config.tip_link
        self.tcp_in_tip = parse_xyz_rpy(config.tcp_in_tip)

    def to_tip(self, tcp_pose: np.ndarray) -> np.ndarray:
        """TCP pose ``(7,)``/``(8,)`` in the base -> tip pose (same shape; the gripper entry is kept)."""
        return tcp_to_flange(tcp_pose, self.tcp_in_tip)

    def to_tcp(self, tip_pose: np.ndarray) -> np.ndarray:
        return flange_to_tcp(tip_pose, self.tcp_in_tip)


class ExecutorBackend(abc.ABC):
    """Sends pose commands that passed the safety envelope to an arm.

    Poses are ``(8,)`` ``[x y z qx qy qz qw gripper]``: the TCP in ``BackendConfig.base_frame``, gripper 0
    (closed) or 1 (open). Backends never check safety themselves: executor_node applies the envelope first.
    """

    name = ""
    #: True for a backend whose :meth:`send_chunk` runs paths (executor_node plans one only for those)
    runs_paths = False

    @abc.abstractmethod
    def send(self, pose: np.ndarray, stamp) -> None:
        """Command ``pose (8,)`` (the control tick ``stamp``), already approved by the safety envelope."""

    @abc.abstractmethod
    def hold(self, current_pose: np.ndarray | None) -> None:
        """Stop: keep the arm where it is (``current_pose (8,)`` measured TCP, None if unknown)."""

    def send_chunk(self, poses: np.ndarray, times_s: np.ndarray, stamp) -> int:
        """Optionally execute an approved chunk ``poses (N, 8)`` due at ROS times ``times_s (N,)`` (the first: the
        pose commanded now) as one trajectory. Returns how many leading poses it executes that way (a backend
        may stop at a gripper change); executor_node sends the ticks after those with :meth:`send`. 0 (the
        default): the backend only follows :meth:`send`."""
        return 0

    def status(self) -> str | None:
        """A short text when the arm side reports a problem (e.g. a Servo halt), else None."""
        return None

    def tick_done(self, stamp) -> None:
        """The executor finished the control tick stamped ``stamp`` (only the sim uses it: lockstep)."""

    def reset(self) -> None:
        """A new episode: forget what belonged to the previous one (e.g. the last gripper command)."""

    def close(self) -> None:
        """Release resources (threads, clients, processes)."""
