"""LeRobot export / import: round-trip image error per video setting, speed in episodes/s, LeRobot's reader.

Run: PYTHONPATH=src MUJOCO_GL=egl python bench/bench_lerobot.py [--task reach_target] [--episodes 4]
(records fresh episodes from the simulation, or uses --dir with existing episode
files). For each video setting it exports, imports back and prints: poses exact
(yes/no), image PSNR, mean / p99 / max absolute error (levels of 255), dataset size,
export and import speed. With .venv-lerobot present (``make lerobot-venv``) it also
times LeRobot's own LeRobotDataset reading every frame of the default export.
"""

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from action_images_ros.data import list_episodes, load_episode
from action_images_ros.data.lerobot import LeRobotExportConfig, export_lerobot, import_lerobot
from action_images_ros.data.record import GenerateConfig, generate_episodes

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "libx264 yuv420p crf18 (default)": LeRobotExportConfig(),
    "libx264 yuv444p crf18": LeRobotExportConfig(pix_fmt="yuv444p"),
    "libx264 yuv444p crf0": LeRobotExportConfig(pix_fmt="yuv444p", crf=0),
    "libsvtav1 yuv420p crf30 (LeRobot's)": LeRobotExportConfig(vcodec="libsvtav1", crf=30),
}


def _dir_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=None, help="existing episodes (default: record new ones)")
    ap.add_argument("--task", default="reach_target")
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--image-size", type=int, default=128)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = args.dir
        if src is None:
            src = tmp / "gen"
            list(generate_episodes(GenerateConfig(task=args.task, num_episodes=args.episodes, out_dir=src,
                                                  image_size=args.image_size)))
        paths = list_episodes(src)
        originals = [load_episode(p) for p in paths]
        rows = sum(e.num_steps for e in originals)
        T, V, H, W, _ = originals[0].rgb.shape
        print(f"{len(paths)} episodes, {rows} rows, {V} views of {W}x{H}; "
              f"HDF5 {sum(p.stat().st_size for p in paths) / 1e6:.1f} MB")
        for name, cfg in SETTINGS.items():
            root = tmp / name.split()[0] / "_".join(name.split()[:3])
            t0 = time.perf_counter()
            export_lerobot(paths, root, cfg)
            t_exp = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = import_lerobot(root, tmp / "back" / root.name, compression="lzf")
            t_imp = time.perf_counter() - t0
            backs = [load_episode(p) for p in res.paths]
            exact = all(np.array_equal(getattr(a, k), getattr(b, k)) for a, b in zip(originals, backs)
                        for k in ("ee_pose", "action", "joint_positions", "gripper", "time"))
            err = np.concatenate([np.abs(a.rgb.astype(np.int16) - b.rgb.astype(np.int16)).ravel()
                                  for a, b in zip(originals, backs)])
            mse = np.mean(err.astype(np.float64) ** 2)
            print(f"{name:38s} poses exact: {'yes' if exact else 'NO'}  PSNR {10 * np.log10(255**2 / mse):5.2f} dB  "
                  f"abs err mean {err.mean():.2f} p99 {np.percentile(err, 99):.0f} max {err.max()}  "
                  f"{_dir_mb(root):5.2f} MB  export {len(paths) / t_exp:5.1f} ep/s  "
                  f"import {len(paths) / t_imp:5.1f} ep/s")

        python = REPO / ".venv-lerobot" / "bin" / "python"
        if python.is_file():
            root = next((tmp / "libx264").iterdir())
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf")}
            t0 = time.perf_counter()
            proc = subprocess.run([str(python), str(REPO / "test" / "_lerobot_reader.py"), str(root),
                                   str(tmp / "dump.npz")], env=env, capture_output=True, text=True)
            dt = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"LeRobot's reader failed:\n{proc.stderr[-3000:]}")
            print(f"LeRobotDataset (lerobot-dataset 0.4.4, torchcodec) read all {rows} frames (+ the last episode "
                  f"again alone) in {dt:.1f} s incl. interpreter start")
        else:
            print("no .venv-lerobot: LeRobot's reader not timed (make lerobot-venv)")


if __name__ == "__main__":
    main()
