"""viz_node: the running graph, live in Rerun (a viewer on this machine, or an ``.rrd`` file).

It only listens: it subscribes to what the graph already publishes and commands nothing, in a
process of its own (``viz:=rerun``), so the control loop does not wait for it. Callbacks only
queue the messages; a worker thread converts them (``ros/`` conversions) and logs them with the
ROS-free viewer library (``action_images_ros.viz``) at their header stamps on the ``ros_time``
timeline (simulated time in the simulated cell). When the worker falls behind, the oldest
camera frames are dropped first; predictions are kept (up to ``queue_size`` of them).

Subscribes (relative names, remapped by ``graph.py``):
    ``<view>/image_raw`` + ``<view>/camera_info``: the frames (one every ``image_period_s`` of ROS
        time per view) and each camera's pinhole (its pose comes from the rig YAML, as everywhere).
    ``<view>/overlay``, ``<view>/action_video``, ``<view>/future_video`` (policy_node): the action
        images over the frame, the action images and the generated frames of each prediction.
    ``trajectory`` (policy_node): the decoded keyframes with their confidence; ``prediction``: the
        model call's latency, or why a request was refused.
    ``current_pose`` + ``gripper_joint_states``: the measured TCP and gripper; ``command``
        (executor_node's PoseStamped) and ``sim_command`` (the simulated arm's command, with the
        gripper): the commanded TCP and gripper.
    ``instruction``, ``episode``: as text.
Writes to ``rrd`` when set (the file is complete when the node stops), otherwise streams to the
viewer at ``url`` (default ``rerun+http://127.0.0.1:9876/proxy``: start ``rerun`` first).
"""

from __future__ import annotations

import collections
import json
import threading

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header, String
from trajectory_msgs.msg import MultiDOFJointTrajectory

from ..action_video import unstack_frames
from ..camera_info import CameraInfoError, info_to_camera
from ..episode import parse_episode
from ..image_conversions import ImageConversionError, msg_to_image
from ..pose_conversions import gripper_openness, stamped_to_pose
from ..qos import image_qos, latched_qos, state_qos
from ..share import load_rig_views, resolve_share_path
from ..stamps import stamp_to_ns
from ..trajectory_conversion import TrajectoryMessageError, msg_to_trajectory

__all__ = ["VizNode", "create_node", "main"]

NODE_NAME = "viz_node"
_PREDICTION_KINDS = ("overlay", "action_video", "future_video")


