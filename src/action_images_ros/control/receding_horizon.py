"""Receding-horizon execution of decoded trajectories (no ROS).

The policy decodes a trajectory of H future poses ``(H, 8)`` with a confidence per
step. The executor runs only its first ``execute_steps`` steps (fewer if a step is
uncertain), interpolating ``substeps`` commands per step, and replaces whatever is
left as soon as the next trajectory arrives (receding horizon). When the cameras
stop (no frame for ``max_frame_gap_s``) it holds: the queue is dropped and no
command is issued until frames and a fresh trajectory return.

Times are seconds on one clock shared by frame stamps and ``now_s`` (the ROS node
clock in the nodes, the simulated time in sims).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

__all__ = ["RecedingHorizonConfig", "RecedingHorizon", "Command", "PlanResult", "select_steps",
           "interpolate_poses", "is_stale"]

logger = logging.getLogger(__name__)

#: ``(target (8,), reference (8,), confidence) -> (allowed, pose or None, reason)``
TargetCheck = Callable[[np.ndarray, np.ndarray, float], tuple]


@dataclasses.dataclass
class RecedingHorizonConfig:
    """How much of each decoded trajectory is executed, and when to hold.

    Attributes:
        execute_steps: decoded steps executed per trajectory before the next one is needed (>= 1).
        substeps: commands interpolated per decoded step (>= 1); the last one is the step itself.
        min_confidence: the plan ends before the first step with lower confidence (or non-finite values).
        max_plan_age_s: a trajectory decoded from frames older than this on arrival is dropped (s).
        max_frame_gap_s: no camera frame for this long -> hold and drop the queue (s).
    """

    execute_steps: int = 2
    substeps: int = 2
    min_confidence: float = 0.2
    max_plan_age_s: float = 1.0
    max_frame_gap_s: float = 0.2

    def __post_init__(self) -> None:
        for name in ("execute_steps", "substeps"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
            setattr(self, name, int(value))
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if not self.max_plan_age_s > 0:
            raise ValueError(f"max_plan_age_s must be > 0, got {self.max_plan_age_s}")
        if not self.max_frame_gap_s > 0:
            raise ValueError(f"max_frame_gap_s must be > 0, got {self.max_frame_gap_s}")


def _check_pose(pose: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(pose, dtype=np.float64)
    if p.shape != (8,):
        raise ValueError(f"{name} must have shape (8,) = [x y z qx qy qz qw gripper], got {p.shape}")
    return p


def select_steps(trajectory: np.ndarray, confidence: np.ndarray, k: int,
                 min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` steps of a trajectory, cut before the first uncertain or non-finite one.

    Args:
        trajectory: ``(H, 8)`` decoded poses (base frame).
        confidence: ``(H,)`` decoder confidence per step.
        k: steps wanted (>= 1).
        min_confidence: steps with lower confidence end the selection.

    Returns:
        ``(steps (n, 8), confidence (n,))`` with ``0 <= n <= min(k, H)``.
    """
    traj = np.asarray(trajectory, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    if traj.ndim != 2 or traj.shape[1] != 8:
        raise ValueError(f"trajectory must have shape (H, 8), got {traj.shape}")
    if conf.shape != (traj.shape[0],):
        raise ValueError(f"confidence must have shape ({traj.shape[0]},), got {conf.shape}")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = min(int(k), traj.shape[0])
    ok = np.all(np.isfinite(traj[:n]), axis=1) & np.isfinite(conf[:n]) & (conf[:n] >= min_confidence)
    ok &= np.linalg.norm(np.nan_to_num(traj[:n, 3:7]), axis=1) > 1e-6
    n = int(np.argmin(ok)) if not ok.all() else n
    return traj[:n].copy(), conf[:n].copy()


def interpolate_poses(start: np.ndarray, targets: np.ndarray, substeps: int) -> np.ndarray:
    """Chain ``targets`` from ``start``: ``substeps`` poses per target, the last of each being the target.

    Position is linear and rotation slerped within each segment; the gripper takes the
    target's value at the first substep of its segment (it is binary in practice).

    Args:
        start: ``(8,)`` pose the motion starts from (not included in the output).
        targets: ``(n, 8)`` poses to pass through.
        substeps: poses per segment (>= 1).

    Returns:
        ``(n * substeps, 8)`` poses with unit quaternions (qw >= 0).
    """
    start = _check_pose(start, "start")
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or targets.shape[1] != 8:
        raise ValueError(f"targets must have shape (n, 8), got {targets.shape}")
    if int(substeps) < 1:
        raise ValueError(f"substeps must be >= 1, got {substeps}")
    alphas = np.arange(1, int(substeps) + 1) / int(substeps)
    out = []
    prev = start
    for target in targets:
        rots = Rotation.from_quat(np.stack([prev[3:7], target[3:7]]))
        quats = Slerp([0.0, 1.0], rots)(alphas).as_quat()
        quats[quats[:, 3] < 0] *= -1.0
        pos = prev[:3] + alphas[:, None] * (target[:3] - prev[:3])
        out.append(np.concatenate([pos, quats, np.full((len(alphas), 1), target[7])], axis=1))
        prev = target
    return np.concatenate(out, axis=0) if out else np.zeros((0, 8))


def is_stale(stamp_s: float | None, now_s: float, max_age_s: float) -> bool:
    """Whether something stamped ``stamp_s`` (None = never) is older than ``max_age_s`` at ``now_s``."""
    return stamp_s is None or now_s - stamp_s > max_age_s


@dataclasses.dataclass
class PlanResult:
    """Outcome of :meth:`RecedingHorizon.set_trajectory`: commands queued (0 = dropped) and why."""

    accepted: bool
    commands: int
    reason: str


@dataclasses.dataclass
class Command:
    """One tick of :meth:`RecedingHorizon.next_command`.

    Attributes:
        pose: ``(8,)`` pose to send, or None (send nothing new).
        confidence: decoder confidence of the step this command leads to (0 without a pose).
        reason: why there is no pose (empty when there is one).
        stale: no pose because the camera frames are stale: the arm must be stopped where it
            is. Without a pose and not stale, the queue is merely empty (waiting for the next
            trajectory): the last command stands.
    """

    pose: np.ndarray | None
    confidence: float
    reason: str
    stale: bool = False

    @property
    def hold(self) -> bool:
        """No new pose this tick."""
        return self.pose is None


class RecedingHorizon:
    """Queue of interpolated commands, refilled by each decoded trajectory.

    Args:
        config: execution settings.
    """

    def __init__(self, config: RecedingHorizonConfig | None = None) -> None:
        self.config = config or RecedingHorizonConfig()
        self.reset()

    def reset(self) -> None:
        """Drop the queue, the frame clock and the last command."""
        self._queue: deque[tuple[np.ndarray, float]] = deque()
        self._last_frame_s: float | None = None
        self._last_command: np.ndarray | None = None

    def drop(self) -> None:
        """Drop the queue and the last command (e.g. after a refused command or an e-stop);
        the next trajectory starts from the measured pose."""
        self._queue.clear()
        self._last_command = None

    @property
    def pending(self) -> int:
        """Commands left in the queue."""
        return len(self._queue)

    @property
    def last_command(self) -> np.ndarray | None:
        """The last pose handed out (None after a reset or a hold)."""
        return None if self._last_command is None else self._last_command.copy()

    def observe_frame(self, stamp_s: float) -> None:
        """Record that a camera frame stamped ``stamp_s`` arrived (keeps the executor from holding)."""
        if self._last_frame_s is None or stamp_s > self._last_frame_s:
            self._last_frame_s = float(stamp_s)

    def set_trajectory(self, trajectory: np.ndarray, confidence: np.ndarray, frame_stamp_s: float,
                       current_pose: np.ndarray, now_s: float,
                       target_check: TargetCheck | None = None) -> PlanResult:
        """Replace the queue with the first steps of a new decoded trajectory.

        Args:
            trajectory: ``(H, 8)`` decoded poses (base frame).
            confidence: ``(H,)`` per-step decoder confidence.
            frame_stamp_s: stamp of the camera frames it was predicted from (also counts as a frame).
            current_pose: ``(8,)`` measured pose, the start of the interpolation when no command
                is in flight (after a reset or a hold); otherwise it starts from the last command.
            now_s: the current time.
            target_check: optional ``(target (8,), reference (8,), confidence) -> (allowed, pose, reason)``
                run on each selected step (reference = the previous step, or the start pose); the
                plan ends before the first refused step and uses the returned (e.g. clamped) poses.
                ``SafetyEnvelope.check_target`` is the one executor_node passes.

        A trajectory whose first step is uncertain, non-finite or refused empties the queue (the
        newest prediction says stop); one decoded from frames older than ``max_plan_age_s``
        is ignored and leaves the queue as it was.
        """
        cfg = self.config
        current_pose = _check_pose(current_pose, "current_pose")
        self.observe_frame(frame_stamp_s)
        age = now_s - frame_stamp_s
        if age > cfg.max_plan_age_s:
            reason = f"trajectory from frames {1000 * age:.0f} ms old (> max_plan_age_s {cfg.max_plan_age_s} s)"
            logger.warning("dropped: %s", reason)
            return PlanResult(False, len(self._queue), reason)
        steps, conf = select_steps(trajectory, confidence, cfg.execute_steps, cfg.min_confidence)
        if len(steps) == 0:
            self._queue.clear()
            reason = "first decoded step is uncertain or not finite; holding"
            logger.warning("dropped: %s", reason)
            return PlanResult(False, 0, reason)
        start = self._last_command if self._last_command is not None else current_pose
        cut_reason = ""
        if target_check is not None:
            checked, reference = [], start
            for step, c in zip(steps, conf):
                allowed, pose, why = target_check(step, reference, float(c))
                if not allowed:
                    cut_reason = why
                    break
                checked.append(pose)
                reference = pose
            steps, conf = np.asarray(checked).reshape(-1, 8), conf[: len(checked)]
            if len(steps) == 0:
                self._queue.clear()
                return PlanResult(False, 0, f"first step refused: {cut_reason}")
        poses = interpolate_poses(start, steps, cfg.substeps)
        self._queue = deque(zip(poses, np.repeat(conf, cfg.substeps)))
        if cut_reason:
            reason = f"cut to {len(steps)} step(s): {cut_reason}"
        elif len(steps) < cfg.execute_steps:
            reason = f"cut to {len(steps)} step(s) by confidence or length"
        else:
            reason = ""
        return PlanResult(True, len(self._queue), reason)

    def frames_stale(self, now_s: float) -> bool:
        """Whether no camera frame has been seen for more than ``max_frame_gap_s`` at ``now_s``."""
        return is_stale(self._last_frame_s, now_s, self.config.max_frame_gap_s)

    def next_command(self, now_s: float) -> Command:
        """The next pose to send, or a hold (camera frames stale or queue empty)."""
        cfg = self.config
        if is_stale(self._last_frame_s, now_s, cfg.max_frame_gap_s):
            if self._queue or self._last_command is not None:
                logger.warning("holding: no camera frame for more than %.0f ms; queue dropped",
                               1000 * cfg.max_frame_gap_s)
            self._queue.clear()
            self._last_command = None
            gap = "never" if self._last_frame_s is None else f"{1000 * (now_s - self._last_frame_s):.0f} ms ago"
            return Command(None, 0.0, f"camera frames stale (last {gap}, max {1000 * cfg.max_frame_gap_s:.0f} ms)",
                           stale=True)
        if not self._queue:
            return Command(None, 0.0, "no plan (waiting for the next trajectory)")
        pose, conf = self._queue.popleft()
        self._last_command = pose
        return Command(pose.copy(), float(conf), "")
