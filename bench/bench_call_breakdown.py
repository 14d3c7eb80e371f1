"""Where one ``policy`` call's time goes, and what the pipeline's own ``device`` property saves.

    PYTHONPATH=src .venv/bin/python bench/bench_call_breakdown.py [--model models/fourtask] [--steps 1]
        [--threads 2] [--repeats 40]

1. Median of each part of the call (input checks, conditioning, noise, the network, the sampler step,
   the codec's decode, the gripper read-out) beside the whole call, under the folder's runtime.
2. The whole call with ``ActionImagesPipeline.device`` against diffusers' ``DiffusionPipeline.device``
   (which looks for group-offload hooks through every submodule at each access), calls interleaved, and a
   check that both give the same decoded actions bit for bit.
"""

from __future__ import annotations

import argparse
import collections
import functools
import time

import numpy as np
import torch
from diffusers import DiffusionPipeline

from action_images_ros.model.pipeline import ActionImagesPipeline
from bench_model import _load, policy_call

PARTS = {"check_inputs": "input checks", "prepare_conditions": "conditioning", "prepare_noise": "initial noise",
         "retrieve_timesteps": "timesteps", "denoise": "network", "sampler_step": "sampler step",
         "gripper_logits": "gripper read-out"}


def _timed(fn, times: list):
    @functools.wraps(fn)
    def call(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            times.append(time.perf_counter() - t)
    return call


def breakdown(pipe, item, steps: int, repeats: int) -> None:
    acc = collections.defaultdict(list)
    for name in PARTS:  # instance attributes shadow the methods for this run only
        setattr(pipe, name, _timed(getattr(pipe, name), acc[name]))
    pipe.codec.decode = _timed(pipe.codec.decode, acc["codec"])
    for i in range(3):
        policy_call(pipe, item, steps, seed=i)
    for v in acc.values():
        v.clear()
    whole = []
    for i in range(repeats):
        t = time.perf_counter()
        policy_call(pipe, item, steps, seed=i)
        whole.append(time.perf_counter() - t)
    for name in PARTS:
        delattr(pipe, name)
    del pipe.codec.decode
    total = np.median(whole) * 1e3
    print(f"whole call ({pipe.runtime}, {steps} steps): median {total:.1f} ms")
    parts = 0.0
    for name, label in list(PARTS.items()) + [("codec", "codec decode")]:
        if acc[name]:
            m = np.median(acc[name]) * 1e3 * len(acc[name]) / repeats
            parts += m
            print(f"  {label:18s} {m:6.2f} ms")
    print(f"  {'the rest':18s} {total - parts:6.2f} ms (tensor moves, output copies, Python)")


def device_ab(pipe, item, steps: int, repeats: int) -> None:
    ours, theirs = ActionImagesPipeline.__dict__["device"], DiffusionPipeline.device
    times = {"ActionImagesPipeline.device": [], "DiffusionPipeline.device": []}
    try:
        for i in range(repeats):
            acts = None
            for name, prop in zip(times, (ours, theirs)):
                ActionImagesPipeline.device = prop
                t = time.perf_counter()
                out = policy_call(pipe, item, steps, seed=i)
                times[name].append(time.perf_counter() - t)
                if acts is None:
                    acts = out.actions
                elif not np.array_equal(acts, out.actions):
                    raise SystemExit("the two device properties gave different actions")
    finally:
        ActionImagesPipeline.device = ours
    for name, t in times.items():
        t = np.asarray(t) * 1e3
        print(f"  {name:28s} median {np.median(t):.1f} ms (p10 {np.percentile(t, 10):.1f}, "
              f"p90 {np.percentile(t, 90):.1f})")
    a, b = (np.median(v) for v in times.values())
    print(f"  saved {1e3 * (b - a):.1f} ms a call; actions identical in all {repeats} pairs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/fourtask")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe, item = _load(args.model)
    breakdown(pipe, item, args.steps, args.repeats)
    print("device property A/B (interleaved):")
    device_ab(pipe, item, args.steps, args.repeats)


if __name__ == "__main__":
    main()
