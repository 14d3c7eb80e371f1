"""Mesh decimation and model assembly of the simulated cell."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
import pytest

from action_images_ros.geometry import Camera
from action_images_ros.sim.assets import decimate_mesh, robosuite_assets_dir
from action_images_ros.sim.cameras import mujoco_camera_pose
from action_images_ros.sim.scene import FINGER_JOINTS, READY_Q, TCP_SITE, SceneConfig, build_model


def _uv_sphere(n=60, r=0.1):
    th, ph = np.meshgrid(np.linspace(0, np.pi, n), np.linspace(0, 2 * np.pi, 2 * n, endpoint=False), indexing="ij")
    v = np.stack([r * np.sin(th) * np.cos(ph), r * np.sin(th) * np.sin(ph), r * np.cos(th)], -1).reshape(-1, 3)
    idx = np.arange(n * 2 * n).reshape(n, 2 * n)
    a, b = idx[:-1], np.roll(idx, -1, axis=1)[:-1]
    c, d = idx[1:], np.roll(idx, -1, axis=1)[1:]
    f = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)])
    return v, f


def test_decimate_keeps_shape_with_fewer_faces():
    v, f = _uv_sphere()
    v2, f2 = decimate_mesh(v, f, cell=0.02)
    assert 50 < len(f2) < len(f) / 5
    assert f2.min() >= 0 and f2.max() < len(v2)
    r = np.linalg.norm(v2, axis=1)
    assert np.all(np.abs(r - 0.1) < 0.02)  # merged vertices stay near the surface
    with pytest.raises(ValueError):
        decimate_mesh(v, f, cell=0.0)


def test_model_tcp_frame_and_camera_pose():
    assert (robosuite_assets_dir() / "robots/panda/robot.xml").is_file()
    cam = Camera.look_at((1.2, 0.3, 0.9), (0.5, 0.0, 0.1), 45.0, 64, 64, name="c")
    model = build_model([cam], SceneConfig())
    data = mujoco.MjData(model)
    for i, q in enumerate(READY_Q):
        data.qpos[model.joint(f"joint{i + 1}").qposadr[0]] = q
    mujoco.mj_forward(model, data)
    # TCP frame at the ready posture: x forward, y to the right, z down (quaternion [1, 0, 0, 0]).
    R = data.site_xmat[model.site(TCP_SITE).id].reshape(3, 3)
    np.testing.assert_allclose(R, np.diag([1.0, -1.0, -1.0]), atol=2e-3)
    # Tool y is the finger sliding axis.
    axis = data.xaxis[model.joint(FINGER_JOINTS[0]).id]
    assert abs(abs(axis @ R[:, 1]) - 1.0) < 1e-6
    pos, quat = mujoco_camera_pose(cam)
    np.testing.assert_allclose(data.cam_xpos[model.camera("c").id], pos, atol=1e-9)
    np.testing.assert_allclose(model.cam_quat[model.camera("c").id], quat, atol=1e-6)
