"""Latency-aware execution of decoded action chunks (no ROS).

One executor serves the sim eval loop and the ROS executor node. The policy predicts a
*chunk*: ``H`` future poses from camera frames captured at ``stamp_s``. Each step has an
absolute due time ``times_s[i] = stamp_s + time_from_start[i]``. By the time the chunk
arrives (``now_s``), ``now_s - stamp_s`` seconds have passed (the *latency*): with
``align="stamp"`` the executor runs each step at its due time, so steps already past are
skipped and the arm is where the policy meant it to be *now*; ``align="arrival"`` re-bases
the chunk so its first step is due at arrival (the pre-existing behaviour, the baseline).

Poses are ``(8,) = [x y z qx qy qz qw gripper]`` in the robot base frame (metres,
quaternion scalar-last, gripper openness in [0, 1], 1 = open). Times are seconds on one
clock shared by frame stamps and ``now_s`` (the ROS node clock, or the simulated time).

The loop a caller runs (see :class:`ChunkExecutor`)::

    executor.observe_frame(frame_stamp)                # every camera frame (heartbeat)
    if executor.wants_chunk(now):                      # time to ask the policy
        executor.mark_requested(newest_stamp, now)
    ...                                                # the policy answers later:
    executor.add_chunk(chunk, now, measured_pose)      # or request_answered(stamp) on a refusal
    cmd = executor.tick(now, measured_pose)            # every control period
    if cmd.event == "command": send(cmd.pose)
    elif cmd.event in ("hold", "refused"): stop_at(cmd.hold_pose)   # None: send nothing new

A new chunk is blended into the one being executed over ``blend_s`` seconds, so the
command does not jump at a chunk boundary. Every command passes the optional
:class:`~action_images_ros.control.safety.SafetyEnvelope` (each decoded step with
``check_target`` on arrival, each command with ``check`` on every tick).

**Trusted pose.** Every check is made against the last *trusted* measured pose. A measured pose
farther than the envelope's ``max_pose_jump_m`` from it is not trusted (a state glitch, or a reset
nobody announced): the arm holds where it was commanded (nothing new is sent) until
``pose_confirm_samples`` later samples confirm the new pose; then the chunk is dropped (the world
changed) and the new pose is trusted. **Holds are commands too**: a hold stops the arm where it was
last commanded, checked by ``SafetyEnvelope.check_hold`` against the trusted pose
(:meth:`ChunkExecutor.hold_pose`), never at a pose a bad sample reports; and every command is also
step-limited from the last commanded pose, so no sample, good or bad, moves the arm's target more
than one envelope step per tick.

**A chunk is an answer.** A caller that gives ids (:meth:`ChunkExecutor.mark_requested` with
``request_id`` and the ``state`` asked from; :meth:`ChunkExecutor.add_chunk` with the chunk's
``request_id``) has only a chunk executed that answers the outstanding request of this episode and
was predicted from the state asked for; anything else is refused and the request stays open.
Without ids (the in-process eval loop) any chunk answers. Either way a chunk's start state must pass
the envelope's target checks against the trusted pose, its first step is checked against the trusted
pose, and with nothing in flight its path starts from the trusted pose, not from the start pose the
chunk itself claims.

Not thread-safe: call from one thread, or hold a lock around every call.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from .safety import SafetyEnvelope

__all__ = ["Chunk", "ExecutionConfig", "ExecutionStats", "ChunkExecutor", "Command", "PlanResult",
           "EVENTS", "FUTURE_TOLERANCE_S", "blend_poses", "executed_steps",
           "usable_steps", "usable_prefix"]

logger = logging.getLogger(__name__)

#: Stamps (frames, chunks) more than this many seconds in the future of ``now_s`` are ignored:
#: a broken clock upstream (one message stamped 2036) must not freeze or blind the executor.
FUTURE_TOLERANCE_S = 1.0

#: The values of :attr:`Command.event`.
EVENTS = ("command", "stall", "hold", "refused", "paused", "idle")
#: Times closer than this (s) count as equal: ticks and due times fall on the same instants (multiples of the
#: control period), and float rounding must not decide whether a request or a stall happens at a tick.
TIME_EPS_S = 1e-6

_ALIGNS = ("stamp", "arrival")


# --------------------------------------------------------------------------- helpers
def _as_pose(pose, name: str, finite: bool = True) -> np.ndarray:
    p = np.asarray(pose, dtype=np.float64)
    if p.shape != (8,):
        raise ValueError(f"{name} must have shape (8,) = [x y z qx qy qz qw gripper], got {p.shape}")
    if finite and not np.all(np.isfinite(p)):
        raise ValueError(f"{name} must be finite, got {np.round(p, 4).tolist()}")
    if finite and np.linalg.norm(p[3:7]) < 1e-6:
        raise ValueError(f"{name} has a zero quaternion: {np.round(p, 4).tolist()}")
    return p


def _as_time(value, name: str) -> float:
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if not np.isfinite(t):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return t


def blend_poses(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """The pose the fraction ``w`` of the way from ``a`` to ``b``.

    Position is linear, rotation the shortest-path slerp; the gripper is ``a``'s for
    ``w < 0.5`` and ``b``'s from ``w >= 0.5`` (it is binary in practice).

    Args:
        a, b: ``(8,)`` poses (base frame; any non-zero quaternion norm).
        w: fraction in [0, 1] (clipped).

    Returns:
        ``(8,)`` pose with a unit quaternion, ``qw >= 0``.
    """
    w = float(min(max(w, 0.0), 1.0))
    pos = a[:3] + w * (b[:3] - a[:3])
    if w == 0.0:
        quat = a[3:7] / np.linalg.norm(a[3:7])
    elif w == 1.0:
        quat = b[3:7] / np.linalg.norm(b[3:7])
    else:
        rots = Rotation.from_quat(np.stack([a[3:7], b[3:7]]))
        quat = Slerp([0.0, 1.0], rots)([w]).as_quat()[0]
    if quat[3] < 0:
        quat = -quat
    grip = b[7] if w >= 0.5 else a[7]
    return np.concatenate([pos, quat, [grip]])


# --------------------------------------------------------------------------- chunk
@dataclasses.dataclass
class Chunk:
    """A decoded trajectory with absolute times.

    Attributes:
        stamp_s: capture time (s) of the camera frames it was predicted from.
        times_s: ``(H,)`` absolute due time (s) of every step, ``stamp_s + time_from_start``;
            strictly increasing and ``> stamp_s``; ``H >= 1``.
        poses: ``(H, 8)`` poses ``[x y z qx qy qz qw gripper]`` (base frame). Non-finite rows are
            allowed here (the executor cuts the chunk before them).
        confidence: ``(H,)`` decoder confidence per step in [0, 1].
        start_pose: ``(8,)`` measured pose at ``stamp_s`` (the state the policy saw), the chunk's
            implicit step 0 at ``stamp_s``; None if unknown.
    """

    stamp_s: float
    times_s: np.ndarray
    poses: np.ndarray
    confidence: np.ndarray
    start_pose: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.stamp_s = _as_time(self.stamp_s, "stamp_s")
        self.times_s = np.array(self.times_s, dtype=np.float64).reshape(-1)
        self.poses = np.array(self.poses, dtype=np.float64)
        self.confidence = np.array(self.confidence, dtype=np.float64).reshape(-1)
        h = len(self.times_s)
        if h < 1:
            raise ValueError("times_s must have at least one step, got 0")
        if self.poses.shape != (h, 8):
            raise ValueError(f"poses must have shape (H, 8) = ({h}, 8) to match times_s, got {self.poses.shape}")
        if self.confidence.shape != (h,):
            raise ValueError(f"confidence must have shape ({h},) to match times_s, got {self.confidence.shape}")
        if not np.all(np.isfinite(self.times_s)):
            raise ValueError(f"times_s must be finite, got {self.times_s.tolist()}")
        if np.any(np.diff(self.times_s) <= 0):
            raise ValueError(f"times_s must be strictly increasing, got {self.times_s.tolist()}")
        if self.times_s[0] <= self.stamp_s:
            raise ValueError(f"times_s must be after stamp_s {self.stamp_s}, got first step at {self.times_s[0]}")
        if self.start_pose is not None:
            self.start_pose = _as_pose(self.start_pose, "start_pose").copy()

    @classmethod
    def from_keyframes(cls, stamp_s: float, poses: np.ndarray, confidence: np.ndarray, step_dt_s: float,
                       start_pose: np.ndarray | None = None) -> "Chunk":
        """A chunk whose ``H`` steps are due every ``step_dt_s`` seconds after ``stamp_s``.

        Args:
            stamp_s: capture time of the frames (s).
            poses: ``(H, 8)`` poses (base frame).
            confidence: ``(H,)`` confidence per step.
            step_dt_s: seconds between steps (> 0); step ``i`` (0-based) is due at
                ``stamp_s + step_dt_s * (i + 1)``.
            start_pose: optional ``(8,)`` measured pose at ``stamp_s``.
        """
        dt = _as_time(step_dt_s, "step_dt_s")
        if dt <= 0:
            raise ValueError(f"step_dt_s must be > 0, got {step_dt_s}")
        stamp = _as_time(stamp_s, "stamp_s")
        h = len(np.asarray(poses))
        return cls(stamp, stamp + dt * np.arange(1, h + 1), poses, confidence, start_pose)

    @property
    def horizon(self) -> int:
        """Number of steps ``H``."""
        return len(self.times_s)

    @property
    def end_s(self) -> float:
        """Due time (s) of the last step."""
        return float(self.times_s[-1])

    def next_index(self, t_s: float) -> int:
        """Index of the step being moved towards at ``t_s`` (the last one after the end); a step due at
        ``t_s`` (within :data:`TIME_EPS_S`) is the one being reached, not passed."""
        return int(min(np.searchsorted(self.times_s, float(t_s) - TIME_EPS_S, side="left"), self.horizon - 1))

    def pose_at(self, t_s: float) -> np.ndarray:
        """The pose due at time ``t_s`` (s).

        Between two steps: linear position and slerped rotation at the time fraction, gripper
        of the next step (the one being moved towards). Before the first step: between
        ``start_pose`` (at ``stamp_s``; clamped there before it) and step 0, or step 0 itself
        without a start pose. After the last step: the last pose.

        Returns:
            ``(8,)`` pose with a unit quaternion, ``qw >= 0``.
        """
        t = float(t_s)
        j = self.next_index(t)
        if t >= self.end_s - TIME_EPS_S:
            return blend_poses(self.poses[-1], self.poses[-1], 1.0)
        if j == 0:
            if self.start_pose is None:
                return blend_poses(self.poses[0], self.poses[0], 1.0)
            a, t0 = self.start_pose, self.stamp_s
        else:
            a, t0 = self.poses[j - 1], self.times_s[j - 1]
        b = self.poses[j]
        w = (t - t0) / (self.times_s[j] - t0)
        out = blend_poses(a, b, w)
        out[7] = b[7]
        return out

    def subset(self, n: int) -> "Chunk":
        """The chunk cut to its first ``n >= 1`` steps."""
        return Chunk(self.stamp_s, self.times_s[:n], self.poses[:n], self.confidence[:n], self.start_pose)

    def shifted(self, dt_s: float) -> "Chunk":
        """The chunk with its stamp and every due time moved by ``dt_s`` seconds."""
        return Chunk(self.stamp_s + dt_s, self.times_s + dt_s, self.poses, self.confidence, self.start_pose)


# --------------------------------------------------------------------------- config
@dataclasses.dataclass
class ExecutionConfig:
    """How chunks are requested, cut, aligned, blended and given up on.

    Attributes:
        blend_s: a new chunk is blended into the one being executed over this window (s, >= 0;
            0 = replace at once).
        request_fraction: ask for the next chunk when this fraction of the current chunk's
            executable duration is left ([0, 1]; 0 = only when it has run out).
        execute_fraction: at most this leading fraction ((0, 1]) of a chunk's duration
            (``stamp_s .. end_s``) is executed (receding horizon); the rest is cut.
        align: ``"stamp"``: steps are due at their absolute times (steps already past are
            skipped); ``"arrival"``: re-based so step 0 is due ``times_s[0] - stamp_s`` after
            arrival (the pre-existing behaviour, the baseline).
        max_plan_age_s: a chunk whose frames are older than this on arrival is dropped (s, > 0).
        max_frame_gap_s: no camera frame for this long -> hold at the measured pose, drop the
            chunk (s, > 0).
        min_confidence: a chunk ends before its first step with lower confidence (or non-finite
            values / zero quaternion) ([0, 1]).
        request_timeout_s: a request unanswered this long may be made again (s, > 0).
        latency_aware: ask for the next chunk at least as early as the policy's latency seen so far
            (the latest ``now - stamp`` of an accepted chunk): with a slow policy the request goes
            out before ``request_fraction`` is reached, so its answer arrives about when it is needed.
        lead_s: a command sent at ``t`` is the pose due at ``t + lead_s`` (s, >= 0): the arm takes about
            one control period to reach a target, so commanding the pose due now would run the whole
            trajectory that much late (the training data pairs each frame with the command one control
            step before it). The control period of the data (simulated cell: 0.1 s).
        forecast_state: with a policy that answers late, condition it on the pose the arm is being
            commanded to for when the answer is expected (the current chunk at ``now + latency``),
            not on the pose it has now: consecutive chunks then continue each other instead of
            each one re-planning from a pose the arm has long left (:meth:`ChunkExecutor.request_state`).
    """

    blend_s: float = 0.2
    request_fraction: float = 0.5
    execute_fraction: float = 1.0
    align: str = "stamp"
    max_plan_age_s: float = 5.0
    max_frame_gap_s: float = 0.2
    min_confidence: float = 0.2
    request_timeout_s: float = 5.0
    latency_aware: bool = True
    forecast_state: bool = True
    lead_s: float = 0.1

    def __post_init__(self) -> None:
        for name in ("latency_aware", "forecast_state"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
            setattr(self, name, bool(getattr(self, name)))
        for name in ("blend_s", "request_fraction", "execute_fraction", "max_plan_age_s", "max_frame_gap_s",
                     "min_confidence", "request_timeout_s", "lead_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            setattr(self, name, float(value))
        if self.blend_s < 0:
            raise ValueError(f"blend_s must be >= 0, got {self.blend_s}")
        if not 0.0 <= self.lead_s <= 1.0:
            raise ValueError(f"lead_s must be in [0, 1] s, got {self.lead_s}")
        if not 0.0 <= self.request_fraction <= 1.0:
            raise ValueError(f"request_fraction must be in [0, 1], got {self.request_fraction}")
        if not 0.0 < self.execute_fraction <= 1.0:
            raise ValueError(f"execute_fraction must be in (0, 1], got {self.execute_fraction}")
        if self.align not in _ALIGNS:
            raise ValueError(f"align must be one of {list(_ALIGNS)}, got {self.align!r}")
        for name in ("max_plan_age_s", "max_frame_gap_s", "request_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")

    @classmethod
    def from_dict(cls, data: dict) -> "ExecutionConfig":
        """Build from a mapping; unknown keys raise ValueError naming the known ones."""
        if not isinstance(data, dict):
            raise ValueError(f"execution config must be a mapping, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown execution config keys {unknown}; known keys: {known}")
        return cls(**data)

    def to_dict(self) -> dict:
        """The fields as a plain mapping (round-trips through :meth:`from_dict`)."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- results
