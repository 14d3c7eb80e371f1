"""Closed-loop episodes in the simulated cell, on simulated time, through the robot's executor.

``action-images eval`` runs this direct path; ``action-images eval --graph`` runs the same seeds
through the ROS node graph in lockstep. Both use the same pieces: :class:`~action_images_ros.policy.PolicyRunner`
(prediction + decoding, once) and :class:`~action_images_ros.control.chunk_execution.ChunkExecutor`
(timed chunks, blending, stalls, the safety envelope) — the executor_node of the real cell wraps the
same class. Here one loop plays the roles the nodes play over DDS:

    every control tick t (simulated time, ``env.control_dt`` apart):
      1. the frames of tick t count as a camera heartbeat;
      2. chunks whose (simulated) policy latency has passed are handed to the executor;
      3. if the executor wants a chunk, the policy predicts from the frames of tick t and the state
         the executor gives (``request_state``: with a late policy, where the arm will be when the
         answer comes); the chunk (stamped t) becomes available at ``t + latency_s``;
      4. the executor's command for t (or a hold) is executed for one control step.

``latency_s = 0`` is lockstep: the world waits for the policy, so a slow machine changes only the
wall time. ``latency_s > 0`` is the real-time situation of a policy that takes that long (the arm
keeps executing while it thinks), reproduced exactly on simulated time whatever the machine's load.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from ..control.chunk_execution import ChunkExecutor
from ..policy import PolicyRunner, prediction_seed
from .failure_modes import EpisodeTrace, classify_failure, count_modes

__all__ = ["ClosedLoopConfig", "EpisodeOutcome", "run_episode", "summarize", "format_summary"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ClosedLoopConfig:
    """Settings of a closed-loop episode.

    Attributes:
        latency_s: simulated policy latency (s): a chunk predicted from the frames of tick t is
            handed to the executor at the first tick >= t + latency_s. 0 = lockstep.
        max_steps: control-step limit of an episode (None = the task's own limit).
        seed: seeds the sampler's noise per prediction (reproducible episodes).
        record_commands: keep every command sent (for seam measurements).
    """

    latency_s: float = 0.0
    max_steps: int | None = None
    seed: int = 0
    record_commands: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.latency_s <= 10.0:
            raise ValueError(f"latency_s must be in [0, 10] s, got {self.latency_s}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")


@dataclasses.dataclass
class EpisodeOutcome:
    """Result of one closed-loop episode.

    Attributes:
        seed: the reset seed.
        success: the task's success check when the episode ended.
        steps: control steps executed.
        predictions: policy calls.
        draws: noise draws over all calls (more than ``predictions`` when calls drew again on low confidence).
        latency_median_s: median wall time of a policy call.
        stats: the executor's ``ExecutionStats.as_dict()`` (commands, stalls, refused, ...).
        frames: per prediction, ``(S, V*S, 3)`` uint8 strip of overlays (with ``record``).
        commands: with ``record_commands``, ``(t_s, pose (8,), switched)`` per command sent;
            ``switched`` marks the first command after a new chunk became current.
        failure: why it failed (``eval.failure_modes``), None when it succeeded or was not analysed.
        trace: the per-tick task state the failure was read from.
    """

    seed: int
    success: bool
    steps: int
    predictions: int
    latency_median_s: float
    stats: dict
    frames: list[np.ndarray] = dataclasses.field(default_factory=list)
    commands: list[tuple[float, np.ndarray, bool]] = dataclasses.field(default_factory=list)
    failure: str | None = None
    trace: EpisodeTrace | None = None
    draws: int = 0


def run_episode(env, runner: PolicyRunner, executor: ChunkExecutor, seed: int,
                config: ClosedLoopConfig | None = None, record: bool = False) -> EpisodeOutcome:
    """One episode of ``env`` (a ``sim`` env) from ``reset(seed)``; see the module docstring."""
    cfg = config or ClosedLoopConfig()
    obs = env.reset(seed)
    dt = float(env.control_dt)
    max_steps = cfg.max_steps or env.max_episode_steps
    t = 0.0
    executor.reset(now_s=t)
    target = obs.ee_pose.copy()
    target[7] = 1.0 if target[7] > 0.5 else 0.0
    pending: list[tuple[float, object]] = []
    latencies: list[float] = []
    frames: list[np.ndarray] = []
    commands: list[tuple[float, np.ndarray, bool]] = []
    last_switch = None
    steps = n_pred = n_draws = 0
    eps = 1e-6 * dt
    trace = EpisodeTrace()
    while steps < max_steps and not env.success():
        # 1-2. heartbeat, chunks that have arrived
        executor.observe_frame(t)
        for item in [p for p in pending if p[0] <= t + eps]:
            pending.remove(item)
            executor.add_chunk(item[1], t, obs.ee_pose)
        # 3. a new chunk from the frames of this tick
        if executor.wants_chunk(t):
            state = executor.request_state(t, obs.ee_pose)  # where the arm will be when the chunk arrives
            pred = runner.predict(obs.images, state, seed=prediction_seed(cfg.seed, seed, n_pred),
                                  instruction=env.instruction)
            n_pred += 1
            n_draws += pred.draws
            latencies.append(pred.latency_s)
            trace.add_prediction(pred.confidence)
            if record:
                frames.append(np.concatenate(list(pred.overlays()[:, 0]), axis=1))
            executor.mark_requested(t, t)
            chunk = pred.to_chunk(t)
            if cfg.latency_s <= 0:
                executor.add_chunk(chunk, t, obs.ee_pose)
            else:
                pending.append((t + cfg.latency_s, chunk))
        # 4. the command due now, or a hold
        cmd = executor.tick(t, obs.ee_pose)
        if cmd.pose is not None:
            target = np.asarray(cmd.pose, dtype=np.float64).copy()
            if cfg.record_commands:
                switched = executor.last_switch_s != last_switch
                last_switch = executor.last_switch_s
                commands.append((t, target.copy(), switched))
        elif cmd.hold_pose is not None:  # hold / refused: stop where the arm is, gripper as commanded
            target = np.concatenate([np.asarray(cmd.hold_pose, dtype=np.float64)[:7], [target[7]]])
        obs, _ = env.step(target)
        trace.add_tick(env.task_state(), target[7])
        steps += 1
        t = steps * dt
    success = bool(env.success())
    stats = executor.stats.as_dict()
    return EpisodeOutcome(
        seed=int(seed), success=success, steps=steps, predictions=n_pred,
        latency_median_s=float(np.median(latencies)) if latencies else 0.0,
        stats=stats, frames=frames, commands=commands, draws=n_draws,
        failure=classify_failure(trace, stats, success, executor.config.min_confidence), trace=trace,
    )


def summarize(task: str, outcomes: list[EpisodeOutcome], path: str) -> dict:
    """The summary ``eval`` and ``eval --graph`` both print: success, stalls, refusals, latency."""
    succ = np.array([o.success for o in outcomes], dtype=bool)
    lat = [o.latency_median_s for o in outcomes if o.predictions]
    total = {}
    for o in outcomes:
        for k, v in o.stats.items():
            if isinstance(v, (int, float)):
                total[k] = total.get(k, 0) + v
    return {
        "task": task, "path": path, "episodes": len(outcomes),
        "successes": int(succ.sum()), "success_rate": float(succ.mean()) if len(succ) else 0.0,
        "seeds": [int(outcomes[0].seed), int(outcomes[-1].seed)] if outcomes else [],
        "failed_seeds": [int(o.seed) for o in outcomes if not o.success],
        "stalls": int(total.get("stalls", 0)), "stall_time_s": round(float(total.get("stall_time_s", 0.0)), 2),
        "refused": int(total.get("refused", 0)), "holds": int(total.get("holds", 0)),
        "commands": int(total.get("commands", 0)), "predictions": int(sum(o.predictions for o in outcomes)),
        "redraws": int(sum(max(0, o.draws - o.predictions) for o in outcomes)),
        "mean_steps": float(np.mean([o.steps for o in outcomes])) if outcomes else 0.0,
        "policy_latency_median_ms": float(1000 * np.median(lat)) if lat else None,
        # Failure modes where the path analysed them (the direct path does; the graph does not).
        "failure_modes": (count_modes([o.failure for o in outcomes])
                          if all(o.success or o.failure for o in outcomes) else None),
    }


def format_summary(s: dict) -> str:
    """One line of :func:`summarize`'s figures (the same for both paths)."""
    lat = s["policy_latency_median_ms"]
    redraws = s.get("redraws", 0)
    lat_text = "no policy call" if lat is None else f"policy call median {lat:.0f} ms"
    modes = s.get("failure_modes")
    mode_text = ""
    if modes and any(modes.values()):
        mode_text = "; failures: " + ", ".join(f"{k} {v}" for k, v in modes.items() if v)
    return (f"{s['task']} [{s['path']}]: success {s['successes']}/{s['episodes']} = {100 * s['success_rate']:.1f} % "
            f"(seeds {s['seeds'][0]}..{s['seeds'][-1]}); stalls {s['stalls']} ({s['stall_time_s']:.1f} s), "
            f"refused {s['refused']}, holds {s['holds']}, {s['predictions']} predictions"
            f"{f' (+{redraws} redraws)' if redraws else ''}, {s['commands']} commands; "
            f"{lat_text}{mode_text}")
