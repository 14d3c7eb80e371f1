"""`action-images run`: start the ROS 2 node graph here, without `ros2 launch`, and report the outcome."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

HELP = ("run the ROS 2 node graph (sim or cameras, policy, executor) in this environment and report the outcome; "
        "exits 1 when the simulated task is not achieved")


def _launch_arguments():
    from ..ros.graph import LAUNCH_ARGUMENTS  # rclpy-free module, but keep --help fast

    return LAUNCH_ARGUMENTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("graph (the launch arguments of launch/*.launch.py)")
    for name, default, doc in _launch_arguments():
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, default=default, help=f"{doc} (default: {default})")
    p.add_argument("--duration", type=float, default=60.0,
                   help="seconds to run: simulated seconds in the simulated cell, wall seconds on the real one "
                        "(default: 60)")
    p.add_argument("--processes", action="store_true", help="one process per node (default: all in this process)")
    p.add_argument("--keep-going", action="store_true", help="do not stop when the simulated task succeeds")
    p.add_argument("--record", type=Path, default=None, help="video of the per-view overlays (.mp4 or .avi)")
    p.add_argument("--record-fps", type=float, default=2.0)
    p.add_argument("--log-dir", type=Path, default=None, help="with --processes: one log file per node")
    p.add_argument("--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                   help="extra node parameter, e.g. policy_node.torch_threads=1 (repeatable)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")


def parse_params(items: list[str]) -> dict[str, dict]:
    """``["node.name=value", ...]`` -> ``{node: {name: value}}`` (values parsed as YAML)."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not sep or not dot or not node or not name:
            raise ValueError(f"--param must look like NODE.NAME=VALUE (e.g. policy_node.torch_threads=1), "
                             f"got {item!r}")
        out.setdefault(node, {})[name] = yaml.safe_load(value)
    return out


def run(args: argparse.Namespace) -> int:
    from ..ros.graph import GraphOptions
    from ..ros.session import SessionConfig, run_session

    options = GraphOptions.from_strings({name: str(getattr(args, name)) for name, _, _ in _launch_arguments()})
    if options.rviz:
        print("note: RViz cannot start from here (no ROS install); open config/action_images.rviz in RViz "
              "on a machine that sees this graph")
    config = SessionConfig(duration_s=args.duration, processes=args.processes, stop_on_success=not args.keep_going,
                           record=args.record, record_fps=args.record_fps, log_dir=args.log_dir,
                           node_parameters=parse_params(args.param))
    summary = run_session(options, config)
    failed = options.use_sim and not summary.get("success")
    if args.json:
        print(json.dumps(summary, indent=2))
        return 1 if failed else 0
    status = summary.get("sim_status") or {}
    sim_s = f", {status.get('episode_time_s', 0.0):.1f} s simulated" if options.use_sim else ""
    print(f"ran {summary['wall_s']:.1f} s{sim_s}: {summary['predictions']} predictions, "
          f"{summary['commands']} commands sent")
    if options.use_sim:
        print(f"task {status.get('task', options.task)} (seed {status.get('seed', '?')}): "
              f"{'SUCCESS' if summary['success'] else 'not achieved'}")
    for key, label in (("model_latency_median_s", "model latency (median)"),
                       ("frame_to_command_median_s", "frame stamp -> executed command (median)")):
        if summary.get(key) is not None:
            print(f"{label}: {1000 * summary[key]:.0f} ms")
    if summary["executor_events"]:
        print(f"executor events: {summary['executor_events']}")
        for event, reason in summary["last_reasons"].items():
            print(f"  last {event}: {reason}")
    if args.record is not None:
        print(f"video: {args.record} ({summary['video_frames']} frames)")
    if summary.get("exit_codes"):
        print(f"node exit codes: {summary['exit_codes']}")
    return 1 if failed else 0
