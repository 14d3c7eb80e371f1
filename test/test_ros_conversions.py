"""numpy <-> sensor_msgs/Image and Camera <-> CameraInfo conversions (no DDS)."""

import array

import numpy as np
import pytest

from action_images_ros.geometry import Camera, load_rig
from action_images_ros.ros.camera_info import (
    CameraInfoError, camera_name_from_frame, camera_to_info, info_to_camera, info_to_rig_camera,
)
from action_images_ros.ros.image_conversions import ImageConversionError, image_to_msg, msg_to_image
from action_images_ros.ros.stamps import ns_to_stamp, stamp_to_ns
from action_images_ros.ros.trajectory_conversion import trajectory_to_msg

RNG = np.random.default_rng(0)
RIG = "config/cameras_sim.yaml"


@pytest.mark.parametrize("encoding,dtype,shape", [
    ("rgb8", np.uint8, (5, 7, 3)),
    ("bgr8", np.uint8, (5, 7, 3)),
    ("mono8", np.uint8, (5, 7)),
    ("rgba8", np.uint8, (4, 3, 4)),
    ("mono16", np.uint16, (5, 7)),
    ("16UC1", np.uint16, (5, 7)),
    ("32FC1", np.float32, (5, 7)),
    ("64FC3", np.float64, (2, 3, 3)),
    ("16SC2", np.int16, (2, 3, 2)),
])
def test_round_trip_every_encoding(encoding, dtype, shape):
    if np.issubdtype(dtype, np.floating):
        img = RNG.normal(size=shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        img = RNG.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    msg = image_to_msg(img, encoding, frame_id="cam", stamp=ns_to_stamp(12_345_678_901))
    assert (msg.encoding, msg.height, msg.width, msg.header.frame_id) == (encoding, shape[0], shape[1], "cam")
    assert msg.step == shape[1] * (shape[2] if len(shape) == 3 else 1) * np.dtype(dtype).itemsize
    assert stamp_to_ns(msg.header.stamp) == 12_345_678_901
    out = msg_to_image(msg)
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_array_equal(out, img)


def test_default_encodings():
    assert image_to_msg(np.zeros((2, 2, 3), np.uint8)).encoding == "rgb8"
    assert image_to_msg(np.zeros((2, 2), np.uint8)).encoding == "mono8"
    assert image_to_msg(np.zeros((2, 2), np.float32)).encoding == "32FC1"
    assert image_to_msg(np.zeros((2, 2), np.uint16)).encoding == "16UC1"


def test_padded_rows_and_big_endian():
    depth = RNG.uniform(0.2, 2.0, size=(4, 5)).astype(np.float32)
    msg = image_to_msg(depth, "32FC1")
    pad = 12
    rows = np.frombuffer(depth.astype(">f4").tobytes(), np.uint8).reshape(4, 20)
    padded = np.concatenate([rows, np.full((4, pad), 0xAB, np.uint8)], axis=1)
    msg.is_bigendian = 1
    msg.step = 20 + pad
    msg.data = array.array("B", padded.tobytes())
    out = msg_to_image(msg)
    np.testing.assert_array_equal(out, depth)
    assert out.dtype.isnative

    rgb = RNG.integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
    padded = np.concatenate([rgb.reshape(3, 15), np.zeros((3, 1), np.uint8)], axis=1)
    msg = image_to_msg(rgb)
    msg.step, msg.data = 16, array.array("B", padded.tobytes())
    np.testing.assert_array_equal(msg_to_image(msg), rgb)


def test_result_does_not_alias_message():
    img = np.zeros((2, 2, 3), np.uint8)
    msg = image_to_msg(img)
    out = msg_to_image(msg)
    out[:] = 7
    assert max(msg.data) == 0


def test_colour_conversions():
    rgb = RNG.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    msg = image_to_msg(rgb, "rgb8")
    np.testing.assert_array_equal(msg_to_image(msg, "bgr8"), rgb[..., ::-1])
    np.testing.assert_array_equal(msg_to_image(image_to_msg(np.ascontiguousarray(rgb[..., ::-1]), "bgr8"), "rgb8"), rgb)
    assert msg_to_image(msg, "mono8").shape == (3, 4)
    with pytest.raises(ImageConversionError, match="cannot convert 'rgb8' to '32FC1'"):
        msg_to_image(msg, "32FC1")


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ImageConversionError, match="unsupported image encoding 'yuv422'"):
        image_to_msg(np.zeros((2, 2, 2), np.uint8), "yuv422")
    with pytest.raises(ImageConversionError, match="needs 3 channel"):
        image_to_msg(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ImageConversionError, match="needs dtype float32"):
        image_to_msg(np.zeros((2, 2), np.float64), "32FC1")
    with pytest.raises(ImageConversionError, match="shape"):
        image_to_msg(np.zeros((2,), np.uint8))
    assert issubclass(ImageConversionError, ValueError)

    msg = image_to_msg(np.zeros((4, 4, 3), np.uint8))
    msg.width = 5  # data no longer matches the size
    with pytest.raises(ImageConversionError, match="smaller than one row"):
        msg_to_image(msg)
    msg = image_to_msg(np.zeros((4, 4, 3), np.uint8))
    msg.height = 5
    with pytest.raises(ImageConversionError, match="data has 48 bytes"):
        msg_to_image(msg)
    msg = image_to_msg(np.zeros((4, 4, 3), np.uint8))
    msg.encoding = "bayer_rggb8"
    with pytest.raises(ImageConversionError, match="unsupported"):
        msg_to_image(msg)


