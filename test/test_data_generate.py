"""`action-images generate` / `show-episode` on the real simulation, and the recorded episode's contents."""

import numpy as np
import pytest

from action_images_ros.cli import main
from action_images_ros.data import list_episodes, load_episode
from action_images_ros.data.clips import ActionClipDataset, ClipConfig
from action_images_ros.data.record import GenerateConfig, record_episode
from action_images_ros.sim import TASK_NAMES, make_env


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    rc = main(["generate", "--task", "reach_target", "--episodes", "1", "--seed", "3", "--out", str(out),
               "--image-size", "64", "--no-progress"])
    assert rc == 0
    return out


def test_generate_writes_a_complete_episode(generated):
    paths = list_episodes(generated)
    assert [p.name for p in paths] == ["episode_000003.h5"]
    ep = load_episode(paths[0])
    assert ep.task == "reach_target" and ep.seed == 3 and ep.success and ep.instruction
    assert ep.rgb.shape[1:] == (len(ep.cameras), 64, 64, 3) and ep.num_steps >= 5
    assert all((c.width, c.height) == (64, 64) for c in ep.cameras) and ep.depth is None
    np.testing.assert_allclose(np.diff(ep.time), ep.control_dt, atol=1e-6)
    # Row t+1 is the result of command t: the controller tracks it to a few millimetres.
    err_mm = 1000 * np.linalg.norm(ep.ee_pose[1:, :3] - ep.action[:-1, :3], axis=1)
    assert np.median(err_mm) < 5.0
    np.testing.assert_array_equal(ep.action[-1], ep.action[-2])  # terminal row repeats the final command
    # The same seed recorded again gives the same episode.
    env = make_env("reach_target", image_size=64, render_depth=False)
    try:
        again = record_episode(env, 3)
    finally:
        env.close()
    np.testing.assert_array_equal(again.ee_pose, ep.ee_pose)
    np.testing.assert_array_equal(again.rgb, ep.rgb)
    # Clips come out of real episodes.
    item = ActionClipDataset(generated, ClipConfig(image_size=32))[0]
    assert item["future_rgb"].shape == (len(ep.cameras), 4, 3, 32, 32)


def test_generate_resumes_and_refuses_another_task(generated, capsys):
    assert main(["generate", "--task", "reach_target", "--episodes", "1", "--seed", "3", "--out", str(generated),
                 "--image-size", "64", "--no-progress"]) == 0
    assert "1 already on disk" in capsys.readouterr().out
    other = next(t for t in TASK_NAMES if t != "reach_target")
    assert main(["generate", "--task", other, "--episodes", "1", "--seed", "3", "--out", str(generated),
                 "--image-size", "64", "--no-progress"]) == 2
    assert "already holds task 'reach_target' seed 3" in capsys.readouterr().err


def test_unknown_task_lists_valid_names(tmp_path, capsys):
    assert main(["generate", "--task", "make_coffee", "--episodes", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'make_coffee'" in err
    for name in TASK_NAMES:
        assert name in err
    assert not any(tmp_path.iterdir())


def test_generate_config_validation(tmp_path):
    with pytest.raises(ValueError, match="num_episodes"):
        GenerateConfig(task="reach_target", num_episodes=0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="compression"):
        GenerateConfig(task="reach_target", num_episodes=1, out_dir=tmp_path, compression="zip")
    with pytest.raises(FileNotFoundError):
        GenerateConfig(task="reach_target", num_episodes=1, out_dir=tmp_path, rig_path=tmp_path / "none.yaml")
    with pytest.raises(ValueError, match="camera_jitter_deg"):
        GenerateConfig(task="reach_target", num_episodes=1, out_dir=tmp_path, camera_jitter_deg=-1.0)


def test_show_episode_writes_video(generated, tmp_path, capsys):
    import imageio.v2 as imageio

    path = list_episodes(generated)[0]
    ep = load_episode(path)
    for name in ("ep.mp4", "ep.gif"):
        assert main(["show-episode", str(path), "--out", str(tmp_path / name), "--scale", "1"]) == 0
    frames = imageio.mimread(tmp_path / "ep.gif")
    assert len(frames) == ep.num_steps
    assert frames[0].shape[1] == 64 * len(ep.cameras)  # views side by side
    reader = imageio.get_reader(tmp_path / "ep.mp4")
    assert reader.count_frames() == ep.num_steps
    reader.close()
    assert main(["show-episode", str(path), "--out", str(tmp_path / "ep.avi")]) == 2
    assert ".mp4 or .gif" in capsys.readouterr().err


def test_camera_jitter_renders_each_episode_from_its_own_stored_rig(tmp_path, capsys):
    out = tmp_path / "jittered"
    assert main(["generate", "--task", "reach_target", "--episodes", "2", "--seed", "5", "--out", str(out),
                 "--image-size", "48", "--camera-jitter", "0.06", "6", "--no-progress"]) == 0
    eps = [load_episode(p) for p in list_episodes(out)]
    env = make_env("reach_target", image_size=48, render_depth=False)
    try:
        nominal = env.cameras
        for ep in eps:
            for cam, nom in zip(ep.cameras, nominal, strict=True):
                shift = np.linalg.norm(cam.T_world_cam[:3, 3] - nom.T_world_cam[:3, 3])
                rel = cam.T_world_cam[:3, :3] @ nom.T_world_cam[:3, :3].T
                turn = np.degrees(np.arccos(np.clip((np.trace(rel) - 1.0) / 2.0, -1.0, 1.0)))
                assert 0.0 < shift <= 0.06 + 1e-9 and 0.0 < turn <= 6.0 + 1e-6, (cam.name, shift, turn)
                np.testing.assert_array_equal(cam.K, nom.K)  # the same devices, moved
        assert not np.allclose(eps[0].cameras[0].T_world_cam, eps[1].cameras[0].T_world_cam)  # a rig per episode
        # The images are rendered from the rig the episode stores, not from the nominal one.
        env.move_cameras(eps[1].cameras)
        np.testing.assert_array_equal(env.reset(seed=eps[1].seed).images, eps[1].rgb[0])
        env.move_cameras(nominal)
        assert np.abs(env.reset(seed=eps[1].seed).images.astype(int) - eps[1].rgb[0]).mean() > 1.0
    finally:
        env.close()
    # The same seeds give the same rigs (a run can be repeated or resumed on another machine).
    again = tmp_path / "again"
    assert main(["generate", "--task", "reach_target", "--episodes", "1", "--seed", "6", "--out", str(again),
                 "--image-size", "48", "--camera-jitter", "0.06", "6", "--no-progress"]) == 0
    np.testing.assert_array_equal(load_episode(list_episodes(again)[0]).cameras[2].T_world_cam,
                                  eps[1].cameras[2].T_world_cam)
    # Resuming into that folder with another rig is refused rather than mixing rig distributions.
    capsys.readouterr()
    assert main(["generate", "--task", "reach_target", "--episodes", "1", "--seed", "6", "--out", str(again),
                 "--image-size", "48", "--no-progress"]) == 2
    assert "rendered from another camera rig" in capsys.readouterr().err
    assert main(["generate", "--task", "reach_target", "--episodes", "1", "--seed", "6", "--out", str(again),
                 "--image-size", "48", "--camera-jitter", "0.06", "6", "--no-progress"]) == 0  # the same rig: kept
    assert "1 already on disk" in capsys.readouterr().out
