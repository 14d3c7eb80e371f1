"""Episode dataset speed: recording, write/read per episode, file size, clips/s. Prints medians.

Run: PYTHONPATH=src MUJOCO_GL=egl python bench/bench_data.py [--task reach_target] [--episodes 3]
(records fresh episodes from the simulation into a temporary directory, or
uses --dir with existing episode files).
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from action_images_ros.data import list_episodes, load_episode, write_episode
from action_images_ros.data.clips import ActionClipDataset, ClipConfig
from action_images_ros.data.record import GenerateConfig, generate_episodes


def _median_ms(times: list[float]) -> str:
    return f"{1000 * statistics.median(times):.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=None, help="existing episodes (default: record new ones)")
    ap.add_argument("--task", default="reach_target")
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--clip-size", type=int, default=64)
    ap.add_argument("--compression", default="gzip")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.dir is None:
            cfg = GenerateConfig(task=args.task, num_episodes=args.episodes, out_dir=tmp / "gen",
                                 image_size=args.image_size, compression=args.compression)
            t0 = time.perf_counter()
            results = list(generate_episodes(cfg))
            dt = time.perf_counter() - t0
            rows = sum(r.num_steps for r in results)
            print(f"record {args.task}: {len(results)} episodes, {rows} rows in {dt:.1f} s = "
                  f"{rows / dt:.1f} rows/s (sim + expert + write), "
                  f"{sum(r.success for r in results)}/{len(results)} succeeded")
            src = tmp / "gen"
        else:
            src = args.dir
        paths = list_episodes(src)
        writes, reads, sizes, steps = [], [], [], []
        for i, p in enumerate(paths):
            t0 = time.perf_counter()
            ep = load_episode(p)
            reads.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = write_episode(ep, tmp / "rewrite" / p.name, compression=args.compression)
            writes.append(time.perf_counter() - t0)
            sizes.append(out.stat().st_size / 1e6)
            steps.append(ep.num_steps)
        print(f"episode of median {statistics.median(steps):.0f} rows x {ep.num_views} views "
              f"x {ep.rgb.shape[2]}x{ep.rgb.shape[3]}: write {_median_ms(writes)}, read {_median_ms(reads)}, "
              f"file {statistics.median(sizes):.2f} MB ({args.compression}; raw rgb {ep.rgb.nbytes / 1e6:.1f} MB)")

        ds = ActionClipDataset(src, ClipConfig(image_size=args.clip_size, only_success=False))
        t0 = time.perf_counter()
        ds.preload()
        t_load = time.perf_counter() - t0
        n = min(len(ds), 500)
        g = torch.Generator().manual_seed(0)
        order = torch.randperm(len(ds), generator=g)[:n].tolist()
        t0 = time.perf_counter()
        for i in order:
            ds[i]
        dt = time.perf_counter() - t0
        print(f"clips at {args.clip_size}x{args.clip_size}, {ds.num_views} views, horizon {ds.config.horizon}: "
              f"preload {1000 * t_load / len(ds.episodes):.0f} ms/episode, "
              f"{n / dt:.0f} clips/s random access (warm cache, 1 process)")
        default_threads = torch.get_num_threads()
        for threads in sorted({1, default_threads}):
            # torch ops on small tensors slow down ~10x when its thread pool competes for busy cores.
            torch.set_num_threads(threads)
            loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=0, generator=g)
            t0 = time.perf_counter()
            seen = 0
            while seen < n:
                for batch in loader:
                    seen += batch["cond_rgb"].shape[0]
                    if seen >= n:
                        break
            dt = time.perf_counter() - t0
            print(f"DataLoader batch 32, collate included, torch threads {threads}: {seen / dt:.0f} clips/s")
        torch.set_num_threads(default_threads)

if __name__ == "__main__":
    main()
