"""`action-images show-episode`: render an episode's views side by side with action-image overlays."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "render an episode's views with action-image overlays of the recorded EE pose to .mp4 or .gif"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="an episode_XXXXXX.h5 file")
    p.add_argument("--out", type=Path, required=True, help="output video, FILE.mp4 or FILE.gif")
    p.add_argument("--source", choices=["ee_pose", "action"], default="ee_pose",
                   help="overlay the measured EE pose (default) or the commanded action")
    p.add_argument("--views", nargs="+", default=None, help="camera names to show (default: all)")
    p.add_argument("--every", type=int, default=1, help="show every n-th step (default 1)")
    p.add_argument("--scale", type=int, default=2, help="integer upscaling of each view (default 2)")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default: real time)")


def run(args: argparse.Namespace) -> int:
    from ..data.episode import load_episode
    from ..data.preview import VIDEO_SUFFIXES, overlay_frames, write_video

    if args.out.suffix.lower() not in VIDEO_SUFFIXES:  # fail before loading anything
        raise ValueError(f"--out must end in .mp4 or .gif, got {args.out.name!r}")
    ep = load_episode(args.path, load_depth=False)
    frames = overlay_frames(ep, source=args.source, views=args.views, every=args.every, scale=args.scale)
    fps = args.fps or 1.0 / (ep.control_dt * args.every)
    write_video(frames, args.out, fps)
    print(f"wrote {args.out} ({len(frames)} frames, {len(args.views or ep.cameras)} views, {fps:.1f} fps, "
          f"task {ep.task}, seed {ep.seed}, {'success' if ep.success else 'failed'})")
    return 0
