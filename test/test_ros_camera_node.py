"""camera_node over real DDS: RealSense (software devices, capture-time stamps), replay, run-time switch."""

import time
from collections import defaultdict

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String

from action_images_ros.ros.nodes.camera_node import create_node
from action_images_ros.ros.image_conversions import msg_to_image
from action_images_ros.ros.pose_conversions import stamped_to_pose
from action_images_ros.ros.qos import image_qos, latched_qos
from action_images_ros.ros.spin import executors_for, spin_until
from action_images_ros.ros.stamps import stamp_to_ns

pytestmark = pytest.mark.ros

VIEWS = ("front", "left_shoulder", "right_shoulder")
T_MS = 1_760_000_000_000.0  # a global-time frame timestamp: ms since the Unix epoch


class Listener:
    """A second DDS participant recording everything camera_node publishes."""

    def __init__(self, context, views=VIEWS):
        import rclpy

        self.node = rclpy.create_node("camera_listener", context=context)
        self.images = defaultdict(list)  # stamp_ns -> [(view, msg)]
        self.infos = defaultdict(list)
        self.poses, self.joints, self.instructions = [], [], []
        for v in views:
            self.node.create_subscription(Image, f"{v}/image_raw", lambda m, v=v: self.images[
                stamp_to_ns(m.header.stamp)].append((v, m)), image_qos())
            self.node.create_subscription(CameraInfo, f"{v}/camera_info", lambda m, v=v: self.infos[
                stamp_to_ns(m.header.stamp)].append((v, m)), image_qos())
        self.node.create_subscription(PoseStamped, "current_pose", self.poses.append, 10)
        self.node.create_subscription(JointState, "gripper_joint_states", self.joints.append, 10)
        self.node.create_subscription(String, "instruction", lambda m: self.instructions.append(m.data),
                                      latched_qos())

    def complete_sets(self, n_views=3):
        return [s for s, msgs in self.images.items() if len(msgs) == n_views and len(self.infos.get(s, [])) == n_views]


def stays_still(exs, count, still_s, timeout_s):
    """Spin until ``count()`` has not changed for ``still_s`` (True) or ``timeout_s`` has passed (False)."""
    deadline = time.monotonic() + timeout_s
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        spin_until(exs, lambda: False, 0.05)
        if count() != last:
            last, since = count(), time.monotonic()
        elif time.monotonic() - since >= still_s:
            return True
    return False


def start(ros_context_factory, overrides, **kwargs):
    args = ["--ros-args", "--params-file", "config/camera.yaml"]
    for k, v in overrides.items():
        args += ["-p", f"{k}:={v}"]
    node = create_node(context=ros_context_factory(), cli_args=args, **kwargs)
    listener = Listener(ros_context_factory(), views=tuple(node.source.camera_names))
    return node, listener, executors_for(node, listener.node)


def stop(node, listener, executors):
    for ex in executors:
        ex.shutdown()
    node.destroy_node()
    listener.node.destroy_node()


def test_realsense_source_with_software_devices(ros_context_factory):
    import pyrealsense2 as rs
    from test_ros_camera_sources import H, W, inject, software_camera

    cams = [software_camera(str(200 + i), fx=40.0 + i) for i in range(3)]
    node, lis, exs = start(ros_context_factory, {"source": "realsense", "width": W, "height": H},
                           realsense_devices=[c[0] for c in cams])
    try:
        rng = np.random.default_rng(1)
        frames = {}
        for k in range(1, 6):  # the test plays the camera hardware at ~20 Hz
            for v, (dev, sensor, prof) in enumerate(cams):
                frames[(v, k)] = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
                inject(sensor, prof, frames[(v, k)], number=k, t_ms=T_MS + 50 * k + v,
                       domain=rs.timestamp_domain.global_time)
            spin_until(exs, lambda: False, 0.05)
        assert spin_until(exs, lambda: len(lis.complete_sets()) >= 1, 5.0)
        stamp = lis.complete_sets()[-1]
        imgs, infos = dict(lis.images[stamp]), dict(lis.infos[stamp])
        received = {v: msg_to_image(imgs[v]) for v in VIEWS}
        ks = [k for k in range(1, 6) if all(np.array_equal(received[v], frames[(i, k)]) for i, v in enumerate(VIEWS))]
        assert len(ks) == 1  # all views of the set come from the same injected frame number
        # stamped with the capture time (the newest view's global-time timestamp), not the arrival time
        assert stamp == pytest.approx((T_MS + 50 * ks[0] + 2) * 1e6, abs=1000)
        for i, v in enumerate(VIEWS):
            assert np.reshape(infos[v].k, (3, 3))[0, 0] == 40.0 + i  # intrinsics from the device
            assert imgs[v].header.frame_id == infos[v].header.frame_id == f"{v}_optical_frame"
        assert lis.poses == []  # a real camera knows no arm pose
    finally:
        stop(node, lis, exs)


