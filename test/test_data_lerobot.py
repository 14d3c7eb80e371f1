"""LeRobotDataset v3 export / import (data/lerobot.py), checked with LeRobot's own reader.

The reader check runs ``test/_lerobot_reader.py`` in the separate venv ``.venv-lerobot``
(``make lerobot-venv``; ``make test`` builds it and sets ``LEROBOT_PYTHON``): lerobot's
pins clash with the project venv. Without that venv the check is skipped, unless
``LEROBOT_PYTHON`` names an interpreter, in which case a missing one fails.

Codec tolerance (measured on these 64x64 simulated views, libx264 crf 18): yuv420p
PSNR ~35 dB, mean abs error ~2.1 levels (max ~130 at thin colour edges: chroma subsampling);
yuv444p crf 0: PSNR ~55 dB, max abs error 2. Thresholds below leave a margin.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from action_images_ros.cli import main
from action_images_ros.data.episode import list_episodes, load_episode, write_episode
from action_images_ros.data.lerobot import (
    LeRobotExportConfig,
    LeRobotFormatError,
    export_lerobot,
    image_key,
    import_lerobot,
    iter_lerobot_episodes,
)

REPO = Path(__file__).resolve().parents[1]
READER = Path(__file__).with_name("_lerobot_reader.py")
POSE_ARRAYS = ("ee_pose", "action", "joint_positions", "gripper", "time")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


@pytest.fixture(scope="module")
def episodes_dir(tmp_path_factory) -> Path:
    """Three short simulated reach_target episodes at 64x64 (real renderer, real expert)."""
    out = tmp_path_factory.mktemp("episodes")
    rc = main(["generate", "--task", "reach_target", "--episodes", "3", "--seed", "5", "--out", str(out),
               "--image-size", "64", "--max-steps", "10", "--no-progress"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def originals(episodes_dir):
    return [load_episode(p) for p in list_episodes(episodes_dir)]


@pytest.fixture(scope="module")
def exported(episodes_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lerobot") / "ds"
    res = export_lerobot(episodes_dir, root)
    assert res.num_episodes == 3
    return root


def test_layout_is_lerobot_v3(exported, originals):
    """Files, info.json and parquet columns as LeRobot's v3 writer lays them out (read with pyarrow)."""
    import pyarrow.parquet as pq

    info = json.loads((exported / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["fps"] == 10 and info["total_episodes"] == 3
    assert info["total_frames"] == sum(e.num_steps for e in originals)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    views = originals[0].camera_names
    for v in views:
        ft = info["features"][image_key(v)]
        assert ft["dtype"] == "video" and ft["shape"] == [64, 64, 3]
        assert (exported / f"videos/{image_key(v)}/chunk-000/file-000.mp4").is_file()
    assert info["features"]["observation.state"]["names"] == ["x", "y", "z", "qx", "qy", "qz", "qw", "gripper"]
    rig = info["action_images_ros"]["cameras"]
    assert [c["name"] for c in rig] == views
    np.testing.assert_array_equal(np.array(rig[0]["T_world_cam"]), originals[0].cameras[0].T_world_cam)

    data = pq.read_table(exported / "data/chunk-000/file-000.parquet")
    np.testing.assert_array_equal(np.stack(data.column("observation.state").to_pylist()),
                                  np.concatenate([e.ee_pose for e in originals]))
    assert data.column("index").to_pylist() == list(range(info["total_frames"]))
    eps = pq.read_table(exported / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in eps] == [e.num_steps for e in originals]
    assert eps[1]["dataset_from_index"] == eps[0]["dataset_to_index"] == originals[0].num_steps
    key = image_key(views[0])
    assert eps[1][f"videos/{key}/from_timestamp"] == pytest.approx(originals[0].num_steps / 10)
    assert [e["tasks"] for e in eps] == [[o.instruction] for o in originals]
    stats = json.loads((exported / "meta/stats.json").read_text())
    allpose = np.concatenate([e.ee_pose for e in originals])
    np.testing.assert_allclose(stats["observation.state"]["mean"], allpose.mean(0), atol=1e-12)
    np.testing.assert_allclose(stats["observation.state"]["std"], allpose.std(0), atol=1e-12)
    assert np.array(stats[key]["mean"]).shape == (3, 1, 1)


def test_round_trip_equals_original(exported, originals, tmp_path):
    res = import_lerobot(exported, tmp_path / "back")
    assert [p.name for p in res.paths] == [o.path.name for o in originals]
    for orig, path in zip(originals, res.paths):
        back = load_episode(path)
        for name in POSE_ARRAYS:  # exact: float64 in the parquet
            np.testing.assert_array_equal(getattr(back, name), getattr(orig, name), err_msg=name)
        assert (back.task, back.instruction, back.seed, back.success, back.control_dt, back.frame_id,
                back.terminal_observation) == (orig.task, orig.instruction, orig.seed, orig.success,
                                               orig.control_dt, orig.frame_id, orig.terminal_observation)
        for a, b in zip(back.cameras, orig.cameras):
            assert (a.name, a.width, a.height) == (b.name, b.width, b.height)
            np.testing.assert_array_equal(a.K, b.K)
            np.testing.assert_array_equal(a.T_world_cam, b.T_world_cam)
        assert back.rgb.shape == orig.rgb.shape
        err = np.abs(back.rgb.astype(int) - orig.rgb.astype(int))
        assert psnr(back.rgb, orig.rgb) > 31.0, psnr(back.rgb, orig.rgb)
        assert err.mean() < 3.5, err.mean()


def test_near_lossless_setting(episodes_dir, originals, tmp_path):
    root = tmp_path / "ds444"
    export_lerobot(episodes_dir, root, LeRobotExportConfig(pix_fmt="yuv444p", crf=0))
    back = list(iter_lerobot_episodes(root))
    err = max(int(np.abs(b.rgb.astype(int) - o.rgb.astype(int)).max()) for b, o in zip(back, originals))
    assert err <= 4, err


def _lerobot_python() -> Path | None:
    env = os.environ.get("LEROBOT_PYTHON")
    if env:
        if not Path(env).is_file():
            pytest.fail(f"LEROBOT_PYTHON={env} does not exist (make lerobot-venv)")
        return Path(env)
    default = REPO / ".venv-lerobot" / "bin" / "python"
    return default if default.is_file() else None


def _read_with_lerobot(root: Path, tmp_path: Path) -> tuple[dict, dict]:
    """Run LeRobot's LeRobotDataset on ``root`` in .venv-lerobot; (metadata, arrays) it returned."""
    python = _lerobot_python()
    if python is None:
        pytest.skip("no .venv-lerobot (run `make lerobot-venv`)")
    out = tmp_path / f"{root.name}.npz"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(python), str(READER), str(root), str(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    d = dict(np.load(out))
    return json.loads(str(d.pop("meta"))), d


def test_lerobot_reader_loads_export(exported, originals, tmp_path):
    """LeRobot's own LeRobotDataset (lerobot-dataset 0.4.4, torchcodec) reads what we wrote."""
    meta, d = _read_with_lerobot(exported, tmp_path)
    views = originals[0].camera_names
    T = sum(e.num_steps for e in originals)
    assert meta["codebase_version"] == "v3.0"
    assert meta["len"] == T and meta["num_episodes"] == 3 and meta["fps"] == 10
    assert meta["episode_lengths"] == [e.num_steps for e in originals]
    assert meta["video_keys"] == [image_key(v) for v in views]
    assert {"observation.state", "action", "timestamp", "frame_index", "episode_index", "index",
            "task_index"} <= set(meta["features"])
    assert "observation.state" in meta["stats_keys"] and image_key(views[0]) in meta["stats_keys"]
    assert [c["name"] for c in meta["info_rig"]] == views

    # values: LeRobot hands out float32 tensors; ours are float64, so compare with their float32 cast
    for key, name in (("observation.state", "ee_pose"), ("action", "action")):
        want = np.concatenate([getattr(e, name) for e in originals]).astype(np.float32)
        np.testing.assert_array_equal(d[f"full/{key}"], want)
    lengths = [e.num_steps for e in originals]
    np.testing.assert_array_equal(d["full/episode_index"], np.repeat(np.arange(3), lengths))
    np.testing.assert_array_equal(d["full/frame_index"], np.concatenate([np.arange(n) for n in lengths]))
    assert list(d["full/task"]) == [e.instruction for e in originals for _ in range(e.num_steps)]
    ours_back = list(iter_lerobot_episodes(exported))
    for v, name in enumerate(views):
        imgs = d[f"full/{image_key(name)}"]  # (T, 3, H, W) float32 in [0, 1]
        assert imgs.shape == (T, 3, 64, 64) and imgs.dtype == np.float32
        theirs = np.round(imgs.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
        orig = np.concatenate([e.rgb[:, v] for e in originals])
        assert psnr(theirs, orig) > 31.0, (name, psnr(theirs, orig))
        # the frame LeRobot decodes at each timestamp is the one our importer decodes there
        ours = np.concatenate([e.rgb[:, v] for e in ours_back])
        assert np.abs(theirs.astype(int) - ours.astype(int)).mean() < 1.0
    # one episode alone: the video offset (from_timestamp) selects the right frames
    last = originals[-1]
    assert meta["sub_len"] == last.num_steps
    np.testing.assert_array_equal(d["sub/observation.state"], last.ee_pose.astype(np.float32))
    key = image_key(views[0])
    np.testing.assert_array_equal(d[f"sub/{key}"], d[f"full/{key}"][-last.num_steps:])


def test_files_roll_over_and_still_read(episodes_dir, originals, tmp_path):
    """Tiny size limits put every episode in its own data / video file (chunk-000/file-00N), as LeRobot does."""
    root = tmp_path / "rolled"
    export_lerobot(episodes_dir, root, LeRobotExportConfig(data_files_size_in_mb=1e-4, video_files_size_in_mb=1e-4))
    views = originals[0].camera_names
    assert len(list((root / "data").rglob("*.parquet"))) == 3
    assert len(list((root / "videos" / image_key(views[0])).rglob("*.mp4"))) == 3
    for orig, back in zip(originals, iter_lerobot_episodes(root)):
        np.testing.assert_array_equal(back.ee_pose, orig.ee_pose)
        assert psnr(back.rgb, orig.rgb) > 31.0
    meta, d = _read_with_lerobot(root, tmp_path)
    assert meta["len"] == sum(e.num_steps for e in originals)
    np.testing.assert_array_equal(d["full/observation.state"],
                                  np.concatenate([e.ee_pose for e in originals]).astype(np.float32))
    theirs = np.round(d[f"full/{image_key(views[1])}"].transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    assert psnr(theirs, np.concatenate([e.rgb[:, 1] for e in originals])) > 31.0


def test_refuses_what_it_cannot_write_or_read(episodes_dir, originals, exported, tmp_path):
    with pytest.raises(FileExistsError):
        export_lerobot(episodes_dir, exported)
    # a different rig cannot join the dataset; nothing is left behind
    cams = [dataclasses.replace(c, T_world_cam=c.T_world_cam.copy()) for c in originals[0].cameras]
    cams[0].T_world_cam[0, 3] += 0.01
    other = dataclasses.replace(originals[0], cameras=cams)
    odd = write_episode(other, tmp_path / "odd" / "episode_000099.h5")
    with pytest.raises(ValueError, match="camera rig differs"):
        export_lerobot([list_episodes(episodes_dir)[0], odd], tmp_path / "mixed")
    assert not (tmp_path / "mixed").exists() and not list(tmp_path.glob(".mixed*"))
    # not a dataset / a missing video
    with pytest.raises(LeRobotFormatError, match="meta/info.json"):
        import_lerobot(episodes_dir, tmp_path / "x")
    broken = tmp_path / "broken"
    export_lerobot(episodes_dir, broken)
    next((broken / "videos").rglob("*.mp4")).unlink()
    with pytest.raises(LeRobotFormatError, match="missing"):
        list(iter_lerobot_episodes(broken))


def test_cli_export_and_import(episodes_dir, tmp_path, capsys):
    assert main(["export-lerobot", str(episodes_dir), "--out", str(tmp_path / "ds")]) == 0
    assert "exported 3 episodes" in capsys.readouterr().out
    assert main(["export-lerobot", str(episodes_dir), "--out", str(tmp_path / "ds")]) == 2  # exists
    assert main(["import-lerobot", str(tmp_path / "ds"), "--out", str(tmp_path / "back")]) == 0
    assert len(list_episodes(tmp_path / "back")) == 3
    assert main(["import-lerobot", str(tmp_path / "ds"), "--out", str(tmp_path / "back")]) == 2  # files exist
