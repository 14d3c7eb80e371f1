"""`action-images import-bag BAG... --out DIR`: rosbag2 bags -> HDF5 training episodes (data/FORMAT.md).

Bags of ``action-images record-bag`` (one episode each, their topic map inside) or of
``ros2 bag record`` (topic names: this cell's graph names, ``--real-cell`` for franka_ros2's arm
topics, or ``--topic KIND=NAME``). The conversion is ``data/bag_import.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "turn rosbag2 bags (recorder_node or ros2 bag record) into HDF5 training episodes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bags", nargs="+", type=Path, help="bag directories, or directories holding bags")
    p.add_argument("--out", type=Path, required=True, help="directory for episode_<index>.h5")
    p.add_argument("--rig", default="config/cameras_sim.yaml", help="camera rig YAML (extrinsics, view names)")
    p.add_argument("--views", default=None, help="comma-separated views in episode order (default: the rig's)")
    p.add_argument("--control-dt", type=float, default=0.1, help="seconds between episode rows (default 0.1)")
    p.add_argument("--task", default=None, help="task name (default: the one the recorder stored)")
    p.add_argument("--topic", action="append", default=[], metavar="KIND=NAME",
                   help="topic of a kind (image/<view>, camera_info/<view>, current_pose, gripper_joint_states, "
                        "joint_states, instruction, episode, command, executor_command, tcp_target, gripper_target)")
    p.add_argument("--real-cell", action="store_true",
                   help="default arm topics of franka_ros2 (bags without a topic map)")
    p.add_argument("--max-gap", type=float, default=0.25, help="longest hole in a stream, seconds (default 0.25)")
    p.add_argument("--max-view-skew", type=float, default=0.035,
                   help="most the views' frames of one row may differ, seconds (default 0.035)")
    p.add_argument("--intrinsics-tol", type=float, default=0.5,
                   help="CameraInfo K vs the rig, pixels; negative = no check (default 0.5)")
    p.add_argument("--unlabelled", choices=("failure", "error"), default="failure",
                   help="an episode without a success label (default: stored as a failure)")
    p.add_argument("--action-source", choices=("commands", "next_pose"), default="commands")
    p.add_argument("--index-by", choices=("seed", "order"), default="seed")
    p.add_argument("--first-index", type=int, default=0)
    p.add_argument("--compression", choices=("gzip", "lzf", "none"), default="gzip")


def parse_topics(items: list[str]) -> dict[str, str]:
    """``["current_pose=/pose", ...]`` -> ``{"current_pose": "/pose"}``."""
    out = {}
    for item in items:
        kind, sep, name = item.partition("=")
        if not sep or not kind or not name:
            raise ValueError(f"--topic must look like KIND=NAME (e.g. current_pose=/my_arm/pose), got {item!r}")
        out[kind] = name if name.startswith("/") else "/" + name
    return out


def run(args: argparse.Namespace) -> int:
    from ..data.bag_import import ImportConfig, import_bags
    from ..geometry import load_rig
    from ..ros.recording_topics import topic_map
    from ..ros.share import resolve_share_path

    rig_path = resolve_share_path(args.rig)
    views = tuple(v for v in args.views.split(",") if v) if args.views else tuple(c.name for c in load_rig(rig_path))
    config = ImportConfig(
        rig_path=rig_path, control_dt=args.control_dt, views=views, task=args.task, topics=parse_topics(args.topic),
        default_topics=topic_map(views, use_sim=not args.real_cell), max_gap_s=args.max_gap,
        max_view_skew_s=args.max_view_skew, intrinsics_tol_px=None if args.intrinsics_tol < 0 else args.intrinsics_tol,
        unlabelled=args.unlabelled, action_source=args.action_source, index_by=args.index_by,
        first_index=args.first_index, compression=args.compression)
    t0 = time.monotonic()
    results = import_bags(args.bags, args.out, config)
    wall = time.monotonic() - t0
    for r in results:
        print(f"{r.path}: {r.num_steps} rows, seed {r.seed}, success={r.success}  (from {r.bag})")
    print(f"imported {len(results)} episode(s) in {wall:.1f} s ({len(results) / max(wall, 1e-9):.2f} episodes/s)")
    return 0
