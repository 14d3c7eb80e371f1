"""`action-images eval`: closed-loop success rate of a trained policy in the simulated cell."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

HELP = "run a policy closed-loop (receding horizon) in the simulated cell; print the success rate"
logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="trained pipeline folder")
    p.add_argument("--task", required=True)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed-offset", type=int, default=100_000, help="first seed (keep away from training seeds)")
    p.add_argument("--steps", type=int, default=6, help="denoising steps per prediction")
    p.add_argument("--execute-keyframes", type=int, default=2, help="keyframes executed per prediction")
    p.add_argument("--min-confidence", type=float, default=0.2)
    p.add_argument("--image-size", type=int, default=128, help="render size of the simulated cameras")
    p.add_argument("--out", type=Path, default=None, help="folder for failure videos and results.json")
    p.add_argument("--no-videos", action="store_true", help="do not write videos of failed episodes")
    p.add_argument("--safety", type=Path, default=Path("config/safety.yaml"),
                   help="safety envelope every command passes, as on the real arm (default config/safety.yaml)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..model_io import load_policy
    from ..rollout import PolicyRunner, RolloutConfig, run_episode
    from ..sim import TASK_NAMES, make_env

    if args.task not in TASK_NAMES:
        raise ValueError(f"unknown task {args.task!r}; valid tasks: {', '.join(TASK_NAMES)}")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    from ..control.safety import SafetyEnvelope, load_safety_config

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    safety_cfg = load_safety_config(args.safety)
    pipe, clip = load_policy(args.model)
    cfg = RolloutConfig(
        num_inference_steps=args.steps,
        frame_stride=int(clip.get("frame_stride", 2)),
        execute_keyframes=args.execute_keyframes,
        min_confidence=args.min_confidence,
    )
    out = args.out or Path("outputs") / f"eval_{args.task}"
    out.mkdir(parents=True, exist_ok=True)
    env = make_env(args.task, image_size=args.image_size)
    views = clip.get("views")
    cameras = env.cameras
    if views:
        idx = [env.camera_names.index(v) if isinstance(v, str) else int(v) for v in views]
        if idx != list(range(len(cameras))):
            raise ValueError(f"model was trained on views {views}; the simulated rig has {env.camera_names}")
    runner = PolicyRunner(pipe, cameras, num_inference_steps=args.steps)
    results = []
    try:
        for i in tqdm(range(args.episodes), desc=f"eval {args.task}", unit="ep"):
            seed = args.seed_offset + i
            res = run_episode(env, runner, cfg, seed, safety=SafetyEnvelope(safety_cfg), record=not args.no_videos)
            results.append(res)
            if not res.success and res.frames and not args.no_videos:
                _write_video(out / f"failed_seed{seed}.gif", res.frames)
    finally:
        env.close()
    succ = np.array([r.success for r in results])
    lat = np.array([r.latency_median_s for r in results])
    summary = {
        "task": args.task,
        "episodes": len(results),
        "success_rate": float(succ.mean()),
        "seeds": [args.seed_offset, args.seed_offset + args.episodes - 1],
        "policy_latency_median_ms": float(1000 * np.median(lat)),
        "mean_steps": float(np.mean([r.steps for r in results])),
        "failed_seeds": [r.seed for r in results if not r.success],
        "refused_keyframes": int(sum(r.refused for r in results)),
        "safety": str(args.safety),
        "rollout": vars(cfg),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"{args.task}: success {int(succ.sum())}/{len(results)} = {100 * succ.mean():.1f} % "
          f"(seeds {args.seed_offset}..{args.seed_offset + args.episodes - 1}); "
          f"policy call median {summary['policy_latency_median_ms']:.0f} ms; results in {out}")
    return 0


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    import imageio.v2 as imageio

    imageio.mimsave(path, frames, duration=0.4, loop=0)
    logger.info("wrote %s", path)
