"""The GPU check: one command, one table, a few minutes on one GPU (prepared for when one is lent).

    PYTHONPATH=src .venv/bin/python bench/bench_gpu.py            # on a CUDA machine, ~3-6 min
    PYTHONPATH=src .venv/bin/python bench/bench_gpu.py --smoke    # the same code path, CPU, toy sizes

Rows:
1. tiny (models' UNet, 3 views, 64 px): training steps/s through ``model.training.train`` (the loop
   ``action-images train`` runs) and the policy call's latency at 1/2/4 steps.
2. large: a Wan2.1-1.3B-shaped transformer + Wan VAE with random weights (same FLOPs and memory as
   the real one; no weights are downloaded), 3 views x (RGB + action image), 256 px, 4 future frames:
   that is 12 latent frames x 256 tokens = 3072 tokens per call. The policy call at 1, 2, 4 and 50
   steps, the paper's recipe (50 steps + classifier-free guidance) estimated as the 50-step call plus
   50 x the extra cost of a batch-of-2 network evaluation (CFG's conditional + unconditional pass;
   the pipeline itself has no CFG), and one training step (bf16 autocast, gradient checkpointing,
   AdamW) with its peak memory.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from action_images_ros.model.config import ModelConfig, TrainConfig, WanConfig
from action_images_ros.model.factory import build_pipeline
from action_images_ros.model.objective import flow_matching_loss
from action_images_ros.model.synthetic import SyntheticReachDataset
from action_images_ros.model.training import train

sys.path.insert(0, str(Path(__file__).parent))
from bench_model import time_calls  # noqa: E402  (the policy-call timer of bench_model.py)

WAN_1_3B = dict(num_layers=30, num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, text_dim=4096,
                freq_dim=256, vae_base_dim=96, vae_z_dim=16, vae_num_res_blocks=2)
WAN_TOY = dict(num_layers=2, num_attention_heads=2, attention_head_dim=16, ffn_dim=64, text_dim=16, freq_dim=32,
               vae_base_dim=8, vae_z_dim=4, vae_num_res_blocks=1)


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    def add(self, what: str, value: str) -> None:
        self.rows.append((what, value))
        print(f"  {what}: {value}", flush=True)

    def print(self, title: str) -> None:
        width = max(len(w) for w, _ in self.rows)
        print(f"\n{title}\n| {'measure':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
        for w, v in self.rows:
            print(f"| {w:<{width}} | {v} |")


def _sync(device: str):
    return torch.cuda.synchronize if device == "cuda" else None


def bench_tiny(table: Table, device: str, steps: int, repeats: int) -> None:
    cfg = ModelConfig()  # the shipped tiny UNet's size (3 views, 64 px, F=4)
    data = SyntheticReachDataset(256, cfg.image_size, cfg.num_future, num_views=3)
    with tempfile.TemporaryDirectory() as out:
        tc = TrainConfig(batch_size=8, max_steps=steps, progress=False, checkpoint_every=10_000, log_every=steps)
        res = train(cfg, data, tc, out, device=device)
    table.add(f"tiny: training, batch 8, {steps} steps", f"{steps / res.elapsed_s:.1f} steps/s "
              f"({8 * steps / res.elapsed_s:.0f} clips/s)")
    pipe = res.pipeline.to(device)
    item = data[0]
    for n in (1, 2, 4):
        t = time_calls(pipe, item, n, repeats, sync=_sync(device))
        table.add(f"tiny: policy call, {n} step(s)", f"{1000 * np.median(t):.1f} ms median")


def _network_eval_s(pipe, item, batch: int, repeats: int, device: str) -> float:
    """Median seconds of one network evaluation on ``batch`` copies of ``item`` (policy mode)."""
    coll = torch.utils.data.default_collate([item] * batch)
    cond = pipe.prepare_conditions(coll["cond_rgb"], coll["cond_action"], coll["K"], coll["T_world_cam"],
                                   ["policy"] * batch, state=coll.get("state"))
    x_rgb = pipe.backbone.encode_stream(pipe.normalize(coll["future_rgb"].to(device)), "rgb", cond)
    x_act = pipe.backbone.encode_stream(pipe.normalize(coll["future_action"].to(device)), "action", cond)
    t = torch.full((batch,), 500.0, device=device)
    out = []
    with torch.no_grad():
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            pipe.denoise(x_rgb, x_act, cond, t, autocast=True)
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                out.append(time.perf_counter() - t0)
    return float(np.median(out))


def bench_large(table: Table, device: str, size: int, shape: dict, repeats: int, paper_steps: int) -> None:
    cfg = ModelConfig(denoiser_type="wan", image_size=size, num_future=4, prediction_type="velocity",
                      residual_to_current=False, use_state=True, wan=WanConfig(**shape))
    pipe = build_pipeline(cfg).to(device)
    n = sum(p.numel() for p in pipe.denoiser.parameters()) / 1e9
    table.add("large: transformer parameters", f"{n:.3f} B")
    item = SyntheticReachDataset(1, size, cfg.num_future, num_views=3)[0]
    sync = _sync(device)
    # Inference in bf16 weights, as a deployment would load them.
    pipe.denoiser.to(torch.bfloat16)
    calls = {}
    for steps in (1, 2, 4, paper_steps):
        calls[steps] = float(np.median(time_calls(pipe, item, steps, repeats if steps < 10 else 1, sync=sync)))
        table.add(f"large: policy call, {steps} step(s)", f"{1000 * calls[steps]:.0f} ms")
    extra = _network_eval_s(pipe, item, 2, repeats, device) - _network_eval_s(pipe, item, 1, repeats, device)
    cfg_call = calls[paper_steps] + paper_steps * max(extra, 0.0)
    table.add(f"large: paper recipe, {paper_steps} steps + CFG (estimated)",
              f"{1000 * cfg_call:.0f} ms = {cfg_call / calls[1]:.0f} x the 1-step call")
    # One training step: fp32 master weights, bf16 autocast, gradient checkpointing, AdamW.
    pipe.denoiser.to(torch.float32).train()
    pipe.denoiser.enable_gradient_checkpointing()
    params = [p for p in pipe.denoiser.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    batch = torch.utils.data.default_collate([item])
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(3):
        t0 = time.perf_counter()
        parts = flow_matching_loss(pipe, batch, ["policy"], generator=torch.Generator().manual_seed(i), autocast=True)
        parts.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    table.add("large: training step, 1 scene (after 1 warm-up)", f"{1000 * float(np.median(times[1:])):.0f} ms")
    if device == "cuda":
        table.add("large: training peak GPU memory", f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, toy sizes: checks the script, measures nothing")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    table = Table()
    if args.smoke:
        torch.set_num_threads(2)
        device, tiny_steps, size, shape, paper_steps, repeats = "cpu", 3, 64, WAN_TOY, 4, 1
    elif torch.cuda.is_available():
        device, tiny_steps, size, shape, paper_steps, repeats = "cuda", 200, 256, WAN_1_3B, 50, args.repeats
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    else:
        print("no CUDA device: nothing to measure (use --smoke to check the script on the CPU)")
        return
    t0 = time.perf_counter()
    bench_tiny(table, device, tiny_steps, repeats)
    bench_large(table, device, size, shape, repeats, paper_steps)
    table.print(f"GPU check ({'smoke, CPU' if args.smoke else device}; {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
