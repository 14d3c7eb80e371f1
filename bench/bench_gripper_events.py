"""Does a policy draw the gripper events? A diagnostic for the four-task models (issue 17).

On held-out episodes of the tasks given, every clip whose recorded future changes the gripper
(close at the cube: ``state`` open and a future keyframe closed; release: the reverse) and as many
clips without a change, each run through the policy exactly as the closed loop runs it
(``PolicyRunner``, the model's default steps, a few noise seeds). Printed per model and kind of clip:
the recorded keyframes that should be closed/open, the decoded gripper there (mean, before the
executor's 0.5 threshold) and how often it crosses the threshold the right way; and the same for the
keyframe just before the change, where a model that merely keeps the current state is right.

    PYTHONPATH=src .venv/bin/python bench/bench_gripper_events.py --model models/multitask models/action_head \
        --tasks place_cube stack_cubes --clips 24 --seeds 2

Episodes: the model's own held-out list (``data/<task>/episode_*.h5`` as generated in its model card).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def event_clips(dataset, rng: np.random.Generator, per_kind: int) -> dict[str, list[int]]:
    """Clip indices by kind: ``close`` / ``open`` (the recorded future changes the gripper), ``steady``."""
    kinds: dict[str, list[int]] = {"close": [], "open": [], "steady": []}
    for i in range(len(dataset)):
        e, t = dataset.episode_of(i)
        poses = dataset._episode(e).poses  # the clip's own pose source and gripper convention
        rows = dataset.future_rows(t, dataset.episodes[e].num_steps)
        now, future = poses[t, 7] > 0.5, poses[rows, 7] > 0.5
        if now and not future.all():
            kinds["close"].append(i)
        elif not now and future.any():
            kinds["open"].append(i)
        else:
            kinds["steady"].append(i)
    return sample_kinds(kinds, rng, per_kind)


def sample_kinds(kinds: dict[str, list[int]], rng: np.random.Generator, per_kind: int) -> dict[str, list[int]]:
    """Up to ``per_kind`` clip indices of each kind, drawn without replacement, sorted."""
    return {k: sorted(rng.choice(v, size=min(per_kind, len(v)), replace=False).tolist()) for k, v in kinds.items()}


def held_out_paths(held_out: list[str], tasks: list[str], model: str) -> list[Path]:
    """The episodes of ``held_out`` (a model's ``held_out_episodes``) of ``tasks`` that are on disk."""
    listed = [Path(p) for p in held_out if any(f"/{t}/" in p for t in tasks)]
    paths = [p for p in listed if p.is_file()]
    if len(paths) < len(listed):
        print(f"{model}: {len(listed) - len(paths)} of its {len(listed)} held-out episodes of these tasks are not "
              f"on disk (generate them as in its model card); using the {len(paths)} there")
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", required=True)
    ap.add_argument("--tasks", nargs="+", default=["place_cube", "stack_cubes"])
    ap.add_argument("--clips", type=int, default=24, help="clips per kind (close, open, steady)")
    ap.add_argument("--seeds", type=int, default=2, help="noise seeds per clip")
    ap.add_argument("--steps", type=int, default=0, help="denoising steps (0: the model's default)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--held-out-of", type=Path, default=None,
                    help="draw the clips from this model's held-out episodes for every --model (default: each "
                         "model's own; e.g. a read-out fine-tuned from models/multitask on none of them)")
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
        kinds = event_clips(dataset, np.random.default_rng(0), args.clips)
        steps = args.steps or policy_cfg.num_inference_steps
        print(f"\n{model}: {len(paths)} held-out episodes of {', '.join(args.tasks)}, {steps} steps, "
              f"{args.seeds} noise seeds per clip")
        print(f"  {'clips':<8} {'n':>3} {'kf that change':>15} {'decoded g there':>16} {'right side of 0.5':>18} "
              f"{'kf before':>10} {'right before':>13}")
        moved = {True: [], False: []}  # |decoded g - current g| at keyframes that change / do not
        for kind, idx in kinds.items():
            g_change, ok_change, ok_before, n_change, n_before = [], [], [], 0, 0
            for i in idx:
                truth = clip_truth(dataset, i)
                runner = PolicyRunner(pipe, truth.cameras, num_inference_steps=steps)
                want = truth.actions[:, 7] > 0.5
                now = truth.state[7] > 0.5
                changed = want != now
                for s in range(args.seeds):
                    pred = runner.predict(truth.cond_rgb, truth.state, seed=s, instruction=truth.instruction)
                    g = pred.actions[:, 7]
                    g_change += g[changed].tolist()
                    ok_change += ((g[changed] > 0.5) == want[changed]).tolist()
                    ok_before += ((g[~changed] > 0.5) == want[~changed]).tolist()
                    for c in (True, False):
                        moved[c] += np.abs(g - float(now))[changed == c].tolist()
                n_change += int(changed.sum())
                n_before += int((~changed).sum())
            mean_g = f"{np.mean(g_change):.2f}" if g_change else "-"
            ok_c = f"{100 * np.mean(ok_change):.0f} %" if ok_change else "-"
            ok_b = f"{100 * np.mean(ok_before):.0f} %" if ok_before else "-"
            print(f"  {kind:<8} {len(idx):>3} {n_change:>15} {mean_g:>16} {ok_c:>18} {n_before:>10} {ok_b:>13}")
        # a read-out relative to the current state: change when the drawn openness moved more than tau from it
        # (tau 0.5 is the absolute 0.5 threshold); keyframes that change and keyframes that do not, all kinds
        ch, st = np.array(moved[True]), np.array(moved[False])
        print("  change when |g - current| > tau:  " + "  ".join(
            f"tau {tau:.2f}: changes caught {100 * np.mean(ch > tau):.0f} %, false {100 * np.mean(st > tau):.1f} %"
            for tau in (0.5, 0.35, 0.25, 0.15)))


if __name__ == "__main__":
    main()
