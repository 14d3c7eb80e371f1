"""`action-images eval`: closed-loop success of a trained policy in the simulated cell.

Both paths run the same policy runner, chunk executor and safety envelope on simulated time:
the direct path (default) drives them in one loop (``eval.closed_loop``); ``--graph`` runs the
same seeds through the ROS node graph in lockstep (sim_node, policy_node, executor_node over DDS)
— the code the robot runs. Both print the same summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from ..config import RUNTIMES

HELP = "run a policy closed loop in the simulated cell (direct or through the ROS graph); print the success rate"
logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="trained pipeline folder")
    p.add_argument("--task", required=True)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed-offset", type=int, default=100_000, help="first seed (keep away from training seeds)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps per prediction (default: the model's)")
    p.add_argument("--redraws", type=int, default=None,
                   help="further noise draws when a keyframe is under the safety file's min_confidence "
                        "(default: the model's policy_config.redraws)")
    p.add_argument("--latency", type=float, default=0.0,
                   help="simulated policy latency in seconds (direct path): a chunk predicted from the frames "
                        "of time t reaches the executor at t + latency while the arm keeps moving (0 = lockstep)")
    p.add_argument("--execution", default="",
                   help="execution settings changed for this run, a YAML mapping, e.g. \"{blend_s: 0.0}\"")
    p.add_argument("--runtime", default=None, choices=RUNTIMES,
                   help="where the network runs (default: the model's policy_config.runtime; docs/multitask.md, "
                        "Runtimes; eager torch is the reference)")
    p.add_argument("--graph", action="store_true", help="run the episodes through the ROS node graph (lockstep)")
    p.add_argument("--processes", action="store_true", help="with --graph: one process per node")
    p.add_argument("--image-size", type=int, default=128, help="render size of the simulated cameras")
    p.add_argument("--rig", type=Path, default=None,
                   help="direct path: camera rig YAML the cell renders from and the policy is given (check a rig "
                        "of your own; default: the simulation's config/cameras_sim.yaml)")
    p.add_argument("--condition", default="in_domain",
                   help="direct path: named, seeded robustness condition (in_domain, viewpoint_small, "
                        "viewpoint_large, lighting, table_colour, calibration_error; see eval/conditions.py)")
    p.add_argument("--probe", default="none",
                   help="direct path: test-time probe of what the policy relies on (none, gripper_open, "
                        "swap_colours; see eval/probes.py)")
    p.add_argument("--policy-rig", type=Path, default=None,
                   help="direct path: the extrinsics the policy is given (e.g. the output of `action-images "
                        "calibrate --sim`); the cell still renders from its true rig")
    p.add_argument("--out", type=Path, default=None, help="folder for failure videos and results.json")
    p.add_argument("--no-videos", action="store_true", help="do not write videos of failed episodes")
    p.add_argument("--safety", type=Path, default=Path("config/safety.yaml"),
                   help="safety envelope every command passes, as on the real arm (default config/safety.yaml)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (pinned; default: 2 for the direct path, the policy node's "
                        "config/policy.yaml value (1) for --graph, whose nodes share the CPU)")


def run(args: argparse.Namespace) -> int:
    from ..eval.closed_loop import format_summary, summarize

    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if args.redraws is not None:
        from ..config import check_redraws

        check_redraws(args.redraws, "--redraws")
    out = args.out or Path("outputs") / f"eval_{args.task}{'_graph' if args.graph else ''}"
    out.mkdir(parents=True, exist_ok=True)
    # the graph's policy node logs the runtime it runs; the direct path records it
    outcomes, runtime_in_use = (_run_graph(args), None) if args.graph else _run_direct(args, out)
    summary = summarize(args.task, outcomes, "graph" if args.graph else "direct")
    summary.update(model=str(args.model), safety=str(args.safety), latency_s=args.latency,
                   execution_overrides=args.execution, condition=args.condition, probe=args.probe,
                   rig=None if args.rig is None else str(args.rig),
                   steps=args.steps, max_redraws=args.redraws, runtime=args.runtime or _model_runtime(args.model),
                   runtime_in_use=runtime_in_use,
                   per_episode=[
                       {"seed": o.seed, "success": o.success, "failure": o.failure,
                        "facts": o.trace.facts() if o.trace is not None else None, "steps": o.steps,
                        "predictions": o.predictions, "draws": o.draws,
                        **{k: o.stats.get(k) for k in ("stalls", "refused", "holds", "commands")}}
                       for o in outcomes])
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print(format_summary(summary) + f"; results in {out}")
    return 0


def _model_runtime(model) -> str:
    """The runtime a model folder asks for (``policy_config.runtime``), read from its JSON."""
    from ..config import load_policy_config

    return load_policy_config(model)[0].runtime


def _run_direct(args: argparse.Namespace, out: Path) -> tuple[list, str]:
    import torch
    from tqdm import tqdm

    from ..config import execution_config_for
    from ..control.chunk_execution import ChunkExecutor
    from ..control.safety import SafetyEnvelope, load_safety_config
    from ..eval.closed_loop import ClosedLoopConfig, run_episode
    from ..eval.conditions import episode_rigs, get_condition
    from ..eval.probes import PROBES, ProbedRunner
    from ..model_io import load_policy
    from ..policy import PolicyRunner
    from ..sim import TASK_NAMES, make_env
    from ..sim.scene import SceneConfig

    if args.task not in TASK_NAMES:
        raise ValueError(f"unknown task {args.task!r}; valid tasks: {', '.join(TASK_NAMES)}")
    condition = get_condition(args.condition)
    if args.probe not in PROBES:
        raise ValueError(f"unknown --probe {args.probe!r}; probes are {', '.join(PROBES)}")
    probed = (lambda r: r) if args.probe == "none" else (lambda r: ProbedRunner(r, args.probe))
    if args.rig is not None and not args.rig.is_file():
        raise FileNotFoundError(f"--rig {args.rig} does not exist (a camera rig YAML, e.g. config/cameras_sim.yaml)")
    if args.policy_rig is not None and (condition.moves_cameras or condition.miscalibrated):
        raise ValueError(f"--policy-rig and --condition {condition.name} both set the policy's rig; use one")
    torch.set_num_threads(args.threads or 2)
    safety_cfg = load_safety_config(args.safety)
    pipe, policy_cfg = load_policy(args.model, runtime=args.runtime)
    execution = execution_config_for(str(args.model), args.execution, safety_cfg.min_confidence)
    env = make_env(args.task, image_size=args.image_size, rig_path=args.rig, scene=SceneConfig(**condition.scene))
    views = policy_cfg.views
    if views and list(views) != env.camera_names:
        raise ValueError(f"model was trained on views {views}; the simulated rig has {env.camera_names}")
    cameras = env.cameras
    if args.policy_rig is not None:
        from ..geometry import load_rig

        rig = {c.name: c for c in load_rig(args.policy_rig)}
        missing = [c.name for c in env.cameras if c.name not in rig]
        if missing:
            raise ValueError(f"--policy-rig {args.policy_rig} has no camera(s) {missing}")
        # its extrinsics; the intrinsics stay the device's (as on a real cell, where K comes from CameraInfo)
        cameras = [dataclasses.replace(c, T_world_cam=rig[c.name].T_world_cam) for c in env.cameras]
    runner = probed(PolicyRunner(pipe, cameras, num_inference_steps=args.steps,
                                 execution=execution, redraws=args.redraws))
    cfg = ClosedLoopConfig(latency_s=args.latency)
    outcomes = []
    try:
        for i in tqdm(range(args.episodes), desc=f"eval {args.task}", unit="ep"):
            seed = args.seed_offset + i
            if condition.moves_cameras or condition.miscalibrated:
                rendered, given = episode_rigs(condition, cameras, seed)
                env.move_cameras(rendered)
                runner = probed(PolicyRunner(pipe, given, num_inference_steps=args.steps,
                                             execution=execution, redraws=args.redraws))
            executor = ChunkExecutor(execution, SafetyEnvelope(safety_cfg))
            res = run_episode(env, runner, executor, seed, cfg, record=not args.no_videos)
            outcomes.append(res)
            if not res.success and res.frames and not args.no_videos:
                _write_video(out / f"failed_seed{seed}.gif", res.frames)
    finally:
        env.close()
    return outcomes, pipe.runtime  # after a fallback: eager


def _run_graph(args: argparse.Namespace) -> list:
    from ..ros.graph import GraphOptions
    from ..ros.session import run_graph_episodes

    if args.rig is not None or args.condition != "in_domain" or args.probe != "none":
        raise ValueError("--rig, --condition and --probe apply to the direct path (in the graph the rig is the cell's: "
                         "`run --rig`)")
    if args.policy_rig is not None:
        raise ValueError("--policy-rig applies to the direct path (in the graph the rig is the cell's: `run --rig`)")
    if args.latency:
        raise ValueError("--latency applies to the direct path; the graph runs in lockstep (for a slow policy on "
                         "the real-time cell: action-images run --lockstep false --policy-delay-s ...)")
    # one safety file for the executor's envelope and the policy's redraws
    options = GraphOptions(model=str(args.model), task=args.task, seed=args.seed_offset, lockstep=True,
                           safety=str(args.safety.resolve()))
    params = {"policy_node": {**({"runtime": args.runtime} if args.runtime else {}),
                              **({"torch_threads": args.threads} if args.threads else {})},
              "executor_node": {},
              "sim_node": {"image_width": args.image_size, "image_height": args.image_size}}
    if args.steps:
        params["policy_node"]["num_inference_steps"] = args.steps
    if args.redraws is not None:
        params["policy_node"]["redraws"] = args.redraws
    if args.execution:
        params["executor_node"]["execution_overrides"] = args.execution
    return run_graph_episodes(options, args.episodes, processes=args.processes, node_parameters=params)


def _write_video(path: Path, frames: list) -> None:
    import imageio.v2 as imageio

    imageio.mimsave(path, frames, duration=0.4, loop=0)
    logger.info("wrote %s", path)
