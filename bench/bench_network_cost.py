"""What the network costs on this CPU, per design lever: one training step and one policy call.

Issue 17 asks for a four-task model trained in <= 120 min on 2 cores and a policy call <= 50 ms. Both
are set by the per-view UNet. For each variant (the shipped tiny/multitask UNet, then one change at a
time) this prints the parameters, the median seconds of a training step (``model.training.train``,
batch 8 scenes x 3 views, fp32, synthetic clips), the steps that fit in 120 min at that rate, and the
median policy call (``ActionImagesPipeline.__call__``: conditioning, denoising, codec decode) at 1, 2
and 4 denoising steps. Random weights: cost only, not skill. One run, all variants, same threads.

    PYTHONPATH=src .venv/bin/python bench/bench_network_cost.py [--threads 2] [--train-steps 10] [--calls 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from action_images_ros.model.config import ModelConfig, TrainConfig
from action_images_ros.model.factory import build_pipeline
from action_images_ros.model.synthetic import SyntheticReachDataset
from action_images_ros.model.training import train

#: (name, ModelConfig changes from the shipped tiny network)
VARIANTS: list[tuple[str, dict]] = [
    ("shipped: 16/32/64/128, 64 px, attn 1", {}),
    ("no attention", {"attention_levels": 0}),
    ("half width 8/16/32/64", {"block_out_channels": (8, 16, 32, 64), "norm_num_groups": 8}),
    ("three levels 16/32/64", {"block_out_channels": (16, 32, 64)}),
    ("48 px", {"image_size": 48}),
    ("32 px", {"image_size": 32}),
    ("2 keyframes (F=2)", {"num_future": 2}),
]


def train_step_s(cfg: ModelConfig, steps: int, out: Path) -> float:
    """Median seconds per training step after the first two (start-up, allocator warm-up)."""
    data = SyntheticReachDataset(64, cfg.image_size, cfg.num_future, num_views=3)
    tc = TrainConfig(batch_size=8, max_steps=steps, log_every=1, checkpoint_every=10_000, progress=False,
                     mixed_precision="no", warmup_steps=1)
    res = train(cfg, data, tc, out, device="cpu")
    t = np.array([h["elapsed_s"] for h in res.history])
    return float(np.median(np.diff(t[1:])))


def call_s(pipe, item, steps: int, calls: int) -> float:
    kw = dict(cond_rgb=item["cond_rgb"], cond_action=item["cond_action"], K=item["K"],
              T_world_cam=item["T_world_cam"], mode="policy", num_inference_steps=steps)
    out = []
    for i in range(calls + 1):
        t0 = time.perf_counter()
        pipe(generator=torch.Generator().manual_seed(i), **kw)
        if i:
            out.append(time.perf_counter() - t0)
    return float(np.median(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-steps", type=int, default=10)
    ap.add_argument("--calls", type=int, default=7)
    ap.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)

    print(f"torch {torch.__version__}, {args.threads} threads; train: batch 8 scenes x 3 views, fp32; "
          "policy call: whole pipeline, 3 views")
    print("| variant | params (M) | train step (s) | steps in 120 min | call 1 step (ms) | 2 steps | 4 steps |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, change) in enumerate(VARIANTS):
            if args.only and name not in args.only:
                continue
            cfg = dataclasses.replace(ModelConfig(), inference_bf16=False, **change)
            step = train_step_s(cfg, args.train_steps, Path(tmp) / f"run{k}")
            pipe = build_pipeline(cfg)
            pipe.denoiser.eval()
            item = SyntheticReachDataset(1, cfg.image_size, cfg.num_future, num_views=3)[0]
            calls = [call_s(pipe, item, s, args.calls) for s in (1, 2, 4)]
            params = sum(p.numel() for p in pipe.denoiser.parameters()) / 1e6
            print(f"| {name} | {params:.2f} | {step:.2f} | {int(7200 / step):,} | "
                  + " | ".join(f"{c * 1e3:.0f}" for c in calls) + " |", flush=True)


if __name__ == "__main__":
    main()
