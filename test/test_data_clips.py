"""ActionClipDataset: clip shapes and ranges, alignment of action images with the images, clamping, views, config."""

import dataclasses

import numpy as np
import pytest
import torch
from _data_synthetic import synthetic_episode

from action_images_ros.codec import ActionImageCodec
from action_images_ros.data import EpisodeFormatError, episode_filename, write_episode
from action_images_ros.data.clips import ActionClipDataset, ClipConfig

STEPS, SIZE = 12, 96


@pytest.fixture(scope="module")
def episode_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("episodes")
    for seed, ok in ((0, True), (1, True), (2, False)):
        write_episode(synthetic_episode(steps=STEPS, size=SIZE, seed=seed, success=ok), d / episode_filename(seed))
    return d


def test_clip_shapes_dtypes_and_ranges(episode_dir):
    ds = ActionClipDataset(episode_dir, ClipConfig(horizon=3, frame_stride=2, image_size=48))
    assert len(ds) == 2 * (STEPS - 1)  # the failed episode is left out by default
    item = ds[5]
    assert item.pop("instruction") == ds.episodes[0].instruction  # the text, kept for conditioning
    V, F, S = 3, 3, 48
    expected = {
        "cond_rgb": (V, 3, S, S), "cond_action": (V, 3, S, S), "future_rgb": (V, F, 3, S, S),
        "future_action": (V, F, 3, S, S), "actions": (F, 8), "state": (8,), "K": (V, 3, 3),
        "T_world_cam": (V, 4, 4), "episode_index": (), "step": (),
    }
    assert {k: tuple(v.shape) for k, v in item.items()} == expected
    for k in expected:
        assert item[k].dtype == (torch.int64 if k in ("episode_index", "step") else torch.float32), k
    for k in ("cond_rgb", "future_rgb", "cond_action", "future_action"):
        assert 0.0 <= item[k].min() and item[k].max() <= 1.0 + 1e-6, k
    assert item["cond_action"].amax() > 0.9 and item["future_action"].amax() > 0.9  # blobs are drawn
    e, t = ds.episode_of(5)
    assert (int(item["episode_index"]), int(item["step"])) == (e, t) == (0, 5)
    assert ds.cameras(0)[0].width == S
    np.testing.assert_allclose(item["K"][0].numpy(), ds.cameras(0)[0].K, rtol=1e-6)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True)))
    assert batch["future_rgb"].shape == (4, V, F, 3, S, S)


def test_values_match_episode_and_codec(episode_dir):
    cfg = ClipConfig(horizon=2, frame_stride=3, image_size=48)
    ds = ActionClipDataset(episode_dir, cfg)
    ep = synthetic_episode(steps=STEPS, size=SIZE, seed=1)
    i = next(j for j in range(len(ds)) if ds.episode_of(j) == (1, 4))
    item = ds[i]
    np.testing.assert_allclose(item["state"].numpy(), ep.ee_pose[4], atol=1e-6)
    np.testing.assert_allclose(item["actions"].numpy(), ep.ee_pose[[7, 10]], atol=1e-6)
    cams = [c.scaled(48, 48) for c in ep.cameras]
    codec = ActionImageCodec(48, 48)
    want = codec.encode(ep.ee_pose[[4, 7, 10]], cams)  # (V, 3, S, S, 3)
    np.testing.assert_allclose(item["cond_action"].numpy(), want[:, 0].transpose(0, 3, 1, 2), atol=1e-6)
    np.testing.assert_allclose(item["future_action"].numpy(), want[:, 1:].transpose(0, 1, 4, 2, 3), atol=1e-6)
    # The bright spot drawn at the EE in the (resized) RGB sits under the action image's R blob.
    for v in range(3):
        pairs = ((item["cond_rgb"][v], item["cond_action"][v]), (item["future_rgb"][v, 1], item["future_action"][v, 1]))
        for rgb, act in pairs:
            spot = np.unravel_index(rgb.mean(0).argmax().item(), (48, 48))
            blob = np.unravel_index(act[0].argmax().item(), (48, 48))
            assert np.hypot(spot[0] - blob[0], spot[1] - blob[1]) <= 1.5, (v, spot, blob)


