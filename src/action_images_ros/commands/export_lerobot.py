"""`action-images export-lerobot`: our HDF5 episodes -> a LeRobotDataset v3 folder."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "export episodes (HDF5) as a LeRobotDataset v3 (meta/info.json, parquet, one mp4 per view)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("episodes", type=Path, nargs="+", help="episode_XXXXXX.h5 files and/or directories of them")
    p.add_argument("--out", type=Path, required=True, help="dataset root to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--vcodec", choices=["libx264", "libsvtav1", "libx265"], default="libx264",
                   help="video encoder (default libx264; libsvtav1 is LeRobot's own default)")
    p.add_argument("--crf", type=int, default=18, help="constant rate factor, lower = closer (default 18)")
    p.add_argument("--pix-fmt", choices=["yuv420p", "yuv444p"], default="yuv420p",
                   help="yuv420p (default, plays everywhere) or yuv444p (no chroma subsampling)")
    p.add_argument("--gop", type=int, default=2, help="keyframe interval in frames (default 2, as LeRobot)")
    p.add_argument("--robot-type", default="franka", help="robot_type in meta/info.json (default franka)")


def run(args: argparse.Namespace) -> int:
    from ..data.lerobot import LeRobotExportConfig, export_lerobot

    cfg = LeRobotExportConfig(vcodec=args.vcodec, crf=args.crf, pix_fmt=args.pix_fmt, gop=args.gop,
                              robot_type=args.robot_type)
    try:
        res = export_lerobot(args.episodes, args.out, cfg, overwrite=args.overwrite)
    except FileExistsError as exc:  # a user error: one line, no traceback
        raise ValueError(str(exc)) from exc
    print(f"exported {res.num_episodes} episodes ({res.num_frames} frames) to {res.root} "
          f"in {res.seconds:.1f} s ({res.num_episodes / max(res.seconds, 1e-9):.1f} episodes/s)")
    return 0
