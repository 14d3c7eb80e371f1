"""policy_node: synchronised views -> the Action Images policy -> per-view action video, overlays, summary.

Subscribes (relative names, remapped by ``graph.py``):
    ``<view>/image_raw`` (sensor_msgs/Image rgb8 or bgr8) and ``<view>/camera_info`` for every view
        in ``views``, synchronised by ``ros/sync.py`` (approximate time, ``slop_s``, ``queue_size``).
    ``current_pose`` (geometry_msgs/PoseStamped, TCP in the base frame) and ``gripper_joint_states``
        (sensor_msgs/JointState finger joints -> openness; 1.0 = open when none arrive).
    ``instruction`` (std_msgs/String, transient local): what to do, e.g. "reach the red target", for
        models that follow an instruction; the simulated cell publishes its task's, on the real cell
        publish it yourself or set the ``instruction`` parameter (the newest of the two is used).
Publishes, per prediction, all stamped with the camera frames' stamp:
    ``<view>/action_video`` (Image 32FC3, the F predicted action images stacked vertically,
        ``(F*S) x S``; decoder_node's input) and ``<view>/action_camera_info`` (CameraInfo of one
        ``S x S`` frame: the view's intrinsics scaled to the model resolution).
    ``<view>/action_image`` (rgb8, the F action images in one), ``<view>/overlay`` (rgb8, drawn
        over the camera frame at camera resolution) and ``<view>/future_video`` (rgb8, the predicted
        RGB frames stacked like the action video): for RViz and recordings.
    ``prediction`` (std_msgs/String): the JSON summary (``action_video.prediction_summary``).
Services:
    ``predict`` (std_srvs/Trigger): one prediction on the latest synchronised set now; the answer's
        message is the JSON summary (``success`` false with the reason when it could not run).
Modes (``mode``): ``closed_loop`` predicts at ``rate_hz`` on every new set; ``on_demand`` only
when the service is called.

Poses are not published here: decoder_node decodes the action video (the one place decoding
happens in the graph); the service's summary reports the pipeline's own decoding for convenience.
Bad input (wrong encoding, image/info size mismatch, a missing view, stale frames, no pose, a
missing or unreadable model) is logged with the reason and the node keeps running. The model
is loaded and run in a worker thread; callbacks only store the latest messages.
"""

from __future__ import annotations

import json
import queue
import threading

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ..cell_description import optical_frame_id
from .action_video import combined_action_image, overlay_on_frame, prediction_summary, stack_frames
from .camera_info import CameraInfoError, camera_to_info, info_to_camera
from .image_conversions import ImageConversionError, image_to_msg, msg_to_image
from .pose_conversions import gripper_openness, stamped_to_pose
from .qos import image_qos, latched_qos, state_qos
from .share import load_rig_views, resolve_share_path
from .stamps import ns_to_stamp, stamp_to_ns
from .sync import MultiViewSubscriber

__all__ = ["PolicyNode", "create_node", "main", "MODES"]

NODE_NAME = "policy_node"
MODES = ("closed_loop", "on_demand")


class _Request:
    """One prediction asked of the worker (a closed-loop tick or a service call)."""

    def __init__(self, from_service: bool) -> None:
        self.from_service = from_service
        self.done = threading.Event()
        self.ok = False
        self.message = ""


