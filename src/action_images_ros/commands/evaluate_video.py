"""`action-images evaluate-video`: open-loop quality of a trained model on held-out recorded clips.

For ``N`` clips drawn deterministically from the held-out episodes it runs

* ``policy`` (current frames -> future video + action images): PSNR / SSIM of the generated
  frames against the recorded ones, and the error of the decoded poses against the recorded
  future poses (position mm, rotation deg, gripper accuracy);
* ``label`` (recorded future video -> action images): the same pose errors;
* ``world_model`` (current frames + recorded future poses -> video): PSNR / SSIM;
* a ``no_motion`` baseline (every future frame = the current frame, every future pose = the
  current pose) so the figures have a reference, and the ``codec`` floor (the recorded action
  images decoded back: the error of the action-image representation itself at this resolution).

LPIPS is reported only where its network weights are present locally, FVD is not computed
(see ``model.video_metrics``); the reasons are printed.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

HELP = ("PSNR/SSIM of generated vs recorded future frames and decoded action error on held-out episodes, "
        "with a no-motion baseline")
logger = logging.getLogger(__name__)

#: Rows of the printed table: (key, label).
TABLE_ROWS = (("policy", "policy (frames -> video + actions)"),
              ("label", "label (recorded video -> actions)"),
              ("world_model", "world_model (frames + poses -> video)"),
              ("no_motion", "no-motion baseline"),
              ("codec", "codec floor (recorded action images)"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="trained pipeline folder (from `action-images train`)")
    p.add_argument("--data", type=Path, nargs="+", default=None,
                   help="episode folders or files (default: the held-out episodes recorded in the model's "
                        "clip_config.json, resolved from the current folder)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--held-out-only", action="store_true",
                       help="use only the held-out episodes among --data (the default): those listed in the model's "
                            "clip_config.json, or the split of `train --held-out` reproduced when it lists none")
    which.add_argument("--all-episodes", action="store_true",
                       help="use every episode of --data (for a test set generated with seeds unseen in training)")
    p.add_argument("--held-out", type=float, default=0.1,
                   help="held-out fraction used to reproduce the split when the model lists no held-out episodes")
    p.add_argument("--clips", type=int, default=32, help="number of clips to evaluate (default 32)")
    p.add_argument("--per-task", action="store_true",
                   help="draw --clips clips from each task of the episodes instead of --clips in all (each task's "
                        "figures are reported either way)")
    p.add_argument("--steps", type=int, default=6, help="denoising steps per call (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seeds the clip choice and the sampler's noise (default 0)")
    p.add_argument("--out", type=Path, default=None, help="folder for metrics.json (default outputs/evaluate_video)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def select_episodes(data: list[Path] | None, record: dict, all_episodes: bool, held_out_fraction: float) -> list[Path]:
    """The episode files to evaluate.

    Without ``data``: the held-out list of the model's clip record. With ``data`` and
    ``all_episodes``: all of them. Otherwise: those of ``data`` in the record's held-out list
    (compared as resolved paths), or, when the record lists none, the held-out part of
    :func:`~action_images_ros.data.split.split_episodes` with ``held_out_fraction``.

    Raises:
        FileNotFoundError: a listed or given episode is missing.
        ValueError: no episode is left, or none can be identified as held out.
    """
    from ..data import resolve_episode_paths, split_episodes

    stored = record.get("held_out_episodes")
    if data is None:
        if not stored:
            raise ValueError("the model folder lists no held-out episodes (clip_config.json has no "
                             "'held_out_episodes'); pass the episodes with --data")
        paths = [Path(p) for p in stored]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of the model's {len(paths)} held-out episodes are missing, e.g. "
                                    f"{missing[0]} (paths are relative to the folder training ran in; run from "
                                    f"there or pass --data)")
        return paths
    paths = resolve_episode_paths(data)
    if all_episodes:
        return paths
    if stored:
        held = {Path(p).resolve() for p in stored}
        kept = [p for p in paths if p.resolve() in held]
        if not kept:
            raise ValueError(f"none of the {len(paths)} given episodes is among the {len(held)} held-out episodes "
                             f"listed in the model's clip_config.json (e.g. {stored[0]}); pass those, run from the "
                             f"folder training ran in, or use --all-episodes for a separate test set")
        logger.info("evaluating the %d held-out episodes among the %d given", len(kept), len(paths))
        return kept
    _, held_out = split_episodes(paths, held_out_fraction=held_out_fraction)
    if not held_out:
        raise ValueError(f"none of the {len(paths)} given episodes falls in the held-out split (fraction "
                         f"{held_out_fraction}); pass more episodes or use --all-episodes")
    logger.warning("the model lists no held-out episodes: reproducing the split (fraction %s): %d of %d episodes",
                   held_out_fraction, len(held_out), len(paths))
    return held_out


def choose_clips(num_clips: int, wanted: int, seed: int) -> np.ndarray:
    """``min(wanted, num_clips)`` sorted clip indices drawn without replacement (deterministic in ``seed``)."""
    if wanted < 1:
        raise ValueError(f"--clips must be >= 1, got {wanted}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_clips, size=min(wanted, num_clips), replace=False))


def choose_clips_per_task(tasks: np.ndarray, wanted: int, seed: int) -> np.ndarray:
    """``min(wanted, clips of the task)`` clips of every task in ``tasks`` (the task of each clip), drawn as
    :func:`choose_clips` does within each task (the k-th task in name order with ``seed + k``); sorted clip
    indices."""
    tasks = np.asarray(tasks)
    picked = [np.flatnonzero(tasks == t)[choose_clips(int((tasks == t).sum()), wanted, seed + k)]
              for k, t in enumerate(sorted(set(tasks.tolist())))]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=int)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ..eval.clip_prediction import clip_config_for, clip_truth, score_clip
    from ..data.clips import ActionClipDataset
    from ..model.video_metrics import fvd_status, lpips_status
    from ..model_io import load_policy

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe, policy_cfg = load_policy(args.model)
    record = policy_cfg.clip
    clip = clip_config_for(pipe, record)
    paths = select_episodes(args.data, record, args.all_episodes, args.held_out)
    dataset = ActionClipDataset(paths, clip)
    tasks = dataset.clip_tasks()
    indices = (choose_clips_per_task(tasks, args.clips, args.seed) if args.per_task
               else choose_clips(len(dataset), args.clips, args.seed))
    lpips_reason = lpips_status()

    collected: dict = {}  # group -> method -> measure -> list of per-clip arrays
    by_task: dict = {}  # task -> the same
    clips_used = []
    for i, index in enumerate(tqdm(indices, desc="evaluate-video", unit="clip")):
        truth = clip_truth(dataset, int(index))
        e, t = dataset.episode_of(int(index))
        task = str(tasks[int(index)])
        clips_used.append({"episode": str(dataset.episodes[e].path), "step": t, "task": task})
        scores = score_clip(pipe, truth, num_inference_steps=args.steps, seed=args.seed * 1_000_003 + i,
                            with_lpips=lpips_reason is None)
        for acc in (collected, by_task.setdefault(task, {})):
            for group, methods in scores.items():
                for method, measures in methods.items():
                    for name, value in measures.items():
                        acc.setdefault(group, {}).setdefault(method, {}).setdefault(name, []).append(value)

    metrics = {
        "model": str(args.model),
        "episodes": len(dataset.episodes),
        "episodes_used": len({c["episode"] for c in clips_used}),
        "clips": len(indices),
        "clips_available": len(dataset),
        "num_inference_steps": args.steps,
        "seed": args.seed,
        "frame_stride": clip.frame_stride,
        "horizon": clip.horizon,
        "image_size": clip.image_size,
        "views": list(dataset.view_names),
        "frames": {m: _frame_summary(acc) for m, acc in collected["frames"].items()},
        "actions": {m: _action_summary(acc) for m, acc in collected["actions"].items()},
        "latency_ms_median": {m: 1000.0 * float(np.median(v["call"])) for m, v in collected["latency_s"].items()},
        "per_task": {task: {"clips": len(acc["frames"]["policy"]["psnr"]),
                            "frames": {m: _frame_summary(a) for m, a in acc["frames"].items()},
                            "actions": {m: _action_summary(a) for m, a in acc["actions"].items()}}
                     for task, acc in sorted(by_task.items())},
        "skipped": {"lpips": lpips_reason, "fvd": fvd_status(clip.horizon + 1)},
        "clip_list": clips_used,
    }
    out = args.out or Path("outputs") / "evaluate_video"
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(format_table(metrics))
    print(f"wrote {out / 'metrics.json'}")
    return 0


def _frame_summary(acc: dict[str, list]) -> dict:
    """Means over clips, views and frames, and per future keyframe; the moving-region figures average over
    the (view, frame) pairs where something moves."""
    psnr = np.stack(acc["psnr"])  # (N, V, F)
    ssim = np.stack(acc["ssim"])
    out = {"psnr_db_mean": float(psnr.mean()), "ssim_mean": float(ssim.mean()),
           "psnr_db_per_keyframe": psnr.mean(axis=(0, 1)).tolist(),
           "ssim_per_keyframe": ssim.mean(axis=(0, 1)).tolist()}
    if "psnr_moving" in acc:
        moving_psnr, moving_ssim = np.stack(acc["psnr_moving"]), np.stack(acc["ssim_moving"])
        # one set of (clip, view, keyframe) images for both: SSIM scores only the window's interior, so a
        # region that moves only at the border has a PSNR but no SSIM
        seen = np.isfinite(moving_psnr) & np.isfinite(moving_ssim)
        out.update({"psnr_db_moving_mean": float(moving_psnr[seen].mean()) if seen.any() else None,
                    "ssim_moving_mean": float(moving_ssim[seen].mean()) if seen.any() else None,
                    "moving_fraction": float(seen.mean())})
    if "lpips" in acc:
        out["lpips_mean"] = float(np.mean(acc["lpips"]))
    return out


def _action_summary(acc: dict[str, list]) -> dict:
    """Medians / 95th percentiles over all (clip, keyframe) pairs, and medians per keyframe."""
    pos = np.stack(acc["position_mm"])  # (N, F)
    rot = np.stack(acc["rotation_deg"])
    grip = np.stack(acc["gripper_correct"])
    out = {"position_mm_median": float(np.median(pos)), "position_mm_p95": float(np.percentile(pos, 95)),
           "rotation_deg_median": float(np.median(rot)), "rotation_deg_p95": float(np.percentile(rot, 95)),
           "gripper_accuracy": float(grip.mean()),
           "position_mm_median_per_keyframe": np.median(pos, axis=0).tolist(),
           "rotation_deg_median_per_keyframe": np.median(rot, axis=0).tolist()}
    if "confidence" in acc:
        out["confidence_median"] = float(np.median(np.stack(acc["confidence"])))
    return out


def format_table(metrics: dict) -> str:
    """The printed summary: one line per method, then per-keyframe policy figures and skipped metrics."""
    head = (f"{'':40s} {'PSNR dB':>8s} {'SSIM':>6s} {'pos mm med/p95':>16s} {'rot deg med/p95':>16s} "
            f"{'grip acc':>8s} {'conf':>5s} {'ms/call':>8s}")
    lines = [f"held-out clips: {metrics['clips']} from {metrics['episodes_used']} episodes "
             f"({metrics['clips_available']} clips in {metrics['episodes']} episodes), {metrics['horizon']} keyframes "
             f"x stride {metrics['frame_stride']}, {metrics['image_size']} px, views {metrics['views']}, "
             f"{metrics['num_inference_steps']} denoising steps", head, "-" * len(head)]
    for key, label in TABLE_ROWS:
        f = metrics["frames"].get(key)
        a = metrics["actions"].get(key)
        ms = metrics["latency_ms_median"].get(key)
        cells = [f"{f['psnr_db_mean']:8.2f} {f['ssim_mean']:6.3f}" if f else f"{'-':>8s} {'-':>6s}",
                 (f"{a['position_mm_median']:7.1f} /{a['position_mm_p95']:7.1f} "
                  f"{a['rotation_deg_median']:7.2f} /{a['rotation_deg_p95']:7.2f} {a['gripper_accuracy']:8.3f}")
                 if a else f"{'-':>16s} {'-':>16s} {'-':>8s}",
                 f"{a['confidence_median']:5.2f}" if a and "confidence_median" in a else f"{'-':>5s}",
                 f"{ms:8.0f}" if ms is not None else f"{'-':>8s}"]
        lines.append(f"{label:40s} " + " ".join(cells))
    p, b = metrics["frames"]["policy"], metrics["frames"]["no_motion"]
    pa, ba = metrics["actions"]["policy"], metrics["actions"]["no_motion"]
    lines += ["per keyframe (+1 .. +F):",
              f"  policy PSNR dB   {_join(p['psnr_db_per_keyframe'], 2):32s} "
              f"no-motion {_join(b['psnr_db_per_keyframe'], 2)}",
              f"  policy pos mm    {_join(pa['position_mm_median_per_keyframe'], 1):32s} "
              f"no-motion {_join(ba['position_mm_median_per_keyframe'], 1)}"]
    lines += ["moving region (where the arm and what it moves are; whole frame in brackets), and per task:"]
    lines += [_moving_line("all tasks", metrics["frames"], metrics["actions"], metrics["clips"])]
    lines += [_moving_line(task, t["frames"], t["actions"], t["clips"]) for task, t in metrics.get("per_task", {}).items()]
    lines += [reason for reason in metrics["skipped"].values() if reason]
    return "\n".join(lines)


def _moving_line(name: str, frames: dict, actions: dict, clips: int) -> str:
    def video(m):
        f = frames.get(m)
        if not f or f.get("psnr_db_moving_mean") is None:
            return "-"
        return (f"{f['psnr_db_moving_mean']:.2f} dB / {f['ssim_moving_mean']:.3f} "
                f"({f['psnr_db_mean']:.2f} / {f['ssim_mean']:.3f})")

    a = actions.get("policy")
    act = (f"pos {a['position_mm_median']:.1f} mm, rot {a['rotation_deg_median']:.2f} deg, grip {a['gripper_accuracy']:.3f}"
           if a else "")
    return f"  {name:14s} {clips:4d} clips  policy {video('policy'):34s} no-motion {video('no_motion'):34s} {act}"


def _join(values: list[float], digits: int) -> str:
    return " ".join(f"{x:.{digits}f}" for x in values)
