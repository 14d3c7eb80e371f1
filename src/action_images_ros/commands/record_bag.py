"""`action-images record-bag --out DIR`: record the cell's topics into one rosbag2 (MCAP) bag per episode.

Runs ``recorder_node`` (``ros/nodes/recorder_node.py``) in this process until Ctrl-C or
``--duration``; the episodes are cut at the cell's ``episode`` marks (``episode/start|stop|reset``
of sim_node or episode_node). Label the episode just recorded with
``ros2 service call /recorder_node/label std_srvs/srv/SetBool "{data: true}"`` (or any client).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HELP = "record the cell's episode topics into one rosbag2 (MCAP) bag per episode"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="directory of the per-episode bags")
    p.add_argument("--rig", default="config/cameras_sim.yaml", help="camera rig YAML (its views are recorded)")
    p.add_argument("--views", default="", help="comma-separated views (default: the rig's)")
    p.add_argument("--task", default="", help="task name stored with every bag (the importer's default)")
    p.add_argument("--real-cell", action="store_true", help="franka_ros2's arm topics instead of the simulated cell's")
    p.add_argument("--use-sim-time", action="store_true", help="the simulated cell's /clock (receive times)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many wall seconds (0: Ctrl-C)")
    p.add_argument("--settle", type=float, default=0.5, help="seconds a message waits for its episode mark")
    p.add_argument("--close-delay", type=float, default=3.0,
                   help="seconds a bag stays open after its episode ended, for messages still in flight")
    p.add_argument("--max-bag-mb", type=float, default=8192.0, help="close a bag early beyond this size")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from ..ros.nodes.recorder_node import create_node

    rclpy.init()
    node = None
    try:
        params = [Parameter("out_dir", value=str(args.out)), Parameter("rig", value=str(args.rig)),
                  Parameter("views", value=[v for v in args.views.split(",") if v] or [""]),
                  Parameter("task", value=args.task), Parameter("use_sim", value=not args.real_cell),
                  Parameter("use_sim_time", value=bool(args.use_sim_time)),
                  Parameter("settle_s", value=float(args.settle)),
                  Parameter("close_delay_s", value=float(args.close_delay)),
                  Parameter("max_bag_mb", value=float(args.max_bag_mb))]
        node = create_node(parameter_overrides=params)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        while rclpy.ok() and (deadline is None or time.monotonic() < deadline):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()  # finishes the open bag
            counts = node.recorder.counts()
            print(json.dumps({"bags": [str(b) for b in node.recorder.closed_bags], "counts": counts}, indent=1))
        rclpy.try_shutdown()
    return 0