def test_horizon_clamps_at_episode_end(episode_dir):
    ds = ActionClipDataset(episode_dir, ClipConfig(horizon=4, frame_stride=2, image_size=32))
    ep = synthetic_episode(steps=STEPS, size=SIZE, seed=0)
    last = next(j for j in range(len(ds)) if ds.episode_of(j) == (0, STEPS - 2))
    item = ds[last]
    np.testing.assert_allclose(item["actions"].numpy(), np.repeat(ep.ee_pose[-1:], 4, 0), atol=1e-6)
    for k in range(1, 4):  # every future frame holds the last one
        assert torch.equal(item["future_rgb"][:, k], item["future_rgb"][:, 0])
        assert torch.equal(item["future_action"][:, k], item["future_action"][:, 0])
    np.testing.assert_array_equal(ds.future_rows(7, STEPS), [9, 11, 11, 11])


def test_action_source_uses_commanded_targets(episode_dir):
    ds = ActionClipDataset(episode_dir, ClipConfig(horizon=3, frame_stride=2, image_size=32, action_source="action",
                                                   gripper_from_command=False))
    ep = synthetic_episode(steps=STEPS, size=SIZE, seed=0)
    item = ds[2]
    np.testing.assert_allclose(item["actions"].numpy(), ep.action[[3, 5, 7]], atol=1e-6)
    np.testing.assert_allclose(item["state"].numpy(), ep.ee_pose[2], atol=1e-6)


def test_gripper_from_command(tmp_path):
    ep = synthetic_episode(steps=8, size=32)
    ep.action[:, 7] = (np.arange(8) < 3).astype(float)  # close commanded at row 3
    ep.ee_pose[:, 7] = np.where(np.arange(8) <= 3, 1.0, 0.6)  # fingers stop on the object at 0.6
    write_episode(ep, tmp_path / "episode_000000.h5")
    cfg = ClipConfig(horizon=3, frame_stride=1, image_size=32)
    cmd, meas = ActionClipDataset(tmp_path, cfg), ActionClipDataset(
        tmp_path, dataclasses.replace(cfg, gripper_from_command=False))
    np.testing.assert_allclose(cmd[2]["actions"][:, 7].numpy(), [1.0, 0.0, 0.0])  # rows 3, 4, 5
    np.testing.assert_allclose(meas[2]["actions"][:, 7].numpy(), [1.0, 0.6, 0.6], atol=1e-6)
    np.testing.assert_allclose(cmd[2]["actions"][:, :7].numpy(), meas[2]["actions"][:, :7].numpy())
    assert float(cmd[0]["state"][7]) == 1.0 and float(cmd[5]["state"][7]) == 0.0
    # The gripper shows up in the action images' B background: 0 when the command is closed.
    assert float(cmd[2]["future_action"][0, 1, 2].min()) < 0.01 < float(meas[2]["future_action"][0, 1, 2].min())


def test_clip_gripper_events_mark_the_clips_whose_keyframes_switch_the_gripper(tmp_path):
    ep = synthetic_episode(steps=10, size=32)
    ep.action[:, 7] = (np.arange(10) < 5).astype(float)  # close commanded at row 5: g = 0 from row 6
    write_episode(ep, tmp_path / "episode_000000.h5")
    ds = ActionClipDataset(tmp_path, ClipConfig(horizon=2, frame_stride=2, image_size=32))
    events = ds.clip_gripper_events()
    # independently: clip t shows rows t+2, t+4 (clamped to 9); an event if one of them has g 0 and row t g 1
    g = np.where(np.arange(10) <= 5, 1.0, 0.0)
    want = [any(g[min(t + k, 9)] != g[t] for k in (2, 4)) for t in range(len(ds))]
    assert events.tolist() == want and 0 < sum(want) < len(ds)
    assert all(bool(events[i]) == bool(abs(ds[i]["actions"][:, 7] - ds[i]["state"][7]).max() > 0.5)
               for i in range(len(ds)))


