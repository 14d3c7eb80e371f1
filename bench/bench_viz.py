"""What the live view costs the closed loop: the simulated graph with and without viz_node, one run.

The graph runs one process per node (as ``ros2 launch`` starts it), in lockstep on the shipped
model, alternately without and with ``viz:=rerun`` (viz_node writing an ``.rrd``, every camera
frame), ``--pairs`` times. Per session the prediction rate is the number of predictions after the
first (model load and warm-up excluded) over the wall time between the first and the last;
the script prints each session, the medians and their ratio, and the CPU seconds each node process
used (``/proc``; viz_node's share of the graph's CPU time does not depend on what else runs on the
machine, the rates do). The issue's bound: the view may cost at most 5 % of the prediction rate
(ratio >= 0.95). Usage::

    python bench/bench_viz.py                  # 3 pairs of 12 s simulated each
    python bench/bench_viz.py --pairs 1 --seconds 6
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ros_env import REPO, set_ros_env  # noqa: E402

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def session(viz: bool, seconds: float, rrd: Path, timeout_s: float) -> dict:
    """One graph session; returns predictions, their wall times and the rate."""
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from action_images_ros.ros.graph import GraphOptions, topic
    from action_images_ros.ros.monitor import GraphMonitor
    from action_images_ros.ros.qos import state_qos
    from action_images_ros.ros.runner import BackgroundSpinner, SubprocessGraph
    from action_images_ros.ros.session import graph_specs

    options = GraphOptions(model=str(REPO / "models" / "tiny"), viz="rerun" if viz else "none", viz_rrd=str(rrd))
    specs, views = graph_specs(options, {"viz_node": {"image_period_s": 0.0}} if viz else None)
    context = Context()
    rclpy.init(context=context)
    monitor = GraphMonitor(views, context=context, name="bench_viz_monitor",
                           parameter_overrides=[Parameter("use_sim_time", value=True)])
    arrivals: list[float] = []
    monitor.create_subscription(String, topic("prediction"), lambda m: arrivals.append(time.monotonic())
                                if json.loads(m.data).get("ok") else None, state_qos(10))
    spinner = BackgroundSpinner(context)
    spinner.add(monitor)
    graph = SubprocessGraph(specs)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout_s and not graph.exited():
            status = monitor.sim_status or {}
            if status.get("episode") == 0 and status.get("episode_time_s", 0.0) >= seconds:
                break
            time.sleep(0.05)
        summary = monitor.summary()
        cpu_s = {name: _cpu_seconds(proc.pid) for name, proc in graph.processes.items()}
    finally:
        spinner.close()
        codes = graph.shutdown()
        monitor.destroy_node()
        context.try_shutdown()
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) >= 3 else float("nan")
    return {"viz": viz, "predictions": len(arrivals), "rate_hz": rate, "wall_s": round(time.monotonic() - t0, 1),
            "model_latency_median_s": summary.get("model_latency_median_s"), "exit_codes": codes,
            "cpu_s": {k: round(v, 1) for k, v in cpu_s.items()},
            "rrd_mb": round(rrd.stat().st_size / 1e6, 2) if viz and rrd.is_file() else None}


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=3, help="sessions without / with the view (alternating)")
    p.add_argument("--seconds", type=float, default=12.0, help="simulated seconds per session")
    p.add_argument("--timeout", type=float, default=600.0, help="wall seconds per session at most")
    args = p.parse_args(argv)
    set_ros_env()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_viz_") as tmp:
        for i in range(args.pairs):
            for viz in (False, True):
                row = session(viz, args.seconds, Path(tmp) / f"live_{i}.rrd", args.timeout)
                rows.append(row)
                print(json.dumps(row), flush=True)
    without = [r["rate_hz"] for r in rows if not r["viz"]]
    with_view = [r["rate_hz"] for r in rows if r["viz"]]
    m0, m1 = float(np.nanmedian(without)), float(np.nanmedian(with_view))
    print(f"prediction rate, median of {args.pairs}: without view {m0:.3f} /s, with view {m1:.3f} /s, "
          f"ratio {m1 / m0:.3f} (the view costs {100 * (1 - m1 / m0):+.1f} %; bound: <= 5 %)")
    share = [r["cpu_s"]["viz_node"] / sum(r["cpu_s"].values()) for r in rows if r["viz"]]
    per_pred = [r["cpu_s"]["viz_node"] / r["predictions"] for r in rows if r["viz"]]
    print(f"viz_node CPU: median {100 * float(np.median(share)):.1f} % of the graph's CPU time, "
          f"{float(np.median(per_pred)):.2f} CPU-s per prediction (load-independent: what the view takes from "
          f"the loop's cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
