"""`action-images predict`: run a trained model on one step of a recorded episode and write what it generates."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from ..config import RUNTIMES

HELP = ("generate the future video + action images for one step of an episode; write videos, overlays, "
        "a contact sheet and the decoded 7-DoF trajectory")
logger = logging.getLogger(__name__)

MODES = ("policy", "world_model", "label", "video")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="trained pipeline folder (from `action-images train`)")
    p.add_argument("--episode", type=Path, required=True, help="an episode_XXXXXX.h5 file")
    p.add_argument("--step", type=int, required=True, help="row K of the episode to predict from (0-based)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--mode", choices=MODES, default="policy",
                   help="policy: frames -> video + actions (default); world_model: frames + recorded future "
                        "poses -> video; label: recorded future video -> actions; video: frames -> video")
    p.add_argument("--steps", type=int, default=6, help="denoising steps (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler's noise (default 0)")
    p.add_argument("--video-format", choices=("gif", "mp4"), default="gif", help="format of the videos (default gif)")
    p.add_argument("--fps", type=float, default=2.0, help="frames per second of the videos (default 2)")
    p.add_argument("--scale", type=int, default=4, help="integer enlargement of the videos (default 4)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--runtime", default=None, choices=RUNTIMES,
                   help="where the network runs (default: the model's policy_config.runtime; eager torch is the "
                        "reference)")


def check_step(episode: Path, step: int):
    """The episode's :class:`~action_images_ros.data.episode.EpisodeInfo`, after checking that a
    prediction can start at row ``step``.

    Raises:
        FileNotFoundError: the episode file does not exist.
        ValueError: ``step`` is outside ``0 .. T-2`` (the last row has no future).
    """
    from ..data.episode import read_episode_info

    if not episode.is_file():
        raise FileNotFoundError(f"episode file not found: {episode}")
    info = read_episode_info(episode)
    T = info.num_steps
    last = max(T - 2, 0)
    if not 0 <= step <= last:
        raise ValueError(f"--step {step} is out of range: {episode.name} has {T} rows and a prediction can start "
                         f"at rows 0..{last} (the last row has no recorded future)")
    return info


def run(args: argparse.Namespace) -> int:
    import torch

    from ..eval.clip_prediction import action_scores, clip_config_for, clip_truth, frame_scores, no_motion, run_mode
    from ..data.clips import ActionClipDataset
    from ..model_io import load_policy
    from ..eval.prediction_outputs import (contact_sheet, sequences, trajectory_rows, write_png, write_trajectory,
                                      write_view_videos)

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.scale < 1 or args.fps <= 0:
        raise ValueError(f"--scale must be >= 1 and --fps > 0, got {args.scale} and {args.fps}")
    if args.threads:
        torch.set_num_threads(args.threads)
    info = check_step(args.episode, args.step)
    pipe, policy_cfg = load_policy(args.model, runtime=args.runtime)
    record = policy_cfg.clip
    clip = clip_config_for(pipe, record, only_success=False)  # any episode may be inspected
    dataset = ActionClipDataset([args.episode], clip)
    truth = clip_truth(dataset, args.step)  # one episode: clip index == start row

    result = run_mode(pipe, truth, args.mode, num_inference_steps=args.steps, seed=args.seed)
    base = no_motion(truth)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    seqs = sequences(truth, result)
    files = write_view_videos(out, truth, seqs, fps=args.fps, scale=args.scale, suffix=f".{args.video_format}")
    files.append(write_png(out / "contact_sheet.png", contact_sheet(truth, seqs)))

    meta = {
        "model": str(args.model), "episode": str(args.episode), "task": info.task, "step": args.step,
        "mode": args.mode, "num_inference_steps": args.steps, "seed": args.seed,
        "frame_stride": clip.frame_stride, "control_dt": info.control_dt, "views": truth.view_names,
        "future_rows": [int(r) for r in truth.rows], "current_pose": truth.state.tolist(),
        "latency_s": result.latency_s,
    }
    summary = dict(meta)
    if args.mode != "label":  # label mode is given the recorded frames: nothing to score
        summary["frames"] = {name: _frame_summary(frame_scores(r, truth)) for name, r in
                             ((args.mode, result), ("no_motion", base))}
    errors = None
    if result.actions is not None:
        errors = action_scores(result, truth)
        summary["actions"] = {args.mode: _action_summary(errors),
                              "no_motion": _action_summary(action_scores(base, truth))}
        files += write_trajectory(out, trajectory_rows(truth, result, errors, info.control_dt), meta)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    files.append(out / "summary.json")

    print(f"{args.mode} prediction from row {args.step} of {args.episode.name} ({info.task}), "
          f"{len(truth.view_names)} views, future rows {[int(r) for r in truth.rows]}, "
          f"{1000 * result.latency_s:.0f} ms")
    if "frames" in summary:
        f, b = summary["frames"][args.mode], summary["frames"]["no_motion"]
        print(f"  frames vs recorded: PSNR {f['psnr_db']:.2f} dB, SSIM {f['ssim']:.3f} "
              f"(no-motion baseline {b['psnr_db']:.2f} dB, {b['ssim']:.3f})")
    if errors is not None:
        a, b = summary["actions"][args.mode], summary["actions"]["no_motion"]
        print(f"  actions vs recorded: position {a['position_mm_mean']:.1f} mm, "
              f"rotation {a['rotation_deg_mean']:.1f} deg, "
              f"gripper {a['gripper_accuracy']:.2f}, confidence {np.mean(result.confidence):.2f} "
              f"(no-motion baseline {b['position_mm_mean']:.1f} mm, {b['rotation_deg_mean']:.1f} deg)")
    print(f"  wrote {len(files)} files to {out}: " + ", ".join(p.name for p in files))
    return 0


def _frame_summary(scores: dict[str, np.ndarray]) -> dict:
    """Means over views and frames, and per future keyframe (mean over views)."""
    return {"psnr_db": float(scores["psnr"].mean()), "ssim": float(scores["ssim"].mean()),
            "psnr_db_per_keyframe": scores["psnr"].mean(axis=0).tolist(),
            "ssim_per_keyframe": scores["ssim"].mean(axis=0).tolist()}


def _action_summary(errors: dict[str, np.ndarray]) -> dict:
    return {"position_mm_mean": float(errors["position_mm"].mean()),
            "rotation_deg_mean": float(errors["rotation_deg"].mean()),
            "gripper_accuracy": float(np.mean(errors["gripper_correct"])),
            "position_mm_per_keyframe": errors["position_mm"].tolist(),
            "rotation_deg_per_keyframe": errors["rotation_deg"].tolist()}
