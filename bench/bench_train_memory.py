"""Peak memory of training on many episodes: streamed clips stay bounded, in-memory ones grow.

Writes ``--files`` real episode files (HDF5, our format: 200 steps, 3 views of 256 px, like the
simulated cell's recordings; synthetic images) and links each ``N / files`` times under distinct
names, so the dataset sees N episodes (today's largest training set, models/multitask, has 1,200;
10x is 12,000). Each case trains the tiny model for ``--steps`` steps of batch 8 in a fresh process
and reports its peak RSS (``ru_maxrss``) and the clips/s.

    PYTHONPATH=src:test .venv/bin/python bench/bench_train_memory.py [--steps 30] [--work /tmp/mem]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def worker(args) -> None:
    import torch

    from action_images_ros.data.clips import ActionClipDataset, ClipConfig
    from action_images_ros.model.config import ModelConfig, TrainConfig
    from action_images_ros.model.training import train

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = ActionClipDataset(args.data, ClipConfig(), in_memory=args.in_memory)
    index_s = time.perf_counter() - t0
    rss_index = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tc = TrainConfig(batch_size=8, max_steps=args.steps, log_every=args.steps, checkpoint_every=10_000,
                     progress=False, mixed_precision="no")
    res = train(ModelConfig(), data, tc, args.out, device="cpu")
    print(json.dumps({"episodes": len(data.episodes), "clips": len(data), "index_s": index_s,
                      "rss_after_index_mb": rss_index,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "cached_episodes": len(data._cache), "clips_per_s": 8 * res.steps / res.elapsed_s}))


def make_data(work: Path, files: int, counts: list[int]) -> dict[int, Path]:
    from _data_synthetic import synthetic_episode  # test/: synthetic images, real episode format

    from action_images_ros.data import episode_filename, write_episode

    src = work / "files"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        path = src / episode_filename(i)
        if not path.exists():
            write_episode(synthetic_episode(steps=200, size=256, seed=i), path, compression="lzf")
    out = {}
    for n in counts:
        d = work / f"n{n}"
        d.mkdir(exist_ok=True)
        for i in range(n):
            link = d / episode_filename(i)
            if not link.exists():
                link.symlink_to(src / episode_filename(i % files))
        out[n] = d
    return out


def run(data: Path, in_memory: bool, steps: int, out: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--data", str(data), "--steps", str(steps),
           "--out", str(out)] + (["--in-memory"] if in_memory else [])
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--work", type=Path, default=Path("/tmp/action_images_bench_memory"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    dirs = make_data(args.work, args.files, [1200, 12000])
    print(f"training memory, tiny model, batch 8, {args.steps} steps, 1 thread, one fresh process per case:")
    print("| episodes | clips | mode | index s | RSS after index MB | peak RSS MB | episodes cached | clips/s |")
    print("|---|---|---|---|---|---|---|---|")
    for n, in_memory in ((1200, True), (1200, False), (12000, False)):
        r = run(dirs[n], in_memory, args.steps, args.work / f"run_{n}_{int(in_memory)}_{time.time_ns()}")
        print(f"| {r['episodes']} | {r['clips']} | {'in memory' if in_memory else 'streamed'} | {r['index_s']:.1f} | "
              f"{r['rss_after_index_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['cached_episodes']} | "
              f"{r['clips_per_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
