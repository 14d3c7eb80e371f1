"""MoveIt Servo (Jazzy ``servo_node``) in pose mode, closed loop, fed at ``servo_stream_hz``.

Checked against moveit2 ``moveit_ros/moveit_servo/src/servo_node.cpp`` (the 2.8+ rewrite Jazzy ships):

* Servo ignores every command until its type is set ("Command type has not been set, cannot accept
  input"): at start the backend calls ``~/switch_command_type`` (``moveit_msgs/srv/ServoCommandType``,
  ``POSE = 2``; the response's ``success`` says the type now expected) and fails if it does not answer.
* A pose command is stale when ``servo node now - header.stamp >= incoming_command_timeout`` (0.1 s by
  default); Servo then halts smoothly. The executor commands at its control rate (10 Hz by default), so
  this backend streams ``PoseStamped`` at ``servo_stream_hz`` (50 Hz by default), stamped with the time of
  sending, interpolated (position linearly, orientation by slerp) from where the stream was to the newest
  approved command over the interval between the executor's commands: the arm moves smoothly and the path
  never leaves the segment between two approved commands (one command interval of delay). When the
  executor stops commanding for ``servo_keepalive_s`` the stream stops and Servo halts by its own timeout.
  Clock assumption: the stamps come from this node's clock and Servo judges them by its own; both must use
  the same time source (both ``use_sim_time`` or neither) and, on two machines, be synchronised (chrony / PTP)
  to well under the timeout.
* Servo moves the IK tip of its ``move_group_name`` (``fr3_link8`` for ``fr3_arm``); it has no parameter for
  another end-effector frame. Every target, the hold included, is converted from the TCP to that link
  (``BackendConfig.tip_link`` / ``tcp_in_tip``).
* ``moveit_msgs/msg/ServoStatus`` on ``~/status`` (published every loop): a code other than ``NO_WARNING``
  shows in :meth:`ServoBackend.status` (and executor_node's ``~/status``) and is logged once per change.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from scipy.spatial.transform import Rotation, Slerp

from ..pose_conversions import pose_to_stamped
from ..stamps import ns_to_stamp
from .base import BackendConfig, BackendUnavailable, ExecutorBackend, TipTransform, command_qos
from .grippers import make_gripper

__all__ = ["ServoBackend", "PoseStreamer", "SERVO_STATUS", "SERVO_HALT_CODES", "servo_status_text"]

logger = logging.getLogger(__name__)

# moveit_msgs/msg/ServoStatus codes (= moveit_servo StatusCode, utils/datatypes.hpp SERVO_STATUS_CODE_MAP)
# -> (name, Servo's own description, is a halt)
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
SERVO_HALT_CODES = frozenset(code for code, (_, _, halt) in SERVO_STATUS.items() if halt)


def servo_status_text(code: int, message: str = "") -> str | None:
    """``ServoStatus`` (code, message) -> ``"NAME: message"``, or None for ``NO_WARNING``.

    Unknown codes give ``"UNKNOWN(<code>): ..."``; an empty message uses Servo's own description.
    """
    code = int(code)
    name, description, _ = SERVO_STATUS.get(code, (f"UNKNOWN({code})", "unknown Servo status code", True))
    if code == 0:
        return None
    return f"{name}: {message or description}"


class PoseStreamer:
    """Interpolates between approved pose commands for a stream faster than the commands (no rclpy).

    :meth:`command` sets a new target at time ``t``: the stream moves from where it is at ``t`` to the
    target over the interval since the previous command (at once for the first one); :meth:`hold` jumps
    to a pose (the arm's own); :meth:`sample` gives the pose ``(7,)`` to stream at ``t``, or None when
    there is nothing to stream (no target yet, or no command for ``keepalive_s``).
    Times are seconds of one clock; poses ``[x y z qx qy qz qw]``.
    """

    def __init__(self, keepalive_s: float) -> None:
        self.keepalive_s = float(keepalive_s)
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._start = self._target = None
            self._seg_t = self._duration = 0.0
            self._last_t: float | None = None

    def command(self, pose: np.ndarray, t: float) -> None:
        pose = np.asarray(pose, dtype=np.float64)[:7]
        with self._lock:
            now = self._sample(t)
            interval = 0.0 if self._last_t is None else min(max(t - self._last_t, 0.0), self.keepalive_s)
            self._start = pose if now is None else now
            self._target, self._seg_t, self._duration, self._last_t = pose, t, interval, t

    def hold(self, pose: np.ndarray, t: float) -> None:
        pose = np.asarray(pose, dtype=np.float64)[:7]
        with self._lock:
            self._start = self._target = pose
            self._seg_t, self._duration, self._last_t = t, 0.0, t

    def sample(self, t: float) -> np.ndarray | None:
        with self._lock:
            if self._last_t is None or t - self._last_t > self.keepalive_s:
                return None
            return self._sample(t)

    def _sample(self, t: float) -> np.ndarray | None:
        if self._target is None:
            return None
        u = 1.0 if self._duration <= 0 else float(np.clip((t - self._seg_t) / self._duration, 0.0, 1.0))
        if u >= 1.0:
            return self._target.copy()
        out = np.empty(7)
        out[:3] = (1 - u) * self._start[:3] + u * self._target[:3]
        rots = Rotation.from_quat(np.stack([self._start[3:7], self._target[3:7]]))
        out[3:7] = Slerp([0.0, 1.0], rots)([u]).as_quat()[0]
        return out


class ServoBackend(ExecutorBackend):
    """MoveIt Servo pose commands, switched to POSE at start, streamed at ``servo_stream_hz``; Servo's
    status is followed (see the module docstring).

    ``clock`` (seconds, default: the node's ROS clock) and ``stream=False`` (no streaming thread: call
    :meth:`stream_once`) let a caller drive the stream itself, e.g. a test judged by events.
    """

    name = "servo"

    def __init__(self, node, config: BackendConfig, clock=None, stream: bool = True) -> None:
        try:
            from moveit_msgs.msg import ServoStatus
            from moveit_msgs.srv import ServoCommandType
        except ImportError as exc:
            raise BackendUnavailable(
                "executor backend 'servo' needs moveit_msgs (ros-jazzy-moveit-msgs; with MoveIt Servo "
                "ros-jazzy-moveit-servo) from a sourced ROS 2 install; use backend:=sim otherwise"
            ) from exc
        self._node = node
        self._frame = config.base_frame
        self._tip = TipTransform(config)
        self._clock = clock or (lambda: node.get_clock().now().nanoseconds * 1e-9)
        self._streamer = PoseStreamer(config.servo_keepalive_s)
        self._period = 1.0 / config.servo_stream_hz
        self._gripper = make_gripper(node, config)
        self._pub = node.create_publisher(PoseStamped, config.servo_pose_topic, command_qos())
        self._servo_status: str | None = None
        self._status_lock = threading.Lock()
        self._status_sub = node.create_subscription(ServoStatus, config.servo_status_topic, self._on_status, 10)
        self.published = 0  # pose commands streamed so far
        self._switch_to_pose(node, ServoCommandType, config)
        self._stop = threading.Event()
        self._thread = None
        if stream:
            self._thread = threading.Thread(target=self._stream_loop, name="servo_stream", daemon=True)
            self._thread.start()

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
            if not future.done():  # the node is not spun yet (we run inside its constructor): spin it here
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

    # ------------------------------------------------------------------ commands
    def send(self, pose: np.ndarray, stamp) -> None:
        self._streamer.command(np.asarray(pose, dtype=np.float64)[:7], self._clock())
        self._gripper.command(pose[7])

    def hold(self, current_pose: np.ndarray | None) -> None:
        # the measured TCP pose, converted to the tip like every target: the arm stays where it is
        if current_pose is not None and np.all(np.isfinite(current_pose)):
            self._streamer.hold(np.asarray(current_pose, dtype=np.float64)[:7], self._clock())
            self.stream_once()
        self._gripper.forget()

    def reset(self) -> None:
        self._gripper.forget()

    def stream_once(self) -> bool:
        """Publish the interpolated target for now (tip link, stamped now); False when nothing is streamed."""
        now = self._clock()
        pose = self._streamer.sample(now)
        if pose is None:
            return False
        self._pub.publish(pose_to_stamped(self._tip.to_tip(pose), self._frame, ns_to_stamp(int(round(now * 1e9)))))
        self.published += 1
        return True

    def _stream_loop(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self.stream_once()
            except Exception:  # noqa: BLE001 - a failed publish (e.g. at shutdown) must not end the stream silently
                logger.exception("streaming to MoveIt Servo failed")
            next_t += self._period
            delay = next_t - time.monotonic()
            if delay < -self._period:  # fell behind (machine busy): do not burst to catch up
                next_t, delay = time.monotonic(), 0.0
            self._stop.wait(max(delay, 0.0))

    # ------------------------------------------------------------------ status
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

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
