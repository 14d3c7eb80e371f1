"""decoder_node: per-view action videos + their CameraInfo -> a timed 7-DoF trajectory and markers.

For action videos that do not come with a decoded trajectory: the label mode (a recorded or
external action video -> poses), a model run elsewhere, or a check of what the policy drew. The
policy's own chunks are decoded once, in policy_node; this node is not in their path.
Decoding is ``codec.ActionImageCodec.decode`` (every point triangulated over the views, rotation
from both axes, gripper from the B background) with the codec settings of the model folder
(``model``: ``model_index.json``), so they cannot disagree with what the model was trained on.

Subscribes (relative names, remapped by ``graph.py``), synchronised by exact stamp:
    ``<view>/action_video`` (sensor_msgs/Image ``32FC3`` in [0, 1], or ``rgb8``): F action images
        stacked vertically, ``(F*S) x S`` (``action_video.stack_frames``).
    ``<view>/action_camera_info`` (sensor_msgs/CameraInfo of one ``S x S`` frame; the optical frame
        id names the view). Extrinsics come from the rig YAML (``rig``), as everywhere in the graph.
Publishes, stamped with the camera frames' stamp the prediction was made from:
    ``trajectory`` (trajectory_msgs/MultiDOFJointTrajectory, ``trajectory_conversion``, ``base_frame``):
        step ``k`` due ``k * keyframe_dt`` after the stamp (the model folder's clip settings).
    ``markers`` (visualization_msgs/MarkerArray: gripper axes, path, gripper state; ``markers.py``).

Malformed input (encoding, sizes, frame counts, unknown views) is logged with the reason and dropped;
decoding runs in a worker thread on the newest set.
"""

from __future__ import annotations

import threading

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from trajectory_msgs.msg import MultiDOFJointTrajectory
from visualization_msgs.msg import MarkerArray

from ...codec import ActionImageCodec
from ...config import DEFAULT_MODEL
from ...control.chunk_execution import FUTURE_TOLERANCE_S
from ..action_video import unstack_frames
from ..camera_info import CameraInfoError, info_to_camera
from ..frame_checks import frame_problem
from ..image_conversions import ImageConversionError, msg_to_image
from ..markers import trajectory_markers
from ..qos import image_qos, state_qos
from ..share import load_rig_views, resolve_share_path
from ..stamps import ns_to_stamp, stamp_to_ns
from ..sync import MultiViewSubscriber
from ..trajectory_conversion import trajectory_to_msg

__all__ = ["DecoderNode", "DecodeInputError", "create_node", "main", "action_videos_to_arrays"]

NODE_NAME = "decoder_node"


class DecodeInputError(ValueError):
    """Action-video messages that cannot be decoded (the message says why)."""


def action_videos_to_arrays(videos: list[Image], infos: list[CameraInfo], views: list[str],
                            extrinsics: dict[str, np.ndarray]) -> tuple[np.ndarray, list]:
    """Messages of one stamp -> ``(images (V, F, S, S, 3) float32 in [0, 1], cameras [V])``.

    Raises:
        DecodeInputError: unsupported encoding, a video whose size does not fit its CameraInfo,
            different frame counts across views, or an unusable CameraInfo.
    """
    frames, cameras = [], []
    for view, video, info in zip(views, videos, infos):
        if video.encoding not in ("32FC3", "rgb8"):
            raise DecodeInputError(f"view {view!r}: action video encoding {video.encoding!r}; expected 32FC3 "
                                   "(values in [0, 1]) or rgb8")
        try:
            img = msg_to_image(video)
            cam = info_to_camera(info, extrinsics[view], name=view)
        except (ImageConversionError, CameraInfoError) as exc:
            raise DecodeInputError(f"view {view!r}: {exc}") from None
        if img.shape[1] != cam.width or img.shape[0] % cam.height:
            raise DecodeInputError(f"view {view!r}: action video {img.shape[1]}x{img.shape[0]} is not F frames of "
                                   f"the camera_info size {cam.width}x{cam.height} stacked vertically")
        img = img.astype(np.float32) / 255.0 if video.encoding == "rgb8" else img.astype(np.float32, copy=False)
        frames.append(unstack_frames(img, cam.height))
        cameras.append(cam)
    counts = {f.shape for f in frames}
    if len(counts) != 1:
        raise DecodeInputError(f"views disagree on the action video shape (F, S, S, 3): "
                               f"{dict(zip(views, (f.shape for f in frames)))}")
    return np.stack(frames), cameras