def test_view_selection(episode_dir):
    ds = ActionClipDataset(episode_dir, ClipConfig(image_size=32, views=("right_shoulder", "front")))
    full = ActionClipDataset(episode_dir, ClipConfig(image_size=32))
    assert ds.view_names == ["right_shoulder", "front"] and full.num_views == 3
    a, b = ds[3], full[3]
    assert a["cond_rgb"].shape[0] == 2
    assert torch.equal(a["cond_rgb"][0], b["cond_rgb"][2]) and torch.equal(a["future_action"][1], b["future_action"][0])
    assert torch.equal(a["T_world_cam"][0], b["T_world_cam"][2])
    single = ActionClipDataset(episode_dir, ClipConfig(image_size=32, views=(1,)))
    assert single.view_names == ["left_shoulder"]
    with pytest.raises(ValueError, match="'wrist' is not in the rig; cameras are"):
        ActionClipDataset(episode_dir, ClipConfig(views=("wrist",)))
    with pytest.raises(ValueError, match="out of range"):
        ActionClipDataset(episode_dir, ClipConfig(views=(3,)))


def test_success_filter(tmp_path, episode_dir):
    ds = ActionClipDataset(episode_dir, ClipConfig(image_size=32, only_success=False))
    assert len(ds) == 3 * (STEPS - 1) and [e.seed for e in ds.episodes] == [0, 1, 2]
    write_episode(synthetic_episode(steps=4, size=32, success=False), tmp_path / "episode_000000.h5")
    with pytest.raises(ValueError, match="no episode succeeded"):
        ActionClipDataset(tmp_path)


def test_bad_files_and_paths(tmp_path):
    with pytest.raises(FileNotFoundError):
        ActionClipDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="no episode files"):
        ActionClipDataset(tmp_path)
    path = write_episode(synthetic_episode(steps=4, size=32), tmp_path / "episode_000000.h5")
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(EpisodeFormatError, match="episode_000000.h5"):
        ActionClipDataset(tmp_path)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"horizon": 0}, "horizon"),
        ({"horizon": 2.5}, "horizon"),
        ({"horizon": True}, "horizon"),
        ({"frame_stride": -1}, "frame_stride"),
        ({"image_size": 4}, "image_size"),
        ({"action_source": "joints"}, "action_source"),
        ({"views": ()}, "views"),
        ({"views": ("front", "front")}, "views"),
        ({"views": (-1,)}, "views"),
        ({"views": (1.5,)}, "views"),
    ],
)
def test_bad_config_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ClipConfig(**kwargs)


def test_config_accepts_single_view_and_numpy_ints():
    cfg = ClipConfig(views="front", horizon=np.int64(3))
    assert cfg.views == ("front",) and cfg.horizon == 3 and type(cfg.horizon) is int


def test_clip_tasks_name_each_clips_task(tmp_path):
    import dataclasses

    for seed, task in ((0, "reach_target"), (1, "stack_cubes")):
        ep = dataclasses.replace(synthetic_episode(steps=STEPS, size=SIZE, seed=seed), task=task)
        write_episode(ep, tmp_path / episode_filename(seed))
    ds = ActionClipDataset(tmp_path, ClipConfig(horizon=2, frame_stride=1, image_size=32))
    tasks = ds.clip_tasks()
    assert len(tasks) == len(ds)
    for i in (0, len(ds) - 1):
        assert tasks[i] == ds.episodes[ds.episode_of(i)[0]].task
    assert sorted(set(tasks)) == ["reach_target", "stack_cubes"]


@pytest.mark.parametrize("source", ["ee_pose", "action"])
def test_streamed_clips_equal_the_in_memory_ones(episode_dir, source):
    cfg = ClipConfig(horizon=3, frame_stride=4, image_size=48, views=("right_shoulder", "front"), action_source=source)
    whole = ActionClipDataset(episode_dir, cfg)
    streamed = ActionClipDataset(episode_dir, cfg, in_memory=False)
    assert len(streamed) == len(whole)
    for i in (0, 7, len(whole) - 1):  # the last clips clamp (repeat) their final rows
        a, b = whole[i], streamed[i]
        assert a.pop("instruction") == b.pop("instruction")
        for k in a:
            assert torch.equal(a[k], b[k]), (i, k)
    assert not streamed._cache  # nothing kept
    with pytest.raises(ValueError, match="streams"):
        streamed.preload()
