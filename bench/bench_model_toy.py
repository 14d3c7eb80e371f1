"""Does the tiny model learn? Train it briefly on the synthetic reaching toy and measure.

Trains the default tiny configuration (pixel-space UNet2D, 64 px, 3 views,
4 future keyframes) for ``--seconds`` of CPU time on
``model.synthetic.SyntheticReachDataset``, then samples held-out scenes and
prints the median decoded errors of the ``policy`` (image -> video + actions)
and ``label`` (video -> actions) modes against a "no motion" baseline that
repeats the current pose, plus the PSNR of the generated future frames
against repeating the current frame.

    PYTHONPATH=src .venv/bin/python bench/bench_model_toy.py --seconds 270
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from action_images_ros.model.config import ModelConfig, TrainConfig
from action_images_ros.model.metrics import action_errors, psnr
from action_images_ros.model.synthetic import SyntheticReachDataset
from action_images_ros.model.training import train


def evaluate(pipe, ds: SyntheticReachDataset, n: int, steps: int) -> dict[str, dict[str, float]]:
    """Median errors over ``n`` held-out scenes for policy, label and the no-motion baseline."""
    res: dict[str, list] = {"policy": [], "label": [], "no_motion": []}
    rot: dict[str, list] = {"policy": [], "label": [], "no_motion": []}
    grip: dict[str, list] = {"policy": [], "label": [], "no_motion": []}
    last: dict[str, list] = {"policy": [], "label": [], "no_motion": []}
    ps_gen, ps_copy = [], []
    for i in range(n):
        it = ds[i]
        g = torch.Generator().manual_seed(i)
        common = dict(cond_rgb=it["cond_rgb"], cond_action=it["cond_action"], K=it["K"],
                      T_world_cam=it["T_world_cam"], num_inference_steps=steps, generator=g)
        out_p = pipe(mode="policy", **common)
        out_l = pipe(mode="label", future_rgb=it["future_rgb"], **common)
        preds = {"policy": out_p.actions, "label": out_l.actions,
                 "no_motion": np.repeat(it["state"][None].astype(np.float64), len(it["actions"]), axis=0)}
        for k, a in preds.items():
            e = action_errors(a, it["actions"])
            res[k].append(e["position_mm"])
            rot[k].append(e["rotation_deg"])
            grip[k].append(e["gripper_correct"])
            last[k].append(e["position_mm"][-1])
        true_rgb = it["future_rgb"].transpose(0, 1, 3, 4, 2)
        ps_gen.append(psnr(out_p.future_rgb, true_rgb))
        ps_copy.append(psnr(np.repeat(it["cond_rgb"][:, None], true_rgb.shape[1], 1).transpose(0, 1, 3, 4, 2),
                            true_rgb))
    out = {k: {"pos_median_mm": float(np.median(np.concatenate(res[k]))),
               "final_step_pos_median_mm": float(np.median(last[k])),
               "rot_median_deg": float(np.median(np.concatenate(rot[k]))),
               "gripper_accuracy": float(np.mean(np.concatenate(grip[k])))} for k in res}
    out["video"] = {"psnr_generated_db": float(np.mean(ps_gen)), "psnr_copy_current_db": float(np.mean(ps_copy))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=270.0, help="training time budget (s)")
    ap.add_argument("--batch", type=int, default=8, help="scenes per step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-steps", type=int, default=100_000, help="also stop after this many steps")
    ap.add_argument("--eval", type=int, default=48, help="held-out scenes")
    ap.add_argument("--steps", type=int, default=6, help="denoising steps at evaluation")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    ap.add_argument("--block-channels", type=str, default="16,32,64,128")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0: torch default; 1 is faster on a machine shared with other jobs)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    mcfg = ModelConfig(block_out_channels=tuple(int(c) for c in args.block_channels.split(",")))
    tcfg = TrainConfig(learning_rate=args.lr, batch_size=args.batch, max_steps=args.max_steps,
                       time_budget_s=args.seconds, checkpoint_every=100_000, progress=False, log_every=25)
    train_ds = SyntheticReachDataset(200_000, mcfg.image_size, mcfg.num_future, seed=1)
    test_ds = SyntheticReachDataset(args.eval, mcfg.image_size, mcfg.num_future, seed=12345)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out or Path(tmp) / "run"
        t0 = time.monotonic()
        result = train(mcfg, train_ds, tcfg, out_dir)
        wall = time.monotonic() - t0
        pipe = result.pipeline
        pipe.denoiser.eval()
        h = result.history
        print(f"trained {result.steps} steps ({args.batch} scenes x 3 views) in {result.elapsed_s:.0f} s "
              f"(wall {wall:.0f} s, {torch.get_num_threads()} threads); loss {h[0]['loss']:.4f} -> {h[-1]['loss']:.4f}")
        m = evaluate(pipe, test_ds, args.eval, args.steps)
    print(f"held-out scenes: {args.eval}, denoising steps: {args.steps}")
    print(f"{'':12s}{'pos med mm':>12s}{'final mm':>10s}{'rot med deg':>13s}{'gripper acc':>13s}")
    for k in ("policy", "label", "no_motion"):
        r = m[k]
        print(f"{k:12s}{r['pos_median_mm']:12.1f}{r['final_step_pos_median_mm']:10.1f}"
              f"{r['rot_median_deg']:13.1f}{r['gripper_accuracy']:13.2f}")
    v = m["video"]
    print(f"future RGB PSNR: generated {v['psnr_generated_db']:.2f} dB "
          f"vs copy-current {v['psnr_copy_current_db']:.2f} dB")


if __name__ == "__main__":
    main()
