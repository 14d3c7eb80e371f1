"""sim_node: the simulated Franka cell on its own clock (``sim.cell.SimulatedCell``).

The node is the graph's clock source: every message it publishes is stamped with the cell's
simulated time (never with its own ROS clock: ``use_sim_time`` on this node changes nothing), and
it publishes that time on ``/clock`` first, every tick. One tick = one observation: all of a
tick's messages carry the same ``header.stamp``.

Modes (parameter ``lockstep``):
    lockstep (default): after publishing tick ``t`` the node waits until a ``sim/command`` stamped
        ``>= t`` has arrived (the controller saying "ready for the next tick"), then steps once.
        So simulated time advances only when the controller is ready, and a slow machine changes
        nothing but wall time. A tick not acknowledged is offered again (the whole tick, same stamp) as
        soon as the controller side of the graph changes (a ``current_pose`` reader or ``sim/command``
        writer appears or goes: a restarted executor never saw the tick it must acknowledge) and every
        ``lockstep_reoffer_s`` wall seconds; an executor that already ran that tick only acknowledges it
        again. While it waits longer than ``lockstep_reoffer_s`` it logs which nodes it is waiting for
        (the ``sim/command`` writers). No acknowledgement within ``lockstep_timeout_s`` wall seconds: a
        warning naming the tick, then it steps anyway. A reset or shutdown interrupts the wait.
        Before the very first tick it waits (at most ``lockstep_timeout_s``) for a controller (a
        ``sim/command`` publisher and a ``current_pose`` subscriber), so it does not miss tick 0.
    real time (``lockstep: false``): one step every ``control_dt / real_time_factor`` wall seconds
        with the latest command; a slower machine runs simulated time slower (no catching up).

Publishes (relative names except ``/clock``; ``graph.py`` remaps them):
    ``/clock`` (rosgraph_msgs/Clock), every tick before anything else of that tick
    ``<view>/image_raw`` (sensor_msgs/Image rgb8, frame ``<view>_optical_frame``), image QoS
    ``<view>/camera_info`` (sensor_msgs/CameraInfo), image QoS
    ``joint_states`` (sensor_msgs/JointState: ``fr3_joint1..7`` rad, ``fr3_finger_joint1/2`` m, 0..0.04 each)
    ``gripper_joint_states`` (sensor_msgs/JointState: the two finger joints only)
    ``sim/status`` (std_msgs/String JSON of ``SimulatedCell.status()``)
    ``current_pose`` (geometry_msgs/PoseStamped, TCP in ``base_frame``), the LAST state message of a
        tick (a lockstep controller ticks on it)
    ``instruction`` (std_msgs/String, transient local), whenever it changes
    ``episode`` (std_msgs/Header, transient local, ``ros/episode.py``): at start and on every
        start / reset, BEFORE the new episode's first tick (``stamp`` = that tick's time, ``frame_id``
        = "<episode> seed <seed>"; the executor resets there), and on a stop (``"<episode> stopped"``)
    ``/tf_static``: the rig's camera frames, only where tf2_ros is importable (a ROS install)
Subscribes:
    ``sim/command`` (trajectory_msgs/MultiDOFJointTrajectory, ``trajectory_conversion`` layout):
        point 0 = the new ``[x y z q gripper]`` target; no points = keep the held command. Its
        ``header.stamp`` acknowledges the tick (lockstep) even when the point is refused (a
        non-finite or malformed target is logged and ignored; the held command stays). A command
        stamped before the current episode's first tick is ignored (it was computed for the arm of
        the previous episode), and so is every command (also ``tcp_target`` / ``gripper_target``) while
        the episode is stopped. A command stamped more than 1 s after the current tick (a broken clock)
        is neither applied nor acknowledged.
    ``tcp_target`` (geometry_msgs/PoseStamped), ``gripper_target`` (std_msgs/Float32): commands from
        other sources (a teleop device); they never acknowledge a tick.
Services (own callback group):
    ``episode/start``, ``episode/reset``, ``episode/stop`` (std_srvs/Trigger, ``ros/episode.py``): the
        next episode (next seed), the current one again (same seed), or stop stepping (simulated time
        stands still until the next start / reset). The answer is JSON: ``{episode, seed, state, task,
        instruction, stamp_s}`` (``stamp_s`` = simulated time of the first tick) and ``outcome``, the
        final ``SimulatedCell.status()`` of the episode that ended (``success``, ``step``, ...).
    ``sim/task_status`` (std_srvs/Trigger): JSON of the latest tick's ``SimulatedCell.status()``.
Parameters: see ``config/sim.yaml``; only ``enabled`` and ``publish_pose`` can change at run time
(``enabled`` false stops images and camera_info, a deliberate camera dropout; ``publish_pose`` false
stops ``current_pose``, a silent state stream; the simulation, the clock and the rest go on).

Threading: a worker thread creates, owns and steps the cell (MuJoCo's OpenGL context belongs to
the thread that made it) and publishes; callbacks only store commands and set events.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float32, Header, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from ...cell_description import optical_frame_id

from ..camera_info import camera_to_info
from ...control.chunk_execution import FUTURE_TOLERANCE_S
from ...control.episode_lifecycle import EpisodeError, EpisodeLifecycle
from ..episode import EpisodeServices, episode_header
from ..image_conversions import image_to_msg
from ..node_support import publish_rig_tf, runtime_parameters
from ..pose_conversions import pose_to_stamped, stamped_to_pose
from ..qos import image_qos, latched_qos, service_qos, state_qos
from ..share import resolve_share_path
from ..stamps import ns_to_stamp, stamp_to_ns
from ..trajectory_conversion import msg_to_trajectory

__all__ = ["SimNode", "create_node", "main", "ARM_JOINTS", "FINGER_JOINTS"]

NODE_NAME = "sim_node"
ARM_JOINTS = tuple(f"fr3_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("fr3_finger_joint1", "fr3_finger_joint2")
FINGER_MAX_M = 0.04  # per finger; openness 1 = 0.08 m between the fingers
SERVICE_TIMEOUT_S = 20.0  # wall seconds a service waits for the worker


def clock_qos() -> QoSProfile:
    """``/clock``: reliable (matches rclpy's best-effort time source too), volatile, newest only."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


class SimNode(Node):
    """See the module docstring. ``node_kwargs`` as for ``rclpy.node.Node``."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # 1. parameters
        p = {k: self.declare_parameter(k, v).value for k, v in {
            "task": "reach_target",
            "rig": "config/cameras_sim.yaml",
            "base_frame": "base_link",
            "image_width": 128,
            "image_height": 128,
            "seed": 100000,
            "lockstep": True,
            "lockstep_timeout_s": 30.0,
            "lockstep_reoffer_s": 5.0,
            "publish_pose": True,
            "real_time_factor": 1.0,
            "clock_start_s": 1.0,
            "enabled": True,
            "publish_tf": True,
        }.items()}
        try:
            self._check_parameters(p)
        except ValueError:
            super().destroy_node()
            raise
        self._base_frame = p["base_frame"]
        self._enabled = bool(p["enabled"])
        self._lockstep = bool(p["lockstep"])
        self._timeout_s = float(p["lockstep_timeout_s"])
        self._reoffer_s = float(p["lockstep_reoffer_s"])
        self._publish_pose = bool(p["publish_pose"])
        self._rtf = float(p["real_time_factor"])
        if self.get_parameter("use_sim_time").value:
            self.get_logger().info("use_sim_time is set: ignored for stamping (this node is the clock source)")
        self.add_on_set_parameters_callback(runtime_parameters({"enabled": (bool, self._set_enabled),
                                                                "publish_pose": (bool, self._set_publish_pose)}))
        # 2. the cell, created, stepped and closed only by the worker thread
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._publishing = threading.Event()
        self._wake = threading.Condition()  # acks, reset requests and shutdown wake the worker
        self._acked_ns = -1  # newest sim/command stamp received
        self._lifecycle = EpisodeLifecycle(p["seed"])  # owned by the worker thread
        self._command_lock = threading.Lock()  # a command is checked against the episode and applied atomically
        self._episode_start_ns = 0  # first tick of the running episode; commands stamped before are ignored
        self._transition: tuple[int, str] | None = None  # (request id, name): from a service, applied by the worker
        self._transition_id = 0
        self._transition_done = threading.Condition()
        self._transition_replies: dict[int, tuple[bool, dict]] = {}
        self._status: dict = {}
        self._error: BaseException | None = None
        self.cell = None
        self._worker = threading.Thread(target=self._run, args=(p,), name="sim_node_cell", daemon=True)
        self._worker.start()
        self._ready.wait()
        if self._error is not None:
            super().destroy_node()
            raise self._error
        cams = self.cell.cameras
        # 3. publishers, subscriptions, services
        self._clock_pub = self.create_publisher(Clock, "/clock", clock_qos())
        self._image_pubs = [self.create_publisher(Image, f"{c.name}/image_raw", image_qos()) for c in cams]
        self._info_pubs = [self.create_publisher(CameraInfo, f"{c.name}/camera_info", image_qos()) for c in cams]
        self._joint_pub = self.create_publisher(JointState, "joint_states", state_qos())
        self._gripper_pub = self.create_publisher(JointState, "gripper_joint_states", state_qos())
        self._status_pub = self.create_publisher(String, "sim/status", state_qos())
        self._pose_pub = self.create_publisher(PoseStamped, "current_pose", state_qos())
        self._instruction_pub = self.create_publisher(String, "instruction", latched_qos())
        self._episode_pub = self.create_publisher(Header, "episode", latched_qos())
        self._instruction: str | None = None
        self._command_sub = self.create_subscription(MultiDOFJointTrajectory, "sim/command", self._on_command,
                                                     state_qos())
        self.create_subscription(PoseStamped, "tcp_target", self._on_tcp_target, state_qos())
        self.create_subscription(Float32, "gripper_target", self._on_gripper_target, state_qos())
        services = MutuallyExclusiveCallbackGroup()
        self.episode_services = EpisodeServices(
            self, {name: (lambda name=name: self._request_transition(name)) for name in ("start", "stop", "reset")},
            callback_group=services)
        self.create_service(Trigger, "sim/task_status", self._on_task_status, qos_profile=service_qos(),
                            callback_group=services)
        if p["publish_tf"]:
            self._tf = publish_rig_tf(self, cams, self._base_frame, ns_to_stamp(self.cell.time_ns))
        # 4. from here on the worker thread steps and publishes
        self.ticks_published = 0
        self._publishing.set()
        mode = ("lockstep" if self._lockstep else f"real time x{self._rtf:g}")
        self.get_logger().info(
            f"task {self.cell.task!r} seed {self.cell.seed}: {len(cams)} view(s) {self.cell.camera_names} "
            f"{cams[0].width}x{cams[0].height}, control_dt {self.cell.control_dt} s, {mode}")

    # ------------------------------------------------------------------ set-up helpers
    @staticmethod
    def _check_parameters(p: dict) -> None:
        from ...sim.tasks import TASK_NAMES

        if p["task"] not in TASK_NAMES:
            raise ValueError(f"unknown task {p['task']!r}; valid tasks: {', '.join(TASK_NAMES)}")
        if not p["lockstep_timeout_s"] > 0:
            raise ValueError(f"lockstep_timeout_s must be > 0 (wall seconds), got {p['lockstep_timeout_s']}")
        if not p["lockstep_reoffer_s"] > 0:
            raise ValueError(f"lockstep_reoffer_s must be > 0 (wall seconds), got {p['lockstep_reoffer_s']}")
        if not p["real_time_factor"] > 0:
            raise ValueError(f"real_time_factor must be > 0, got {p['real_time_factor']}")
        if not p["clock_start_s"] > 0:
            raise ValueError(f"clock_start_s must be > 0 (a zero ROS stamp means 'unset'), got {p['clock_start_s']}")
        if p["seed"] < 0:
            raise ValueError(f"seed must be >= 0, got {p['seed']}")

    # ------------------------------------------------------------------ callbacks (tiny)
    def _set_enabled(self, value: bool) -> None:
        self._enabled = value
        self.get_logger().warning(f"images {'enabled' if value else 'disabled (camera dropout)'}")

    def _set_publish_pose(self, value: bool) -> None:
        self._publish_pose = value
        self.get_logger().warning(f"current_pose {'published' if value else 'silent (a silent state stream)'}")

    def _on_command(self, msg: MultiDOFJointTrajectory) -> None:
        stamp_ns = stamp_to_ns(msg.header.stamp)
        try:
            if msg.header.frame_id and msg.header.frame_id != self._base_frame:
                raise ValueError(f"frame {msg.header.frame_id!r}, expected {self._base_frame!r}")
            traj = msg_to_trajectory(msg)
            if stamp_ns > self.cell.time_ns + FUTURE_TOLERANCE_S * 1e9:  # would end lockstep for good
                self.get_logger().error(f"sim/command stamped {(stamp_ns - self.cell.time_ns) * 1e-9:.3f} s after the "
                                        "current tick ignored (neither applied nor acknowledged)",
                                        throttle_duration_sec=2.0)
                return
            with self._command_lock:
                if len(traj) and stamp_ns < self._episode_start_ns:
                    self.get_logger().warning(
                        f"sim/command stamped {stamp_ns * 1e-9:.3f} s, before this episode's first tick "
                        f"({self._episode_start_ns * 1e-9:.3f} s): computed for the previous episode's arm; ignored",
                        throttle_duration_sec=2.0)
                elif len(traj) and not self._lifecycle.running:
                    self.get_logger().warning("sim/command ignored: the episode is stopped", throttle_duration_sec=2.0)
                elif len(traj):
                    self.cell.command_pose(traj.poses[0])
        except ValueError as exc:  # TrajectoryMessageError is a ValueError
            self.get_logger().error(f"sim/command ignored (the held command stays): {exc}",
                                    throttle_duration_sec=2.0)
        with self._wake:  # the stamp acknowledges the tick whatever the point held
            if stamp_ns > self._acked_ns:
                self._acked_ns = stamp_ns
                self._wake.notify_all()

    def _on_tcp_target(self, msg: PoseStamped) -> None:
        try:
            if msg.header.frame_id and msg.header.frame_id != self._base_frame:
                raise ValueError(f"frame {msg.header.frame_id!r}, expected {self._base_frame!r}")
            with self._command_lock:
                if not self._lifecycle.running:
                    raise ValueError("the episode is stopped")
                self.cell.command_pose(stamped_to_pose(msg)[0])
        except ValueError as exc:
            self.get_logger().error(f"tcp_target ignored: {exc}", throttle_duration_sec=2.0)

    def _on_gripper_target(self, msg: Float32) -> None:
        try:
            with self._command_lock:
                if not self._lifecycle.running:
                    raise ValueError("the episode is stopped")
                self.cell.command_gripper(msg.data)
        except ValueError as exc:
            self.get_logger().error(f"gripper_target ignored: {exc}", throttle_duration_sec=2.0)

    def _request_transition(self, name: str):
        """An ``episode/<name>`` call: the worker (which owns the simulation) applies it between ticks."""
        if not self._worker.is_alive():
            raise RuntimeError("the simulation has stopped (see the log); restart sim_node")
        with self._wake:
            self._transition_id += 1
            rid = self._transition_id
            self._transition = (rid, name)  # one at a time: the services share a mutually exclusive group
            self._wake.notify_all()
        deadline = time.monotonic() + SERVICE_TIMEOUT_S
        with self._transition_done:
            while rid not in self._transition_replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"the simulation did not {name} the episode within {SERVICE_TIMEOUT_S:g} s")
                self._transition_done.wait(min(remaining, 0.5))
            ok, reply = self._transition_replies.pop(rid)
        if not ok:
            raise EpisodeError(reply["reason"])
        return self._lifecycle.state, reply

    def _on_task_status(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success = bool(self._status)
        response.message = json.dumps(self._status)
        return response

    # ------------------------------------------------------------------ worker
    def _run(self, p: dict) -> None:
        from ...sim.cell import SimulatedCell  # mujoco: only in this thread

        try:
            self.cell = SimulatedCell(p["task"], image_size=(p["image_height"], p["image_width"]), seed=p["seed"],
                                      rig_path=resolve_share_path(p["rig"]), clock_start_s=p["clock_start_s"])
        except BaseException as exc:  # handed to __init__, which raises it
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._publishing.wait()  # until __init__ has made the publishers
        try:
            self._loop()
        except Exception as exc:  # rclpy errors once the context is shut down (SIGINT)
            if self.context.ok():
                self.get_logger().error(f"simulation stopped: {exc!r}")
        finally:
            self.cell.close()

    def _loop(self) -> None:
        if self._lockstep:
            self._wait_for_controller()
        period_s = self.cell.control_dt / self._rtf
        next_t = time.monotonic()
        self._lifecycle.start(self.cell.seed)
        self._episode_start_ns = self.cell.time_ns
        self._publish_episode()
        self._publish_tick()
        while not self._stop.is_set():
            if not self._lifecycle.running:
                self._wait_until(None)  # stopped: until a transition or shutdown
            elif self._lockstep:
                self._wait_for_ack(self.cell.time_ns)
            else:
                next_t += period_s
                self._wait_until(next_t)
                if time.monotonic() > next_t + period_s:
                    next_t = time.monotonic()  # running late: do not try to catch up
            if self._stop.is_set():
                return
            transition = self._take_transition()
            if transition is not None:
                self._apply_transition(transition)
                next_t = time.monotonic()
                continue
            if self._lifecycle.running:
                self.cell.step()
                self._publish_tick()

    def _take_transition(self) -> tuple[int, str] | None:
        with self._wake:
            transition, self._transition = self._transition, None
        return transition

    def _apply_transition(self, transition: tuple[int, str]) -> None:
        """``start`` / ``reset``: a new episode from the next tick; ``stop``: no more ticks until then."""
        rid, name = transition
        outcome = dict(self._status)
        result: tuple[bool, dict] = (False, {"reason": f"{name} failed in the simulation (see sim_node's log)"})
        try:
            if name == "stop":
                with self._command_lock:
                    self._lifecycle.stop()
                self._episode_pub.publish(episode_header(self.cell.time_ns, self._lifecycle.state.episode, 0,
                                                         running=False))
                reply = {"stamp_s": self.cell.time_s}
            else:
                with self._command_lock:  # no command of the old episode lands after the new one began
                    state = self._lifecycle.start() if name == "start" else self._lifecycle.reset()
                    self.cell.reset(seed=state.seed)
                    self._episode_start_ns = self.cell.time_ns
                self._publish_episode()
                self._publish_tick()
                reply = {"task": self.cell.task, "instruction": self.cell.instruction, "stamp_s": self.cell.time_s}
            result = (True, {**reply, "outcome": outcome})
        except EpisodeError as exc:
            result = (False, {"reason": str(exc)})
        finally:  # answered whatever happened (a failure in MuJoCo then stops the worker, and the log says why)
            with self._transition_done:
                self._transition_replies[rid] = result
                self._transition_done.notify_all()

    def _wait_for_controller(self) -> None:
        """Lockstep: before tick 0 wait (at most the lockstep timeout) for a controller: a ``sim/command``
        publisher and a ``current_pose`` subscriber."""
        deadline = time.monotonic() + self._timeout_s
        while (self._command_sub.get_publisher_count() == 0 or self._pose_pub.get_subscription_count() == 0
               or self._episode_pub.get_subscription_count() == 0):
            if self._stop.is_set() or self._transition is not None:
                return
            if time.monotonic() > deadline:
                self.get_logger().warning(f"lockstep: no sim/command publisher within {self._timeout_s:g} s; "
                                          "publishing the first tick anyway")
                return
            self._stop.wait(0.05)
        self._stop.wait(0.3)  # discovery is asymmetric: let the controller match this side too

    def _controller_side(self) -> frozenset:
        """The endpoints that read ``current_pose`` and write ``sim/command`` (changes when an executor comes or
        goes, also when one goes and another comes between two looks, which a count would miss)."""
        try:
            infos = (self.get_subscriptions_info_by_topic(self._pose_pub.topic_name)
                     + self.get_publishers_info_by_topic(self._command_sub.topic_name))
            return frozenset(bytes(i.endpoint_gid) for i in infos)
        except Exception:  # noqa: BLE001 - fall back to counting
            return frozenset({("counts", self._pose_pub.get_subscription_count(),
                               self._command_sub.get_publisher_count())})

    def _waited_for(self) -> str:
        """The nodes a lockstep tick waits for: the writers of ``sim/command``."""
        try:
            names = sorted({f"{i.node_namespace.rstrip('/')}/{i.node_name}"
                            for i in self.get_publishers_info_by_topic(self._command_sub.topic_name)})
        except Exception:  # noqa: BLE001 - only for a log line
            names = []
        return ", ".join(names) if names else "nobody writes sim/command: is executor_node running?"

    def _wait_for_ack(self, tick_ns: int) -> None:
        """Lockstep: until a sim/command stamped >= ``tick_ns``, a reset request, shutdown or the timeout; the
        tick is offered again when the controller side changes and every ``lockstep_reoffer_s``."""
        t0 = time.monotonic()
        deadline, reoffer_at, next_log = t0 + self._timeout_s, t0 + self._reoffer_s, t0 + self._reoffer_s
        side, changed_at = self._controller_side(), None
        while True:
            with self._wake:
                if self._acked_ns >= tick_ns or self._transition is not None or self._stop.is_set():
                    return
                self._wake.wait(0.1)
                if self._acked_ns >= tick_ns or self._transition is not None or self._stop.is_set():
                    return
            now = time.monotonic()
            if now >= deadline:
                self.get_logger().warning(
                    f"lockstep: no sim/command acknowledging tick {self.cell.step_count} of episode "
                    f"{self.cell.episode} (t = {tick_ns * 1e-9:.3f} s) within {self._timeout_s:g} s from "
                    f"[{self._waited_for()}]; stepping without it")
                return
            current = self._controller_side()
            if current != side:  # an executor came or went: offer the tick (once more a second later, in case
                side, changed_at = current, now  # its reader had not matched this writer yet)
            if (changed_at is not None and now - changed_at >= 0.1) or now >= reoffer_at:
                why = "the controller side changed" if changed_at is not None else f"{now - t0:.1f} s without it"
                self.get_logger().info(f"lockstep: offering tick {self.cell.step_count} (t = {tick_ns * 1e-9:.3f} s) "
                                       f"again ({why})")
                self._publish_tick(again=True)
                reoffer_at = now + (1.0 if changed_at is not None else self._reoffer_s)
                changed_at = None
            if now >= next_log:
                self.get_logger().warning(
                    f"lockstep: tick {self.cell.step_count} of episode {self.cell.episode} (t = "
                    f"{tick_ns * 1e-9:.3f} s) not acknowledged for {now - t0:.1f} s; waiting for sim/command from "
                    f"[{self._waited_for()}]")
                next_log = now + 5.0

    def _wait_until(self, t: float | None) -> None:
        """Sleep until monotonic time ``t`` (None: for ever) unless a transition or shutdown comes first."""
        with self._wake:
            while self._transition is None and not self._stop.is_set():
                remaining = 0.5 if t is None else t - time.monotonic()
                if remaining <= 0:
                    return
                self._wake.wait(remaining)

    def _publish_episode(self) -> None:
        """``episode`` (latched): the new episode starts at the stamp of its first tick, published before it;
        the executor resets there (nothing predicted in the previous episode may act in this one)."""
        self._episode_pub.publish(episode_header(self.cell.time_ns, self.cell.episode, self.cell.seed))

    def _publish_tick(self, again: bool = False) -> None:
        """Everything of the current observation, one stamp; /clock first, current_pose last (``again``: the
        same tick offered once more, not counted in ``ticks_published``)."""
        cell = self.cell
        obs = cell.observe()
        stamp = ns_to_stamp(cell.time_ns)
        self._clock_pub.publish(Clock(clock=stamp))
        if self._enabled:
            for cam, img, img_pub, info_pub in zip(cell.cameras, obs.images, self._image_pubs, self._info_pubs):
                img_pub.publish(image_to_msg(img, "rgb8", frame_id=optical_frame_id(cam.name), stamp=stamp))
                info_pub.publish(camera_to_info(cam, stamp=stamp))
        fingers = [FINGER_MAX_M * float(np.clip(obs.ee_pose[7], 0.0, 1.0))] * 2
        js = JointState(name=list(ARM_JOINTS + FINGER_JOINTS),
                        position=[float(q) for q in obs.joint_positions] + fingers)
        js.header.stamp = stamp
        self._joint_pub.publish(js)
        gs = JointState(name=list(FINGER_JOINTS), position=fingers)
        gs.header.stamp = stamp
        self._gripper_pub.publish(gs)
        self._status = cell.status()
        self._status_pub.publish(String(data=json.dumps(self._status)))
        if cell.instruction and cell.instruction != self._instruction:
            self._instruction = cell.instruction
            self._instruction_pub.publish(String(data=cell.instruction))
        if self._publish_pose:
            self._pose_pub.publish(pose_to_stamped(obs.ee_pose, self._base_frame, stamp))
        if not again:
            self.ticks_published += 1

    def destroy_node(self) -> None:
        self._stop.set()
        self._publishing.set()
        with self._wake:
            self._wake.notify_all()
        if self._worker.is_alive():
            self._worker.join(timeout=30.0)  # a render or step in progress (native code) must end first
        super().destroy_node()


def create_node(**kwargs) -> SimNode:
    """A ``SimNode`` (``context=``, ``cli_args=``, ``parameter_overrides=``)."""
    return SimNode(**kwargs)


def main(args=None) -> None:
    from ..spin import run_node

    run_node(create_node, args, num_threads=2)


if __name__ == "__main__":
    main()
