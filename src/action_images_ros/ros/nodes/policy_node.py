"""policy_node: synchronised views -> the Action Images policy -> one timed trajectory (+ what RViz shows).

Subscribes (relative names, remapped by ``graph.py``):
    ``<view>/image_raw`` (sensor_msgs/Image rgb8 or bgr8) and ``<view>/camera_info`` for every view
        in ``views``, synchronised by ``ros/sync.py`` (approximate time, ``slop_s``, ``queue_size``).
    ``current_pose`` (geometry_msgs/PoseStamped, TCP in the base frame; best effort, so franka_ros2's
        best-effort 1 kHz stream and sim_node's reliable one are both received, decimated to
        ``pose_rate_hz``; in ``base_frame`` or one of ``base_frame_aliases``, as the executor checks it) and
        ``gripper_joint_states`` (sensor_msgs/JointState finger joints -> openness; 1.0 = open when none arrive).
    ``instruction`` (std_msgs/String, transient local): what to do, e.g. "reach the red target", for
        models that follow an instruction; the simulated cell publishes its task's, on the real cell
        publish it yourself or set the ``instruction`` parameter (the newest of the two is used).
    ``chunk_request`` (trajectory_msgs/MultiDOFJointTrajectory, transient local): the executor asks
        for the next chunk predicted from frames stamped at least ``header.stamp`` and from the state
        in point 0 (with a late policy, where the arm will be when the answer comes; no point: the
        measured pose) (``closed_loop`` mode). Its request id (``request/<id>``) is echoed in the answer.
        A request for a stamp already answered from the same state gets the same answer again (under its
        own id); an older one is ignored.
    ``episode`` (std_msgs/Header, transient local, ``ros/episode.py``): a new episode; predictions
        are numbered per episode, so the sampler seeds are those of ``action-images eval``.
Publishes, per prediction, all stamped with the camera frames' capture stamp:
    ``trajectory`` (trajectory_msgs/MultiDOFJointTrajectory, ``trajectory_conversion``): the decoded
        chunk — point 0 the state it was predicted from, then every keyframe with its
        ``time_from_start``, gripper openness and decoder confidence, and the request id it answers.
        Decoded once, here. An answer to a request that could not be served is the same message with
        no points (and the id).
    ``markers`` (visualization_msgs/MarkerArray): gripper axes, path, gripper state (RViz).
    ``<view>/action_video`` (Image 32FC3, the F predicted action images stacked vertically,
        ``(F*S) x S``; decoder_node's input for re-decoding or labelling) and
        ``<view>/action_camera_info`` (CameraInfo of one ``S x S`` frame).
    ``<view>/action_image`` (rgb8, the F action images in one), ``<view>/overlay`` (rgb8, drawn
        over the camera frame at camera resolution) and ``<view>/future_video`` (rgb8, the predicted
        RGB frames stacked like the action video): for RViz and recordings.
    ``prediction`` (std_msgs/String): the JSON summary (``action_video.prediction_summary``), or
        ``{"ok": false, "reason": ...}`` when a request was refused.
Services:
    ``predict`` (std_srvs/Trigger): one prediction on the latest synchronised set now (published
        like any other); the answer's message is the JSON summary (``success`` false with the reason).
Modes (``mode``): ``closed_loop`` answers the executor's ``chunk_request`` (and the service);
``on_demand`` answers only the service.

The model folder holds the settings the model was trained with (``config.PolicyConfig``:
keyframe period, default sampling steps); a parameter that contradicts it is an error at start-up.
A draw the executor would cut on confidence (the model's execution settings, the cell's ``min_confidence``
from ``safety_config``: the graph gives both nodes the same file) is drawn again up to ``redraws`` times
(-1 = the model's ``policy_config.redraws``; ``PolicyRunner``), as in ``action-images eval``. The network
runs where ``runtime`` says ('' = the model's ``policy_config.runtime``, the one it was evaluated with;
``model.runtimes``). The executor's
``execution_overrides`` are not seen here: with one that changes ``execute_fraction``, draws are judged on
the model's.
``injected_delay_s`` holds each answer back until ROS time ``stamp + delay`` (latency tests on
the real-time simulated cell). Bad input (wrong encoding, image/info size mismatch, a missing
view, stale or future-stamped frames, no pose, a missing or unreadable model) is logged with the
reason, answered as a refusal and the node keeps running. The model is loaded and run in a
worker thread; callbacks only store the latest messages.

"In the future" is judged against this node's clock extrapolated by the wall time since it last
advanced (and the newest stamps seen): after a pause of this process (a long GIL hold, a stopped
process) its ``/clock`` lags the messages queued meanwhile, which are not from the future.
"""