class PolicyNode(Node):
    """See the module docstring. ``node_kwargs`` as for ``rclpy.node.Node``."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # 1. parameters
        p = {k: self.declare_parameter(k, v).value for k, v in {
            "model": "models/tiny",
            "device": "cpu",
            "num_inference_steps": 6,
            "mode": "closed_loop",
            "rate_hz": 2.0,
            "views": [""],
            "rig": "config/cameras_sim.yaml",
            "slop_s": 0.01,
            "queue_size": 5,
            "max_frame_age_s": 0.5,
            "max_state_age_s": 0.5,
            "seed": 0,
            "torch_threads": 0,
            "service_timeout_s": 30.0,
            "instruction": "",
        }.items()}
        if p["mode"] not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {p['mode']!r}")
        if not 1 <= p["num_inference_steps"] <= 100:
            raise ValueError(f"num_inference_steps must be in [1, 100], got {p['num_inference_steps']}")
        if p["mode"] == "closed_loop" and not p["rate_hz"] > 0:
            raise ValueError(f"rate_hz must be > 0 in closed_loop mode, got {p['rate_hz']}")
        for name in ("max_frame_age_s", "max_state_age_s", "service_timeout_s"):
            if not p[name] > 0:
                raise ValueError(f"{name} must be > 0, got {p[name]}")
        self._p = p
        self._extrinsics, self.views = load_rig_views(p["rig"], p["views"], "the policy needs")
        # 2. state (written by callbacks, read by the worker under the lock)
        self._lock = threading.Lock()
        self._latest: tuple[int, tuple] | None = None  # (stamp_ns, (image msgs..., info msgs...))
        self._pose: np.ndarray | None = None
        self._pose_time_s: float | None = None
        self._gripper: float | None = None
        self._instruction: str = p["instruction"]
        self._last_used_stamp: int | None = None
        self._runner = None
        self._runner_key = None
        self._pipeline = None
        self._model_error: str | None = "the model is still loading"
        self.predictions = 0
        # 3. publishers
        qos = image_qos()
        self._pubs = {
            kind: [self.create_publisher(msg_type, f"{v}/{kind}", qos) for v in self.views]
            for kind, msg_type in (("action_video", Image), ("action_camera_info", CameraInfo),
                                   ("action_image", Image), ("overlay", Image), ("future_video", Image))
        }
        self._summary_pub = self.create_publisher(String, "prediction", state_qos())
        # 4. subscriptions: synchronised views, arm state
        topics = [(f"{v}/image_raw", Image) for v in self.views] + [(f"{v}/camera_info", CameraInfo)
                                                                   for v in self.views]
        self.sync = MultiViewSubscriber(self, topics, self._on_set, image_qos(), queue_size=p["queue_size"],
                                        slop_s=p["slop_s"])
        self.create_subscription(PoseStamped, "current_pose", self._on_pose, state_qos())
        self.create_subscription(JointState, "gripper_joint_states", self._on_joints, state_qos())
        self.create_subscription(String, "instruction", self._on_instruction, latched_qos())
        self.add_on_set_parameters_callback(self._on_parameters)
        # 5. service (own callback group: it waits for the worker while the subscriptions go on)
        self._requests: queue.Queue[_Request] = queue.Queue()
        self.create_service(Trigger, "predict", self._on_predict, callback_group=MutuallyExclusiveCallbackGroup())
        if p["mode"] == "closed_loop":
            self.create_timer(1.0 / p["rate_hz"], self._on_tick)
        # 6. worker: loads the model, then serves requests
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="policy_node_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"views {self.views}, mode {p['mode']}"
                               + (f" at {p['rate_hz']:g} Hz" if p["mode"] == "closed_loop" else "")
                               + f", {p['num_inference_steps']} denoising steps, model {p['model']}")

    # ------------------------------------------------------------------ callbacks (tiny)
    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_set(self, msgs: tuple) -> None:
        stamp = max(stamp_to_ns(m.header.stamp) for m in msgs)
        with self._lock:
            self._latest = (stamp, msgs)

    def _on_pose(self, msg: PoseStamped) -> None:
        pose, _ = stamped_to_pose(msg)
        with self._lock:
            self._pose, self._pose_time_s = pose, self._now_s()

    def _on_joints(self, msg: JointState) -> None:
        value = gripper_openness(msg)
        if value is not None:
            self._gripper = value

    def _on_instruction(self, msg: String) -> None:
        with self._lock:
            self._instruction = msg.data
        self.get_logger().info(f"instruction: {msg.data!r}")

    def _on_parameters(self, params):
        from rcl_interfaces.msg import SetParametersResult

        for prm in params:
            if prm.name == "instruction":
                with self._lock:
                    self._instruction = str(prm.value)
                self.get_logger().info(f"instruction: {prm.value!r}")
        return SetParametersResult(successful=True)

    def _on_tick(self) -> None:
        if self._requests.empty():  # closed-loop ticks coalesce while a prediction runs
            self._requests.put(_Request(from_service=False))

    def _on_predict(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        req = _Request(from_service=True)
        self._requests.put(req)
        if not req.done.wait(self._p["service_timeout_s"]):
            response.success, response.message = False, f"no prediction within {self._p['service_timeout_s']} s"
        else:
            response.success, response.message = req.ok, req.message
        return response

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        self._load_model()
        while not self._stop.is_set():
            try:
                req = self._requests.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                req.ok, req.message = self._predict_once(req.from_service)
            except Exception as exc:  # never let one bad prediction end the worker
                if not self.context.ok():  # shutting down (e.g. SIGINT) while predicting
                    return
                self.get_logger().error(f"prediction failed: {exc!r}")
                req.ok, req.message = False, f"prediction failed: {exc!r}"
            req.done.set()

    def _load_model(self) -> None:
        from ..model_io import load_policy

        path = resolve_share_path(self._p["model"])
        try:
            if self._p["torch_threads"] > 0:
                import torch

                torch.set_num_threads(int(self._p["torch_threads"]))
            pipeline, clip = load_policy(path, device=self._p["device"])
        except (FileNotFoundError, ValueError, OSError, RuntimeError) as exc:
            self._model_error = f"cannot load the model from {path}: {exc}"
            self.get_logger().error(self._model_error + " (the node keeps running; fix the 'model' parameter "
                                    "and restart it)")
            return
        trained_views = clip.get("views")
        if trained_views and list(trained_views) != self.views:
            self.get_logger().warning(f"the model was trained on views {trained_views}, running on {self.views}")
        self._pipeline, self._model_error = pipeline, None
        self.get_logger().info(f"model loaded from {path} ({pipeline.model_cfg.image_size} px, "
                               f"{pipeline.model_cfg.num_future} future frames)")

    def _refuse(self, reason: str, from_service: bool) -> tuple[bool, str]:
        log = self.get_logger().warning if from_service else self.get_logger().info
        log(f"no prediction: {reason}", throttle_duration_sec=2.0)
        return False, reason

    def _predict_once(self, from_service: bool) -> tuple[bool, str]:
        """One prediction on the latest synchronised set; returns ``(ok, JSON summary or reason)``."""
        from ..rollout import PolicyRunner

        # 1. check inputs
        if self._pipeline is None:
            return self._refuse(self._model_error or "no model", True)
        with self._lock:
            latest, pose, pose_time, grip = self._latest, self._pose, self._pose_time_s, self._gripper
        if latest is None:
            missing = [v for i, v in enumerate(self.views)
                       if self.sync.sync.queued(i) == 0 or self.sync.sync.queued(len(self.views) + i) == 0]
            return self._refuse(f"no synchronised set of views yet (nothing queued from {missing})", from_service)
        stamp_ns, msgs = latest
        if not from_service and stamp_ns == self._last_used_stamp:
            return False, "no new frames since the last prediction"
        now_s = self._now_s()
        age = now_s - stamp_ns * 1e-9
        if age > self._p["max_frame_age_s"]:
            return self._refuse(f"latest frames are {1000 * age:.0f} ms old (> max_frame_age_s "
                                f"{self._p['max_frame_age_s']} s): stale", from_service)
        if pose is None or now_s - pose_time > self._p["max_state_age_s"]:
            return self._refuse("no current_pose received within max_state_age_s "
                                f"{self._p['max_state_age_s']} s", from_service)
        V = len(self.views)
        try:
            images = [msg_to_image(m, "rgb8") for m in msgs[:V]]
            cameras = [info_to_camera(info, self._extrinsics[v], name=v) for v, info in zip(self.views, msgs[V:])]
        except (ImageConversionError, CameraInfoError) as exc:
            return self._refuse(f"bad frames: {exc}", from_service)
        for v, img, cam in zip(self.views, images, cameras):
            if img.shape[:2] != (cam.height, cam.width):
                return self._refuse(f"view {v!r}: image {img.shape[1]}x{img.shape[0]} but camera_info "
                                    f"{cam.width}x{cam.height}", from_service)
        if len({img.shape for img in images}) != 1:
            return self._refuse(f"views have different image sizes {[img.shape[:2] for img in images]}",
                                from_service)
        # 2. prepare the runner (cached while the calibration does not change)
        key = tuple((c.width, c.height, c.K.tobytes()) for c in cameras)
        if key != self._runner_key:
            self._runner = PolicyRunner(self._pipeline, cameras, self._p["num_inference_steps"])
            self._runner_key = key
        state = np.concatenate([pose[:7], [1.0 if grip is None else grip]])
        seed = int(self._p["seed"]) + self.predictions
        with self._lock:
            instruction = self._instruction
        if self._pipeline.model_cfg.use_instruction and not instruction.strip():
            return self._refuse("the model follows an instruction and none was given: publish one on "
                                "'instruction' (std_msgs/String) or set the 'instruction' parameter", from_service)
        # 3. run the model
        try:
            pred = self._runner.predict(np.stack(images), state, seed=seed, instruction=instruction or None)
        except ValueError as exc:  # e.g. an instruction with no word the model knows
            return self._refuse(str(exc), from_service)
        self._last_used_stamp = stamp_ns
        self.predictions += 1
        # 4. publish
        self._publish(pred, images, stamp_ns)
        summary = prediction_summary(pred.actions, pred.confidence, stamp_ns, self.views, pred.latency_s,
                                     self._now_s() - stamp_ns * 1e-9, seed, self._p["num_inference_steps"])
        text = json.dumps(summary)
        self._summary_pub.publish(String(data=text))
        self.get_logger().debug(f"prediction {self.predictions}: {pred.latency_s * 1000:.0f} ms")
        return True, text

    def _publish(self, pred, images: list[np.ndarray], stamp_ns: int) -> None:
        stamp = ns_to_stamp(stamp_ns)
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
        if self._worker.is_alive():
            self._worker.join(timeout=10.0)
        super().destroy_node()


def create_node(**node_kwargs) -> PolicyNode:
    """A ``PolicyNode`` (``context=``, ``cli_args=``, ``parameter_overrides=`` as for ``rclpy.node.Node``)."""
    return PolicyNode(**node_kwargs)


def main(args=None) -> None:
    from .spin import run_node

    run_node(create_node, args, num_threads=2)  # the predict service runs beside the sync callbacks


if __name__ == "__main__":
    main()
