"""`action-images demo`: the main job on embedded defaults (`make demo`).

1. The action-image codec round trip on the simulated 3-camera rig (errors + contact sheet).
2. With the shipped four-task checkpoint ``models/fourtask``: the whole ROS 2 node graph (sim_node ->
   policy_node -> executor_node) closed loop on the two-stage ``place_cube`` (``--task``) in lockstep on simulated time
   (a loaded machine changes only the wall time), recording what RViz would show (per-view
   action-image overlays) to a video and the Rerun view of the run to ``demo.rrd`` (viz_node;
   ``docs/viewer.md``). Exits non-zero when the task is not achieved.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import DEFAULT_MODEL
from . import codec_demo

HELP = "codec round trip, then the ROS 2 graph closed loop in the simulated cell on the shipped model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("outputs/demo"))
    p.add_argument("--model", type=Path, default=Path(DEFAULT_MODEL))
    p.add_argument("--task", default="place_cube",
                   help="simulated task of the closed loop (models/tiny knows reach_target and pick_cube only)")
    p.add_argument("--duration", type=float, default=30.0, help="simulated seconds of closed-loop control")


def run(args: argparse.Namespace) -> int:
    from ..cli import main as cli_main

    print("== 1. action-image codec round trip (3 views, 128x128)")
    rig = Path("config/cameras_sim.yaml")
    rc = codec_demo.run(argparse.Namespace(rig=rig if rig.is_file() else None, image_size=128, steps=8, out=args.out))
    if rc:
        return rc
    if not (args.model / "model_index.json").is_file():
        print(f"== 2. skipped: no trained checkpoint in {args.model} "
              f"(train one: action-images train --config config/model_tiny.yaml ...)")
        return 0
    print(f"== 2. ROS 2 graph closed loop in the simulated cell, model {args.model}, task {args.task}")
    view = args.out / "demo.rrd"  # the live view (viz_node), written to a file: docs/viewer.md
    view.unlink(missing_ok=True)
    rc = cli_main(["run", "--model", str(args.model), "--task", args.task, "--duration", str(args.duration),
                   "--record", str(args.out / "graph_overlays.mp4"), "--viz", "rerun", "--viz-rrd", str(view)])
    if view.is_file():
        print(f"== the view of this run (docs/viewer.md), open it with:\n  .venv/bin/rerun {view}")
    return rc
