"""executor_node: decoded trajectories -> safety envelope -> arm backend (sim / servo / moveit).

Subscribes (relative names, remap as needed):
    ``trajectory`` (geometry_msgs/PoseArray) + ``trajectory_info`` (std_msgs/Float32MultiArray):
        the decoder's trajectory, paired by stamp (``pose_conversions``).
    ``current_pose`` (geometry_msgs/PoseStamped): measured TCP pose in the base frame
        (franka_ros2: ``/franka_robot_state_broadcaster/current_pose``; sim: camera_node).
    ``gripper_joint_states`` (sensor_msgs/JointState): finger joints -> measured openness.
    ``camera_heartbeat`` (sensor_msgs/CameraInfo): one camera's info; its stamps tell the
        executor the cameras are alive (it holds within ``max_frame_gap_s`` of a dropout).
Publishes:
    ``~/command`` (geometry_msgs/PoseStamped): every command sent to the backend.
    ``~/status`` (std_msgs/String): JSON ``{"event": ..., "reason": ...}`` when a command is not
        sent: ``refused`` (safety; the arm is stopped), ``hold`` (cameras stale; stopped),
        ``idle`` (trajectory used up; the last command stands), ``dropped`` (a trajectory was
        not used), ``paused`` / ``resumed`` (e-stop service).
Services:
    ``~/pause`` (std_srvs/SetBool): ``true`` = e-stop (refuse everything, hold), ``false`` = resume.

Each control tick (``control_rate_hz``) takes the next command of the receding-horizon
queue (``control.receding_horizon``), checks it against the safety envelope
(``config/safety.yaml``, ``control.safety``) and the measured pose, and sends it or holds.
Refused commands are never sent; the queue is dropped and the next trajectory replans.
A watchdog (``watchdog_hz``, between control ticks) holds the arm as soon as no camera
frame has arrived for ``max_frame_gap_s`` (camera dropout), so the hold does not wait for
the next control tick.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, JointState
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import SetBool

from ..control.receding_horizon import RecedingHorizon, RecedingHorizonConfig
from ..control.safety import SafetyEnvelope, load_safety_config
from .executor_backends import BackendConfig, make_backend
from .pose_conversions import (
    TrajectoryMessageError, gripper_openness, msgs_to_trajectory, pose_to_stamped, stamped_to_pose,
    trajectory_info_stamp_ns,
)
from .share import resolve_share_path
from .stamps import stamp_to_ns
from .sync import ApproximateTimeSync

__all__ = ["ExecutorNode", "create_node", "main"]

NODE_NAME = "executor_node"


class ExecutorNode(Node):
    """See the module docstring. Parameters are declared in ``__init__``; ``config/executor.yaml`` sets them."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # 1. parameters
        p = self._declare({
            "backend": "sim",
            "safety_config": "config/safety.yaml",
            "control_rate_hz": 10.0,
            "execute_steps": RecedingHorizonConfig.execute_steps,
            "substeps": RecedingHorizonConfig.substeps,
            "max_plan_age_s": RecedingHorizonConfig.max_plan_age_s,
            "max_frame_gap_s": RecedingHorizonConfig.max_frame_gap_s,
            "max_state_age_s": 0.5,
            "watchdog_hz": 50.0,
        })
        backend_cfg = BackendConfig(**self._declare(
            {f.name: f.default for f in dataclasses.fields(BackendConfig)}))
        if not p["control_rate_hz"] > 0:
            raise ValueError(f"control_rate_hz must be > 0, got {p['control_rate_hz']}")
        if not p["watchdog_hz"] >= p["control_rate_hz"]:
            raise ValueError(f"watchdog_hz must be >= control_rate_hz ({p['control_rate_hz']}), "
                             f"got {p['watchdog_hz']}")
        safety_cfg = load_safety_config(resolve_share_path(p["safety_config"]))
        self.envelope = SafetyEnvelope(safety_cfg)
        self.horizon = RecedingHorizon(RecedingHorizonConfig(
            execute_steps=p["execute_steps"], substeps=p["substeps"], min_confidence=safety_cfg.min_confidence,
            max_plan_age_s=p["max_plan_age_s"], max_frame_gap_s=p["max_frame_gap_s"]))
        self._max_state_age_s = float(p["max_state_age_s"])
        self._gripper_width = backend_cfg.gripper_max_width_m
        self._base_frame = backend_cfg.base_frame
        # 2. state
        self._pose: np.ndarray | None = None  # measured (7,)
        self._pose_time_s: float | None = None
        self._gripper: float | None = None
        self._holding = True
        self._idle = False
        self._traj_sync = ApproximateTimeSync(2, queue_size=3, slop_s=0.0)
        # 3. backend, publishers, subscriptions, service, timer
        self.backend = make_backend(p["backend"], self, backend_cfg)
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._cmd_pub = self.create_publisher(PoseStamped, "~/command", reliable)
        self._status_pub = self.create_publisher(String, "~/status", reliable)
        self.create_subscription(PoseArray, "trajectory", self._on_poses, reliable)
        self.create_subscription(Float32MultiArray, "trajectory_info", self._on_info, reliable)
        self.create_subscription(PoseStamped, "current_pose", self._on_current_pose, reliable)
        self.create_subscription(JointState, "gripper_joint_states", self._on_gripper, reliable)
        self.create_subscription(CameraInfo, "camera_heartbeat", self._on_heartbeat, reliable)
        self.create_service(SetBool, "~/pause", self._on_pause)
        self.create_timer(1.0 / p["control_rate_hz"], self._tick)
        self.create_timer(1.0 / p["watchdog_hz"], self._watchdog)  # camera dropout -> hold, between ticks too
        self.get_logger().info(
            f"backend {p['backend']!r}, safety {resolve_share_path(p['safety_config'])}, "
            f"{p['control_rate_hz']:g} Hz, {p['execute_steps']} step(s) x {p['substeps']} per trajectory")

    # ------------------------------------------------------------------ helpers
    def _declare(self, defaults: dict) -> dict:
        return {k: self.declare_parameter(k, v).value for k, v in defaults.items()}

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _status(self, event: str, reason: str) -> None:
        self._status_pub.publish(String(data=json.dumps({"event": event, "reason": reason})))

    def measured_pose(self) -> np.ndarray | None:
        """``(8,)`` measured TCP pose + openness (commanded openness if no finger joints are published)."""
        if self._pose is None:
            return None
        grip = self._gripper
        if grip is None:
            last = self.horizon.last_command
            grip = 1.0 if last is None else float(last[7])
        return np.concatenate([self._pose, [grip]])

    def _hold(self, event: str, reason: str) -> None:
        if not self._holding:
            self.backend.hold(self.measured_pose())
            self._holding = True
            self._status(event, reason)

    # ------------------------------------------------------------------ callbacks
    def _on_current_pose(self, msg: PoseStamped) -> None:
        if msg.header.frame_id and msg.header.frame_id != self._base_frame:
            self.get_logger().error(f"current_pose in frame {msg.header.frame_id!r}, expected {self._base_frame!r}; "
                                    "ignored", throttle_duration_sec=5.0)
            return
        self._pose, _ = stamped_to_pose(msg)
        self._pose_time_s = self._now_s()

    def _on_gripper(self, msg: JointState) -> None:
        value = gripper_openness(msg, self._gripper_width)
        if value is not None:
            self._gripper = value

    def _on_heartbeat(self, msg: CameraInfo) -> None:
        self.horizon.observe_frame(stamp_to_ns(msg.header.stamp) * 1e-9)

    def _on_poses(self, msg: PoseArray) -> None:
        self._add_trajectory_part(0, stamp_to_ns(msg.header.stamp), msg)

    def _on_info(self, msg: Float32MultiArray) -> None:
        try:
            stamp_ns = trajectory_info_stamp_ns(msg)
        except TrajectoryMessageError as exc:
            self._drop(str(exc))
            return
        self._add_trajectory_part(1, stamp_ns, msg)

    def _add_trajectory_part(self, part: int, stamp_ns: int, msg) -> None:
        for pair in self._traj_sync.add(part, stamp_ns, msg):
            self._on_trajectory(*pair.payloads)

    def _on_trajectory(self, poses: PoseArray, info: Float32MultiArray) -> None:
        if poses.header.frame_id and poses.header.frame_id != self._base_frame:
            self._drop(f"trajectory in frame {poses.header.frame_id!r}, expected {self._base_frame!r}")
            return
        try:
            actions, confidence, stamp_ns = msgs_to_trajectory(poses, info)
        except TrajectoryMessageError as exc:
            self._drop(str(exc))
            return
        current = self.measured_pose()
        if current is None:
            self._drop("no measured pose on current_pose yet")
            return
        if self.envelope.paused:
            self._drop("paused (e-stop)")
            return
        result = self.horizon.set_trajectory(actions, confidence, stamp_ns * 1e-9, current, self._now_s(),
                                             target_check=self.envelope.check_target)
        if not result.accepted:
            self._drop(result.reason)

    def _drop(self, reason: str) -> None:
        self.get_logger().warning(f"trajectory dropped: {reason}", throttle_duration_sec=1.0)
        self._status("dropped", reason)

    def _on_pause(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            self.envelope.pause("pause service")
            self.horizon.drop()
            self._holding = False  # force one hold command
            self._hold("paused", "pause service (e-stop)")
            response.message = "paused: every command is refused until resumed"
        else:
            self.envelope.resume()
            self._status("resumed", "pause service")
            response.message = "resumed"
        response.success = True
        self.get_logger().warning(response.message)
        return response

    def _watchdog(self) -> None:
        if self.envelope.paused or self._holding:
            return
        now_s = self._now_s()
        if self.horizon.frames_stale(now_s):
            self._hold("hold", self.horizon.next_command(now_s).reason)  # drops the queue, stops the arm

    def _tick(self) -> None:
        if self.envelope.paused:
            return
        now_s = self._now_s()
        cmd = self.horizon.next_command(now_s)
        if cmd.stale:  # cameras silent: stop where the arm is
            self._hold("hold", cmd.reason)
            return
        if cmd.hold:  # waiting for the next trajectory: the last command stands
            if not self._idle:
                self._idle = True
                self._status("idle", cmd.reason)
            return
        self._idle = False
        current = self.measured_pose()
        if current is None or self._pose_time_s is None or now_s - self._pose_time_s > self._max_state_age_s:
            self.horizon.drop()
            self._hold("refused", f"no measured pose within {self._max_state_age_s} s")
            return
        decision = self.envelope.check(cmd.pose, current, cmd.confidence, now_s)
        if not decision.allowed:
            self.horizon.drop()
            self._holding = False  # a refusal always re-asserts the hold
            self._hold("refused", decision.reason)
            return
        stamp = self.get_clock().now().to_msg()
        self.backend.send(decision.pose, stamp)
        self._holding = False
        self._cmd_pub.publish(pose_to_stamped(decision.pose, self._base_frame, stamp))

    def destroy_node(self) -> None:
        self.backend.close()
        super().destroy_node()


def create_node(**node_kwargs) -> ExecutorNode:
    """An ``ExecutorNode`` (``context=``, ``cli_args=``, ``parameter_overrides=`` as for ``rclpy.node.Node``)."""
    return ExecutorNode(**node_kwargs)


def main(args=None) -> None:
    from .spin import run_node

    run_node(create_node, args)


if __name__ == "__main__":
    main()
