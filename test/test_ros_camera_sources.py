"""camera_node's ROS-free frame sources: RealSense (software devices, capture times), replay."""

import numpy as np
import pytest

from action_images_ros.geometry import load_rig
from action_images_ros.ros.camera_sources import (
    RealSenseSource, RealSenseUnavailable, ReplaySource, camera_from_intrinsics, find_realsense_devices,
)

rs = pytest.importorskip("pyrealsense2")

RIG = load_rig("config/cameras_sim.yaml")
W, H = 64, 48


def software_camera(serial, fx=50.0, coeffs=(0, 0, 0, 0, 0), model=None, fmt=None, size=(W, H)):
    """A RealSense colour camera without hardware: returns (device, sensor, profile) to inject frames."""
    dev = rs.software_device()
    dev.register_info(rs.camera_info.serial_number, serial)
    sensor = dev.add_sensor("RGB Camera")
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = rs.stream.color, 0, int(serial)
    vs.width, vs.height, vs.fps, vs.bpp = size[0], size[1], 30, 3
    vs.fmt = fmt or rs.format.rgb8
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = size[0], size[1], fx, fx + 1, 31.5, 23.5
    intr.model = model or rs.distortion.none
    intr.coeffs = list(coeffs)
    vs.intrinsics = intr
    profile = sensor.add_video_stream(vs)
    return dev, sensor, profile.as_video_stream_profile()


def inject(sensor, profile, image, number, t_ms, domain=None):
    f = rs.software_video_frame()
    f.pixels, f.bpp, f.stride = image, 3, image.shape[1] * 3
    f.timestamp, f.frame_number, f.profile = t_ms, number, profile
    f.domain = rs.timestamp_domain.system_time if domain is None else domain
    sensor.on_video_frame(f)


def test_realsense_source_reads_one_newest_frame_per_camera():
    cams = [software_camera(str(100 + i), fx=50.0 + i) for i in range(3)]
    src = RealSenseSource([c[0] for c in cams], RIG, width=W, height=H, fps=30)
    try:
        assert src.camera_names == ["front", "left_shoulder", "right_shoulder"]
        for i, cam in enumerate(src.cameras):  # intrinsics from the device, extrinsics from the rig
            assert (cam.width, cam.height) == (W, H) and cam.K[0, 0] == 50.0 + i and cam.K[1, 1] == 51.0 + i
            np.testing.assert_array_equal(cam.T_world_cam, RIG[i].T_world_cam)
        rng = np.random.default_rng(0)
        frames = [[rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(2)] for _ in cams]
        for k in range(2):  # two frames per camera before reading: the newest one is taken
            for (dev, sensor, prof), imgs in zip(cams, frames):
                inject(sensor, prof, imgs[k], number=k + 1, t_ms=1000.0 + 33 * k)
        fs = src.read(timeout_s=2.0)
        assert fs is not None and len(fs.images) == 3
        for img, imgs in zip(fs.images, frames):
            np.testing.assert_array_equal(img, imgs[1])
        assert fs.source_time_s == pytest.approx(1.033)
        assert fs.time_domain == "system_time" and fs.stamp_s == pytest.approx(1.033)  # host clock: capture time
        assert src.read(timeout_s=0.1) is None  # nothing new: no set (the old frames are not re-sent)
    finally:
        src.close()


@pytest.mark.parametrize("domains, host_clock", [
    (("global_time", "global_time"), True),
    (("hardware_clock", "hardware_clock"), False),
    (("global_time", "hardware_clock"), False),  # one device clock spoils the set's stamp
])
def test_realsense_capture_time_only_from_host_clock_domains(domains, host_clock):
    cams = [software_camera(str(300 + i)) for i in range(2)]
    src = RealSenseSource([c[0] for c in cams], RIG, width=W, height=H, fps=30)
    try:
        t_ms = 1_760_000_000_000.0  # ms since the Unix epoch, as librealsense's global time
        for i, ((dev, sensor, prof), domain) in enumerate(zip(cams, domains)):
            inject(sensor, prof, np.zeros((H, W, 3), np.uint8), number=1, t_ms=t_ms + 2 * i,
                   domain=getattr(rs.timestamp_domain, domain))
        fs = src.read(timeout_s=2.0)
        assert fs is not None and fs.info["device_spread_ms"] == pytest.approx(2.0)
        if host_clock:
            assert fs.time_domain == "global_time" and fs.stamp_s == pytest.approx(1_760_000_000.002, abs=1e-6)
        else:
            assert fs.time_domain == "hardware_clock" and fs.stamp_s is None
    finally:
        src.close()


def test_realsense_source_errors_name_what_is_missing():
    dev, _, _ = software_camera("7", size=(32, 24))
    with pytest.raises(RealSenseUnavailable, match=r"no rgb8 colour stream 64x48@30; available: \['32x24@30"):
        RealSenseSource([dev], RIG, width=W, height=H, fps=30)
    with pytest.raises(ValueError, match="not in the rig"):
        RealSenseSource([software_camera("8")[0]], RIG, names=["top"], width=W, height=H)
    with pytest.raises(RealSenseUnavailable, match=r"\['999'\] not connected; connected: none"):
        find_realsense_devices(["999"])


def test_distorted_intrinsics_are_rectified_or_refused():
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = W, H, 50.0, 50.0, 31.5, 23.5
    intr.model, intr.coeffs = rs.distortion.brown_conrady, [0.1, -0.05, 0.0, 0.0, 0.0]
    cam, maps = camera_from_intrinsics(intr, np.eye(4), "front")
    assert maps is not None and cam.K[0, 2] == 31.5
    intr.model = rs.distortion.ftheta
    with pytest.raises(RealSenseUnavailable, match="cannot be rectified"):
        camera_from_intrinsics(intr, np.eye(4), "front")
    intr.coeffs = [0.0] * 5
    assert camera_from_intrinsics(intr, np.eye(4), "front")[1] is None


def test_replay_source_plays_rows_and_loops(tmp_path):
    from _data_synthetic import synthetic_episode
    from action_images_ros.data.episode import write_episode

    ep = synthetic_episode(steps=3, size=32)
    path = tmp_path / "episode_000000.h5"
    write_episode(ep, path)
    src = ReplaySource(path, loop=False)
    assert src.period_s == pytest.approx(0.05) and src.camera_names == ep.camera_names
    rows = [src.read() for _ in range(4)]
    assert rows[3] is None
    for t in range(3):
        np.testing.assert_array_equal(np.stack(rows[t].images), ep.rgb[t])
        np.testing.assert_allclose(rows[t].ee_pose, ep.ee_pose[t])
    looped = ReplaySource(path, loop=True)
    assert [looped.read().info["row"] for _ in range(4)] == [0, 1, 2, 0]
    with pytest.raises(FileNotFoundError, match="episode file not found"):
        ReplaySource(tmp_path / "nope.h5")
