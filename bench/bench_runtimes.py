"""Policy-call latency of one model under each UNet runtime and precision, timed in one run, with how far
each one's decoded actions are from eager float32 (the reference path).

    PYTHONPATH=src .venv/bin/python bench/bench_runtimes.py --model models/multitask --threads 2 [--compile]

Rows: eager float32; eager bf16 autocast (what a model with ``inference_bf16`` runs where the CPU has native
bf16); eager bf16 with the UNet's weights and input in channels-last memory format; ONNX Runtime float32;
OpenVINO float32 and bf16; with ``--compile`` also ``torch.compile`` in both precisions (the first call's
time, export or compile included, is printed apart). The call is the whole pipeline as ``bench_model.py``
times it (checks, conditioning, sampler, codec decode, gripper read-out). Runtimes:
``src/action_images_ros/model/runtimes.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

import numpy as np
import torch

from action_images_ros.model.pipeline import ActionImagesPipeline
from action_images_ros.model.precision import bf16_is_fast
from action_images_ros.model.runtimes import use_runtime
from action_images_ros.model.synthetic import SyntheticReachDataset
from bench_model import policy_call, time_calls  # noqa: E402  (run as bench/bench_runtimes.py)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/multitask")
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (compiles for minutes)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    pipe = ActionImagesPipeline.from_pretrained(args.model)
    pipe.denoiser.eval()
    cfg = pipe.model_cfg
    item = SyntheticReachDataset(1, cfg.image_size, cfg.num_future, num_views=3)[0]
    print(f"{args.model}: {cfg.image_size} px, F={cfg.num_future}, {args.threads} threads, CPU bf16 native: "
          f"{bf16_is_fast('cpu')}; median of {args.repeats} calls after 2 warm-up calls")
    # (runtime, bf16, channels_last)
    variants = [("eager", False, False), ("eager", True, False), ("eager", True, True), ("onnxruntime", False, False),
                ("openvino", False, False), ("openvino", True, False)]
    if args.compile:
        variants += [("compile", False, False), ("compile", True, False)]
    fp32 = dataclasses.replace(cfg, inference_bf16=False)
    ref = {s: None for s in args.steps}
    head = f"{'runtime':30s}" + "".join(f"{f'{s} step' + ('s' if s > 1 else ''):>10s}" for s in args.steps)
    print(head + "   decoded actions vs eager float32 (max over steps)")
    for runtime, bf16, channels_last in variants:
        pipe.model_cfg = dataclasses.replace(fp32, inference_bf16=bf16)
        # channels-last: the weights here, each input by the UNet's first convolution (oneDNN keeps the format)
        pipe.denoiser.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        t0 = time.perf_counter()
        use_runtime(pipe, runtime)
        policy_call(pipe, item, args.steps[0])  # export / compile happen here
        setup_s = time.perf_counter() - t0
        cells, pos_mm, grip = [], 0.0, 0.0
        for s in args.steps:
            out = policy_call(pipe, item, s)
            if ref[s] is None:
                ref[s] = out.actions
            pos_mm = max(pos_mm, 1000 * float(np.abs(out.actions[:, :3] - ref[s][:, :3]).max()))
            grip = max(grip, float(np.abs(out.actions[:, 7] - ref[s][:, 7]).max()))
            cells.append(f"{1000 * np.median(time_calls(pipe, item, s, args.repeats)):8.0f}ms")
        name = (f"{runtime} {'bf16' if bf16 and bf16_is_fast('cpu') else 'float32'}"
                + (" channels-last" if channels_last else ""))
        print(f"{name:30s}" + "".join(f"{c:>10s}" for c in cells)
              + f"   position {pos_mm:.2f} mm, gripper {grip:.3f}; first call {setup_s:.1f} s")
    pipe.model_cfg = cfg
    pipe.denoiser.to(memory_format=torch.contiguous_format)


if __name__ == "__main__":
    main()
