"""The README's picture of the view (docs/img/view.png), made from a real episode.

1. Runs the simulated graph (sim_node, policy_node on the shipped models/tiny, executor_node) closed
   loop in lockstep with ``viz:=rerun``: viz_node writes the episode's view to an ``.rrd``
   (skip with ``--rrd FILE`` to use one you have, e.g. ``outputs/demo/demo.rrd``).
2. Serves it with ``rerun --serve-web --bind 127.0.0.1`` and opens it in headless Chromium over the
   DevTools protocol (``action_images_ros.viz.browser``), then writes the screenshot.

    .venv/bin/python scripts/view_screenshot.py                      # -> docs/img/view.png
    .venv/bin/python scripts/view_screenshot.py --rrd outputs/demo/demo.rrd --out /tmp/view.png
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from _ros_env import set_ros_env  # noqa: E402

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    import cv2

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rrd", type=Path, default=None, help="use this recording instead of running an episode")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "view.png")
    p.add_argument("--task", default="reach_target")
    p.add_argument("--seed", type=int, default=100000)
    p.add_argument("--duration", type=float, default=30.0, help="simulated seconds at most (stops on success)")
    p.add_argument("--width", type=int, default=1600)
    p.add_argument("--height", type=int, default=1000)
    args = p.parse_args(argv)
    rrd = args.rrd
    if rrd is None:
        from action_images_ros.ros.graph import GraphOptions
        from action_images_ros.ros.session import SessionConfig, run_session

        set_ros_env()
        rrd = REPO / "outputs" / "view_screenshot" / "episode.rrd"
        rrd.unlink(missing_ok=True)
        summary = run_session(
            GraphOptions(model=str(REPO / "models" / "tiny"), task=args.task, seed=args.seed, viz="rerun",
                         viz_rrd=str(rrd)),
            SessionConfig(duration_s=args.duration, node_parameters={"viz_node": {"image_period_s": 0.0}}))
        print(f"episode: {args.task} seed {args.seed}, {summary['predictions']} predictions, "
              f"{'success' if summary['success'] else 'not achieved'}; view in {rrd}")
    from action_images_ros.viz.browser import WebViewer, screenshot

    t0 = time.monotonic()
    with WebViewer(rrd) as viewer:
        image = screenshot(viewer.url, width=args.width, height=args.height, settle_s=600.0, settle_every_s=2.0,
                           stable_shots=15)  # 30 s unchanged: the whole episode is loaded
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]}, {time.monotonic() - t0:.0f} s in the browser)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
