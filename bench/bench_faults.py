"""Fault injection and soak of the robot's graph (one process per node, lockstep sim, the shipped model).

Prints one table: per fault case whether every node stayed alive, the error was logged, how many
unsafe commands went out (the harness checks every command against the safety envelope and the
arm's measured pose itself) and how long until the loop moved again. With ``--soak-min`` it then
runs episodes back to back through ``episode/stop`` / ``episode/start`` for that many minutes
(nobody unsticks anything), sampling each node's RSS, and with ``--eval`` compares the soak's
success with ``action-images eval`` (direct path) on the same seeds. Exits 1 on any unsafe
command, node death or case not recovered within its bound.

    PYTHONPATH=src .venv/bin/python bench/bench_faults.py                  # the catalogue (~6 min)
    PYTHONPATH=src .venv/bin/python bench/bench_faults.py --cases command_path,current_pose_silent --log-lines
    PYTHONPATH=src .venv/bin/python bench/bench_faults.py --cases none --soak-min 30 --eval

Cases that need a real-time graph (``Case.lockstep`` false, e.g. a silent pose stream) run on a second
graph started after the lockstep one; the soak runs on the lockstep graph.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="all", help="comma-separated case names, 'all', 'none', 'short' "
                   "(the slow test's) or 'command_path' (issue 18's lockstep cases)")
    p.add_argument("--log-lines", action="store_true", help="add the log line each case produced to the table")
    p.add_argument("--soak-min", type=float, default=0.0, help="minutes of soak after the cases (0 = none)")
    p.add_argument("--eval", action="store_true", help="compare the soak with action-images eval on its seeds")
    p.add_argument("--model", default="models/tiny")
    p.add_argument("--task", default="reach_target")
    p.add_argument("--seed", type=int, default=100000)
    p.add_argument("--torch-threads", type=int, default=1, help="policy_node torch_threads (0 = torch's default)")
    p.add_argument("--out", type=Path, default=None, help="folder for node logs and results.json")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_shm.xml"))  # as make does

    from action_images_ros.ros.fault_cases import COMMAND_PATH, SHORT, by_name
    from action_images_ros.ros.fault_harness import FaultHarness, format_table, run_cases, run_soak
    from action_images_ros.ros.graph import GraphOptions
    from action_images_ros.sim.tasks import make_task

    groups = {"short": SHORT, "command_path": COMMAND_PATH}
    names = [n for part in args.cases.split(",") for n in (groups.get(part) or [part])]
    cases = [] if args.cases == "none" else by_name(None if args.cases == "all" else names)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_faults_"))
    options = GraphOptions(model=args.model, task=args.task, seed=args.seed)
    params = {"policy_node": {"torch_threads": args.torch_threads}}
    results, soak = [], None
    lockstep_cases = [c for c in cases if c.lockstep]
    if lockstep_cases or args.soak_min > 0:
        with FaultHarness(options, out / "logs", params) as h:
            if lockstep_cases:
                results = run_cases(h, lockstep_cases)
            if args.soak_min > 0 and not h.graph.exited():
                soak = run_soak(h, args.soak_min, int(make_task(args.task).max_steps),
                                progress=lambda e: logging.info("soak episode %s", e))
    realtime_cases = [c for c in cases if not c.lockstep]
    if realtime_cases:
        with FaultHarness(dataclasses.replace(options, lockstep=False), out / "logs_realtime", params) as h:
            results += run_cases(h, realtime_cases)
    failed = False
    if results:
        print(format_table(results, log_lines=args.log_lines))
        failed |= not all(r.ok for r in results)
    report = {"cases": [r.__dict__ for r in results]}
    if soak is not None:
        eps = soak.episodes
        wins = sum(e["success"] for e in eps)
        growth = soak.rss_growth(1.0)
        print(f"\nsoak: {soak.minutes:.1f} min, {len(eps)} episodes, success {wins}/{len(eps)} "
              f"({100.0 * wins / max(1, len(eps)):.0f} %), unsafe commands {soak.unsafe} "
              f"(checked {soak.commands_checked} sent + {soak.executed_checked} executed), nodes alive {soak.alive}")
        for node, samples in soak.rss.items():
            first = next((mb for t, mb in samples if t >= 1.0), float("nan"))
            print(f"  {node:14s} RSS at 1 min {first:7.1f} MiB, at end {samples[-1][1]:7.1f} MiB, "
                  f"growth {growth.get(node, float('nan')):+.1f} %")
        report["soak"] = {"minutes": soak.minutes, "episodes": eps, "unsafe": soak.unsafe, "rss": soak.rss,
                          "rss_growth_pct": growth, "alive": soak.alive}
        failed |= soak.unsafe > 0 or not soak.alive or any(g > 5.0 for g in growth.values())
        if args.eval and eps:
            seeds = [e["seed"] for e in eps]
            eval_out = out / "eval"
            cmd = [sys.executable, "-m", "action_images_ros.cli", "eval", "--model", args.model, "--task", args.task,
                   "--episodes", str(max(seeds) - args.seed + 1), "--seed-offset", str(args.seed), "--no-videos",
                   "--out", str(eval_out), "--threads", "2"]
            subprocess.run(cmd, check=True, cwd=REPO)
            per = {e["seed"]: e["success"] for e in json.loads((eval_out / "results.json").read_text())["per_episode"]}
            ev = sum(per[s] for s in seeds)
            print(f"eval (direct path) on the same {len(seeds)} seeds: {ev}/{len(seeds)} "
                  f"({100.0 * ev / len(seeds):.0f} %); soak {100.0 * wins / len(seeds):.0f} %; "
                  f"{sum(per[e['seed']] != e['success'] for e in eps)} episode(s) differ")
            report["eval_same_seeds"] = {"success": ev, "episodes": len(seeds)}
    (out / "results.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"\nlogs and results.json in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
