"""Runs in .venv-lerobot (NOT the project venv): load a dataset with LeRobot's own LeRobotDataset and dump it.

Usage: python _lerobot_reader.py DATASET_ROOT OUT.npz

Everything a test needs to compare with the original episodes goes into OUT.npz:
per-frame arrays in dataset order (images as LeRobot returns them: float32 CHW in [0, 1]),
the tasks of each frame, the metadata LeRobot parsed, and one episode loaded alone
(``episodes=[last]``), which exercises the per-episode video offsets.
"""

import json
import os
import sys

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local root only: nothing may be downloaded

from ledataset.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset  # noqa: E402


def dump(ds):
    items = [ds[i] for i in range(len(ds))]
    out = {}
    for key in items[0]:
        if key == "task":
            out["task"] = np.array([it["task"] for it in items])
        else:
            out[key] = np.stack([it[key].numpy() for it in items])
    return out


def main(root: str, out_path: str) -> None:
    ds = LeRobotDataset("local/action_images_ros_export", root=root)
    full = dump(ds)
    last = ds.meta.total_episodes - 1
    sub = LeRobotDataset("local/action_images_ros_export", root=root, episodes=[last])
    part = dump(sub)
    meta = {
        "codebase_version": CODEBASE_VERSION,
        "len": len(ds), "num_episodes": ds.num_episodes, "fps": ds.fps,
        "camera_keys": ds.meta.camera_keys, "video_keys": ds.meta.video_keys,
        "features": sorted(ds.features), "video_backend": ds.video_backend,
        "tasks": list(ds.meta.tasks.index), "stats_keys": sorted(ds.meta.stats or {}),
        "episode_lengths": [int(e["length"]) for e in ds.meta.episodes],
        "sub_len": len(sub), "sub_episode": last,
        "info_rig": ds.meta.info.get("action_images_ros", {}).get("cameras"),
    }
    np.savez(out_path, meta=json.dumps(meta), **{f"full/{k}": v for k, v in full.items()},
             **{f"sub/{k}": v for k, v in part.items()})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
