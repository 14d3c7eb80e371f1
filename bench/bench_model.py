"""Latency of one ``policy`` call of the video-action pipeline (median over repeats).

Tiny configuration on the CPU (3 views, 64 px, 4 future keyframes): the whole
call (input checks, conditioning, denoising loop, codec decode). With CUDA
available it also times the large configuration (Wan transformer + Wan VAE,
3 views at 256 px) — from ``--wan-pretrained`` if given, else a randomly
initialised Wan2.1-1.3B-sized transformer (same FLOPs, no weights needed).

    PYTHONPATH=src .venv/bin/python bench/bench_model.py [--model models/NAME] [--threads 2]
        [--baseline models/multitask --baseline-steps 4] [--runtime eager]

A saved model runs under its folder's runtime (``policy_config.runtime``), as the robot runs it;
``--runtime`` times another.

``--baseline`` times a second saved pipeline in the same run, its calls interleaved with the first's
so that both see the same load, and prints the ratio of the medians.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from action_images_ros.config import RUNTIMES
from action_images_ros.model.config import ModelConfig, WanConfig
from action_images_ros.model.factory import build_pipeline
from action_images_ros.model.precision import bf16_is_fast
from action_images_ros.model.synthetic import SyntheticReachDataset
from action_images_ros.model_io import load_policy


def policy_call(pipe, item, steps: int, seed: int = 0):
    """One ``policy`` call on a synthetic item, given what the robot gives: the views, the rig and the pose."""
    kw = dict(cond_rgb=item["cond_rgb"], cond_action=item["cond_action"], K=item["K"],
              T_world_cam=item["T_world_cam"], mode="policy", num_inference_steps=steps,
              generator=torch.Generator().manual_seed(seed))
    if pipe.model_cfg.use_instruction:  # a trained model that follows instructions (models/tiny)
        kw["instruction"] = "reach the red target"
    if "state" in item:
        kw["state"] = np.asarray(item["state"])
    return pipe(**kw)


def time_calls(pipe, item, steps: int, repeats: int, sync=None, warmup: int = 2) -> np.ndarray:
    """Seconds per policy call, ``repeats`` times after ``warmup`` warm-up calls."""
    out = []
    for i in range(repeats + warmup):
        t0 = time.perf_counter()
        policy_call(pipe, item, steps, seed=i)
        if sync:
            sync()
        if i >= warmup:
            out.append(time.perf_counter() - t0)
    return np.array(out)


def _load(model: str | None, runtime: str | None = None):
    """A saved pipeline as the robot loads it (``load_policy``: the folder's runtime unless ``runtime`` is
    given), or random weights under eager torch."""
    if model:
        pipe, _ = load_policy(model, runtime=runtime)
    else:
        pipe = build_pipeline(ModelConfig())
        pipe.runtime = "eager"
    pipe.denoiser.eval()
    item = SyntheticReachDataset(1, pipe.model_cfg.image_size, pipe.model_cfg.num_future, num_views=3)[0]
    return pipe, item


def bench_against_baseline(args) -> None:
    """The model's call at each of ``--steps`` and the baseline's at ``--baseline-steps``, interleaved."""
    pipe, item = _load(args.model, args.runtime)
    base, base_item = _load(args.baseline)
    for p, it, s in [(pipe, item, s) for s in args.steps] + [(base, base_item, args.baseline_steps)]:
        time_calls(p, it, s, repeats=0)  # warm-up of every step count timed
    times = {s: [] for s in args.steps}
    base_times = []
    for i in range(args.repeats):
        if i % 2:  # the baseline first every other round: neither always follows the other
            base_times.append(time_calls(base, base_item, args.baseline_steps, repeats=1, warmup=0)[0])
        for s in args.steps:
            times[s].append(time_calls(pipe, item, s, repeats=1, warmup=0)[0])
        if not i % 2:
            base_times.append(time_calls(base, base_item, args.baseline_steps, repeats=1, warmup=0)[0])
    b = 1000 * np.median(base_times)
    print(f"baseline {args.baseline} ({base.runtime}), {args.baseline_steps} steps: median {b:.0f} ms "
          f"(p10 {1000 * np.percentile(base_times, 10):.0f}, p90 {1000 * np.percentile(base_times, 90):.0f})")
    for s in args.steps:
        m = 1000 * np.median(times[s])
        print(f"{args.model or 'random weights'} ({pipe.runtime}), {s} steps: median {m:.0f} ms "
              f"(p10 {1000 * np.percentile(times[s], 10):.0f}, "
              f"p90 {1000 * np.percentile(times[s], 90):.0f}); "
              + (f"{b / m:.2f}x faster than the baseline" if b >= m else f"{m / b:.2f}x slower than the baseline"))


def bench_tiny(args) -> None:
    pipe, item = _load(args.model, args.runtime)
    cfg = pipe.model_cfg
    n = sum(p.numel() for p in pipe.denoiser.parameters()) / 1e6
    print(f"tiny {cfg.denoiser_type}: {n:.2f} M params, 3 views, {cfg.image_size} px, F={cfg.num_future}, "
          f"runtime {pipe.runtime}, bf16 autocast={cfg.inference_bf16 and bf16_is_fast('cpu')} "
          f"(config: {cfg.inference_bf16}), "
          f"{torch.get_num_threads()} CPU threads")
    for steps in args.steps:
        t = time_calls(pipe, item, steps, args.repeats)
        print(f"  policy call, {steps} steps: median {1000 * np.median(t):.0f} ms "
              f"(p10 {1000 * np.percentile(t, 10):.0f}, p90 {1000 * np.percentile(t, 90):.0f})")


def bench_large(args) -> None:
    size = args.large_size
    if args.wan_pretrained:
        wan = WanConfig(pretrained=args.wan_pretrained, torch_dtype="bfloat16")
    else:  # Wan2.1-T2V-1.3B transformer shape, random weights
        wan = WanConfig(num_layers=30, num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, text_dim=4096,
                        freq_dim=256, vae_base_dim=96, vae_z_dim=16, vae_num_res_blocks=2)
    cfg = ModelConfig(denoiser_type="wan", image_size=size, num_future=4, prediction_type="velocity",
                      residual_to_current=False, wan=wan)
    pipe = build_pipeline(cfg)
    if not args.wan_pretrained:
        pipe.denoiser.to(torch.bfloat16)
    pipe.to("cuda")
    item = SyntheticReachDataset(1, size, cfg.num_future, num_views=3)[0]
    n = sum(p.numel() for p in pipe.denoiser.parameters()) / 1e9
    print(f"large wan: {n:.2f} B params, 3 views, {size} px, F=4 ({torch.cuda.get_device_name()})")
    for steps in args.steps:
        t = time_calls(pipe, item, steps, args.repeats, sync=torch.cuda.synchronize)
        print(f"  policy call, {steps} steps: median {1000 * np.median(t):.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="saved tiny pipeline (default: random weights, same cost)")
    ap.add_argument("--steps", type=int, nargs="+", default=[6, 8], help="denoising steps to time")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--wan-pretrained", default=None, help="local Wan diffusers folder for the large config")
    ap.add_argument("--large-size", type=int, default=256)
    ap.add_argument("--runtime", default=None, choices=RUNTIMES,
                    help="where --model's network runs (default: the folder's policy_config.runtime, as on the robot)")
    ap.add_argument("--baseline", default=None, help="a second saved pipeline timed in the same run (interleaved)")
    ap.add_argument("--baseline-steps", type=int, default=4, help="the baseline's denoising steps")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.baseline:
        bench_against_baseline(args)
        return
    bench_tiny(args)
    if torch.cuda.is_available():
        bench_large(args)
    else:
        print("large config: skipped (no CUDA device)")


if __name__ == "__main__":
    main()
