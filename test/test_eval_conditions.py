"""Robustness conditions of the simulated cell: moved cameras, light, colours, a wrong calibration."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from action_images_ros.eval.conditions import CONDITIONS, episode_rigs, get_condition, perturb_rig
from action_images_ros.sim import make_env
from action_images_ros.sim.scene import SceneConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env():
    e = make_env("pick_cube", image_size=96)
    yield e
    e.close()


def _angle_deg(a, b):
    return np.degrees(Rotation.from_matrix(a[:3, :3].T @ b[:3, :3]).magnitude())


def test_perturbed_rig_moves_and_turns_every_camera_by_exactly_the_size(env):
    base = env.cameras
    moved = perturb_rig(base, 0.04, 5.0, np.random.default_rng(3))
    for a, b in zip(base, moved):
        assert np.linalg.norm(b.T_world_cam[:3, 3] - a.T_world_cam[:3, 3]) == pytest.approx(0.04)
        assert _angle_deg(a.T_world_cam, b.T_world_cam) == pytest.approx(5.0)
        np.testing.assert_array_equal(a.K, b.K)
        np.testing.assert_allclose(b.T_world_cam[:3, :3].T @ b.T_world_cam[:3, :3], np.eye(3), atol=1e-12)


def test_episode_rigs_are_seeded_per_condition_and_episode(env):
    base = env.cameras
    small = get_condition("viewpoint_small")
    r1, g1 = episode_rigs(small, base, 100)
    r2, _ = episode_rigs(small, base, 100)
    r3, _ = episode_rigs(small, base, 101)
    assert all(np.array_equal(a.T_world_cam, b.T_world_cam) for a, b in zip(r1, r2))  # reproducible
    assert not np.allclose(r1[0].T_world_cam, r3[0].T_world_cam)  # another episode, another rig
    assert g1 is r1  # the policy is told the moved rig
    rendered, given = episode_rigs(get_condition("calibration_error"), base, 100)
    for b, r, g in zip(base, rendered, given):
        np.testing.assert_array_equal(r.T_world_cam, b.T_world_cam)  # cameras where they were
        assert np.linalg.norm(g.T_world_cam[:3, 3] - r.T_world_cam[:3, 3]) == pytest.approx(0.003)
        assert _angle_deg(g.T_world_cam, r.T_world_cam) == pytest.approx(0.3)
    same, told = episode_rigs(get_condition("in_domain"), base, 100)
    assert all(np.array_equal(a.T_world_cam, b.T_world_cam) for a, b in zip(base, same)) and told is same
    with pytest.raises(ValueError, match="unknown condition 'fog'"):
        get_condition("fog")


def test_moved_cameras_render_from_their_new_pose(env):
    """The cube's centre, projected with the moved camera, lands on red pixels of the moved render."""
    rendered, _ = episode_rigs(get_condition("viewpoint_large"), env.cameras, 7)
    env.move_cameras(rendered)
    try:
        obs = env.reset(5)
        cube = env.task_state()["objects"]["object"]
        for cam, img in zip(env.cameras, obs.images):
            u, v = np.round(cam.project(cube[None])[0][0]).astype(int)
            r, g, b = img[v, u].astype(float)
            assert r > 120 and g < 80 and b < 80, (cam.name, img[v, u])
        assert [c.name for c in env.cameras] == [c.name for c in rendered]
        with pytest.raises(ValueError, match="in this order"):
            env.move_cameras(rendered[::-1])
    finally:
        env.move_cameras(make_env("pick_cube", image_size=96).cameras)


def test_lighting_and_table_colour_change_the_images():
    def first_frame(**scene):
        e = make_env("pick_cube", image_size=64, scene=SceneConfig(**scene))
        try:
            return e.reset(3).images.astype(float), e.cameras
        finally:
            e.close()

    base, cams = first_frame()
    dark, _ = first_frame(**CONDITIONS["lighting"].scene)
    assert dark.mean() < 0.75 * base.mean()
    blue, _ = first_frame(**CONDITIONS["table_colour"].scene)
    u, v = np.round(cams[0].project(np.array([[0.75, 0.3, 0.0]]))[0][0]).astype(int)  # a bare table point
    assert base[0, v, u, 0] > base[0, v, u, 2] and blue[0, v, u, 2] > blue[0, v, u, 0]
    with pytest.raises(ValueError, match="light_scale"):
        SceneConfig(light_scale=0.0)


def test_eval_runs_a_condition_and_a_rig_file(tmp_path):
    from action_images_ros.cli import main

    def run(name, *extra):
        out = tmp_path / name
        assert main(["eval", "--model", str(REPO / "models" / "tiny"), "--task", "reach_target", "--episodes", "1",
                     "--seed-offset", "100000", "--no-videos", "--threads", "1", "--out", str(out), *extra]) == 0
        return json.loads((out / "results.json").read_text())

    base = run("base")
    assert base["condition"] == "in_domain" and base["failure_modes"] is not None
    assert base["runtime"] == base["runtime_in_use"] == "eager"  # models/tiny's policy_config.runtime
    onnx = run("onnx", "--runtime", "onnxruntime")  # what ran is recorded, beside what was asked for
    assert onnx["runtime"] == onnx["runtime_in_use"] == "onnxruntime" and len(onnx["per_episode"]) == 1
    same = run("rig", "--rig", str(REPO / "config" / "cameras_sim.yaml"))
    assert same["per_episode"] == base["per_episode"]  # the default rig file is the default cell
    moved = run("moved", "--condition", "viewpoint_large")
    assert moved["condition"] == "viewpoint_large" and moved["per_episode"] != base["per_episode"]
    assert main(["eval", "--model", str(REPO / "models" / "tiny"), "--task", "reach_target", "--episodes", "1",
                 "--rig", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "x")]) == 2
