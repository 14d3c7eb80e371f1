"""End-to-end latency of the ROS graph: camera frame stamp -> executed command, one process per node.

Runs the simulated graph (``action-images run --processes``: sim_node -> policy_node ->
executor_node, real DDS with the shared-memory profile) in the real-time mode (the cell keeps
moving while the policy thinks, as the real arm does; ``--lockstep`` for the lockstep mode, where
the figures are simulated seconds and the wall time per simulated second is printed) for
``--seconds`` of simulated time and prints, as medians over the predictions:

* model call (``PolicyRunner.predict``: resize + sampling + decoding inside the pipeline),
* frame stamp -> prediction outputs published (policy_node),
* frame stamp -> trajectory received (the monitor),
* frame stamp -> first executed command after that trajectory (executor_node; p95 too),
* the executor's stalls (a chunk ran out before the next arrived).

The model is ``--model`` (default ``models/tiny``; if absent, a tiny randomly initialised
pipeline is built in a temporary folder: the latency, not the task, is measured).

    PYTHONPATH=src .venv/bin/python bench/bench_ros_e2e.py [--seconds 40] [--steps 6]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _ros_env import set_ros_env

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--model", default="models/tiny")
    p.add_argument("--steps", type=int, default=6, help="denoising steps per prediction")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--lockstep", action="store_true", help="lockstep instead of real time")
    p.add_argument("--cpu-threads", type=int, default=1, help="OpenMP/BLAS/OpenCV threads per node (0 = no limit)")
    p.add_argument("--decoder", action="store_true", help="also run decoder_node (re-decodes every prediction)")
    args = p.parse_args()
    set_ros_env()
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO / "src"))
    os.chdir(REPO)

    from action_images_ros.ros.graph import GraphOptions
    from action_images_ros.ros.session import SessionConfig, run_session

    model = Path(args.model)
    tmp = None
    if not (model / "model_index.json").is_file():
        import torch

        from action_images_ros.model.config import ModelConfig
        from action_images_ros.model.factory import build_pipeline

        tmp = tempfile.TemporaryDirectory()
        model = Path(tmp.name) / "tiny_random"
        torch.manual_seed(0)
        build_pipeline(ModelConfig()).save_pretrained(model)  # the tiny configuration's size, untrained
        print(f"{args.model} not found: timing an untrained pipeline of the default (tiny) size")
    summary = run_session(GraphOptions(model=str(model), lockstep=args.lockstep, decoder=args.decoder,
                                       cpu_threads=args.cpu_threads), SessionConfig(
        duration_s=args.seconds, processes=True, stop_on_success=False,
        node_parameters={"policy_node": {"num_inference_steps": args.steps, "torch_threads": args.torch_threads,
                                         "max_frame_age_s": 2.0}}))
    if tmp is not None:
        tmp.cleanup()

    def ms(key):
        return "n/a" if summary.get(key) is None else f"{1000 * summary[key]:.0f} ms"

    sim_s = (summary.get("sim_status") or {}).get("episode_time_s", 0.0)
    print(f"graph ran {summary['wall_s']:.0f} s wall for {sim_s:.1f} s simulated "
          f"({'lockstep' if args.lockstep else 'real time'}; 3 node processes, sim 3 x 128x128 @ 10 Hz, "
          f"{args.steps} denoising steps, {args.torch_threads} torch thread(s) (0 = torch's default), "
          f"cpu_threads {args.cpu_threads}{', decoder_node' if args.decoder else ''})")
    print(f"predictions: {summary['predictions']}, commands executed: {summary['commands']}, "
          f"executor events: {summary['executor_events']}")
    print(f"model call (median): {ms('model_latency_median_s')}")
    print(f"frame stamp -> prediction published (median): {ms('frame_to_prediction_median_s')}")
    print(f"frame stamp -> trajectory received (median): {ms('frame_to_trajectory_median_s')}")
    print(f"frame stamp -> executed command: median {ms('frame_to_command_median_s')}, "
          f"p95 {ms('frame_to_command_p95_s')}")
    stats = summary.get("executor_stats") or {}
    print(f"executor: {stats.get('stalls', '?')} stalls ({stats.get('stall_time_s', 0):.1f} s), "
          f"{stats.get('chunks_accepted', '?')} chunks accepted, {stats.get('chunks_dropped', '?')} dropped, "
          f"largest chunk lateness {stats.get('max_late_s', 0):.2f} s")
    return 0 if summary["predictions"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