def test_camera_info_round_trip_with_rig_extrinsics():
    rig = load_rig(RIG)
    for cam in rig:
        cam = cam.scaled(640, 480)
        msg = camera_to_info(cam, stamp=ns_to_stamp(5))
        assert msg.header.frame_id == f"{cam.name}_optical_frame"
        assert (msg.width, msg.height, msg.distortion_model) == (640, 480, "plumb_bob")
        assert list(msg.d) == [0.0] * 5
        np.testing.assert_array_equal(np.reshape(msg.p, (3, 4))[:, :3], cam.K)
        np.testing.assert_array_equal(np.reshape(msg.r, (3, 3)), np.eye(3))
        back = info_to_rig_camera(msg, rig)
        assert back.name == cam.name
        np.testing.assert_array_equal(back.K, cam.K)
        np.testing.assert_array_equal(back.T_world_cam, cam.T_world_cam)
        assert (back.width, back.height) == (640, 480)


def test_camera_info_errors():
    rig = load_rig(RIG)
    cam = rig[0]
    msg = camera_to_info(cam)
    msg.d = [0.1, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(CameraInfoError, match="distortion"):
        info_to_camera(msg, cam.T_world_cam)
    msg = camera_to_info(cam, frame_id="wrist_optical_frame")
    with pytest.raises(CameraInfoError, match="'wrist'.*not in the rig"):
        info_to_rig_camera(msg, rig)
    other = Camera(K=cam.K * np.array([[1.1], [1.1], [1.0]]), T_world_cam=cam.T_world_cam,
                   width=cam.width, height=cam.height, name=cam.name)
    with pytest.raises(CameraInfoError, match="differs from the rig"):
        info_to_rig_camera(camera_to_info(other), rig)
    with pytest.raises(CameraInfoError, match="rotation"):
        info_to_camera(camera_to_info(cam), np.diag([1.0, 1.0, -1.0, 1.0]))
    assert camera_name_from_frame("front_optical_frame") == "front"
    assert camera_name_from_frame("front") == "front"
    for index in (0, 4, 2):  # fx, fy, cx NaN: refused here with the reason, not deep in the geometry
        msg = camera_to_info(cam)
        k = list(msg.k)
        k[index] = float("nan")
        msg.k = k
        with pytest.raises(CameraInfoError, match="non-finite"):
            info_to_camera(msg, cam.T_world_cam)
    with pytest.raises(ValueError, match="finite"):
        Camera(K=np.where(np.eye(3) > 0, np.nan, 0.0), T_world_cam=cam.T_world_cam, width=8, height=8)


def test_frame_border_checks():
    from sensor_msgs.msg import Image

    from action_images_ros.ros.frame_checks import MAX_IMAGE_PIXELS, frame_problem

    cam = load_rig(RIG)[0]
    assert frame_problem(camera_to_info(cam)) is None
    assert frame_problem(image_to_msg(np.zeros((8, 8, 3), np.uint8), "rgb8")) is None
    info = camera_to_info(cam)
    info.p = [float("inf")] + list(info.p)[1:]
    assert "non-finite" in frame_problem(info)
    big = Image(width=4000, height=4000, encoding="rgb8", step=12000)  # checked before the data is looked at
    assert "more than" in frame_problem(big) and 4000 * 4000 > MAX_IMAGE_PIXELS
    odd = image_to_msg(np.zeros((8, 8, 3), np.uint8), "rgb8")
    odd.encoding = "yuv_unknown"
    assert "encoding" in frame_problem(odd)
    short = image_to_msg(np.zeros((8, 8, 3), np.uint8), "rgb8")
    short.data = bytes(10)
    assert "bytes" in frame_problem(short)


def test_trajectory_messages_are_bounded_before_they_are_read():
    from action_images_ros.ros.trajectory_conversion import MAX_POINTS, TrajectoryMessageError, msg_to_trajectory

    n = MAX_POINTS + 1
    poses = np.tile([0.5, 0.0, 0.3, 0.0, 0.0, 0.0, 1.0, 1.0], (n, 1))
    msg = trajectory_to_msg(poses, np.ones(n), 0.1 * np.arange(n), 1, "base_link", "tcp")
    with pytest.raises(TrajectoryMessageError, match="max_points"):
        msg_to_trajectory(msg)
    assert len(msg_to_trajectory(msg, max_points=n)) == n


def test_stamps():
    assert stamp_to_ns(ns_to_stamp(1_700_000_000_123_456_789)) == 1_700_000_000_123_456_789
    with pytest.raises(ValueError):
        ns_to_stamp(-1)
    assert ns_to_stamp((2**31 - 1) * 1_000_000_000).sec == 2**31 - 1
    with pytest.raises(ValueError, match="int32"):  # 2038: refused, not wrapped
        ns_to_stamp(2**31 * 1_000_000_000)


def test_request_ids_ride_as_a_fourth_joint_also_on_an_empty_answer():
    from action_images_ros.ros.trajectory_conversion import (TrajectoryMessageError, msg_to_chunk, msg_to_trajectory,
                                                              new_request_id, request_id_of)

    rid = new_request_id()
    assert len(rid) == 16 and int(rid, 16) >= 0 and rid != new_request_id()
    poses = np.tile([0.5, 0.0, 0.3, 0.0, 0.0, 0.0, 1.0, 1.0], (3, 1))
    msg = trajectory_to_msg(poses, np.ones(3), 0.1 * np.arange(3), 7, "base_link", "tcp", request_id=rid)
    assert list(msg.joint_names) == ["tcp", "gripper_openness", "decoder_confidence", f"request/{rid}"]
    assert all(len(p.transforms) == 4 for p in msg.points)
    traj = msg_to_trajectory(msg)
    assert traj.request_id == rid and request_id_of(msg) == rid
    np.testing.assert_array_equal(traj.poses, poses)  # the extra joint changes nothing else
    chunk, _ = msg_to_chunk(msg)
    np.testing.assert_array_equal(chunk.start_pose, poses[0])
    empty = trajectory_to_msg(np.zeros((0, 8)), [], [], 7, "base_link", "tcp", request_id=rid)
    assert msg_to_trajectory(empty).request_id == rid and len(msg_to_trajectory(empty)) == 0
    plain = trajectory_to_msg(poses, np.ones(3), 0.1 * np.arange(3), 7, "base_link", "tcp")
    assert msg_to_trajectory(plain).request_id == "" and request_id_of(plain) == ""
    bad = trajectory_to_msg(poses, np.ones(3), 0.1 * np.arange(3), 7, "base_link", "tcp", request_id=rid)
    bad.joint_names[3] = "request/has spaces;"
    with pytest.raises(TrajectoryMessageError, match="request id"):
        msg_to_trajectory(bad)
    bad.joint_names[3] = "something_else"
    with pytest.raises(TrajectoryMessageError, match="joint_names"):
        msg_to_trajectory(bad)
    short = trajectory_to_msg(poses, np.ones(3), 0.1 * np.arange(3), 7, "base_link", "tcp", request_id=rid)
    short.points[1].transforms = short.points[1].transforms[:3]
    with pytest.raises(TrajectoryMessageError, match="one per joint"):
        msg_to_trajectory(short)
