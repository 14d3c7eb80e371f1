"""Episode files: round trip, atomic writes, corrupted / partial / wrong-version files, splits."""

import h5py
import numpy as np
import pytest
from _data_synthetic import synthetic_episode

from action_images_ros.data import (
    EpisodeFormatError,
    episode_filename,
    list_episodes,
    load_episode,
    read_episode_info,
    split_episodes,
    write_episode,
)
from action_images_ros.data.split import is_held_out


def test_round_trip(tmp_path):
    ep = synthetic_episode(steps=9, size=64, depth=True)
    path = write_episode(ep, tmp_path / episode_filename(ep.seed))
    assert path.name == "episode_000007.h5"
    back = load_episode(path)
    np.testing.assert_array_equal(back.rgb, ep.rgb)
    for name in ("ee_pose", "action", "joint_positions", "gripper", "time"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ep, name), err_msg=name)
    np.testing.assert_array_equal(back.depth, ep.depth)
    assert (back.task, back.instruction, back.seed, back.success, back.control_dt) == (
        ep.task, ep.instruction, ep.seed, ep.success, ep.control_dt)
    assert back.camera_names == ep.camera_names and back.path == path
    for a, b in zip(back.cameras, ep.cameras):
        np.testing.assert_array_equal(a.K, b.K)
        np.testing.assert_array_equal(a.T_world_cam, b.T_world_cam)
        assert (a.width, a.height) == (b.width, b.height)
    assert load_episode(path, load_depth=False).depth is None
    info = read_episode_info(path)
    assert info.num_steps == 9 and info.has_depth and info.success and info.camera_names == ep.camera_names


@pytest.mark.parametrize("compression", ["lzf", "none"])
def test_other_compressions_and_no_depth(tmp_path, compression):
    ep = synthetic_episode(steps=3, size=32)
    path = write_episode(ep, tmp_path / "episode_000001.h5", compression=compression)
    back = load_episode(path)
    np.testing.assert_array_equal(back.rgb, ep.rgb)
    assert back.depth is None and not read_episode_info(path).has_depth


def test_invalid_episode_is_refused(tmp_path):
    ep = synthetic_episode(steps=4, size=32)
    ep.ee_pose = ep.ee_pose[:3]
    with pytest.raises(ValueError, match="ee_pose"):
        write_episode(ep, tmp_path / "episode_000000.h5")
    assert list(tmp_path.iterdir()) == []  # nothing, not even a temp file, left behind
    with pytest.raises(ValueError, match="compression"):
        write_episode(synthetic_episode(steps=2, size=32), tmp_path / "x.h5", compression="zstd")


def test_atomic_write_leaves_no_partial_episode(tmp_path, monkeypatch):
    good = write_episode(synthetic_episode(steps=3, size=32, seed=0), tmp_path / episode_filename(0))
    # A write interrupted half way (an exception while writing the images) leaves no file.
    import action_images_ros.data.episode as episode_mod

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(episode_mod, "_write_contents", boom)
    with pytest.raises(KeyboardInterrupt):
        write_episode(synthetic_episode(steps=3, size=32, seed=1), tmp_path / episode_filename(1))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]
    # A temp file left by a killed process is ignored by readers.
    (tmp_path / ".episode_000002.abc123.tmp").write_bytes(b"\x89HDF\r\n\x1a\n partial")
    assert list_episodes(tmp_path) == [good]


def test_truncated_file_names_file_and_problem(tmp_path):
    path = write_episode(synthetic_episode(steps=6, size=64), tmp_path / "episode_000003.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeFormatError, match="episode_000003.h5") as err:
        load_episode(path)
    assert isinstance(err.value, ValueError) and err.value.path == path
    assert "truncated" in str(err.value) or "cannot read" in str(err.value)
    path.write_bytes(b"")
    with pytest.raises(EpisodeFormatError, match="episode_000003.h5"):
        read_episode_info(path)


def test_wrong_version_missing_data_and_foreign_files(tmp_path):
    path = write_episode(synthetic_episode(steps=3, size=32), tmp_path / "episode_000004.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(EpisodeFormatError, match="episode_000004.h5: unsupported format_version 99"):
        load_episode(path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 1
        del f["joint_positions"]
    with pytest.raises(EpisodeFormatError, match=r"missing datasets \['joint_positions'\]"):
        load_episode(path)
    foreign = tmp_path / "episode_000005.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(EpisodeFormatError, match="not an episode file"):
        read_episode_info(foreign)
    with pytest.raises(FileNotFoundError):
        load_episode(tmp_path / "episode_000099.h5")
    with pytest.raises(FileNotFoundError):
        list_episodes(tmp_path / "nope")


def test_list_episodes_sorted_by_index(tmp_path):
    for seed in (12, 3, 100):
        write_episode(synthetic_episode(steps=2, size=32, seed=seed), tmp_path / episode_filename(seed))
    (tmp_path / "notes.txt").write_text("not an episode")
    assert [p.name for p in list_episodes(tmp_path)] == [
        "episode_000003.h5", "episode_000012.h5", "episode_000100.h5"]


def test_split_is_deterministic_by_index(tmp_path):
    paths = [tmp_path / episode_filename(i) for i in range(40)]
    train, held = split_episodes(paths, held_out_fraction=0.1)
    assert [p.name for p in held] == [episode_filename(i) for i in (9, 19, 29, 39)]
    assert len(train) == 36 and not set(train) & set(held)
    # Adding episodes never moves one between the sets; order of input does not matter.
    train2, held2 = split_episodes(list(reversed(paths)) + [tmp_path / episode_filename(40)], 0.1)
    assert set(held2) == set(held)
    assert sum(is_held_out(i, 0.25) for i in range(100)) == 25
    assert split_episodes(paths, 0.0) == (paths, [])
    with pytest.raises(ValueError, match="held_out_fraction"):
        split_episodes(paths, 1.0)