@dataclasses.dataclass
class PlanResult:
    """Outcome of :meth:`ChunkExecutor.add_chunk`.

    Attributes:
        accepted: whether the chunk became the current one.
        reason: why it was dropped, or how it was cut (empty when taken whole).
        late_s: ``now_s - stamp_s`` on arrival (s): the latency of the prediction.
        steps: steps kept (0 when dropped).
    """

    accepted: bool
    reason: str
    late_s: float
    steps: int = 0


@dataclasses.dataclass
class Command:
    """One tick of :meth:`ChunkExecutor.tick`.

    Attributes:
        pose: ``(8,)`` safety-checked pose to send (base frame), or None (send nothing new).
        confidence: confidence of the step the command moves towards (0 without a pose).
        event: one of :data:`EVENTS`: ``"command"`` (send ``pose``); ``"stall"`` (the chunk ran
            out before the next arrived: the last command stands); ``"hold"`` (camera frames
            stale: stop at ``hold_pose``, the chunk was dropped); ``"refused"`` (the envelope
            refused: stop at ``hold_pose``, the chunk was dropped); ``"paused"`` (envelope
            paused, send nothing); ``"idle"`` (no chunk yet).
        reason: why there is no pose, or how the envelope changed it.
        hold_pose: ``(8,)`` pose to stop at for ``"hold"`` / ``"refused"``: where the arm was last
            commanded (else the trusted measured pose), checked by ``SafetyEnvelope.check_hold`` against
            the trusted pose; None: send nothing new (the last target stands; e.g. while a measured pose
            that jumped is not trusted yet).
    """

    pose: np.ndarray | None
    confidence: float
    event: str
    reason: str = ""
    hold_pose: np.ndarray | None = None


