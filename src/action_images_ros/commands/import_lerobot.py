"""`action-images import-lerobot`: a LeRobotDataset v3 folder -> our HDF5 episodes."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "import a LeRobotDataset v3 (8-D pose state/action) as HDF5 episodes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, help="dataset root (the folder holding meta/info.json)")
    p.add_argument("--out", type=Path, required=True, help="output directory for episode_<seed>.h5 files")
    p.add_argument("--rig", type=Path, default=None,
                   help="camera rig YAML, for datasets without a rig in meta/info.json (view names = "
                        "observation.images.<view>)")
    p.add_argument("--compression", choices=["gzip", "lzf", "none"], default="gzip",
                   help="image compression of the episode files (default gzip)")


def run(args: argparse.Namespace) -> int:
    from ..data.lerobot import import_lerobot
    from ..geometry import load_rig

    rig = load_rig(args.rig) if args.rig is not None else None
    try:
        res = import_lerobot(args.root, args.out, rig=rig, compression=args.compression)
    except FileExistsError as exc:  # a user error: one line, no traceback
        raise ValueError(str(exc)) from exc
    print(f"imported {len(res.paths)} episodes ({res.num_frames} frames) to {args.out} "
          f"in {res.seconds:.1f} s ({len(res.paths) / max(res.seconds, 1e-9):.1f} episodes/s)")
    return 0
