"""Camera conventions of the simulated cell, checked against the renderer itself.

* the exact cameras equal MuJoCo's camera poses (OpenCV <-> MuJoCo axes),
* the TCP projects onto the rendered gripper (segmentation) in every view,
* depth back-projects onto the known table plane and cube surfaces.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from action_images_ros.geometry import Camera, save_rig
from action_images_ros.sim import make_env
from action_images_ros.sim.cameras import camera_from_mujoco, cameras_for_image, fovy_deg
from action_images_ros.sim.tasks.pick_cube import HALF


@pytest.fixture(scope="module")
def env():
    e = make_env("pick_cube", image_size=128, seed=0)
    yield e
    e.close()


def _gripper_mask(env, seg):
    ids = np.array(sorted(env.task.gripper_geoms))
    return np.isin(seg, ids)


def test_cameras_match_mujoco(env):
    env.reset(seed=1)
    m, d = env.model, env.data
    for cam in env.cameras:
        cid = m.camera(cam.name).id
        ref = camera_from_mujoco(d.cam_xpos[cid], d.cam_xmat[cid], m.cam_fovy[cid], cam.width, cam.height, cam.name)
        np.testing.assert_allclose(cam.K, ref.K, atol=1e-9)
        np.testing.assert_allclose(cam.T_world_cam, ref.T_world_cam, atol=1e-6)
        # Looking at the workspace: its centre is in front of every camera and inside the image.
        uv, depth, in_front = cam.project(np.array([0.55, 0.0, 0.2]))
        assert in_front and cam.in_image(uv, margin=10)


@pytest.mark.parametrize("gripper", [0.0, 1.0])
def test_tcp_projects_onto_rendered_gripper(env, gripper):
    obs = env.reset(seed=2)
    targets = [obs.ee_pose[:3], np.array([0.6, 0.15, 0.12]), np.array([0.45, -0.2, 0.25])]
    for target in targets:
        action = np.concatenate([target, obs.ee_pose[3:7], [gripper]])
        for _ in range(8):
            obs, info = env.step(action)
        assert not info["clamped"]
        seg = env.segmentation()
        mask = _gripper_mask(env, seg)
        for v, cam in enumerate(env.cameras):
            uv, _, in_front = cam.project(obs.ee_pose[:3])
            assert in_front and cam.in_image(uv)
            ys, xs = np.nonzero(mask[v])
            assert len(xs) > 20, f"gripper barely visible in {cam.name}"
            dist = np.min(np.hypot(xs - uv[0], ys - uv[1]))
            if gripper == 0.0:  # closed: the fingertips cover the TCP
                assert dist <= 1.5, f"{cam.name}: TCP {uv} is {dist:.1f} px from the closed gripper"
            else:  # open: the TCP lies between the fingers, inside the gripper's silhouette box
                assert xs.min() - 1 <= uv[0] <= xs.max() + 1 and ys.min() - 1 <= uv[1] <= ys.max() + 1, cam.name
                assert dist <= 6.0


def test_depth_backprojects_onto_table_and_cube(env):
    obs = env.reset(seed=3)
    assert obs.depth is not None and obs.depth.shape == obs.images.shape[:3] and obs.depth.dtype == np.float32
    seg = env.segmentation()
    table, cube = env.model.geom("table").id, env.model.geom("cube").id
    cube_body = env.model.geom_bodyid[cube]
    c_pos = env.data.xpos[cube_body]
    c_rot = env.data.xmat[cube_body].reshape(3, 3)
    for v, cam in enumerate(env.cameras):
        for gid in (table, cube):
            ys, xs = np.nonzero(seg[v] == gid)
            assert len(xs) > 10, f"geom {gid} not visible in {cam.name}"
            # Skip silhouette pixels: depth there may belong to the neighbour.
            inner = [(x, y) for x, y in zip(xs, ys)
                     if np.all(seg[v, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] == gid)]
            uv = np.array(inner, dtype=np.float64)
            pts = cam.backproject(uv, obs.depth[v, uv[:, 1].astype(int), uv[:, 0].astype(int)])
            if gid == table:
                np.testing.assert_allclose(pts[:, 2], 0.0, atol=2e-3)  # table top is z = 0
            else:
                local = (pts - c_pos) @ c_rot  # cube frame
                assert np.all(np.abs(local) <= HALF + 1.5e-3)
                on_face = np.abs(np.abs(local).max(axis=1) - HALF) < 1.5e-3
                assert on_face.mean() > 0.95


def test_other_image_sizes_scale_the_rig(tmp_path):
    env = make_env("reach_target", image_size=(96, 160), render_depth=False)
    try:
        obs = env.reset(seed=0)
        assert obs.images.shape == (3, 96, 160, 3) and obs.depth is None
        for cam in env.cameras:
            assert (cam.width, cam.height) == (160, 96)
            assert cam.K[0, 0] == pytest.approx(cam.K[1, 1])
            assert cam.K[0, 2] == pytest.approx(79.5) and cam.K[1, 2] == pytest.approx(47.5)
        seg = env.segmentation()
        mask = _gripper_mask(env, seg)
        for v, cam in enumerate(env.cameras):
            uv, _, _ = cam.project(obs.ee_pose[:3])
            ys, xs = np.nonzero(mask[v])
            assert xs.min() - 1 <= uv[0] <= xs.max() + 1 and ys.min() - 1 <= uv[1] <= ys.max() + 1
    finally:
        env.close()


def test_same_aspect_equals_scaled_rig(env):
    rig = [Camera.look_at((1.4, 0.1, 0.8), (0.5, 0, 0.1), 50.0, 640, 640, name="a")]
    (cam,) = cameras_for_image(rig, 128, 128)
    np.testing.assert_allclose(cam.K, rig[0].scaled(128, 128).K, atol=1e-9)
    assert fovy_deg(cam) == pytest.approx(50.0)


def test_unrenderable_rig_is_rejected(tmp_path):
    K = np.array([[300.0, 0, 100.0], [0, 300.0, 120.0], [0, 0, 1]])  # off-centre principal point
    cam = Camera(K, np.eye(4), 320, 240, name="odd")
    save_rig(tmp_path / "rig.yaml", [cam])
    with pytest.raises(ValueError, match="principal point"):
        make_env("reach_target", rig_path=tmp_path / "rig.yaml")


@pytest.mark.parametrize("task", ["reach_target", "pick_cube", "place_cube", "stack_cubes"])
def test_task_objects_visible_in_every_view_at_reset(task):
    e = make_env(task, image_size=128, render_depth=False)
    try:
        for seed in range(6):
            e.reset(seed=seed)
            seg = e.segmentation()
            for _, body in e.task.must_be_visible(e.model, e.data):
                geoms = np.nonzero(e.model.geom_bodyid == body)[0]
                pixels = np.isin(seg, geoms).sum(axis=(1, 2))
                assert np.all(pixels >= 8), f"{task} seed {seed}: body {body} pixels per view {pixels}"
    finally:
        e.close()
