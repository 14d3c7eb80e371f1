"""`action-images view PATH`: an episode, an eval run, a bag or a LeRobot export in Rerun.

What PATH is decides the source (``viz/sources.py``): an HDF5 episode file (or a folder of
them), an ``action-images eval --out`` folder (``results.json``; failed episodes first, each with
its failure mode), a rosbag2 bag from ``record-bag`` / ``recorder_node`` (or a folder of bags), or
a LeRobotDataset v3 folder (``meta/info.json``). One recording per episode. Where it goes is one
choice: ``--save`` (``.rrd`` files, the default: ``outputs/view/``), ``--serve`` (the web viewer on
127.0.0.1), ``--connect`` (a running viewer) or ``--spawn`` (a native viewer here; needs a display).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

HELP = "show an HDF5 episode, an eval --out folder, a rosbag2 bag or a LeRobot export in Rerun (docs/viewer.md)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="episode .h5 (or a folder of them), eval --out folder, bag, LeRobot folder")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--save", type=Path, default=None,
                     help="write .rrd: a file for one episode, else a folder of one file per episode "
                          "(default: outputs/view/<name>)")
    out.add_argument("--serve", action="store_true",
                     help="serve the web viewer on 127.0.0.1 and print its URL (Ctrl-C stops it)")
    out.add_argument("--connect", default=None, metavar="URL",
                     help="stream to a running viewer, e.g. rerun+http://127.0.0.1:9876/proxy")
    out.add_argument("--spawn", action="store_true", help="start a native Rerun viewer here (needs a display)")
    p.add_argument("--episodes", type=int, default=None, help="at most this many episodes (default: all)")
    p.add_argument("--every", type=int, default=1, help="log every N-th step of an episode (default 1)")
    p.add_argument("--horizon", type=int, default=4, help="future commands drawn as action images per step")
    p.add_argument("--frame-stride", type=int, default=2, help="control steps between them (the models' 2)")
    p.add_argument("--rig", default="config/cameras_sim.yaml",
                   help="bags and other tools' LeRobot datasets: the camera rig YAML (default config/cameras_sim.yaml)")
    p.add_argument("--real-cell", action="store_true", help="bags: franka_ros2's arm topics (as import-bag)")
    p.add_argument("--web-port", type=int, default=9090, help="--serve: port of the viewer page")
    p.add_argument("--grpc-port", type=int, default=9877, help="--serve: port of the data server")


def _kind(path: Path) -> str:
    if path.is_file() and path.suffix == ".h5":
        return "episode"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither an episode .h5 file nor a folder")
    if (path / "results.json").is_file():
        return "eval"
    if (path / "meta" / "info.json").is_file():
        return "lerobot"
    if (path / "metadata.yaml").is_file() or any((d / "metadata.yaml").is_file() for d in path.iterdir() if d.is_dir()):
        return "bag"
    if any(path.glob("episode_*.h5")):
        return "episode"
    raise ValueError(f"{path}: not an episode file or folder, eval --out folder (results.json), rosbag2 bag "
                     "(metadata.yaml) or LeRobot dataset (meta/info.json)")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def run(args: argparse.Namespace) -> int:
    from ..viz import sources
    from ..viz.log import EPISODE_TIME
    from ..viz.recording import close_recording, open_recording

    kind = _kind(args.path)
    timeline = "prediction" if kind == "eval" else EPISODE_TIME
    if args.episodes is not None and args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    config = sources.EpisodeViewConfig(horizon=args.horizon, frame_stride=args.frame_stride, every=args.every)
    items = list(_items(kind, args))[: args.episodes]  # (name, views, log(rec)) per recording
    if not items:
        raise ValueError(f"{args.path}: no episodes to show")
    folder = None
    if args.serve or (not args.connect and not args.spawn):
        if args.save is not None and args.save.suffix == ".rrd" and len(items) > 1:
            raise ValueError(f"--save {args.save} is one file but {args.path} has {len(items)} episodes: give a folder")
        folder = args.save if args.save is not None and args.save.suffix != ".rrd" else None
        if args.save is None:
            folder = Path("outputs/view") / _slug(args.path.resolve().name)
    files = []
    for i, (name, views, log) in enumerate(items):
        if args.connect or args.spawn:
            rec = open_recording(name, views, connect=args.connect, spawn=args.spawn, timeline=timeline)
        else:
            path = args.save if folder is None else folder / f"{i:03d}_{_slug(name)}.rrd"
            rec = open_recording(name, views, save=path, timeline=timeline)
            files.append(path)
        try:
            log(rec, config)
        finally:
            close_recording(rec)
        print(f"{name}" + (f" -> {files[-1]}" if files else ""))
    if args.serve:
        return _serve(files, args.web_port, args.grpc_port)
    if files:
        print("open it with:\n  " + ("rerun " + " ".join(str(f) for f in files) if len(files) <= 3
                                    else f"rerun {folder}/*.rrd"))
    return 0


def _serve(files: list[Path], web_port: int, grpc_port: int) -> int:
    from ..viz.browser import WebViewer

    with WebViewer(files, web_port=web_port, grpc_port=grpc_port) as viewer:
        print(f"viewer on 127.0.0.1: {viewer.url}  (Ctrl-C stops it)")
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
    return 0


def _items(kind: str, args: argparse.Namespace):
    """``(recording name, views, log(rec, config))`` per episode of the source."""
    from ..viz import sources

    if kind == "episode":
        from ..data.episode import load_episode, resolve_episode_paths

        for path in resolve_episode_paths(args.path):
            ep = load_episode(path, load_depth=False)
            yield (f"{ep.task} seed {ep.seed} {'success' if ep.success else 'failed'}", ep.camera_names,
                   lambda rec, cfg, ep=ep: sources.log_episode(rec, ep, cfg))
    elif kind == "lerobot":
        from ..data.lerobot import META_KEY, read_info
        from ..geometry import load_rig
        from ..ros.share import resolve_share_path

        # our exports carry their rig; another tool's dataset needs --rig
        rig = None if read_info(args.path).get(META_KEY) else load_rig(resolve_share_path(args.rig))
        for ep in sources.lerobot_episodes(args.path, rig=rig):
            yield (f"lerobot {ep.task} seed {ep.seed}", ep.camera_names,
                   lambda rec, cfg, ep=ep: sources.log_episode(rec, ep, cfg))
    elif kind == "bag":
        from ..data.bag_import import ImportConfig
        from ..geometry import load_rig
        from ..ros.recording_topics import topic_map
        from ..ros.share import resolve_share_path

        rig_path = resolve_share_path(args.rig)
        views = tuple(c.name for c in load_rig(rig_path))
        config = ImportConfig(rig_path=rig_path, views=views, default_topics=topic_map(views, not args.real_cell),
                              index_by="order")
        for ep in sources.bag_episodes([args.path], config):
            yield (f"bag {ep.task} seed {ep.seed} {'success' if ep.success else 'failed'}", ep.camera_names,
                   lambda rec, cfg, ep=ep: sources.log_episode(rec, ep, cfg))
    else:
        summary, episodes = sources.eval_episodes(args.path)
        from ..geometry import load_rig
        from ..ros.share import resolve_share_path

        views = [c.name for c in load_rig(resolve_share_path(summary.get("rig") or args.rig))]
        for ep in episodes:
            verdict = "success" if ep.success else f"FAILED {ep.failure or 'unknown'}"
            yield (f"{summary.get('task')} seed {ep.seed} {verdict}", views,
                   lambda rec, cfg, ep=ep: sources.log_eval_episode(rec, summary, ep, views))