@dataclasses.dataclass
class ExecutionStats:
    """Counters since the last :meth:`ChunkExecutor.reset` (times in s).

    Attributes:
        commands: commands handed out. stalls: times a chunk ran out before the next arrived.
        stall_time_s: time spent stalled. refused: commands refused by the envelope.
        holds: times stale camera frames interrupted execution (a chunk or a command in flight).
        chunks_accepted, chunks_dropped: chunks that became current / were dropped in add_chunk.
        late_chunks: accepted chunks whose steps were all already past on arrival.
        max_late_s: largest ``now_s - stamp_s`` of an accepted chunk.
        requests: requests marked. future_stamps: frame or chunk stamps ignored for being more
            than :data:`FUTURE_TOLERANCE_S` in the future.
        pose_jumps: measured poses that jumped more than the envelope's ``max_pose_jump_m`` from the
            trusted one and were confirmed (the world changed: the chunk was dropped).
        suspect_poses: ticks held because the measured pose had jumped and was not confirmed yet.
        not_answers: chunks refused for not answering the outstanding request (wrong or missing id,
            nothing outstanding, or predicted from another state).
    """

    commands: int = 0
    stalls: int = 0
    stall_time_s: float = 0.0
    refused: int = 0
    holds: int = 0
    chunks_accepted: int = 0
    chunks_dropped: int = 0
    late_chunks: int = 0
    max_late_s: float = 0.0
    requests: int = 0
    future_stamps: int = 0
    pose_jumps: int = 0
    suspect_poses: int = 0
    not_answers: int = 0

    def as_dict(self) -> dict:
        """The counters as a plain mapping."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- executor
@dataclasses.dataclass
class _Request:
    """The outstanding request (internal): frames stamp, when it went out, its id and the state asked from."""

    stamp_s: float
    sent_s: float
    request_id: str | None = None
    state: np.ndarray | None = None


def _same_pose(a: np.ndarray, b: np.ndarray, tol_m: float = 1e-4, tol_deg: float = 0.05) -> bool:
    """Whether two (>= 7,) poses are the same (position within ``tol_m``, rotation within ``tol_deg``)."""
    if float(np.linalg.norm(a[:3] - b[:3])) > tol_m:
        return False
    qa, qb = a[3:7] / np.linalg.norm(a[3:7]), b[3:7] / np.linalg.norm(b[3:7])
    return float(np.degrees(2.0 * np.arccos(min(1.0, abs(float(np.dot(qa, qb))))))) <= tol_deg


class _Plan:
    """The current chunk plus what it is blended from (internal)."""

    def __init__(self, chunk: Chunk, stamp_s: float, switch_s: float, late: bool, source, blend_s: float) -> None:
        self.chunk = chunk
        self.stamp_s = stamp_s  # capture time of its frames (before any arrival shift)
        self.switch_s = switch_s
        self.late = late
        self.source = source if blend_s > 0 else None  # _Plan, (8,) pose or None
        self.blend_s = blend_s
        self.commanded = False
        end = chunk.end_s
        if self.source is not None:
            end = max(end, switch_s + blend_s)  # the blend always completes
        self.end_s = max(end, switch_s) if late else end

    def target(self, t: float) -> np.ndarray:
        return self.chunk.pose_at(self.chunk.end_s if self.late else t)

    def confidence(self, t: float) -> float:
        i = self.chunk.horizon - 1 if self.late else self.chunk.next_index(t)
        return float(self.chunk.confidence[i])

    def peek(self, t: float) -> np.ndarray:
        """:meth:`pose` without forgetting a finished blend (a look ahead must not change what ticks command)."""
        return self.pose(t, forget=False)

    def pose(self, t: float, forget: bool = True) -> np.ndarray:
        b = self.target(t)
        if self.source is None:
            return b
        w = (t - self.switch_s) / self.blend_s
        if w >= 1.0:
            if forget:
                self.source = None  # blend over: forget the previous chunk
            return b
        a = self.source.pose(t, forget) if isinstance(self.source, _Plan) else self.source
        return blend_poses(a, b, w)


def executed_steps(time_from_start_s: np.ndarray, execute_fraction: float) -> int:
    """How many leading steps of a chunk the receding horizon keeps: those due within ``execute_fraction``
    of its duration from the frames' stamp (at least one). A step due on that limit is kept: the tolerance is
    :data:`TIME_EPS_S` because times relative to a wall-clock stamp (~1.7e9 s) carry ~2e-7 s of rounding."""
    t = np.asarray(time_from_start_s, dtype=np.float64)
    return max(1, int(np.sum(t <= execute_fraction * t[-1] + TIME_EPS_S)))


def usable_steps(poses: np.ndarray, confidence: np.ndarray, min_confidence: float) -> np.ndarray:
    """``(n,)`` bool: which of a chunk's steps ``poses (n, 8)`` the executor may run: finite values, a
    non-zero quaternion and ``confidence >= min_confidence``. A chunk runs up to its first unusable step."""
    poses, confidence = np.asarray(poses, dtype=np.float64), np.asarray(confidence, dtype=np.float64)
    ok = np.all(np.isfinite(poses), axis=1) & np.isfinite(confidence) & (confidence >= min_confidence)
    return ok & (np.linalg.norm(np.nan_to_num(poses[:, 3:7]), axis=1) > 1e-6)


def usable_prefix(poses: np.ndarray, confidence: np.ndarray, min_confidence: float) -> int:
    """How many leading steps of a chunk the executor would run before cutting it (``usable_steps``)."""
    ok = usable_steps(poses, confidence, min_confidence)
    return int(len(ok) if ok.all() else np.argmin(ok))


class ChunkExecutor:
    """Executes chunks at their due times, blends successive ones, holds on stale frames.

    Args:
        config: execution settings.
        envelope: optional safety envelope; every kept step passes ``check_target`` on arrival
            and every command ``check`` on each tick.
    """

    def __init__(self, config: ExecutionConfig | None = None, envelope: SafetyEnvelope | None = None) -> None:
        self.config = config or ExecutionConfig()
        self.envelope = envelope
        self.stats = ExecutionStats()
        self._future_logged = False
        self._latency_s = 0.0  # the policy's latency seen so far: a property of the policy, kept over resets
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, now_s: float | None = None, keep_stats: bool = False) -> None:
        """Start a new episode.

        Drops the chunk, the pending request, the last command, the frame clock and (unless
        ``keep_stats``) the statistics, and restarts the envelope's gripper debounce. Chunks
        stamped before ``now_s`` are ignored afterwards (a prediction started before the reset
        must not act after it); ``now_s`` may be earlier than before (a sim restarting at 0).
        """
        self._reset_s = None if now_s is None else _as_time(now_s, "now_s")
        self._now_s: float | None = self._reset_s
        self._plan: _Plan | None = None
        self._last_command: np.ndarray | None = None
        self._gripper_command: float | None = None  # the last gripper command sent this episode
        self._last_frame_s: float | None = None
        self._early_frames: list[float] = []  # stamps seen before any now_s, resolved at the first one
        self._request: _Request | None = None
        self._stall_mark: float | None = None  # set while stalling: time up to which stall time is counted
        self._holding = False
        self._trusted: np.ndarray | None = None  # the last trusted measured pose (8,)
        self._jump_confirmed = False
        self._suspect: list[np.ndarray] = []  # measured poses since the last trusted one that jumped from it
        self._pose_key: tuple | None = None  # the sample the trust was last judged on (stamp or tick time)
        self._pose_verdict = ""  # why that sample is not trusted ("" = trusted)
        self._jump_confirmed = False  # a jump was confirmed since the last tick: its chunk must be dropped
        self._commanded: np.ndarray | None = None  # where the arm was last told to go (commands and holds)
        self.last_switch_s: float | None = None
        if not keep_stats:
            self.stats = ExecutionStats()
        if self.envelope is not None:
            self.envelope.reset_gripper()

    @property
    def current_chunk(self) -> Chunk | None:
        """The chunk being executed (cut and aligned), or None."""
        return None if self._plan is None else self._plan.chunk

    @property
    def last_command(self) -> np.ndarray | None:
        """The last pose handed out (None after a reset, a hold or a refusal)."""
        return None if self._last_command is None else self._last_command.copy()

    @property
    def waiting(self) -> bool:
        """A request is outstanding (marked and not yet answered)."""
        return self._request is not None

    def planned_pose(self, t_s: float) -> np.ndarray | None:
        """``(8,)`` the pose the current chunk will command at ``t_s`` (its last pose after its end), before the
        safety envelope; None without a chunk. What the arm is heading for when a requested chunk arrives."""
        if self._plan is None:
            return None
        return self._plan.peek(min(float(t_s), self._plan.end_s)).copy()

    def request_state(self, now_s: float, measured_pose: np.ndarray) -> np.ndarray:
        """``(8,)`` the state a chunk asked for at ``now_s`` should be predicted from.

        The measured pose, unless ``forecast_state`` is on, a chunk is being executed and the policy
        answered late so far (latency > 0): then the pose the chunk commands at ``now_s + latency``
        (position, rotation), where the arm will be when the answer comes.

        The gripper is the last gripper command sent this episode (the measured opening before the
        first), as in training (``ClipConfig.gripper_from_command``): the measured opening of a
        gripper closed on a 5 cm cube reads 0.6, "half open", which the policy never saw.
        """
        measured = _as_pose(measured_pose, "measured_pose")
        state = self.trusted_view(measured)
        if self.config.forecast_state and self._plan is not None and self._latency_s > TIME_EPS_S:
            state[:7] = self.planned_pose(float(now_s) + self._latency_s)[:7]
        if self._gripper_command is not None:
            state[7] = self._gripper_command
        return state

    @property
    def latency_s(self) -> float:
        """The policy's latency seen so far (``now - stamp`` of the latest accepted chunk, s)."""
        return self._latency_s

    def remaining_s(self, now_s: float) -> float:
        """Executable time left in the current chunk at ``now_s`` (s; 0 without a chunk)."""
        if self._plan is None:
            return 0.0
        return max(0.0, self._plan.end_s - float(now_s))

    def frames_stale(self, now_s: float) -> bool:
        """Whether no usable camera frame was seen within ``max_frame_gap_s`` of ``now_s``."""
        self._see_now(now_s)
        last = self._last_frame_s
        return last is None or now_s - last > self.config.max_frame_gap_s or last > now_s + FUTURE_TOLERANCE_S

    # ------------------------------------------------------------------ clocks
    def _see_now(self, now_s: float) -> None:
        self._now_s = float(now_s)
        if self._early_frames:
            early, self._early_frames = self._early_frames, []
            for stamp in early:
                self._accept_frame(stamp)

    def _future(self, stamp_s: float, what: str) -> bool:
        """Whether ``stamp_s`` is too far in the future of the latest now (counted, logged once)."""
        if self._now_s is None or stamp_s <= self._now_s + FUTURE_TOLERANCE_S:
            return False
        self.stats.future_stamps += 1
        log = logger.debug if self._future_logged else logger.warning
        log("ignored %s stamped %.3f s, %.3f s in the future of now %.3f s (clock broken upstream?)",
            what, stamp_s, stamp_s - self._now_s, self._now_s)
        self._future_logged = True
        return True

    def _accept_frame(self, stamp_s: float) -> None:
        if self._future(stamp_s, "camera frame"):
            return
        last = self._last_frame_s
        if last is None or stamp_s > last or (self._now_s is not None and last > self._now_s + FUTURE_TOLERANCE_S):
            self._last_frame_s = stamp_s

    def observe_frame(self, stamp_s: float) -> None:
        """Record a camera frame stamped ``stamp_s`` (the heartbeat that keeps the executor from holding).

        The newest stamp that is at most :data:`FUTURE_TOLERANCE_S` ahead of the latest ``now_s``
        is kept; later ones are ignored (counted in ``stats.future_stamps``, logged once), so a
        broken upstream clock cannot disable the dropout hold. Stamps seen before any ``now_s``
        are judged at the first one. Non-finite stamps are ignored.
        """
        try:
            stamp = _as_time(stamp_s, "stamp_s")
        except ValueError:
            logger.warning("ignored camera frame with stamp %r", stamp_s)
            return
        if self._now_s is None:
            self._early_frames = (self._early_frames + [stamp])[-64:]
            return
        self._accept_frame(stamp)

    # ------------------------------------------------------------------ requests
    def wants_chunk(self, now_s: float) -> bool:
        """Whether the caller should now ask the policy for a chunk from the newest frames.

        True when no chunk is current (after a reset, a hold, a refusal, a dropped chunk) or
        its executable remainder is at most ``request_fraction`` of its executable duration
        (from when it became current to its end) — or, with ``latency_aware``, at most the
        policy's latency seen so far —, unless a request is outstanding and younger than
        ``request_timeout_s``, the envelope is paused (chunks would be refused), or the measured pose
        jumped and is not confirmed yet.
        """
        now_s = _as_time(now_s, "now_s")
        self._see_now(now_s)
        if self.envelope is not None and self.envelope.paused:
            return False
        if self._suspect:  # the measured pose jumped and is not confirmed yet: nothing to predict from
            return False
        if self._request is not None and now_s - self._request.sent_s < self.config.request_timeout_s:
            return False
        plan = self._plan
        if plan is None:
            return True
        duration = max(0.0, plan.end_s - plan.switch_s)
        threshold = self.config.request_fraction * duration
        if self.config.latency_aware:
            threshold = max(threshold, self._latency_s)
        return plan.end_s - now_s <= threshold + TIME_EPS_S

    def mark_requested(self, stamp_s: float, now_s: float, request_id: str | None = None,
                       state: np.ndarray | None = None) -> None:
        """A request went out at ``now_s`` for frames stamped ``stamp_s``.

        Args:
            request_id: the request's id; given, only a chunk carrying it answers the request
                (:meth:`add_chunk`, :meth:`request_answered`).
            state: ``(8,)`` the state the chunk was asked to be predicted from (:meth:`request_state`);
                given, a chunk predicted from another start state is not an answer.
        """
        self._see_now(_as_time(now_s, "now_s"))
        self._request = _Request(_as_time(stamp_s, "stamp_s"), float(now_s),
                                 None if request_id is None else str(request_id),
                                 None if state is None else _as_pose(state, "state").copy())
        self.stats.requests += 1

    @property
    def outstanding_id(self) -> str | None:
        """The id of the outstanding request (None: none outstanding, or it has no id)."""
        return None if self._request is None else self._request.request_id

    def answers_request(self, request_id: str | None) -> bool:
        """Whether an answer carrying ``request_id`` answers the outstanding request (always, when the
        request has no id)."""
        req = self._request
        return req is not None and (req.request_id is None or req.request_id == request_id)

    def request_answered(self, stamp_s: float | None = None, request_id: str | None = None) -> None:
        """The policy answered (a chunk or a refusal): the request is no longer outstanding.

        An answer stamped before the last reset belongs to the previous episode, one stamped before the
        outstanding request answers an earlier request, and one whose ``request_id`` is not the
        outstanding request's (when that has an id): all leave it outstanding.
        """
        if stamp_s is not None and self._reset_s is not None and float(stamp_s) < self._reset_s:
            return
        req = self._request
        if req is None:
            return
        if req.request_id is not None:
            if request_id == req.request_id:  # the answer to it, whatever frames it was predicted from
                self._request = None
            return
        if stamp_s is not None and float(stamp_s) < req.stamp_s - TIME_EPS_S:
            return  # a late answer to an earlier request (e.g. a retried one): the newer one is still open
        self._request = None

    # ------------------------------------------------------------------ trusted pose
    def trusted_view(self, measured_pose: np.ndarray) -> np.ndarray:
        """``(8,)`` the pose to act on for a measurement: ``measured_pose`` unless it jumped more than the
        envelope's ``max_pose_jump_m`` from the last trusted pose (then that one). Changes nothing."""
        measured = _as_pose(measured_pose, "measured_pose")
        if self._trusted is None or self.envelope is None:
            return measured.copy()
        if float(np.linalg.norm(measured[:3] - self._trusted[:3])) <= self.envelope.config.max_pose_jump_m:
            return measured.copy()
        return self._trusted.copy()

    @property
    def trusted_pose(self) -> np.ndarray | None:
        """``(8,)`` the last trusted measured pose (None before the first tick of an episode)."""
        return None if self._trusted is None else self._trusted.copy()

    def observe_pose(self, measured_pose: np.ndarray, stamp_s: float) -> str:
        """Judge one measured sample as it arrives (a caller that sees every sample, e.g. a lockstep node, so a
        glitch superseded before the next tick is still judged and logged); :meth:`tick` with the same
        ``pose_stamp_s`` does not judge it again. Returns "" when trusted, else why not."""
        return self._judge_pose(_as_pose(measured_pose, "measured_pose").copy(), ("stamp", float(stamp_s)))

    def _judge_pose(self, measured: np.ndarray, key: tuple) -> str:
        """Update the trusted pose with one sample (once per ``key``); returns "" when trusted (a jump just
        confirmed sets ``_jump_confirmed``), or why it is not trusted yet."""
        if key == self._pose_key:
            return self._pose_verdict
        self._pose_key = key
        verdict = ""
        if self.envelope is None or self._trusted is None:
            self._trusted = measured.copy()
        else:
            limit = self.envelope.config.max_pose_jump_m
            jump = float(np.linalg.norm(measured[:3] - self._trusted[:3]))
            if jump <= limit:
                self._trusted, self._suspect = measured.copy(), []
            elif self._suspect and float(np.linalg.norm(measured[:3] - self._suspect[-1][:3])) <= limit:
                self._suspect.append(measured.copy())
                if len(self._suspect) > self.envelope.config.pose_confirm_samples:
                    self._jump_confirmed = True
                    logger.warning("the measured pose moved %.3f m from the last trusted one and %d samples "
                                   "confirmed it: the world changed; chunk dropped, trusting the new pose",
                                   jump, len(self._suspect) - 1)
                    self._trusted, self._suspect = measured.copy(), []
            else:
                self._suspect = [measured.copy()]
            if self._suspect:
                verdict = (f"the measured pose jumped {jump:.3f} m from the last trusted one (> max_pose_jump_m "
                           f"{limit}): not trusted until {self.envelope.config.pose_confirm_samples} more "
                           f"sample(s) confirm it; holding where commanded")
                if len(self._suspect) == 1:
                    logger.warning(verdict)
        self._pose_verdict = verdict
        return verdict

    def hold_pose(self, measured_pose: np.ndarray | None = None) -> np.ndarray | None:
        """``(8,)`` where a hold stops the arm now: where it was last commanded (moves and holds of this
        episode), else the trusted measured pose (gripper: the last command, else the measured opening),
        checked by ``SafetyEnvelope.check_hold`` against the trusted pose (``measured_pose`` when nothing is
        trusted yet). None (send nothing new) when no pose is known at all, or while a measured pose that
        jumped from the trusted one is not confirmed (``measured_pose`` given and jumped, or a jump pending):
        the arm might not be where the last target was meant for. The result becomes the last commanded pose."""
        if self._suspect:
            return None  # a measured pose jumped and is not confirmed: where the arm is is unknown, send nothing new
        reference = self._trusted
        if measured_pose is not None:
            measured = _as_pose(measured_pose, "measured_pose")
            if reference is None:
                reference = measured.copy()
            elif self.envelope is not None and float(np.linalg.norm(measured[:3] - reference[:3])) \
                    > self.envelope.config.max_pose_jump_m:
                return None  # the measurement jumped since the last trusted pose (a reset not announced yet?)
        if reference is None:
            return None if self._commanded is None else self._commanded.copy()
        if self._commanded is not None:
            hold = self._commanded.copy()
        else:
            hold = reference.copy()
            if self._gripper_command is not None:
                hold[7] = self._gripper_command
            elif self.envelope is not None:
                hold[7] = 1.0 if hold[7] > self.envelope.config.gripper_threshold else 0.0
        if self.envelope is not None:
            decision = self.envelope.check_hold(hold, reference)
            if not decision.allowed:
                return None
            hold = decision.pose
        self._commanded = hold.copy()
        return hold.copy()

    # ------------------------------------------------------------------ chunks
    def _drop(self, reason: str, late_s: float, drop_current: bool = False) -> PlanResult:
        self.stats.chunks_dropped += 1
        if drop_current and self._plan is not None:
            self._end_stall(self._now_s)
            self._plan = None
        logger.warning("chunk dropped: %s", reason)
        return PlanResult(False, reason, late_s)

    def _end_stall(self, now_s: float | None) -> None:
        if self._stall_mark is not None:
            if now_s is not None:
                self.stats.stall_time_s += max(0.0, now_s - self._stall_mark)
            self._stall_mark = None

    def add_chunk(self, chunk: Chunk, now_s: float, current_pose: np.ndarray | None,
                  request_id: str | None = None) -> PlanResult:
        """Offer a decoded chunk; it becomes current unless dropped.

        Steps: (0) with ``request_id`` given (a caller that checks answers): refuse a chunk that does not
        answer the outstanding request (its id, and the state asked from when one was given), leaving
        the request open; a chunk whose start state fails the envelope's target checks against the
        trusted pose is dropped; (1) ignore chunks stamped before the last reset, older than ``max_plan_age_s``,
        more than :data:`FUTURE_TOLERANCE_S` in the future, or older than the current chunk
        (out of order) (the current chunk stays);
        (2) cut steps due after ``stamp_s + execute_fraction * (end_s - stamp_s)`` (at least one
        is kept); (3) cut before the first uncertain / non-finite / zero-quaternion step and
        (4) before the first step the envelope's ``check_target`` refuses (each against the
        previous step; the first against the trusted ``current_pose``), using the
        returned poses; nothing left drops the current chunk too (the newest prediction says
        stop); (5) ``align="arrival"`` shifts the chunk by ``now_s - stamp_s``; (6) the chunk
        becomes current at ``now_s``, blended from what was executed over ``blend_s``. A chunk
        whose steps are all past is executed from now: its last pose is the target.
        Without ``request_id`` any chunk answers the outstanding request.

        Args:
            chunk: the decoded chunk.
            now_s: arrival time (s).
            current_pose: ``(8,)`` measured pose (finite); may be None without an envelope. Used through
                :meth:`trusted_view`.
            request_id: the id the chunk says it answers ("" = none); None = do not check.

        Returns:
            A :class:`PlanResult`.
        """
        cfg = self.config
        now_s = _as_time(now_s, "now_s")
        if current_pose is not None or self.envelope is not None:
            current_pose = self.trusted_view(current_pose)
        self._see_now(now_s)
        late_s = now_s - chunk.stamp_s
        # 0. only an answer to the outstanding request of this episode, from the state asked for
        if request_id is not None:
            why = self._not_an_answer(chunk, request_id)
            if why:
                self.stats.chunks_dropped += 1
                self.stats.not_answers += 1
                logger.debug("chunk refused: %s", why)
                return PlanResult(False, why, late_s)
        # 1. too old, too new, from before the reset
        if self._reset_s is not None and chunk.stamp_s < self._reset_s:
            reason = f"chunk stamped {chunk.stamp_s:.3f} s, before the last reset at {self._reset_s:.3f} s; ignored"
            self.stats.chunks_dropped += 1
            logger.info(reason)
            return PlanResult(False, reason, late_s)
        self.request_answered(chunk.stamp_s, request_id)
        if self._future(chunk.stamp_s, "chunk"):
            return self._drop(f"chunk stamped {chunk.stamp_s:.3f} s, {-late_s:.3f} s in the future of now "
                              f"(> {FUTURE_TOLERANCE_S} s)", late_s)
        if late_s > cfg.max_plan_age_s:
            return self._drop(f"chunk from frames {1000 * late_s:.0f} ms old (> max_plan_age_s "
                              f"{cfg.max_plan_age_s} s)", late_s)
        if self._plan is not None and chunk.stamp_s < self._plan.stamp_s:
            return self._drop(f"chunk stamped {chunk.stamp_s:.3f} s is older than the current one "
                              f"({self._plan.stamp_s:.3f} s); out of order", late_s)
        self._accept_frame(chunk.stamp_s)
        notes = []
        # 2. receding horizon
        n = executed_steps(chunk.times_s - chunk.stamp_s, cfg.execute_fraction)
        if n < chunk.horizon:
            notes.append(f"execute_fraction {cfg.execute_fraction} keeps {n}/{chunk.horizon} steps")
        # 3. confidence / finite values
        poses, conf = chunk.poses[:n], chunk.confidence[:n]
        bad = usable_prefix(poses, conf, cfg.min_confidence)
        if bad < n:
            why = (f"step {bad} is uncertain (confidence {conf[bad]:.3f} < min_confidence {cfg.min_confidence})"
                   if np.isfinite(conf[bad]) and conf[bad] < cfg.min_confidence
                   else f"step {bad} has non-finite values or a zero quaternion")
            if bad == 0:
                return self._drop(f"first step unusable: {why}; holding", late_s, drop_current=True)
            n = bad
            notes.append(f"cut to {n} step(s): {why}")
        # 4. envelope
        poses = poses[:n].copy()
        if self.envelope is not None:
            if chunk.start_pose is not None:  # the state it was predicted from must be one this arm can be in
                allowed, _, why = self.envelope.check_target(chunk.start_pose, current_pose)
                if not allowed:
                    return self._drop(f"start state refused against the measured pose: {why}", late_s)
            reference = current_pose
            for i in range(n):
                allowed, pose, why = self.envelope.check_target(poses[i], reference, float(conf[i]))
                if not allowed:
                    if i == 0:
                        return self._drop(f"first step refused: {why}", late_s, drop_current=True)
                    n = i
                    notes.append(f"cut to {n} step(s): step {i} refused: {why}")
                    break
                poses[i] = pose
                reference = pose
        # the way to the first step starts from what was being commanded at the stamp (the command
        # stream continues; the measured pose lags the commands, and starting from it would pull the
        # arm back at every new chunk), or from the trusted measured pose when nothing was in flight
        # (never from the start pose the message claims)
        start = chunk.start_pose
        if current_pose is not None:
            start = np.concatenate([current_pose[:7], [poses[0, 7]]])
        if self._last_command is not None:
            prev = self._plan
            if prev is not None and prev.switch_s - TIME_EPS_S <= chunk.stamp_s < now_s - TIME_EPS_S:
                start = prev.pose(min(chunk.stamp_s, prev.end_s))
            else:
                start = self._last_command
            start = np.concatenate([start[:7], [poses[0, 7]]])
        kept = Chunk(chunk.stamp_s, chunk.times_s[:n], poses[:n], conf[:n], start)
        # 5. alignment
        if cfg.align == "arrival":
            kept = kept.shifted(now_s - chunk.stamp_s)
        late = kept.end_s <= now_s + TIME_EPS_S
        # 6. switch, blended from what was being executed
        source = None
        if self._last_command is not None and cfg.blend_s > 0:
            prev = self._plan
            if prev is not None and now_s <= prev.end_s:
                if isinstance(prev.source, _Plan):
                    prev.pose(now_s)  # drops a finished inner blend
                    if isinstance(prev.source, _Plan) and isinstance(prev.source.source, _Plan):
                        deepest = prev.source.source
                        prev.source.source = deepest.pose(now_s)  # bound the nesting: freeze the deepest
                source = prev
            else:
                source = self._last_command
        self._end_stall(now_s)
        self._plan = _Plan(kept, chunk.stamp_s, now_s, late, source, cfg.blend_s)
        self.last_switch_s = now_s
        st = self.stats
        st.chunks_accepted += 1
        st.max_late_s = max(st.max_late_s, late_s)
        self._latency_s = max(0.0, late_s)
        if late:
            st.late_chunks += 1
            notes.append(f"all steps past on arrival ({1000 * late_s:.0f} ms late): executing its last pose")
        reason = "; ".join(notes)
        if reason:
            logger.debug("chunk accepted: %s", reason)
        return PlanResult(True, reason, late_s, n)

    def _not_an_answer(self, chunk: Chunk, request_id: str) -> str:
        """Why ``chunk`` (saying it answers ``request_id``) does not answer the outstanding request ("" if it does)."""
        req = self._request
        who = f"chunk stamped {chunk.stamp_s:.3f} s with request id {request_id or 'none'!r}"
        if req is None:
            return f"{who}: no request is outstanding (not an answer)"
        if req.request_id is not None and request_id != req.request_id:
            return f"{who}: the outstanding request is {req.request_id!r} (not an answer)"
        if req.state is not None:
            if chunk.start_pose is None:
                return f"{who}: it carries no start state (not an answer)"
            if not _same_pose(chunk.start_pose, req.state):
                return (f"{who}: predicted from {np.round(chunk.start_pose[:3], 3).tolist()}, the request asked from "
                        f"{np.round(req.state[:3], 3).tolist()} (not an answer)")
        return ""

    # ------------------------------------------------------------------ ticks
    def _forget(self) -> None:
        self._plan = None
        self._last_command = None

    def tick(self, now_s: float, measured_pose: np.ndarray | None, pose_stamp_s: float | None = None) -> Command:
        """The command for time ``now_s``.

        Args:
            now_s: the current time (s).
            measured_pose: ``(8,)`` measured TCP pose (finite); may be None only without an envelope.
            pose_stamp_s: the measurement's stamp (s): a sample seen again (same stamp) is not a new
                sample for the trusted-pose confirmation; None = every tick is a new sample.

        Returns:
            A :class:`Command` (see :data:`EVENTS`).

        Raises:
            ValueError: ``measured_pose`` not ``(8,)`` and finite (the caller guarantees it).
        """
        cfg = self.config
        now_s = _as_time(now_s, "now_s")
        if measured_pose is not None or self.envelope is not None:
            measured_pose = _as_pose(measured_pose, "measured_pose").copy()
        self._see_now(now_s)
        # 1. e-stop: nothing is sent; after resume a fresh chunk starts from the measured pose
        if self.envelope is not None and self.envelope.paused:
            self._end_stall(now_s)
            self._forget()
            return Command(None, 0.0, "paused", "safety envelope paused (e-stop)")
        # 2. a measured pose that jumped is not trusted until confirmed: hold where commanded (send nothing
        #    new), keeping the chunk (a glitch costs a tick); confirmed, the world changed: drop the chunk
        if measured_pose is not None:
            verdict = self._judge_pose(measured_pose, ("stamp", float(pose_stamp_s)) if pose_stamp_s is not None
                                       else ("tick", now_s))
            if self._jump_confirmed:
                self._jump_confirmed = False
                self.stats.pose_jumps += 1
                self._end_stall(now_s)
                self._forget()
                self._commanded = None  # the old target belongs to the old world: hold at the new trusted pose
                self._request = None  # asked from the old world's state: ask again from the new one
                return Command(None, 0.0, "hold", "the measured pose jumped and was confirmed: chunk dropped, "
                               "holding at the new pose", hold_pose=self.hold_pose())
            if verdict:
                self.stats.suspect_poses += 1
                return Command(None, 0.0, "hold", verdict, hold_pose=None)
            measured_pose = self._trusted.copy()
        # 3. camera dropout
        if self.frames_stale(now_s):
            if not self._holding and (self._plan is not None or self._last_command is not None):
                self.stats.holds += 1
                logger.warning("holding: no camera frame for more than %.0f ms; chunk dropped",
                               1000 * cfg.max_frame_gap_s)
            elif self._plan is not None:  # a chunk taken while already holding for the cameras: not silently
                self.stats.chunks_dropped += 1
                logger.warning("chunk dropped: camera frames still stale (none within %.0f ms); holding",
                               1000 * cfg.max_frame_gap_s)
            self._holding = True
            self._end_stall(now_s)
            self._forget()
            last = self._last_frame_s
            gap = "never" if last is None else f"{1000 * (now_s - last):.0f} ms ago"
            return Command(None, 0.0, "hold", f"camera frames stale (last {gap}, max "
                           f"{1000 * cfg.max_frame_gap_s:.0f} ms)", hold_pose=self.hold_pose(measured_pose))
        self._holding = False
        plan = self._plan
        if plan is None:
            return Command(None, 0.0, "idle", "no chunk (waiting for the policy)")
        # 4. ran out before the next chunk arrived: hold at its end (its last pose stays the target,
        #    re-checked every tick, so a step-limited arm still gets there) and count the stall
        event, why = "command", ""
        if now_s + cfg.lead_s > plan.end_s + TIME_EPS_S and plan.commanded:
            if self._stall_mark is None:
                self.stats.stalls += 1
                self._stall_mark = plan.end_s - cfg.lead_s  # commands run lead_s ahead of now
                logger.debug("stall: chunk ended at %.3f s, no next chunk yet", plan.end_s)
            self.stats.stall_time_s += max(0.0, now_s - self._stall_mark)
            self._stall_mark = max(self._stall_mark, now_s)
            event, why = "stall", (f"chunk ran out {1000 * (now_s + cfg.lead_s - plan.end_s):.0f} ms ago; holding its last "
                                   "pose, waiting for the next")
        # 5. the (blended) pose due now (or the chunk's end), through the envelope (against the trusted pose),
        #    then at most one step from where the arm was last commanded
        t_pose = min(now_s + cfg.lead_s, plan.end_s)
        pose, conf = plan.pose(t_pose), plan.confidence(t_pose)
        reason = ""
        if self.envelope is not None:
            allowed, checked, reason = self.envelope.check(pose, measured_pose, conf, now_s)
            if not allowed:
                self.stats.refused += 1
                self._forget()
                return Command(None, 0.0, "refused", reason, hold_pose=self.hold_pose(measured_pose))
            pose = checked
            if self._commanded is not None:
                pose, note = self.envelope.limit_step(pose, self._commanded)
                if note:
                    reason = "; ".join(r for r in (reason, f"from the last command: {note}") if r)
        plan.commanded = True
        self._last_command = pose.copy()
        self._commanded = pose.copy()
        self._gripper_command = float(pose[7])
        self.stats.commands += 1
        return Command(pose, conf, event, why or reason)