from __future__ import annotations

import json
import queue
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory
from visualization_msgs.msg import MarkerArray

from ...cell_description import optical_frame_id
from ...config import DEFAULT_MODEL, check_redraws, execution_config_for
from ...control.chunk_execution import FUTURE_TOLERANCE_S
from ...control.safety import load_safety_config
from ...policy import prediction_seed
from ..action_video import combined_action_image, overlay_on_frame, prediction_summary, stack_frames
from ..camera_info import CameraInfoError, camera_to_info, info_to_camera
from ..episode import parse_episode
from ..frame_checks import frame_problem
from ..image_conversions import ImageConversionError, image_to_msg, msg_to_image
from ..markers import trajectory_markers
from ..node_support import KeyedThrottle, runtime_parameters
from ..pose_conversions import gripper_openness, stamped_to_pose
from ..qos import image_qos, latched_qos, pose_qos, service_qos, state_qos
from ..share import load_rig_views, resolve_share_path
from ..stamps import ns_to_stamp, stamp_to_ns
from ..sync import MultiViewSubscriber
from ..trajectory_conversion import (REQUEST_JOINT_PREFIX, TrajectoryMessageError, chunk_to_msg, msg_to_trajectory,
                                     trajectory_to_msg)

__all__ = ["PolicyNode", "create_node", "main", "MODES"]

NODE_NAME = "policy_node"
MODES = ("closed_loop", "on_demand")


class _Request:
    """One prediction asked of the worker (an executor's chunk request or a service call)."""

    def __init__(self, from_service: bool, stamp_ns: int | None = None, state: np.ndarray | None = None,
                 request_id: str = "") -> None:
        self.from_service = from_service
        self.request_id = request_id  # echoed in the answer
        self.stamp_ns = stamp_ns  # frames at least this new (None: the latest set)
        self.state = state  # (8,) the state to predict from (None: the measured pose)
        self.done = threading.Event()
        self.ok = False
        self.message = ""


