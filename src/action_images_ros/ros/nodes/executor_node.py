"""executor_node: timed trajectory chunks -> the one chunk executor + safety envelope -> arm backend.

Subscribes (relative names, remap as needed):
    ``trajectory`` (trajectory_msgs/MultiDOFJointTrajectory, ``trajectory_conversion``): the policy's
        decoded chunk, stamped with its frames' capture time; every step has a ``time_from_start``.
        An empty one is the policy's refusal of a request.
    ``current_pose`` (geometry_msgs/PoseStamped): measured TCP pose in the base frame
        (franka_ros2: ``/franka_robot_state_broadcaster/current_pose``, best effort at 1 kHz in frame ``base``;
        sim: sim_node). Subscribed best effort (``qos.pose_qos``: receives reliable and best-effort
        publishers alike); ``base_frame`` and ``base_frame_aliases`` (frames identical to it, e.g. the
        URDF root ``base`` of the FR3 = ``fr3_link0``) are accepted. With ticks on a timer the newest
        message is only stored and checked once per tick (decimated to the control rate).
        A pose that jumped from the last trusted one is not trusted until the next samples confirm it
        (``ChunkExecutor``): the arm holds where it was commanded.
    ``gripper_joint_states`` (sensor_msgs/JointState): finger joints -> measured openness.
    ``camera_heartbeat`` (sensor_msgs/CameraInfo): one camera's info; its stamps tell the
        executor the cameras are alive (it holds within ``max_frame_gap_s`` of a dropout).
    ``episode`` (std_msgs/Header, transient local, ``ros/episode.py``): a new episode starts at
        ``header.stamp`` (the cell announces it before the episode's first tick): the executor resets
        there, so nothing predicted from the previous episode acts in the new one. A stopped episode
        (``"<episode> stopped"``): it resets and holds (one hold command at the measured pose; in
        lockstep it acknowledges ticks without a command), asking for nothing, until the next start.
Publishes:
    ``chunk_request`` (trajectory_msgs/MultiDOFJointTrajectory, transient local, the
        ``trajectory_conversion`` layout): "the next chunk, from frames stamped at least
        ``header.stamp``, predicted from the state in point 0" when the current chunk is running out;
        point 0 is the trusted measured pose, or with a late policy the pose the arm will be commanded to
        when the answer is expected (``time_from_start`` = that expected latency). It names a fresh
        random id (``request/<id>``); only a trajectory that echoes it, predicted from that state, in this
        episode, is executed; anything else is refused with one (throttled) log line naming its stamp and id.
    ``~/command`` (geometry_msgs/PoseStamped): every pose commanded, moves and holds alike (a hold stops
        the arm where it was last commanded, checked against the last trusted pose); a backend that runs
        a chunk as one trajectory (MoveIt, ``send_chunk``) gets the chunk once, and its ticks are published
        here but not sent again one by one.
    ``~/hold`` (geometry_msgs/PoseStamped): the holds among them (the same messages, for counting).
    ``~/status`` (std_msgs/String): JSON ``{"event", "reason", "stats"}`` when something changes:
        ``stall`` (the chunk ran out before the next arrived: the last command stands), ``hold``
        (cameras stale, no fresh pose, or a pose not trusted: stopped), ``refused`` (safety: stopped),
        ``dropped`` (a chunk not used),
        ``policy_refused``, ``paused`` / ``resumed`` / ``reset``, ``backend`` (e.g. a Servo halt),
        ``episode_end`` (the statistics of the episode that just ended, published before a reset),
        ``stopped`` (the episode stopped: holding until the next starts).
Services (every call is answered, also in a burst: ``qos.service_qos``):
    ``~/pause`` (std_srvs/SetBool): ``true`` = e-stop (refuse everything, hold), ``false`` = resume.
    ``~/reset`` (std_srvs/Trigger): a new episode / trial: drop the chunk, the request, the last
        command and the statistics; chunks predicted before now are ignored.

Execution is ``control.chunk_execution.ChunkExecutor``, the class ``action-images eval`` runs, with
the execution settings saved in the model folder (``model``; ``execution_overrides`` changes some
on purpose) and the cell's safety envelope (``safety_config``). Ticks (``tick_source``):

* ``timer``: every ``1 / control_rate_hz`` of ROS time (the real cell; the real-time sim);
* ``state``: every ``current_pose`` message, at its stamp (the lockstep sim). When the executor
  asks for a chunk it waits for the answer before it finishes the tick, and the sim backend then
  acknowledges the tick (``sim/command``): the simulator waits for the policy. While paused
  (e-stop) no tick is acknowledged, so the simulated world waits too; resuming re-runs the tick.
  A tick offered again (sim_node re-offers an unacknowledged tick, e.g. to a restarted executor) that
  was already executed is only acknowledged again.

A watchdog (``watchdog_hz``, between ticks) holds the arm as soon as no camera frame has arrived
for ``max_frame_gap_s``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, JointState
from std_msgs.msg import Header, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from ...config import DEFAULT_MODEL, execution_config_for
from ...control.chunk_execution import FUTURE_TOLERANCE_S, ChunkExecutor
from ...control.safety import SafetyEnvelope, load_safety_config
from ..executor_backends import BackendConfig, make_backend
from ..node_support import KeyedThrottle, runtime_parameters
from ..pose_conversions import gripper_openness, pose_to_stamped, stamped_to_pose
from ..episode import parse_episode
from ..qos import latched_qos, pose_qos, service_qos, state_qos
from ..share import resolve_share_path
from ..stamps import ns_to_stamp, stamp_to_ns
from ..trajectory_conversion import (TrajectoryMessageError, msg_to_chunk, new_request_id, request_id_of,
                                     trajectory_to_msg)

__all__ = ["ExecutorNode", "create_node", "main", "TICK_SOURCES"]

NODE_NAME = "executor_node"
TICK_SOURCES = ("timer", "state")


class ExecutorNode(Node):
    """See the module docstring. Parameters are declared in ``__init__``; ``config/executor.yaml`` sets them."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # 1. parameters
        p = self._declare({
            "backend": "sim",
            "safety_config": "config/safety.yaml",
            "model": DEFAULT_MODEL,
            "execution_overrides": "",
            "tick_source": "timer",
            "control_rate_hz": 10.0,
            "max_state_age_s": 0.5,
            "watchdog_hz": 50.0,
            "request_retry_s": 10.0,
            "base_frame_aliases": ["fr3_link0", "base"],
        })
        backend_cfg = BackendConfig(**self._declare(
            {f.name: f.default for f in dataclasses.fields(BackendConfig)}))
        if p["tick_source"] not in TICK_SOURCES:
            raise ValueError(f"tick_source must be one of {list(TICK_SOURCES)}, got {p['tick_source']!r}")
        if not p["control_rate_hz"] > 0:
            raise ValueError(f"control_rate_hz must be > 0, got {p['control_rate_hz']}")
        if not p["watchdog_hz"] >= p["control_rate_hz"]:
            raise ValueError(f"watchdog_hz must be >= control_rate_hz ({p['control_rate_hz']}), "
                             f"got {p['watchdog_hz']}")
        for name in ("max_state_age_s", "request_retry_s"):
            if not p[name] > 0:
                raise ValueError(f"{name} must be > 0, got {p[name]}")
        safety_cfg = load_safety_config(resolve_share_path(p["safety_config"]))
        self.envelope = SafetyEnvelope(safety_cfg)
        execution = execution_config_for(resolve_share_path(p["model"]), p["execution_overrides"],
                                         safety_cfg.min_confidence)
        self.chunks = ChunkExecutor(execution, self.envelope)
        self._lockstep = p["tick_source"] == "state"
        self._max_state_age_s = float(p["max_state_age_s"])
        self._retry_s = float(p["request_retry_s"])
        self._gripper_width = backend_cfg.gripper_max_width_m
        self._base_frame = backend_cfg.base_frame
        self._pose_frames = {self._base_frame, *(f for f in p["base_frame_aliases"] if f)}
        self._tcp_link = backend_cfg.moveit_tcp_link
        self._last_request: tuple[float, np.ndarray, str] | None = None  # (stamp, state, id)
        # 2. state (all callbacks and services share the node's default mutually exclusive group: no races)
        self._pose: np.ndarray | None = None  # measured (7,)
        self._pose_stamp_s: float | None = None
        self._pose_time_s: float | None = None
        self._raw_pose: tuple[PoseStamped, float] | None = None  # timer ticks: the newest message, checked at a tick
        self._last_tick_s: float | None = None  # lockstep: the newest tick executed (a re-offered one is re-acked)
        self._pose_silent_since: float | None = None
        self._gripper: float | None = None
        self._frame_stamp_s: float | None = None  # newest camera heartbeat
        self._deferred: float | None = None  # lockstep: the tick waiting for the requested chunk
        self._deferred_wall = Clock(clock_type=ClockType.STEADY_TIME)
        self._deferred_since_ns = 0
        self._unacked: float | None = None  # lockstep: a tick seen while paused (not acknowledged)
        self._newer: float | None = None  # lockstep: the newest tick that arrived while one was deferred
        self._last_event = ""
        self._throttle = KeyedThrottle(1.0)
        self._issued = collections.deque(maxlen=64)  # ids of this executor's recent requests (any episode)
        self._stopped = False  # the cell stopped the episode: hold until the next starts
        # 3. backend, publishers, subscriptions, services, timers
        self._backend_path = None  # (chunk, end time) the backend executes as one trajectory (send_chunk)
        self.backend = make_backend(p["backend"], self, backend_cfg)
        reliable = state_qos()
        self._cmd_pub = self.create_publisher(PoseStamped, "~/command", reliable)
        self._hold_pub = self.create_publisher(PoseStamped, "~/hold", reliable)
        self._status_pub = self.create_publisher(String, "~/status", reliable)
        self._request_pub = self.create_publisher(MultiDOFJointTrajectory, "chunk_request", latched_qos())
        # created in this order on purpose: rclpy handles ready subscriptions in creation order, and a
        # lockstep tick (current_pose) must see its episode, gripper and heartbeat of the same instant
        self.create_subscription(Header, "episode", self._on_episode, latched_qos())
        self.create_subscription(JointState, "gripper_joint_states", self._on_gripper, reliable)
        self.create_subscription(CameraInfo, "camera_heartbeat", self._on_heartbeat, reliable)
        self.create_subscription(MultiDOFJointTrajectory, "trajectory", self._on_trajectory, reliable)
        # lockstep: every pose is a tick the simulator waits for (reliable, as sim_node publishes); timer ticks:
        # best effort, so franka_ros2's best-effort 1 kHz stream is received too (and any reliable one)
        self.create_subscription(PoseStamped, "current_pose", self._on_current_pose,
                                 state_qos(depth=10) if self._lockstep else pose_qos())
        # the services never block: they share the node's default group with every callback, so the
        # (not thread-safe) ChunkExecutor is only ever used by one callback at a time
        self.create_service(SetBool, "~/pause", self._on_pause, qos_profile=service_qos())
        self.create_service(Trigger, "~/reset", self._on_reset, qos_profile=service_qos())
        self.add_on_set_parameters_callback(runtime_parameters({}))  # all read at start-up
        if not self._lockstep:
            self.create_timer(1.0 / p["control_rate_hz"], self._on_timer)
            self.create_timer(1.0 / p["watchdog_hz"], self._watchdog)  # camera dropout -> hold, between ticks
        else:  # simulated time stands still while waiting: re-ask on the wall clock
            self.create_timer(1.0, self._retry_request, clock=self._deferred_wall)
        self.get_logger().info(
            f"backend {p['backend']!r}, safety {resolve_share_path(p['safety_config'])}, ticks "
            + ("on every current_pose (lockstep)" if self._lockstep else f"at {p['control_rate_hz']:g} Hz")
            + f", execution {execution.to_dict()}")

    # ------------------------------------------------------------------ helpers
    def _declare(self, defaults: dict) -> dict:
        return {k: self.declare_parameter(k, v).value for k, v in defaults.items()}

    def _now_s(self) -> float:
        """The tick time: ROS time, or in lockstep the latest simulated tick if ROS time lags it."""
        if self._lockstep and self._pose_stamp_s is not None:
            return max(self._pose_stamp_s, self._now_s_ros())
        return self._now_s_ros()

    def _status(self, event: str, reason: str, force: bool = False) -> None:
        if event == self._last_event and not force and event in ("stall", "idle", "hold", "paused"):
            return  # a state that persists is reported once
        self._last_event = event
        self._status_pub.publish(String(data=json.dumps({"event": event, "reason": reason,
                                                         "stats": self.chunks.stats.as_dict()})))

    def measured_pose(self) -> np.ndarray | None:
        """``(8,)`` measured TCP pose + openness (commanded openness if no finger joints are published)."""
        if self._pose is None:
            return None
        grip = self._gripper
        if grip is None:
            last = self.chunks.last_command
            grip = 1.0 if last is None else float(last[7])
        return np.concatenate([self._pose, [grip]])

    def _state_fresh(self, now_s: float) -> bool:
        if self._pose is None or self._pose_time_s is None:
            return False
        if self._lockstep:  # the tick's own state: as old as its stamp, whatever the wall clock did meanwhile
            return now_s - self._pose_stamp_s <= self._max_state_age_s
        return self._now_s_ros() - self._pose_time_s <= self._max_state_age_s

    def _now_s_ros(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ callbacks
    def _on_current_pose(self, msg: PoseStamped) -> None:
        if not self._lockstep:  # decimated to the control rate: only the newest is checked, at the next tick
            self._raw_pose = (msg, self._now_s_ros())
            return
        if self._accept_pose(msg, self._now_s_ros()):
            self.chunks.observe_pose(self.measured_pose(), self._pose_stamp_s)  # judged even if superseded
            self._tick(self._pose_stamp_s)

    def _take_pose(self) -> None:
        """Timer ticks: check and take the newest current_pose message, if one came since the last tick."""
        raw, self._raw_pose = self._raw_pose, None
        if raw is not None:
            self._accept_pose(*raw)

    def _accept_pose(self, msg: PoseStamped, arrival_s: float) -> bool:
        """Check one current_pose message (frame, finite, unit quaternion, not from the future); keep it if good."""
        if msg.header.frame_id and msg.header.frame_id not in self._pose_frames:
            self._warn("pose_frame", f"current_pose in frame {msg.header.frame_id!r}, expected {self._base_frame!r} "
                       f"or an alias of it {sorted(self._pose_frames - {self._base_frame})}; ignored", error=True)
            return False
        pose, stamp_ns = stamped_to_pose(msg)
        if not np.all(np.isfinite(pose)) or np.linalg.norm(pose[3:7]) < 1e-6:
            self._warn("pose_finite", "current_pose is not finite or has a zero quaternion; ignored", error=True)
            return False
        ros_now = self._now_s_ros()
        if ros_now > 0 and stamp_ns * 1e-9 > ros_now + FUTURE_TOLERANCE_S:  # it would set the lockstep clock
            self._warn("pose_future", f"current_pose stamped {stamp_ns * 1e-9 - ros_now:.3f} s in the future of this "
                       "node's clock; ignored (a clock upstream is wrong)", error=True)
            return False
        self._pose, self._pose_stamp_s, self._pose_time_s = pose, stamp_ns * 1e-9, arrival_s
        return True

    def _warn(self, kind: str, text: str, error: bool = False) -> None:
        """One log line per kind of problem and second (a stream of bad messages does not flood the log)."""
        if self._throttle(kind):  # two call sites: rclpy refuses one call site logging at two severities
            if error:
                self.get_logger().error(text)
            else:
                self.get_logger().warning(text)

    def _on_gripper(self, msg: JointState) -> None:
        value = gripper_openness(msg, self._gripper_width)
        if value is not None:
            self._gripper = value

    def _on_heartbeat(self, msg: CameraInfo) -> None:
        stamp_s = stamp_to_ns(msg.header.stamp) * 1e-9
        self.chunks.observe_frame(stamp_s)
        limit = self._now_s() + FUTURE_TOLERANCE_S
        if stamp_s > limit:  # a broken clock upstream must not set it
            return
        if self._frame_stamp_s is None or stamp_s > self._frame_stamp_s or self._frame_stamp_s > limit:
            self._frame_stamp_s = stamp_s  # (the last condition: the clock went back, e.g. a restarted cell)

    def _on_trajectory(self, msg: MultiDOFJointTrajectory) -> None:
        now_s = self._deferred if self._deferred is not None else self._now_s()
        stamp_s = stamp_to_ns(msg.header.stamp) * 1e-9
        rid = request_id_of(msg)
        if not msg.points:  # the policy could not serve a request (its reason is on action_images/prediction)
            if self.chunks.answers_request(rid):
                self.chunks.request_answered(stamp_s, rid)
                self._status("policy_refused", "the policy answered the chunk request without a trajectory", force=True)
            else:
                self._not_an_answer(f"empty trajectory stamped {stamp_s:.3f} s with request id {rid or 'none'!r}: "
                                    f"not an answer to the outstanding request {self.chunks.outstanding_id!r}", rid)
        else:
            try:
                chunk, _ = msg_to_chunk(msg, expected_frame=self._base_frame)
            except TrajectoryMessageError as exc:
                self._drop(f"trajectory stamped {stamp_s:.3f} s with request id {rid or 'none'!r}: {exc}")
                self.chunks.request_answered(stamp_s, rid)  # answered, if unusably (only the outstanding id)
                chunk = None
            if chunk is not None and not self.chunks.answers_request(rid):
                self._not_an_answer(f"chunk stamped {chunk.stamp_s:.3f} s with request id {rid or 'none'!r}: "
                                    + (f"the outstanding request is {self.chunks.outstanding_id!r}"
                                       if self.chunks.waiting else "no request is outstanding") + " (not an answer)",
                                    rid, count=True)
                chunk = None
            if not self._lockstep:
                self._take_pose()  # the newest measured pose, not the one of the last tick
            current = self.measured_pose()
            if chunk is not None and current is None:
                self._drop("no measured pose on current_pose yet")
                self.chunks.request_answered(chunk.stamp_s, rid)
            elif chunk is not None:
                result = self.chunks.add_chunk(chunk, now_s, current, request_id=rid)
                if result.accepted:
                    self._path_to_backend(now_s)
                else:
                    self._stop_stale_path()  # e.g. a chunk whose first step is refused drops the current one
                if not result.accepted and "not an answer" in result.reason:
                    self._not_an_answer(result.reason, rid)
                elif not result.accepted:
                    self._drop(result.reason)
        if self._deferred is not None and not self.chunks.waiting:
            tick, self._deferred = self._deferred, None
            self._execute(tick)
            self._run_newer()

    def _path_to_backend(self, now_s: float) -> None:
        """A backend that executes a chunk as one trajectory (MoveIt) gets the chunk just accepted: the pose
        commanded now, then each step still ahead, as the executor plans them (blend included), each passing
        the envelope's target checks against the one before (the first against the last command), up to the
        first step that would change the gripper (a gripper change goes through the per-tick envelope and its
        debounce; the path carries the gripper state in force, 0 or 1). While that path runs, ticks publish
        their commands on ``~/command`` but do not send them one by one; the ticks after its last pose do. A
        path no longer backed by the current chunk is stopped (:meth:`_stop_stale_path`)."""
        old, self._backend_path = self._backend_path, None
        chunk = self.chunks.current_chunk
        taken = 0
        if chunk is not None and getattr(self.backend, "runs_paths", False):
            times = np.concatenate([[now_s], chunk.times_s[chunk.times_s > now_s + 1e-9]])
            reference = self.chunks.last_command
            if reference is None:
                reference = self.chunks.trusted_pose
            threshold = self.envelope.config.gripper_threshold
            grip = None if reference is None else float(reference[7] > threshold)
            poses = []
            for t in times if len(times) >= 2 and reference is not None else ():
                allowed, pose, _ = self.envelope.check_target(self.chunks.planned_pose(t), reference)
                if not allowed or float(pose[7] > threshold) != grip:
                    break
                pose[7] = grip
                poses.append(pose)
                reference = pose
            if len(poses) >= 2:
                stamp = ns_to_stamp(int(round(now_s * 1e9)))
                taken = int(self.backend.send_chunk(np.stack(poses), times[:len(poses)], stamp))
            if taken >= 2:
                self._backend_path = (chunk, float(times[taken - 1]))
        if old is not None and self._backend_path is None:
            self.backend.hold(None)  # the running path is not what the executor plans any more: stop it

    def _stop_stale_path(self) -> None:
        """The path the backend runs belongs to a chunk that is no longer current (dropped, replaced by one sent
        tick by tick, or reset): stop it; the ticks from now on send their own commands."""
        if self._backend_path is not None and self._backend_path[0] is not self.chunks.current_chunk:
            self._backend_path = None
            self.backend.hold(None)

    def _backend_runs_path(self, now_s: float) -> bool:
        """The backend executes the current chunk as one trajectory up to its last pose at this tick."""
        path = self._backend_path
        return path is not None and path[0] is self.chunks.current_chunk and now_s <= path[1] + 1e-9

    def _not_an_answer(self, reason: str, rid: str, count: bool = False) -> None:
        """A trajectory that does not answer the outstanding request: refused, one log line a second per kind
        (``count``: not counted by the executor yet). The policy's late answer to an earlier request of this
        executor (routine after a reset) is a kind of its own, so it never hides a chunk nobody asked for."""
        if count:
            self.chunks.stats.not_answers += 1
            self.chunks.stats.chunks_dropped += 1
        if rid and rid in self._issued:
            self._warn("late_answer", f"trajectory refused: {reason} (it answers an earlier request of this "
                       "executor: late or replayed; nothing executed)")
        else:
            self._warn("not_an_answer", f"trajectory refused: {reason} (stale, replayed or forged; nothing executed)")
        self._status("dropped", reason, force=True)

    def _run_newer(self) -> None:
        """Lockstep: a tick that arrived while another was deferred (the sim stepped on after its timeout)."""
        newer, self._newer = self._newer, None
        if newer is not None:
            self._tick(newer)

    def _drop(self, reason: str) -> None:
        if self._throttle(re.sub(r"[-+\d.]+", "#", reason)):  # per kind of reason, not per call site
            self.get_logger().warning(f"chunk dropped: {reason}")
        self._status("dropped", reason, force=True)

    def _on_pause(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            self.envelope.pause("pause service")
            self._hold(self._now_s())
            self._status("paused", "pause service (e-stop)", force=True)
            response.message = "paused: every command is refused until resumed"
        else:
            self.envelope.resume()
            self._status("resumed", "pause service", force=True)
            response.message = "resumed"
            if self._lockstep and self._unacked is not None:  # the simulated world waited: run its tick now
                self._tick(self._unacked)
        response.success = True
        self.get_logger().warning(response.message)
        return response

    def _reset(self, start_s: float, why: str, report: bool = True) -> dict:
        stats = self.chunks.stats.as_dict()
        if report:
            self._status("episode_end", why, force=True)
        self._last_request = None
        self._last_tick_s = None
        self._throttle.reset()  # one line per kind and second within an episode; a new one logs afresh
        pending = [t for t in (self._deferred, self._newer, self._unacked) if t is not None]
        self._deferred = self._newer = self._unacked = None
        if self._pose_stamp_s is not None and self._pose_stamp_s < start_s:
            self._pose = None  # measured before the episode began (the arm may have been moved): never the first
            self._raw_pose = None  # pose the new episode trusts, nor where it holds
        self.chunks.reset(now_s=start_s)
        self._stop_stale_path()  # a path of the previous episode stops with it
        self.backend.reset()
        if self._frame_stamp_s is not None and self._frame_stamp_s > start_s + FUTURE_TOLERANCE_S:
            self._frame_stamp_s = None  # from before a clock that went back
        if self._frame_stamp_s is not None and self._frame_stamp_s >= start_s:
            self.chunks.observe_frame(self._frame_stamp_s)  # this episode's frames came before its announcement
        self._status("reset", f"{why}: " + (f"stopped at {start_s:.3f} s" if self._stopped
                                            else f"new episode from {start_s:.3f} s"), force=True)
        old = [t for t in pending if t < start_s]
        # a tick of the new episode can only be its first few (each waits for its acknowledgement); a pending
        # tick far later came from a simulator that was restarted (its clock began again): dropped
        new = [t for t in pending if start_s <= t <= start_s + FUTURE_TOLERANCE_S]
        if old and self._lockstep:  # never leave the simulated world waiting for a tick of the old episode
            self.backend.tick_done(ns_to_stamp(int(round(max(old) * 1e9))))
        if new:  # a tick of the new episode came first: run it afresh
            self._tick(max(new))
        return {"reset_s": start_s, "previous_stats": stats}

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        # A chunk predicted from the last tick before the reset is stamped exactly at that tick:
        # the reset time lies just after it, so that chunk is ignored.
        start_s = max(self._now_s(), self._pose_stamp_s or 0.0) + 1e-6
        response.success, response.message = True, json.dumps(self._reset(start_s, "reset service"))
        return response

    def _on_episode(self, msg: Header) -> None:
        mark = parse_episode(msg)
        was_stopped, self._stopped = self._stopped, not mark.running  # before the reset: it may run a new tick
        hold = None
        if self._stopped and not was_stopped:  # where the arm was commanded in the episode that stops
            current = self.measured_pose()
            hold = self.chunks.hold_pose(current)
        self._reset(stamp_to_ns(msg.stamp) * 1e-9, f"episode {msg.frame_id or '?'}", report=not was_stopped)
        if self._stopped:
            self._hold(stamp_to_ns(msg.stamp) * 1e-9, hold)
            self._status("stopped", f"episode {mark.episode} stopped: holding until the next starts", force=True)

    # ------------------------------------------------------------------ ticks
    def _on_timer(self) -> None:
        self._take_pose()
        self._tick(self._now_s())

    def _watchdog(self) -> None:
        if self.envelope.paused or self._stopped:
            return
        self._take_pose()
        if self.chunks.frames_stale(self._now_s()) and (self.chunks.current_chunk is not None
                                                          or self.chunks.last_command is not None):
            self._execute(self._now_s())  # the executor's tick drops the chunk and reports the hold

    def _tick(self, now_s: float) -> None:
        if self._lockstep and self._last_tick_s is not None and now_s <= self._last_tick_s \
                and self._deferred is None:  # offered again (e.g. re-offered to a restarted executor): re-ack
            self.backend.tick_done(ns_to_stamp(int(round(now_s * 1e9))))
            return
        if self._stopped:  # between episodes: nothing is predicted or commanded
            self.backend.tick_done(ns_to_stamp(int(round(now_s * 1e9))))
            return
        if self._deferred is not None:  # lockstep: still waiting for the chunk of an earlier tick
            self._newer = now_s if self._newer is None else max(self._newer, now_s)
            return
        if self._lockstep and self.envelope.paused:  # e-stop: the simulated world waits for the resume
            self._unacked = now_s
            self._status("paused", "e-stop: ticks are not acknowledged until resumed")
            return
        self._unacked = None
        if self.chunks.wants_chunk(now_s) and self._pose is not None and self._state_fresh(now_s):
            stamp_s = now_s if self._lockstep or self._frame_stamp_s is None else self._frame_stamp_s
            self._request(stamp_s, now_s)
            if self._lockstep:  # the simulator waits for the policy: finish the tick when it answers
                self._deferred = now_s
                self._deferred_since_ns = self._deferred_wall.now().nanoseconds
                return
        self._execute(now_s)

    def _request(self, stamp_s: float, now_s: float) -> None:
        state, rid = self.chunks.request_state(now_s, self.measured_pose()), new_request_id()
        self._last_request = (stamp_s, state, rid)
        self._issued.append(rid)
        self._publish_request()
        self.chunks.mark_requested(stamp_s, now_s, request_id=rid, state=state)

    def _publish_request(self) -> None:
        stamp_s, state, rid = self._last_request
        self._request_pub.publish(trajectory_to_msg(state[None], [1.0], [self.chunks.latency_s],
                                                    int(round(stamp_s * 1e9)), self._base_frame, self._tcp_link,
                                                    request_id=rid))

    def _answerers(self) -> str:
        """The nodes that read chunk_request (who an unanswered request waits for)."""
        try:
            names = sorted({i.node_name for i in self.get_subscriptions_info_by_topic(self._request_pub.topic_name)})
        except Exception:  # noqa: BLE001 - only for a log line
            names = []
        return ", ".join(names) if names else "no subscriber of chunk_request: is policy_node running?"

    def _retry_request(self) -> None:
        if self._deferred is None:
            return
        waited = (self._deferred_wall.now().nanoseconds - self._deferred_since_ns) * 1e-9
        if waited > self._retry_s and self._last_request is not None:
            self.get_logger().warning(f"lockstep: waiting {waited:.0f} s for an answer to chunk request "
                                      f"{self._last_request[2]!r} for tick {self._deferred:.3f} s from "
                                      f"[{self._answerers()}]; asking again")
            self._publish_request()  # the same request again
            self._deferred_since_ns = self._deferred_wall.now().nanoseconds

    def _hold(self, now_s: float, pose: np.ndarray | None = None) -> None:
        """Hold: stop the arm where it was last commanded (``ChunkExecutor.hold_pose``: checked against the last
        trusted pose), sent to the backend and published on ``~/command`` and ``~/hold``; with no pose known,
        the backend stops with no new target."""
        if pose is None:
            current = self.measured_pose()
            pose = self.chunks.hold_pose(None if current is None else current)
        self._backend_path = None
        self.backend.hold(pose)
        if pose is not None:
            msg = pose_to_stamped(pose, self._base_frame, ns_to_stamp(int(round(now_s * 1e9))))
            self._cmd_pub.publish(msg)
            self._hold_pub.publish(msg)

    def _execute(self, now_s: float) -> None:
        if self._lockstep and self.envelope.paused:  # paused while the chunk was awaited: the world waits
            self._unacked = now_s
            return
        current = self.measured_pose()
        stamp = ns_to_stamp(int(round(now_s * 1e9)))
        if self._lockstep:
            self._last_tick_s = now_s if self._last_tick_s is None else max(self._last_tick_s, now_s)
        if current is None or not self._state_fresh(now_s):
            age = "never received" if self._pose_time_s is None else \
                f"last one {self._now_s_ros() - self._pose_time_s:.2f} s ago"
            if self._pose_silent_since is None and self._pose_time_s is not None:
                self._pose_silent_since = time.monotonic()
            if self._pose_time_s is not None:  # a stream that went silent (not one that has not started yet)
                self._warn("pose_silent", f"no current_pose within max_state_age_s {self._max_state_age_s} s "
                           f"({age}): holding where commanded")
            self._hold(now_s)
            self._status("hold", f"no measured pose within max_state_age_s {self._max_state_age_s} s ({age})")
            self.backend.tick_done(stamp)
            return
        if self._pose_silent_since is not None:
            self.get_logger().info(f"current_pose back after {time.monotonic() - self._pose_silent_since:.2f} s")
            self._pose_silent_since = None
        cmd = self.chunks.tick(now_s, current, pose_stamp_s=self._pose_stamp_s)
        self._stop_stale_path()
        if cmd.pose is not None:  # a command, or a stall holding the last chunk's end
            if not self._backend_runs_path(now_s):
                self.backend.send(cmd.pose, stamp)
            self._cmd_pub.publish(pose_to_stamped(cmd.pose, self._base_frame, stamp))
            if cmd.event == "stall":
                self._status("stall", cmd.reason)
            else:
                self._last_event = "command"
        elif cmd.event in ("hold", "refused"):
            if cmd.hold_pose is not None:
                self._hold(now_s, cmd.hold_pose)
            else:  # a measured pose not trusted yet: stop with no new target (the last one stands)
                self._backend_path = None
                self.backend.hold(None)
            self._status(cmd.event, cmd.reason, force=cmd.event == "refused")
        else:  # idle / paused: the last command stands
            self._status(cmd.event, cmd.reason)
        backend_status = self.backend.status()
        if backend_status:
            self._status("backend", backend_status)
        self.backend.tick_done(stamp)

    def destroy_node(self) -> None:
        if getattr(self, "backend", None) is not None:  # None when __init__ failed before the backend
            self.backend.close()
        super().destroy_node()


def create_node(**node_kwargs) -> ExecutorNode:
    """An ``ExecutorNode`` (``context=``, ``cli_args=``, ``parameter_overrides=`` as for ``rclpy.node.Node``)."""
    return ExecutorNode(**node_kwargs)


def main(args=None) -> None:
    from ..spin import run_node

    run_node(create_node, args)  # one thread: the services never block, the executor is not thread-safe


if __name__ == "__main__":
    main()
