"""decoder_node over real DDS: codec-encoded action videos -> timed trajectory, markers; bad input dropped;
the codec settings and keyframe period come from the model folder."""

import numpy as np
import pytest
from _ros_fakes import matched
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from trajectory_msgs.msg import MultiDOFJointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from action_images_ros.codec import ActionImageCodec
from action_images_ros.geometry import load_rig
from action_images_ros.ros.action_video import stack_frames
from action_images_ros.ros.camera_info import camera_to_info
from action_images_ros.ros.nodes.decoder_node import create_node
from action_images_ros.ros.image_conversions import image_to_msg
from action_images_ros.ros.spin import executors_for, spin_until
from action_images_ros.ros.stamps import ns_to_stamp, stamp_to_ns
from action_images_ros.ros.trajectory_conversion import msg_to_trajectory

pytestmark = pytest.mark.ros

S = 64
RIG = load_rig("config/cameras_sim.yaml")
VIEWS = [c.name for c in RIG]
QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
DOWN = [1.0, 0.0, 0.0, 0.0]


def trajectory(start_xyz, dx, n=4, grip=1.0):
    t = np.tile(np.array([*start_xyz, *DOWN, grip]), (n, 1))
    t[:, 0] += dx * np.arange(1, n + 1)
    return t


class FakePolicy:
    """Publishes action videos + action camera infos, as policy_node does."""

    def __init__(self, node, size=S, **codec_args):
        self.node = node
        self.cams = [c.scaled(size, size) for c in RIG]
        self.codec = ActionImageCodec(size, size, **codec_args)
        self.video_pubs = [node.create_publisher(Image, f"{v}/action_video", QOS) for v in VIEWS]
        self.info_pubs = [node.create_publisher(CameraInfo, f"{v}/action_camera_info", QOS) for v in VIEWS]

    def publish(self, actions, stamp_ns=None, encoding="32FC3", frames_override=None):
        stamp = ns_to_stamp(self.node.get_clock().now().nanoseconds if stamp_ns is None else stamp_ns)
        images = self.codec.encode(actions, self.cams)  # (V, F, S, S, 3)
        for i, cam in enumerate(self.cams):
            video = stack_frames(images[i] if frames_override is None else images[i, :frames_override[i]])
            if encoding == "rgb8":
                video = (video * 255 + 0.5).astype(np.uint8)
            msg = (image_to_msg(video[..., 0].copy(), "32FC1", stamp=stamp) if encoding == "32FC1"
                   else image_to_msg(video.astype(np.float32) if encoding == "32FC3" else video, encoding,
                                     stamp=stamp))
            self.video_pubs[i].publish(msg)
            self.info_pubs[i].publish(camera_to_info(cam, stamp=stamp))
        return stamp_to_ns(stamp)


def spin_pair(ros_context_factory, node_factory):
    import rclpy

    node = node_factory(ros_context_factory())
    world = rclpy.create_node("world", context=ros_context_factory())
    return node, world, executors_for(node, world)