def test_replay_source(ros_context_factory, tmp_path):
    from _data_synthetic import synthetic_episode
    from action_images_ros.data.episode import write_episode

    ep = synthetic_episode(steps=4, size=32)
    write_episode(ep, tmp_path / "episode_000000.h5")
    node, lis, exs = start(ros_context_factory, {"source": "replay", "replay_file": str(tmp_path / "episode_000000.h5"),
                                                 "replay_loop": False})
    try:
        assert spin_until(exs, lambda: len(lis.complete_sets(len(ep.cameras))) == 4 and len(lis.poses) == 4, 10.0)
        for t, stamp in enumerate(sorted(lis.complete_sets(len(ep.cameras)))):
            got = dict(lis.images[stamp])
            for v, cam in enumerate(ep.cameras):
                np.testing.assert_array_equal(msg_to_image(got[cam.name]), ep.rgb[t, v])
        np.testing.assert_allclose(stamped_to_pose(lis.poses[2])[0], ep.ee_pose[2, :7])
        assert lis.joints[-1].name == ["fr3_finger_joint1", "fr3_finger_joint2"]
        assert spin_until(exs, lambda: lis.instructions, 5.0) and lis.instructions[0] == ep.instruction
    finally:
        stop(node, lis, exs)


def test_enabled_parameter_stops_and_resumes_publishing(ros_context_factory, tmp_path):
    from _data_synthetic import synthetic_episode
    from action_images_ros.data.episode import write_episode

    ep = synthetic_episode(steps=4, size=32)
    write_episode(ep, tmp_path / "episode_000000.h5")
    node, lis, exs = start(ros_context_factory, {"source": "replay", "replay_file": str(tmp_path / "episode_000000.h5"),
                                                 "rate_hz": 20.0})
    try:
        n_views = len(ep.cameras)
        assert spin_until(exs, lambda: len(lis.complete_sets(n_views)) >= 2, 10.0)
        assert node.set_parameters([Parameter("enabled", value=False)])[0].successful
        # dropout: nothing published (sets in flight as it flipped still arrive; a 20 Hz stream never stays still)
        assert stays_still(exs, lambda: len(lis.images), still_s=0.6, timeout_s=5.0), "still publishing"
        n = len(lis.images)
        assert node.set_parameters([Parameter("enabled", value=True)])[0].successful
        assert spin_until(exs, lambda: len(lis.images) > n + 2, 5.0)
        refused = node.set_parameters([Parameter("source", value="realsense")])[0]
        assert not refused.successful and "start-up only" in refused.reason
    finally:
        stop(node, lis, exs)


def test_bad_parameters_are_clear_errors(ros_context):
    with pytest.raises(ValueError, match="unknown camera source 'kinect'; valid sources: realsense, replay"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "source:=kinect"])
    with pytest.raises(ValueError, match="its own node now \\(sim_node"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "source:=sim"])
    with pytest.raises(ValueError, match="needs realsense_serials"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "source:=realsense"])
    with pytest.raises(ValueError, match="needs the parameter replay_file"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "source:=replay"])
