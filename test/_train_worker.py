"""A few training steps of a tiny model on synthetic clips, for the multi-process test.

Run as ``python _train_worker.py OUT --steps N --seed S`` (one process) or under
``accelerate launch --multi_gpu --num_processes 2 _train_worker.py ...``. Each rank
appends the clip indices it loaded to ``OUT/clips_rank<r>.txt``.
"""

import argparse
import os
from pathlib import Path

import torch

from action_images_ros.model.config import ModelConfig, TrainConfig
from action_images_ros.model.synthetic import SyntheticReachDataset
from action_images_ros.model import training
from action_images_ros.model.training import train

S, F = 32, 2


class RecordedClips(torch.utils.data.Dataset):
    """The synthetic clips, writing down which ones this process loads."""

    def __init__(self, inner, path: Path) -> None:
        self.inner, self.path = inner, path

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        with self.path.open("a") as f:
            f.write(f"{i}\n")
        return self.inner[i]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--accumulation", type=int, default=1)
    p.add_argument("--time-budget", type=float, default=None, help="seconds; with --lr-final-ratio: decay by time")
    p.add_argument("--lr-final-ratio", type=float, default=1.0)
    p.add_argument("--checkpoint-every", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    args.out.mkdir(parents=True, exist_ok=True)
    data = RecordedClips(SyntheticReachDataset(16, image_size=S, num_future=F, seed=5),
                         args.out / f"clips_rank{rank}.txt")
    model = ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16))
    # fp32 and no EMA: the weights after the steps are compared across process counts.
    tc = TrainConfig(batch_size=args.batch, max_steps=args.steps, seed=args.seed, mixed_precision="no",
                     gradient_accumulation_steps=args.accumulation, ema_decay=0.0, warmup_steps=1,
                     checkpoint_every=args.checkpoint_every, log_every=1, progress=False, time_budget_s=args.time_budget,
                     lr_final_ratio=args.lr_final_ratio)
    factor = training.lr_factor

    def recorded_factor(step, progress, cfg):
        """Each rank writes down the learning-rate factor its scheduler applies (the schedule reads the module's
        lr_factor at every step)."""
        f = factor(step, progress, cfg)
        with (args.out / f"lr_rank{rank}.txt").open("a") as out:
            out.write(f"{step} {f!r}\n")
        return f

    training.lr_factor = recorded_factor
    torch.manual_seed(args.seed)  # the initial weights; DDP also broadcasts rank 0's
    train(model, data, tc, args.out / "run", device="cpu")


if __name__ == "__main__":
    main()
