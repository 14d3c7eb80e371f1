"""Do the views draw one pose? A diagnostic of the decoder's confidence on held-out clips (issue 17).

The UNet draws each view's action images; the codec triangulates each point over the views that see it,
drops a view that disagrees and lowers the confidence by the reprojection error, and the executor holds
when the first keyframe's confidence is under the cell's ``min_confidence`` (``config/safety.yaml``).
For each model, on held-out clips of the tasks given, run through the policy exactly as the closed loop
runs it (``PolicyRunner``, the model's default steps), split into clips that carry (gripper closed now and
at every future keyframe) and the others, it prints for the first keyframe: the median confidence, the
share under ``--min-confidence``, the share of its 3 points that every view kept (weight > 0), the
median reprojection error in pixels, and the position error against the recording.

    PYTHONPATH=src .venv/bin/python bench/bench_view_agreement.py --model runs/a/model runs/b/model \
        --held-out-of runs/fourtask/model --tasks place_cube stack_cubes --clips 24
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench_gripper_events import held_out_paths, sample_kinds  # noqa: E402  (run as bench/bench_view_agreement.py)


def carrying_clips(dataset, rng: np.random.Generator, per_kind: int) -> dict[str, list[int]]:
    """Clip indices: ``carry`` (closed now and at every future keyframe) and ``other``."""
    kinds: dict[str, list[int]] = {"carry": [], "other": []}
    for i in range(len(dataset)):
        e, t = dataset.episode_of(i)
        poses = dataset._episode(e).poses
        rows = dataset.future_rows(t, dataset.episodes[e].num_steps)
        closed = poses[t, 7] <= 0.5 and (poses[rows, 7] <= 0.5).all()
        kinds["carry" if closed else "other"].append(i)
    return sample_kinds(kinds, rng, per_kind)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", required=True)
    ap.add_argument("--tasks", nargs="+", default=["place_cube", "stack_cubes"])
    ap.add_argument("--clips", type=int, default=24, help="clips per kind (carry, other)")
    ap.add_argument("--steps", type=int, default=0, help="denoising steps (0: the model's default)")
    ap.add_argument("--min-confidence", type=float, default=0.2, help="the cell's (config/safety.yaml)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--held-out-of", type=Path, default=None,
                    help="draw the clips from this model's held-out episodes for every --model (default: each "
                         "model's own)")
    args = ap.parse_args()

    import torch

    from action_images_ros.data.clips import ActionClipDataset
    from action_images_ros.eval.clip_prediction import clip_config_for, clip_truth
    from action_images_ros.config import load_policy_config
    from action_images_ros.model_io import load_policy
    from action_images_ros.policy import PolicyRunner

    torch.set_num_threads(args.threads)
    # the record only (JSON, no network)
    shared = load_policy_config(args.held_out_of)[0].clip["held_out_episodes"] if args.held_out_of else None
    for model in args.model:
        pipe, policy_cfg = load_policy(model)
        record = policy_cfg.clip
        paths = held_out_paths(shared or record["held_out_episodes"], args.tasks, model)
        dataset = ActionClipDataset(paths, clip_config_for(pipe, record))
        kinds = carrying_clips(dataset, np.random.default_rng(0), args.clips)
        steps = args.steps or policy_cfg.num_inference_steps
        print(f"\n{model}: {len(paths)} held-out episodes of {', '.join(args.tasks)}, {steps} steps, first keyframe")
        print(f"  {'clips':<6} {'n':>3} {'median conf':>12} {'< min_conf':>11} {'all views kept':>15} "
              f"{'reproj px':>10} {'position mm':>12}")
        for kind, idx in kinds.items():
            conf, kept, reproj, err = [], [], [], []
            for i in idx:
                truth = clip_truth(dataset, i)
                pred = PolicyRunner(pipe, truth.cameras, num_inference_steps=steps).predict(
                    truth.cond_rgb, truth.state, seed=0, instruction=truth.instruction)
                d = pipe.codec.decode_detailed(pred.future_action, truth.cameras)
                conf.append(pred.confidence[0])
                kept += (d.view_confidence[:, 0] > 0).all(axis=0).tolist()  # (3,) points seen by every view
                reproj += d.reprojection_px[0].tolist()
                err.append(1000 * np.linalg.norm(pred.actions[0, :3] - truth.actions[0, :3]))
            conf = np.array(conf)
            print(f"  {kind:<6} {len(idx):>3} {np.median(conf):>12.2f} {100 * np.mean(conf < args.min_confidence):>10.0f}% "
                  f"{100 * np.mean(kept):>14.0f}% {np.median(reproj):>10.2f} {np.median(err):>12.1f}")


if __name__ == "__main__":
    main()