def test_decodes_action_videos_into_trajectory_and_markers(ros_context_factory):
    dec, world, exs = spin_pair(ros_context_factory, lambda ctx: create_node(
        context=ctx, cli_args=["--ros-args", "--params-file", "config/decoder.yaml"]))
    policy = FakePolicy(world)
    got = {"traj": [], "markers": []}
    world.create_subscription(MultiDOFJointTrajectory, "trajectory", lambda m: got["traj"].append(
        msg_to_trajectory(m)), QOS)
    world.create_subscription(MarkerArray, "markers", got["markers"].append, QOS)
    try:
        assert spin_until(exs, lambda: matched(dec, world), 10.0)  # both ways: one message each
        truth = trajectory([0.45, 0.05, 0.25], 0.02, grip=1.0)
        truth[2:, 7] = 0.0  # the gripper closes half-way
        stamp = policy.publish(truth)
        assert spin_until(exs, lambda: got["traj"] and got["markers"], 10.0)
        traj = got["traj"][-1]
        actions, conf = traj.poses, traj.confidence
        assert traj.stamp_ns == stamp and traj.frame_id == "base_link"
        np.testing.assert_allclose(traj.time_from_start_s, [0.2, 0.4, 0.6, 0.8])  # models/tiny: stride 2 x 0.1 s
        assert np.max(np.linalg.norm(actions[:, :3] - truth[:, :3], axis=1)) < 0.003
        assert np.all(np.abs(np.abs(np.sum(actions[:, 3:7] * truth[:, 3:7], axis=1)) - 1) < 1e-3)
        np.testing.assert_array_equal(actions[:, 7] > 0.5, truth[:, 7] > 0.5)
        assert np.all(conf > 0.5)
        markers = got["markers"][-1].markers
        assert markers[0].action == Marker.DELETEALL
        assert sum(m.ns == "axes" for m in markers) == 3 * 4 and sum(m.ns == "path" for m in markers) == 1
        # the same trajectory quantised to rgb8 still decodes (within a few mm)
        policy.publish(truth, encoding="rgb8")
        assert spin_until(exs, lambda: len(got["traj"]) >= 2, 10.0)
        actions = got["traj"][-1].poses
        assert np.max(np.linalg.norm(actions[:, :3] - truth[:, :3], axis=1)) < 0.005
    finally:
        for ex in exs:
            ex.shutdown()
        dec.destroy_node()
        world.destroy_node()


def test_malformed_action_videos_are_dropped_and_the_node_keeps_running(ros_context_factory, caplog):
    dec, world, exs = spin_pair(ros_context_factory, lambda ctx: create_node(context=ctx))
    policy = FakePolicy(world)
    got = []
    world.create_subscription(MultiDOFJointTrajectory, "trajectory", got.append, QOS)
    try:
        assert spin_until(exs, lambda: matched(dec, world), 10.0)  # both ways: one message each
        truth = trajectory([0.5, 0.0, 0.3], 0.01)
        policy.publish(truth, encoding="32FC1")  # wrong encoding
        policy.publish(truth, frames_override=[4, 4, 3])  # views disagree on the number of frames
        spin_until(exs, lambda: False, 1.0)
        assert got == [] and dec.decoded == 0
        policy.publish(truth)
        assert spin_until(exs, lambda: len(got) == 1, 10.0)  # alive
    finally:
        for ex in exs:
            ex.shutdown()
        dec.destroy_node()
        world.destroy_node()


def test_codec_settings_and_keyframe_period_come_from_the_model_folder(ros_context_factory, tmp_path):
    import json

    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text(json.dumps({
        "_class_name": "ActionImagesPipeline",
        "model_config": {"image_size": S, "codec_axis_length": 0.15, "codec_open_background": 0.4},
        "policy_config": {"clip": {"frame_stride": 3}, "control_dt_s": 0.05}}))
    dec, world, exs = spin_pair(ros_context_factory, lambda ctx: create_node(
        context=ctx, cli_args=["--ros-args", "--params-file", "config/decoder.yaml", "-p", f"model:={model}"]))
    policy = FakePolicy(world, axis_length=0.15, open_background=0.4)  # what that model was trained to draw
    got = []
    world.create_subscription(MultiDOFJointTrajectory, "trajectory", lambda m: got.append(msg_to_trajectory(m)), QOS)
    try:
        assert spin_until(exs, lambda: matched(dec, world), 10.0)  # both ways: one message each
        truth = trajectory([0.5, -0.05, 0.3], 0.015, grip=1.0)
        policy.publish(truth)
        assert spin_until(exs, lambda: got, 10.0)
        np.testing.assert_allclose(got[-1].time_from_start_s, 0.15 * np.arange(1, 5))
        assert np.max(np.linalg.norm(got[-1].poses[:, :3] - truth[:, :3], axis=1)) < 0.003
        assert np.all(got[-1].poses[:, 7] > 0.5) and np.all(got[-1].confidence > 0.5)
    finally:
        for ex in exs:
            ex.shutdown()
        dec.destroy_node()
        world.destroy_node()
