"""Image and CameraInfo conversions round-tripped through a real publisher and subscriber over DDS."""

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from _ros_fakes import matched
from action_images_ros.geometry import load_rig
from action_images_ros.ros.camera_info import camera_to_info, info_to_rig_camera
from action_images_ros.ros.image_conversions import image_to_msg, msg_to_image
from action_images_ros.ros.spin import executors_for, spin_until
from action_images_ros.ros.stamps import ns_to_stamp, stamp_to_ns

pytestmark = pytest.mark.ros


def test_image_and_camera_info_over_dds(ros_context_factory):
    import rclpy

    pub_ctx, sub_ctx = ros_context_factory(), ros_context_factory()  # two DDS participants
    pub_node = rclpy.create_node("test_camera_pub", context=pub_ctx)
    sub_node = rclpy.create_node("test_camera_sub", context=sub_ctx)
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    img_pub = pub_node.create_publisher(Image, "front/image_raw", qos)
    info_pub = pub_node.create_publisher(CameraInfo, "front/camera_info", qos)
    got_img, got_info = [], []
    sub_node.create_subscription(Image, "front/image_raw", got_img.append, qos)
    sub_node.create_subscription(CameraInfo, "front/camera_info", got_info.append, qos)
    executors = executors_for(pub_node, sub_node)

    rig = load_rig("config/cameras_sim.yaml")
    cam = rig[0].scaled(640, 480)
    rgb = np.random.default_rng(3).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    stamp = ns_to_stamp(1_700_000_000_000_000_123)
    assert spin_until(executors, lambda: matched(pub_node, sub_node), timeout_s=10.0), "discovery timed out"
    img_pub.publish(image_to_msg(rgb, "rgb8", frame_id="front_optical_frame", stamp=stamp))
    info_pub.publish(camera_to_info(cam, stamp=stamp))
    assert spin_until(executors, lambda: got_img and got_info, timeout_s=10.0), "messages did not arrive"

    out = msg_to_image(got_img[0])
    assert out.dtype == np.uint8 and out.shape == (480, 640, 3)
    np.testing.assert_array_equal(out, rgb)
    assert stamp_to_ns(got_img[0].header.stamp) == 1_700_000_000_000_000_123
    back = info_to_rig_camera(got_info[0], rig)
    assert back.name == cam.name and (back.width, back.height) == (640, 480)
    np.testing.assert_array_equal(back.K, cam.K)
    np.testing.assert_array_equal(back.T_world_cam, cam.T_world_cam)
    for ex in executors:
        ex.shutdown()
    pub_node.destroy_node()
    sub_node.destroy_node()
