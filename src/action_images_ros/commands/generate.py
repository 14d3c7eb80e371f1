"""`action-images generate`: record scripted-expert episodes of a simulated task to HDF5 files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "record scripted-expert episodes of a simulated task (one HDF5 file per episode)"
logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="task name (e.g. reach_target, pick_cube)")
    p.add_argument("--episodes", type=int, required=True, help="number of episodes (one seed each)")
    p.add_argument("--out", type=Path, required=True, help="output directory for episode_<seed>.h5 files")
    p.add_argument("--image-size", type=int, default=128, help="rendered image side in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0, help="first seed; episode i uses seed + i (default 0)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="cap on expert actions per episode (default: the task's budget)")
    p.add_argument("--rig", type=Path, default=None, help="camera rig YAML (default: the simulation's rig)")
    p.add_argument("--camera-jitter", type=float, nargs=2, default=(0.0, 0.0), metavar=("SHIFT_M", "TURN_DEG"),
                   help="each episode renders from its own rig: every camera moved by up to SHIFT_M metres and "
                        "turned by up to TURN_DEG degrees (random, seeded by the episode; stored with it)")
    p.add_argument("--depth", action="store_true", help="also store depth images")
    p.add_argument("--compression", choices=["gzip", "lzf", "none"], default="gzip",
                   help="image compression (default gzip; lzf is faster, h5py-only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.record import GenerateConfig, generate_episodes

    cfg = GenerateConfig(
        task=args.task, num_episodes=args.episodes, out_dir=args.out, image_size=args.image_size,
        seed=args.seed, max_steps=args.max_steps, rig_path=args.rig, depth=args.depth,
        camera_jitter_m=args.camera_jitter[0], camera_jitter_deg=args.camera_jitter[1],
        compression=args.compression,
    )
    ok = skipped = 0
    bar = tqdm(total=cfg.num_episodes, unit="ep", desc=cfg.task, disable=args.no_progress)
    try:
        for i, res in enumerate(generate_episodes(cfg), start=1):
            ok += res.success
            skipped += res.skipped
            bar.set_postfix(success=f"{ok}/{i}", steps=res.num_steps)
            bar.update(1)
    finally:
        bar.close()
    print(f"{cfg.task}: {ok}/{cfg.num_episodes} episodes succeeded"
          f"{f' ({skipped} already on disk)' if skipped else ''}; written to {cfg.out_dir}")
    return 0
