"""Training throughput on this machine: 1 process x 2 threads against 2 processes x 1 thread.

Both run ``model.training.train`` (what ``action-images train`` runs) on the shipped tiny model's
size (UNet 16/32/64/128, 3 views, 64 px, F=4) with the same global batch of 8 synthetic clips; the
2-process run is DDP over gloo under ``accelerate launch``. Clips/s are counted over training time
(start-up and checkpoints excluded), after ``--warmup`` steps.

    PYTHONPATH=src .venv/bin/python bench/bench_train_scaling.py [--steps 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def worker(args) -> None:
    import torch

    from action_images_ros.model.config import ModelConfig, TrainConfig
    from action_images_ros.model.synthetic import SyntheticReachDataset
    from action_images_ros.model.training import train

    torch.set_num_threads(args.threads)
    cfg = ModelConfig()
    data = SyntheticReachDataset(512, cfg.image_size, cfg.num_future, num_views=3)
    tc = TrainConfig(batch_size=8, max_steps=args.steps, log_every=1, checkpoint_every=10_000, progress=False,
                     mixed_precision="no")
    res = train(cfg, data, tc, args.out / "run", device="cpu")
    if int(os.environ.get("RANK", "0")) == 0:
        t = {h["step"]: h["elapsed_s"] for h in res.history}
        measured = args.steps - args.warmup
        (args.out / "result.json").write_text(json.dumps(
            {"clips_per_s": 8 * measured / (t[args.steps] - t[args.warmup])}))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(processes: int, threads: int, steps: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        me = [str(Path(__file__).resolve()), "--worker", "--out", tmp, "--threads", str(threads),
              "--steps", str(steps), "--warmup", str(warmup)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        if processes == 1:
            cmd = [sys.executable] + me
        else:
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(_port())] + me
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        return json.loads((Path(tmp) / "result.json").read_text())["clips_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    rows = {"1 process x 2 threads": (1, 2), "2 processes x 1 thread (DDP, gloo)": (2, 1)}
    got = {name: [] for name in rows}
    for _ in range(args.repeats):  # interleaved, so a load change hits both alike
        for name, (p, t) in rows.items():
            got[name].append(run(p, t, args.steps, args.warmup))
    print(f"training throughput, tiny model, global batch 8, {args.steps - args.warmup} steps timed, "
          f"{args.repeats} runs each (median, min-max):")
    for name, v in got.items():
        print(f"  {name:<36} {np.median(v):6.1f} clips/s  ({min(v):.1f}-{max(v):.1f})")
    a, b = (np.median(v) for v in got.values())
    print(f"  ratio 2 processes / 1 process: {b / a:.2f}")


if __name__ == "__main__":
    main()