class VizNode(Node):
    """See the module docstring. ``node_kwargs`` as for ``rclpy.node.Node``."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # 1. parameters
        p = {k: self.declare_parameter(k, v).value for k, v in {
            "views": [""],
            "rig": "config/cameras_sim.yaml",
            "base_frame": "base_link",
            "rrd": "",
            "url": "rerun+http://127.0.0.1:9876/proxy",
            "recording_name": "action_images live",
            "image_period_s": 0.1,
            "jpeg_quality": 0,
            "queue_size": 64,
        }.items()}
        if p["image_period_s"] < 0:
            raise ValueError(f"image_period_s must be >= 0 (0 = every frame), got {p['image_period_s']}")
        if not 0 <= p["jpeg_quality"] <= 100:
            raise ValueError(f"jpeg_quality must be in [0, 100] (0 = raw frames), got {p['jpeg_quality']}")
        if p["queue_size"] < 1:
            raise ValueError(f"queue_size must be >= 1, got {p['queue_size']}")
        self._p = p
        self._extrinsics, self.views = load_rig_views(p["rig"], p["views"], "the view needs")
        # 2. the recording (the viewer library is imported here: only this node needs rerun)
        from ...geometry import load_rig
        from ...viz import log as vlog
        from ...viz.recording import close_recording, open_recording

        self._vlog, self._close_recording = vlog, close_recording
        rrd = str(resolve_share_path(p["rrd"])) if p["rrd"] and not p["rrd"].startswith("/") else p["rrd"]
        self.rec = open_recording(p["recording_name"], self.views, save=rrd or None, connect=None if rrd else p["url"])
        rig = [c for c in load_rig(resolve_share_path(p["rig"])) if c.name in self.views]
        vlog.log_cell(self.rec, rig, base_frame=p["base_frame"])
        # 3. state: message queues filled by callbacks, emptied by the worker
        self._cv = threading.Condition()
        self._frames: collections.deque = collections.deque(maxlen=4 * len(self.views))  # drop-oldest
        self._items: collections.deque = collections.deque(maxlen=int(p["queue_size"]) * (3 * len(self.views) + 4))
        self._last_frame_ns: dict[str, int] = {}
        self._cameras: dict[str, tuple] = {}
        self._gripper: float | None = None
        self.logged = collections.Counter()  # what the worker has logged, by kind (tests, bench)
        self.dropped_frames = 0
        # 4. subscriptions: callbacks only queue
        for v in self.views:
            self.create_subscription(Image, f"{v}/image_raw", lambda m, v=v: self._on_frame(v, m), image_qos())
            self.create_subscription(CameraInfo, f"{v}/camera_info", lambda m, v=v: self._queue("camera_info", v, m),
                                     image_qos())
            for kind in _PREDICTION_KINDS:
                self.create_subscription(Image, f"{v}/{kind}", lambda m, v=v, k=kind: self._queue(k, v, m),
                                         image_qos())
        for kind, msg_type, qos in (("trajectory", MultiDOFJointTrajectory, state_qos(10)),
                                    ("prediction", String, state_qos(10)),
                                    ("current_pose", PoseStamped, state_qos()),
                                    ("command", PoseStamped, state_qos()),
                                    ("sim_command", MultiDOFJointTrajectory, state_qos()),
                                    ("instruction", String, latched_qos()),
                                    ("episode", Header, latched_qos())):
            self.create_subscription(msg_type, kind, lambda m, k=kind: self._queue(k, None, m), qos)
        self.create_subscription(JointState, "gripper_joint_states", self._on_joints, state_qos())
        # 5. worker
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="viz_node_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"views {self.views} -> " + (f"file {rrd}" if rrd else f"viewer {p['url']}"))

    # ------------------------------------------------------------------ callbacks (tiny)
    def _on_frame(self, view: str, msg: Image) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        last = self._last_frame_ns.get(view)
        if last is not None and 0 <= stamp - last and (stamp == last or stamp - last < self._p["image_period_s"] * 1e9):
            return  # a frame offered again (lockstep), or within image_period_s of the last one shown
        self._last_frame_ns[view] = stamp
        with self._cv:
            if len(self._frames) == self._frames.maxlen:
                self.dropped_frames += 1
            self._frames.append((view, msg))
            self._cv.notify()

    def _queue(self, kind: str, view: str | None, msg) -> None:
        with self._cv:
            self._items.append((kind, view, msg))
            self._cv.notify()

    def _on_joints(self, msg: JointState) -> None:
        value = gripper_openness(msg)
        if value is not None:
            self._gripper = value

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._items and not self._frames and not self._stop.is_set():
                    self._cv.wait(timeout=0.1)
                if not self._items and not self._frames:
                    return  # stopping, and everything queued is logged
                item = self._items.popleft() if self._items else ("image", *self._frames.popleft())
            try:
                self._log(*item)
            except (ValueError, ImageConversionError, CameraInfoError, TrajectoryMessageError) as exc:
                self.get_logger().warning(f"{item[0]} not shown: {exc}", throttle_duration_sec=5.0)

    def _log(self, kind: str, view: str | None, msg) -> None:
        vlog, rec = self._vlog, self.rec
        stamp = stamp_to_ns(msg.stamp) if kind == "episode" else (
            stamp_to_ns(msg.header.stamp) if hasattr(msg, "header") else None)
        if stamp is not None:
            vlog.set_ros_time(rec, stamp)
        if kind == "image":
            vlog.log_camera_frame(rec, view, msg_to_image(msg, "rgb8"), self._p["jpeg_quality"] or None)
        elif kind == "camera_info":
            key = (msg.width, msg.height, tuple(msg.k))
            if self._cameras.get(view) != key:  # the pinhole, once (again when the calibration changes)
                self._cameras[view] = key
                vlog.log_camera(rec, info_to_camera(msg, self._extrinsics[view], name=view), static=True)
        elif kind == "overlay":
            vlog.log_overlay(rec, view, msg_to_image(msg, "rgb8"))
        elif kind == "action_video":
            video = msg_to_image(msg)
            vlog.log_prediction_images(rec, view, action_images=unstack_frames(video, video.shape[1]))
        elif kind == "future_video":
            video = msg_to_image(msg, "rgb8")
            vlog.log_prediction_images(rec, view, future_rgb=unstack_frames(video, video.shape[1]))
        elif kind == "trajectory":
            traj = msg_to_trajectory(msg)
            if len(traj) < 2:
                vlog.log_keyframes(rec, np.zeros((0, 8)), np.zeros(0))
            else:
                vlog.log_keyframes(rec, traj.poses[1:], traj.confidence[1:], start_pose=traj.poses[0])
                vlog.log_prediction_stats(rec, traj.poses[1:], traj.confidence[1:])
        elif kind == "prediction":
            summary = json.loads(msg.data)
            vlog.set_ros_time(rec, int(summary.get("stamp_ns", 0)))
            if summary.get("ok"):
                vlog.log_prediction_stats(rec, np.zeros((0, 8)), np.zeros(0), latency_s=summary.get("latency_s"))
            else:
                vlog.log_event(rec, f"no prediction: {summary.get('reason', '?')}", level="WARN")
        elif kind == "current_pose":
            pose, _ = stamped_to_pose(msg, self._gripper)
            vlog.log_tcp(rec, "measured", pose if self._gripper is not None else pose[:7])
        elif kind == "command":
            pose, _ = stamped_to_pose(msg)
            vlog.log_tcp(rec, "commanded", pose[:7])
        elif kind == "sim_command":
            traj = msg_to_trajectory(msg)
            if len(traj):
                vlog.log_gripper(rec, "commanded", float(traj.poses[0, 7]))
        elif kind == "instruction":
            vlog.log_instruction(rec, msg.data, static=True)
        elif kind == "episode":
            mark = parse_episode(msg)
            vlog.log_event(rec, f"episode {mark.episode}: " + (f"started, seed {mark.seed}" if mark.running
                                                               else "stopped"))
        self.logged[kind] += 1

    def destroy_node(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        self._worker.join(timeout=30.0)
        self._close_recording(self.rec)  # an .rrd gets its footer
        super().destroy_node()


def create_node(**node_kwargs) -> VizNode:
    """A ``VizNode`` (``context=``, ``cli_args=``, ``parameter_overrides=`` as for ``rclpy.node.Node``)."""
    return VizNode(**node_kwargs)


def main(args=None) -> None:
    from ..spin import run_node

    run_node(create_node, args)


if __name__ == "__main__":
    main()