class PolicyNode(Node):
    """See the module docstring. ``node_kwargs`` as for ``rclpy.node.Node``."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # 1. parameters
        p = {k: self.declare_parameter(k, v).value for k, v in {
            "model": DEFAULT_MODEL,
            "device": "cpu",
            "num_inference_steps": 0,
            "redraws": -1,
            "safety_config": "config/safety.yaml",
            "mode": "closed_loop",
            "views": [""],
            "rig": "config/cameras_sim.yaml",
            "base_frame": "base_link",
            "base_frame_aliases": ["fr3_link0", "base"],
            "pose_rate_hz": 50.0,
            "tcp_link": "fr3_hand_tcp",
            "slop_s": 0.01,
            "queue_size": 5,
            "max_frame_age_s": 0.5,
            "max_state_age_s": 0.5,
            "request_wait_s": 2.0,
            "injected_delay_s": 0.0,
            "seed": 0,
            "torch_threads": 1,
            "runtime": "",
            "service_timeout_s": 30.0,
            "instruction": "",
            "marker_axis_length": 0.05,
        }.items()}
        if p["mode"] not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {p['mode']!r}")
        if not 0 <= p["num_inference_steps"] <= 100:
            raise ValueError(f"num_inference_steps must be in [1, 100] (0 = the model's default), "
                             f"got {p['num_inference_steps']}")
        if p["redraws"] != -1:
            check_redraws(p["redraws"], "redraws (-1 = the model's)")
        for name in ("max_frame_age_s", "max_state_age_s", "service_timeout_s", "request_wait_s", "pose_rate_hz"):
            if not p[name] > 0:
                raise ValueError(f"{name} must be > 0, got {p[name]}")
        if not 0.0 <= p["injected_delay_s"] <= 10.0:
            raise ValueError(f"injected_delay_s must be in [0, 10] s, got {p['injected_delay_s']}")
        from ...config import RUNTIMES

        if p["runtime"] and p["runtime"] not in RUNTIMES:
            raise ValueError(f"runtime must be one of {list(RUNTIMES)} or '' (the model's), got {p['runtime']!r}")
        if p["torch_threads"] < 0:
            raise ValueError(f"torch_threads must be >= 0 (0 = torch's default), got {p['torch_threads']}")
        self._p = p
        self._pose_frames = {p["base_frame"], *(f for f in p["base_frame_aliases"] if f)}
        self._clock_mark: tuple[int, float] | None = None  # (ROS ns, monotonic s) when the clock last advanced
        self._clock_lock = threading.Lock()
        self._throttle = KeyedThrottle(2.0)
        self._extrinsics, self.views = load_rig_views(p["rig"], p["views"], "the policy needs")
        self._check_model_settings(resolve_share_path(p["model"]))
        # The cell's min_confidence (the graph gives both nodes the same safety file): with the model's execution
        # settings, the executor's cut rule; a draw the executor would cut on confidence is drawn again.
        self._min_confidence = load_safety_config(resolve_share_path(p["safety_config"])).min_confidence
        self._execution = None  # set when the model is loaded
        # 2. state (written by callbacks, read by the worker under the condition's lock)
        self._cv = threading.Condition()
        self._latest: tuple[int, tuple] | None = None  # (stamp_ns, (image msgs..., info msgs...))
        self._pose: np.ndarray | None = None
        self._pose_stamp_ns: int | None = None
        self._pose_time_s: float | None = None
        self._gripper: float | None = None
        self._instruction: str = p["instruction"]
        self._runner = None
        self._runner_key = None
        self._pipeline = None
        self._model_error: str | None = "the model is still loading"
        self.predictions = 0
        self.refusals = 0
        self._episode_seed = 0  # reset seed of the current episode (the ``episode`` topic), 0 without one
        self._episode_predictions = 0
        self._last_answer: tuple[int, str, np.ndarray | None, object] | None = None  # (stamp, id, state, msg)
        # 3. publishers
        qos = image_qos()
        self._pubs = {
            kind: [self.create_publisher(msg_type, f"{v}/{kind}", qos) for v in self.views]
            for kind, msg_type in (("action_video", Image), ("action_camera_info", CameraInfo),
                                   ("action_image", Image), ("overlay", Image), ("future_video", Image))
        }
        self._summary_pub = self.create_publisher(String, "prediction", state_qos())
        self._traj_pub = self.create_publisher(MultiDOFJointTrajectory, "trajectory", state_qos())
        self._marker_pub = self.create_publisher(MarkerArray, "markers", state_qos())
        # 4. subscriptions: synchronised views, arm state, instruction, chunk requests
        topics = [(f"{v}/image_raw", Image) for v in self.views] + [(f"{v}/camera_info", CameraInfo)
                                                                   for v in self.views]
        self.sync = MultiViewSubscriber(self, topics, self._on_set, image_qos(), queue_size=p["queue_size"],
                                        slop_s=p["slop_s"],
                                        now_ns=self._clock_now_ns,
                                        future_tolerance_s=FUTURE_TOLERANCE_S, validate=frame_problem)
        self.create_subscription(PoseStamped, "current_pose", self._on_pose, pose_qos())
        self.create_subscription(JointState, "gripper_joint_states", self._on_joints, state_qos())
        self.create_subscription(String, "instruction", self._on_instruction, latched_qos())
        self.create_subscription(Header, "episode", self._on_episode, latched_qos())
        if p["mode"] == "closed_loop":
            self.create_subscription(MultiDOFJointTrajectory, "chunk_request", self._on_request, latched_qos(10))
        self.add_on_set_parameters_callback(runtime_parameters({"instruction": (str, self._set_instruction)}))
        # 5. service (own reentrant group: one call waits for the worker while the others are answered "busy"
        #    at once and the subscriptions go on)
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._service_busy = threading.Lock()
        self.create_service(Trigger, "predict", self._on_predict, qos_profile=service_qos(),
                            callback_group=ReentrantCallbackGroup())
        # 6. worker: loads the model, then serves requests
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="policy_node_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"views {self.views}, mode {p['mode']}, model {p['model']}"
                               + (f", injected delay {p['injected_delay_s']:g} s" if p["injected_delay_s"] else ""))

    def _check_model_settings(self, path) -> None:
        """Parameters that contradict the model folder are an error now, not a surprise later."""
        from ...config import load_policy_config

        try:
            policy_cfg, _ = load_policy_config(path)
        except (FileNotFoundError, ValueError):
            return  # reported by the worker when it loads the model (the node keeps running)
        trained = policy_cfg.views
        if trained and list(trained) != self.views:
            raise ValueError(f"the model in {path} was trained on views {trained} (in that order); the node is "
                             f"configured for {self.views}: set 'views' (and the rig) to match the model")

    # ------------------------------------------------------------------ callbacks (tiny)
    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _clock_now_ns(self) -> int:
        """This node's ROS time, extrapolated by the wall time since it last advanced (0 while unset): after a
        pause of this process the ``/clock`` messages queued meanwhile have not been read yet, but the
        frames and requests read first are not from the future."""
        ros_ns, wall = self.get_clock().now().nanoseconds, time.monotonic()
        with self._clock_lock:
            if ros_ns <= 0:
                return 0
            if self._clock_mark is None or ros_ns != self._clock_mark[0]:
                self._clock_mark = (ros_ns, wall)
                return ros_ns
            return ros_ns + int((wall - self._clock_mark[1]) * 1e9)

    def _on_set(self, msgs: tuple) -> None:
        stamp = max(stamp_to_ns(m.header.stamp) for m in msgs)
        with self._cv:
            self._latest = (stamp, msgs)
            self._cv.notify_all()

    def _future(self, stamp_ns: int, what: str) -> bool:
        """Whether ``stamp_ns`` is beyond "now" + FUTURE_TOLERANCE_S (logged: a clock upstream is wrong).

        "Now" is this node's clock, or the newest frame set or pose it accepted if later: one bogus
        ``/clock`` going back must not make the executor's next request look like the future (in
        lockstep nothing would answer it, and the simulated world would wait)."""
        with self._cv:
            seen = max(self._latest[0] if self._latest is not None else 0, self._pose_stamp_ns or 0)
        now = max(self._clock_now_ns(), seen)
        if now <= 0 or stamp_ns <= now + FUTURE_TOLERANCE_S * 1e9:
            return False
        if self._throttle(what):
            self.get_logger().warning(f"{what} stamped {(stamp_ns - now) * 1e-9:.3f} s in the future of this node's "
                                      "clock ignored (a clock upstream is wrong)")
        return True

    def _on_pose(self, msg: PoseStamped) -> None:
        stamp_ns = stamp_to_ns(msg.header.stamp)
        last = self._pose_stamp_ns
        if last is not None and last <= stamp_ns < last + 1e9 / self._p["pose_rate_hz"]:
            return  # decimated (a 1 kHz stream): the newest state every 1 / pose_rate_hz is all a prediction needs
        if msg.header.frame_id and msg.header.frame_id not in self._pose_frames:
            if self._throttle("pose_frame"):
                self.get_logger().error(f"current_pose in frame {msg.header.frame_id!r}, expected "
                                        f"{self._p['base_frame']!r} or an alias of it "
                                        f"{sorted(self._pose_frames - {self._p['base_frame']})}; ignored")
            return
        pose, stamp_ns = stamped_to_pose(msg)
        if not np.all(np.isfinite(pose)) or np.linalg.norm(pose[3:7]) < 1e-6:
            self.get_logger().error("current_pose is not finite or has a zero quaternion; ignored",
                                    throttle_duration_sec=5.0)
            return
        if self._future(stamp_ns, "current_pose"):
            return
        with self._cv:
            self._pose, self._pose_stamp_ns, self._pose_time_s = pose, stamp_ns, self._now_s()
            self._cv.notify_all()

    def _on_joints(self, msg: JointState) -> None:
        value = gripper_openness(msg)
        if value is not None:
            self._gripper = value

    def _on_instruction(self, msg: String) -> None:
        with self._cv:
            self._instruction = msg.data
        self.get_logger().info(f"instruction: {msg.data!r}")

    def _set_instruction(self, text: str) -> None:
        with self._cv:
            self._instruction = text
        self.get_logger().info(f"instruction: {text!r}")

    def _on_request(self, msg: MultiDOFJointTrajectory) -> None:
        try:
            request = msg_to_trajectory(msg, expected_frame=self._p["base_frame"])
        except TrajectoryMessageError as exc:
            self.get_logger().error(f"chunk request ignored: {exc}", throttle_duration_sec=2.0)
            return
        if self._future(request.stamp_ns, "chunk request"):
            return
        state = request.poses[0] if len(request) else None
        if state is not None and (not np.all(np.isfinite(state)) or np.linalg.norm(state[3:7]) < 1e-6):
            self.get_logger().error("chunk request ignored: its state is not finite or has a zero quaternion",
                                    throttle_duration_sec=2.0)
            return
        self._requests.put(_Request(from_service=False, stamp_ns=request.stamp_ns, state=state,
                                    request_id=request.request_id))

    def _on_episode(self, msg: Header) -> None:
        mark = parse_episode(msg)
        if not mark.running:
            return
        with self._cv:
            self._episode_seed, self._episode_predictions = (mark.seed or 0), 0

    def _on_predict(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self._service_busy.acquire(blocking=False):  # every caller gets an answer, at once if busy
            response.success = False
            response.message = json.dumps({"ok": False, "reason": "busy: a prediction for an earlier predict call "
                                           "is in progress; call again when it is answered"})
            return response
        try:
            req = _Request(from_service=True)
            self._requests.put(req)
            if not req.done.wait(self._p["service_timeout_s"]):
                response.success, response.message = False, f"no prediction within {self._p['service_timeout_s']} s"
            else:
                response.success, response.message = req.ok, req.message
        finally:
            self._service_busy.release()
        return response

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        self._load_model()
        while not self._stop.is_set():
            try:
                req = self._requests.get(timeout=0.1)
            except queue.Empty:
                continue
            if not req.from_service:  # only the newest chunk request matters
                newer = []
                while True:
                    try:
                        newer.append(self._requests.get_nowait())
                    except queue.Empty:
                        break
                for other in newer:
                    if other.from_service:
                        self._requests.put(other)
                    elif (other.stamp_ns or 0) >= (req.stamp_ns or 0):
                        req = other
            if self._last_answer is not None and self._last_answer[0] > self._clock_now_ns() \
                    + FUTURE_TOLERANCE_S * 1e9:
                self._last_answer = None  # the clock went back (a restarted cell): not a newer answer
            if not req.from_service and self._last_answer is not None and req.stamp_ns is not None:
                answered_ns, answered_id, answered_state, answer = self._last_answer
                if req.stamp_ns < answered_ns:
                    req.done.set()
                    continue  # older than what was answered already: superseded
                same_state = (req.state is None and answered_state is None) or (
                    req.state is not None and answered_state is not None and np.allclose(req.state, answered_state,
                                                                                         atol=1e-9))
                if req.stamp_ns == answered_ns and same_state:  # asked again (a retry, or a restarted executor):
                    self._traj_pub.publish(self._relabel(answer, answered_id, req.request_id))  # same answer
                    req.done.set()
                    continue
            try:
                req.ok, req.message = self._serve(req)
            except Exception as exc:  # never let one bad prediction end the worker
                if not self.context.ok() or self._stop.is_set():  # shutting down (e.g. SIGINT) while predicting
                    return
                self.get_logger().error(f"prediction failed: {exc!r}")
                req.ok, req.message = False, f"prediction failed: {exc!r}"
                self._answer_refusal(req, req.message)
            req.done.set()

    @staticmethod
    def _relabel(msg, old_id: str, new_id: str):
        """The cached answer ``msg`` as the answer to request ``new_id`` (the same prediction)."""
        if new_id == old_id:
            return msg
        out = MultiDOFJointTrajectory(header=msg.header, joint_names=list(msg.joint_names)[:3], points=msg.points)
        if new_id:
            out.joint_names.append(REQUEST_JOINT_PREFIX + new_id)
        if bool(new_id) != bool(old_id):  # one transform per joint
            from geometry_msgs.msg import Transform

            extra = Transform()
            extra.rotation.w = 1.0
            out.points = [type(pt)(transforms=list(pt.transforms)[:3] + ([extra] if new_id else []),
                                   velocities=pt.velocities, accelerations=pt.accelerations,
                                   time_from_start=pt.time_from_start) for pt in msg.points]
        return out

    def _load_model(self) -> None:
        from ...model_io import load_policy

        path = resolve_share_path(self._p["model"])
        try:
            if self._p["torch_threads"] > 0:
                import torch

                torch.set_num_threads(int(self._p["torch_threads"]))
            pipeline, _ = load_policy(path, device=self._p["device"], runtime=self._p["runtime"] or None)
            execution = execution_config_for(path, None, self._min_confidence)
        except (FileNotFoundError, ValueError, OSError, RuntimeError) as exc:
            self._model_error = f"cannot load the model from {path}: {exc}"
            self.get_logger().error(self._model_error + " (the node keeps running; fix the 'model' parameter "
                                    "and restart it)")
            return
        self._execution, self._pipeline, self._model_error = execution, pipeline, None
        self.get_logger().info(f"model loaded from {path} ({pipeline.model_cfg.image_size} px, "
                               f"{pipeline.model_cfg.num_future} keyframes {pipeline.policy_cfg.keyframe_dt_s:g} s "
                               f"apart, {self._steps()} denoising steps, runtime {pipeline.runtime}, up to "
                               f"{self._redraws()} redraws under confidence {self._execution.min_confidence})")

    def _steps(self) -> int:
        return int(self._p["num_inference_steps"]) or self._pipeline.policy_cfg.num_inference_steps

    def _redraws(self) -> int:
        return int(self._p["redraws"]) if self._p["redraws"] >= 0 else self._pipeline.policy_cfg.redraws

    def _answer_refusal(self, req: _Request, reason: str) -> None:
        """Tell the executor that asked (an empty trajectory stamped as its request) and the log why."""
        self.refusals += 1
        if req.from_service:
            self.get_logger().warning(f"no prediction: {reason}", throttle_duration_sec=2.0)
        else:
            self.get_logger().info(f"chunk request refused: {reason}", throttle_duration_sec=2.0)
        stamp_ns = req.stamp_ns if req.stamp_ns is not None else self.get_clock().now().nanoseconds
        self._summary_pub.publish(String(data=json.dumps({"ok": False, "reason": reason, "stamp_ns": int(stamp_ns)})))
        if not req.from_service:
            msg = trajectory_to_msg(np.zeros((0, 8)), [], [], stamp_ns, self._p["base_frame"], self._p["tcp_link"],
                                    request_id=req.request_id)
            self._last_answer = (stamp_ns, req.request_id, req.state, msg)
            self._traj_pub.publish(msg)

    def _serve(self, req: _Request) -> tuple[bool, str]:
        ok, result = self._predict_once(req)
        if not ok:
            self._answer_refusal(req, result)
        return ok, result

    def _wait_for_inputs(self, stamp_ns: int | None, need_pose: bool = True) -> str:
        """Wait (``request_wait_s``, wall time) until a frame set and a pose at least ``stamp_ns`` new are
        here; returns what is still missing ("" when all is here).

        In lockstep the request for tick t may overtake that tick's frames on the way here.
        """
        if stamp_ns is None:
            return ""
        deadline = time.monotonic() + self._p["request_wait_s"]
        with self._cv:
            while True:
                missing = [what for what, ok in (
                    ("frames", self._latest is not None and self._latest[0] >= stamp_ns),
                    ("current_pose", self._pose_stamp_ns is not None and self._pose_stamp_ns >= stamp_ns
                     or need_pose is False)) if not ok]
                remaining = deadline - time.monotonic()
                if not missing or remaining <= 0 or self._stop.is_set():
                    return " and ".join(missing)
                self._cv.wait(timeout=min(remaining, 0.05))

    def _predict_once(self, req: _Request) -> tuple[bool, str]:
        """One prediction on the latest synchronised set; returns ``(ok, JSON summary or reason)``."""
        from ...policy import PolicyRunner

        # 1. check inputs
        if self._pipeline is None:
            return False, self._model_error or "no model"
        missing = self._wait_for_inputs(req.stamp_ns, need_pose=req.state is None)
        if missing:
            return False, (f"no {missing} as new as the request ({req.stamp_ns * 1e-9:.3f} s) within request_wait_s "
                           f"{self._p['request_wait_s']} s")
        with self._cv:
            latest, pose, pose_time, grip = self._latest, self._pose, self._pose_time_s, self._gripper
            instruction = self._instruction
            seed = prediction_seed(self._p["seed"], self._episode_seed, self._episode_predictions)
        if latest is None:
            missing = [v for i, v in enumerate(self.views)
                       if self.sync.sync.queued(i) == 0 or self.sync.sync.queued(len(self.views) + i) == 0]
            return False, f"no synchronised set of views yet (nothing queued from {missing})"
        stamp_ns, msgs = latest
        now_s = self._now_s()
        age = now_s - stamp_ns * 1e-9
        if age > self._p["max_frame_age_s"]:
            return False, (f"latest frames are {1000 * age:.0f} ms old (> max_frame_age_s "
                           f"{self._p['max_frame_age_s']} s): stale")
        if age < -FUTURE_TOLERANCE_S:
            return False, (f"latest frames are stamped {-age:.1f} s in the future of this node's clock: a clock "
                           "upstream is wrong (use_sim_time on every node of a simulated graph?)")
        if req.state is None and (pose is None or now_s - pose_time > self._p["max_state_age_s"]):
            return False, f"no current_pose received within max_state_age_s {self._p['max_state_age_s']} s"
        V = len(self.views)
        try:
            images = [msg_to_image(m, "rgb8") for m in msgs[:V]]
            cameras = [info_to_camera(info, self._extrinsics[v], name=v) for v, info in zip(self.views, msgs[V:])]
        except (ImageConversionError, CameraInfoError) as exc:
            return False, f"bad frames: {exc}"
        for v, img, cam in zip(self.views, images, cameras):
            if img.shape[:2] != (cam.height, cam.width):
                return False, f"view {v!r}: image {img.shape[1]}x{img.shape[0]} but camera_info {cam.width}x{cam.height}"
        if len({img.shape for img in images}) != 1:
            return False, f"views have different image sizes {[img.shape[:2] for img in images]}"
        if self._pipeline.model_cfg.use_instruction and not instruction.strip():
            return False, ("the model follows an instruction and none was given: publish one on "
                           "'instruction' (std_msgs/String) or set the 'instruction' parameter")
        # 2. prepare the runner (cached while the calibration does not change)
        key = tuple((c.width, c.height, c.K.tobytes(), c.T_world_cam.tobytes()) for c in cameras)
        if key != self._runner_key:
            self._runner = PolicyRunner(self._pipeline, cameras, self._steps(), execution=self._execution,
                                        redraws=self._redraws())
            self._runner_key = key
        state = req.state if req.state is not None else np.concatenate([pose[:7], [1.0 if grip is None else grip]])
        # 3. run the model (prediction and decoding, once)
        try:
            pred = self._runner.predict(np.stack(images), state, seed=seed, instruction=instruction or None)
        except ValueError as exc:  # e.g. an instruction with no word the model knows
            return False, str(exc)
        self.predictions += 1
        with self._cv:
            self._episode_predictions += 1
        self._hold_back(stamp_ns)
        # 4. publish: the trajectory first (the executor waits for it), then what RViz shows
        chunk = pred.to_chunk(stamp_ns * 1e-9)
        msg = chunk_to_msg(chunk, stamp_ns, self._p["base_frame"], self._p["tcp_link"], request_id=req.request_id)
        if req.stamp_ns is not None:
            self._last_answer = (req.stamp_ns, req.request_id, req.state, msg)
        self._traj_pub.publish(msg)
        self._publish_views(pred, images, stamp_ns)
        summary = prediction_summary(pred.actions, pred.confidence, stamp_ns, self.views, pred.latency_s,
                                     self._now_s() - stamp_ns * 1e-9, seed, self._runner.num_inference_steps,
                                     pred.draws)
        text = json.dumps({"ok": True, **summary})
        self._summary_pub.publish(String(data=text))
        return True, text

    def _hold_back(self, stamp_ns: int) -> None:
        """With ``injected_delay_s``: wait until ROS time reaches ``stamp + delay`` (a slower policy, on purpose)."""
        due_s = stamp_ns * 1e-9 + self._p["injected_delay_s"]
        while self._p["injected_delay_s"] > 0 and self._now_s() < due_s and not self._stop.is_set():
            time.sleep(0.002)

    def _publish_views(self, pred, images: list[np.ndarray], stamp_ns: int) -> None:
        stamp = ns_to_stamp(stamp_ns)
        self._marker_pub.publish(trajectory_markers(pred.actions, pred.confidence, self._p["base_frame"], stamp,
                                                    self._p["marker_axis_length"]))
        open_bg = float(self._pipeline.model_cfg.codec_open_background)
        for i, (view, cam) in enumerate(zip(self.views, self._runner.model_cameras)):
            frame_id = optical_frame_id(view)
            actions = pred.future_action[i]  # (F, S, S, 3) in [0, 1]
            self._pubs["action_video"][i].publish(image_to_msg(stack_frames(actions.astype(np.float32)), "32FC3",
                                                               frame_id=frame_id, stamp=stamp))
            self._pubs["action_camera_info"][i].publish(camera_to_info(cam, stamp=stamp))
            self._pubs["action_image"][i].publish(image_to_msg(combined_action_image(actions), "rgb8",
                                                               frame_id=frame_id, stamp=stamp))
            self._pubs["overlay"][i].publish(image_to_msg(overlay_on_frame(images[i], actions, open_bg), "rgb8",
                                                          frame_id=frame_id, stamp=stamp))
            future = (np.clip(pred.future_rgb[i], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            self._pubs["future_video"][i].publish(image_to_msg(stack_frames(future), "rgb8", frame_id=frame_id,
                                                               stamp=stamp))

    def destroy_node(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._worker.is_alive():  # a prediction in progress cannot be interrupted: let it end (native code
            self._worker.join(timeout=60.0)  # still running when the interpreter exits aborts the process)
            if self._worker.is_alive():
                self.get_logger().error("the policy worker did not stop within 60 s")
        super().destroy_node()


def create_node(**node_kwargs) -> PolicyNode:
    """A ``PolicyNode`` (``context=``, ``cli_args=``, ``parameter_overrides=`` as for ``rclpy.node.Node``)."""
    return PolicyNode(**node_kwargs)


def main(args=None) -> None:
    from ..spin import run_node

    run_node(create_node, args, num_threads=2)  # the predict service runs beside the sync callbacks


if __name__ == "__main__":
    main()
