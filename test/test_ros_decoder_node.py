"""decoder_node over real DDS: codec-encoded action videos -> trajectory, markers; bad input dropped.

Also the chain below the policy: sim camera_node -> (the test plays the policy, publishing action
videos encoded from a planned trajectory) -> decoder_node -> executor_node -> the simulated arm moves.
"""

import numpy as np
import pytest
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32MultiArray
from visualization_msgs.msg import Marker, MarkerArray

from action_images_ros.codec import ActionImageCodec
from action_images_ros.geometry import load_rig
from action_images_ros.ros.action_video import stack_frames
from action_images_ros.ros.camera_info import camera_to_info
from action_images_ros.ros.decoder_node import create_node
from action_images_ros.ros.image_conversions import image_to_msg
from action_images_ros.ros.pose_conversions import msgs_to_trajectory, stamped_to_pose
from action_images_ros.ros.spin import executors_for, spin_until
from action_images_ros.ros.stamps import ns_to_stamp, stamp_to_ns

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

    def __init__(self, node, size=S):
        self.node = node
        self.cams = [c.scaled(size, size) for c in RIG]
        self.codec = ActionImageCodec(size, size)
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
    got = {"traj": [], "info": [], "markers": []}
    world.create_subscription(PoseArray, "trajectory", got["traj"].append, QOS)
    world.create_subscription(Float32MultiArray, "trajectory_info", got["info"].append, QOS)
    world.create_subscription(MarkerArray, "markers", got["markers"].append, QOS)
    try:
        assert spin_until(exs, lambda: all(p.get_subscription_count() for p in policy.video_pubs)
                          and dec._traj_pub.get_subscription_count(), 10.0)
        truth = trajectory([0.45, 0.05, 0.25], 0.02, grip=1.0)
        truth[2:, 7] = 0.0  # the gripper closes half-way
        stamp = policy.publish(truth)
        assert spin_until(exs, lambda: got["traj"] and got["info"] and got["markers"], 10.0)
        actions, conf, stamp_ns = msgs_to_trajectory(got["traj"][-1], got["info"][-1])
        assert stamp_ns == stamp and got["traj"][-1].header.frame_id == "base_link"
        assert np.max(np.linalg.norm(actions[:, :3] - truth[:, :3], axis=1)) < 0.003
        assert np.all(np.abs(np.abs(np.sum(actions[:, 3:7] * truth[:, 3:7], axis=1)) - 1) < 1e-3)
        np.testing.assert_array_equal(actions[:, 7] > 0.5, truth[:, 7] > 0.5)
        assert np.all(conf > 0.5)
        markers = got["markers"][-1].markers
        assert markers[0].action == Marker.DELETEALL
        assert sum(m.ns == "axes" for m in markers) == 3 * 4 and sum(m.ns == "path" for m in markers) == 1
        # the same trajectory quantised to rgb8 still decodes (within a few mm)
        policy.publish(truth, encoding="rgb8")
        assert spin_until(exs, lambda: len(got["traj"]) >= 2 and len(got["info"]) >= 2, 10.0)
        actions, _, _ = msgs_to_trajectory(got["traj"][-1], got["info"][-1])
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
    world.create_subscription(PoseArray, "trajectory", got.append, QOS)
    try:
        assert spin_until(exs, lambda: all(p.get_subscription_count() for p in policy.video_pubs)
                          and dec._traj_pub.get_subscription_count(), 10.0)
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


def test_decoded_commands_move_the_simulated_arm(ros_context_factory):
    """camera_node (sim) + decoder_node + executor_node from the graph; the test plays the policy."""
    import rclpy

    from action_images_ros.ros.graph import GraphOptions, build_graph, topic
    from action_images_ros.ros.runner import InProcessGraph

    specs = [s for s in build_graph(GraphOptions()) if s.name in ("camera_node", "decoder_node", "executor_node")]
    graph = InProcessGraph(specs, context=ros_context_factory(), num_threads=3)
    world = rclpy.create_node("fake_policy", context=ros_context_factory())
    policy = FakePolicy(world)
    for i, v in enumerate(VIEWS):  # publish under the graph's names
        policy.video_pubs[i] = world.create_publisher(Image, topic("action_video", v), QOS)
        policy.info_pubs[i] = world.create_publisher(CameraInfo, topic("action_camera_info", v), QOS)
    poses, commands = [], []
    world.create_subscription(PoseStamped, topic("current_pose"), poses.append, QOS)
    world.create_subscription(PoseStamped, "executor_node/command", commands.append, QOS)
    (ex,) = executors_for(world)

    def spin(pred, timeout_s):
        return spin_until([ex, graph.executor], pred, timeout_s)

    try:
        assert spin(lambda: poses and all(p.get_subscription_count() for p in policy.video_pubs), 20.0)
        start, _ = stamped_to_pose(poses[-1])
        for _ in range(3):  # three predictions, each 4 x 1.5 cm towards +x from the measured pose
            here, _ = stamped_to_pose(poses[-1])
            stamp = policy.publish(trajectory(here[:3], 0.015), stamp_ns=stamp_to_ns(poses[-1].header.stamp))
            n = len(commands)
            assert spin(lambda: len(commands) >= n + 4, 10.0), "the executor sent no commands"
            assert stamp_to_ns(commands[n].header.stamp) > stamp
        # 3 x 2 executed steps x 1.5 cm = 9 cm commanded; the arm lags its commands (more on a loaded machine)
        spin(lambda: stamped_to_pose(poses[-1])[0][0] - start[0] > 0.07, 3.0)
        end, _ = stamped_to_pose(poses[-1])
        assert end[0] - start[0] > 0.06
        assert abs(end[1] - start[1]) < 0.01 and abs(end[2] - start[2]) < 0.01
    finally:
        ex.shutdown()
        world.destroy_node()
        graph.shutdown()