class DecoderNode(Node):
    """See the module docstring. ``node_kwargs`` as for ``rclpy.node.Node``."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # 1. parameters
        p = {k: self.declare_parameter(k, v).value for k, v in {
            "views": [""],
            "rig": "config/cameras_sim.yaml",
            "base_frame": "base_link",
            "tcp_link": "fr3_hand_tcp",
            "model": DEFAULT_MODEL,
            "marker_axis_length": 0.05,
            "queue_size": 3,
        }.items()}
        self._extrinsics, self.views = load_rig_views(p["rig"], p["views"], "decoding needs")
        from ...config import load_policy_config
        from ...model.config import ModelConfig

        policy_cfg, model_dict = load_policy_config(resolve_share_path(p["model"]))
        model_cfg = ModelConfig.from_dict({"use_state": False, "residual_to_current": False, **model_dict})
        self._codec_args = dict(sigma_frac=model_cfg.codec_sigma_frac, axis_length=model_cfg.codec_axis_length,
                                open_background=model_cfg.codec_open_background)
        self._keyframe_dt_s = policy_cfg.keyframe_dt_s
        self._tcp_link = p["tcp_link"]
        self._codecs: dict[tuple[int, int], ActionImageCodec] = {}
        self._base_frame = p["base_frame"]
        self._axis_length = float(p["marker_axis_length"])
        # 2. publishers
        qos = state_qos()
        self._traj_pub = self.create_publisher(MultiDOFJointTrajectory, "trajectory", qos)
        self._marker_pub = self.create_publisher(MarkerArray, "markers", qos)
        # 3. synchronised inputs (the policy stamps every view's video and info alike)
        topics = [(f"{v}/action_video", Image) for v in self.views] + [
            (f"{v}/action_camera_info", CameraInfo) for v in self.views]
        self.sync = MultiViewSubscriber(self, topics, self._on_set, image_qos(), queue_size=p["queue_size"],
                                        slop_s=0.0,
                                        now_ns=lambda: self.get_clock().now().nanoseconds,
                                        future_tolerance_s=FUTURE_TOLERANCE_S, validate=frame_problem)
        # 4. worker: decodes the newest set
        self.decoded = 0
        self._latest: tuple | None = None
        self._cv = threading.Condition()
        self._stop = False
        self._worker = threading.Thread(target=self._run, name="decoder_node_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"decoding views {self.views} into {self._base_frame} with the codec of {p['model']} "
                               f"({self._codec_args})")

    def _on_set(self, msgs: tuple) -> None:
        with self._cv:
            self._latest = msgs  # an undecoded older set is replaced: only the newest matters
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._latest is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                msgs, self._latest = self._latest, None
            try:
                self._decode(msgs)
            except DecodeInputError as exc:
                self.get_logger().error(f"action video dropped: {exc}", throttle_duration_sec=2.0)
            except Exception as exc:  # a failed decode must not end the worker
                if not self.context.ok():  # shutting down while decoding
                    return
                self.get_logger().error(f"decoding failed: {exc!r}")

    def _decode(self, msgs: tuple) -> None:
        V = len(self.views)
        stamp_ns = max(stamp_to_ns(m.header.stamp) for m in msgs)
        images, cameras = action_videos_to_arrays(list(msgs[:V]), list(msgs[V:]), self.views, self._extrinsics)
        size = (cameras[0].height, cameras[0].width)
        if any((c.height, c.width) != size for c in cameras):
            raise DecodeInputError(f"views have different action image sizes {[(c.width, c.height) for c in cameras]}")
        codec = self._codecs.get(size)
        if codec is None:
            codec = self._codecs[size] = ActionImageCodec(*size, **self._codec_args)
        actions, confidence = codec.decode(images, cameras)
        times = self._keyframe_dt_s * np.arange(1, len(actions) + 1)
        self._traj_pub.publish(trajectory_to_msg(actions, confidence, times, stamp_ns, self._base_frame,
                                                 self._tcp_link))
        self._marker_pub.publish(trajectory_markers(actions, confidence, self._base_frame, ns_to_stamp(stamp_ns),
                                                    self._axis_length))
        self.decoded += 1

    def destroy_node(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._worker.join(timeout=5.0)
        super().destroy_node()


def create_node(**node_kwargs) -> DecoderNode:
    """A ``DecoderNode`` (``context=``, ``cli_args=``, ``parameter_overrides=`` as for ``rclpy.node.Node``)."""
    return DecoderNode(**node_kwargs)


def main(args=None) -> None:
    from ..spin import run_node

    run_node(create_node, args)


if __name__ == "__main__":
    main()
