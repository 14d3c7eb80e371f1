"""The safety envelope every executor backend applies before a pose command reaches the arm (no ROS).

A command is a pose ``(8,) = [x, y, z, qx, qy, qz, qw, gripper]`` in the robot base
frame (metres, quaternion scalar-last, gripper openness 1 = open). For each command
:meth:`SafetyEnvelope.check` returns a :class:`Decision` ``(allowed, pose, reason)``;
a refused command has ``pose = None`` and must not be sent. Checks, in order:

1. **paused** (e-stop, :meth:`SafetyEnvelope.pause`): everything is refused until
   :meth:`SafetyEnvelope.resume`.
2. **finite values only**: NaN/inf anywhere in the command, the current pose or the
   confidence, or a zero quaternion, is refused. Never repaired: a NaN means the
   decoder or the model failed.
3. **decoder confidence** below ``min_confidence``: refused.
4. **workspace box** (base frame): a target outside is *refused*, not silently moved,
   because a target outside the cell means the prediction is wrong, and clamping it
   would execute a different motion than the one predicted (e.g. pressing into the
   table). ``clamp_to_workspace: true`` clamps instead (for teleoperation-like
   streams whose excursions are known to be small); the reason then says so.
5. **implausible jumps**: a target farther than ``refuse_translation_m`` /
   ``refuse_rotation_deg`` from the current pose is refused (a decoding glitch, not a
   motion to follow).

Checks 1-5 are also available alone as :meth:`SafetyEnvelope.check_target`: the executor
runs them on every decoded step before queueing it (each step against the previous one),
so no interpolated command ever heads towards a target that would itself be refused.
6. **step limit**: a target farther than ``max_translation_m`` / ``max_rotation_deg``
   from the current pose is *limited*: the command becomes the pose the same
   fraction of the way along the straight line (position) and the slerp (rotation),
   the largest fraction that respects both limits. Refusing instead would stall a
   receding-horizon loop whose predicted keyframes are routinely further apart than
   one command; limiting keeps each command bounded and moves along the predicted
   direction, and the next prediction re-plans from where the arm is. The limited
   pose lies between the current pose and an in-box target, so it is never farther
   from the box than the arm already is.
7. **gripper debounce**: the gripper is binary (``> 0.5`` = open). A change of state is
   commanded only after ``gripper_debounce_steps`` consecutive allowed commands agreed
   on it and (when ``gripper_debounce_s > 0``) it was first requested at least that many
   seconds ago; until then the previous state is kept. The output gripper is 0.0 or 1.0.

Holds are commands too: :meth:`SafetyEnvelope.check_hold` checks where a hold stops the arm (where it
was last commanded) against the last trusted measured pose: finite, clamped into the box,
step-limited (6); never refused for an e-stop, confidence or the gripper debounce.

Refusals are logged with their reason at WARNING when the kind of refusal changes and
at DEBUG while it repeats (a stream of refusals does not flood the log).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml
from scipy.spatial.transform import Rotation, Slerp

__all__ = ["SafetyConfig", "SafetyEnvelope", "Decision", "load_safety_config"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SafetyConfig:
    """Limits applied to every pose command (see the module docstring for the semantics).

    Attributes:
        workspace_min, workspace_max: TCP box (m, robot base frame).
        clamp_to_workspace: clamp targets into the box instead of refusing them.
        workspace_clamp_margin_m: targets at most this far outside the box are clamped into it
            even without ``clamp_to_workspace`` (a policy reaching for an object on the table
            aims a few mm below the box floor; it should stop at the floor, not freeze); farther
            ones are refused.
        max_translation_m: largest position change per command (m); larger steps are limited.
        max_rotation_deg: largest rotation change per command (deg); larger steps are limited.
        refuse_translation_m: targets farther than this (m) from the current pose are refused.
        refuse_rotation_deg: targets rotated more than this (deg) from the current pose are refused.
        min_confidence: commands decoded with less confidence (in [0, 1]) are refused.
        gripper_debounce_steps: consecutive agreeing commands needed to change the gripper (>= 1).
        gripper_debounce_s: seconds a new gripper state must have been requested before it is
            commanded (0 = steps only; > 0 needs ``now_s`` in ``check``).
        gripper_threshold: openness above which the gripper counts as open.
        max_pose_jump_m: a measured pose farther than this from the last *trusted* one is not trusted
            (a state glitch, or the world changed under the executor: a reset or a new trial it has not
            been told of yet): the arm holds where it was commanded until ``pose_confirm_samples`` later
            samples confirm the new pose (``ChunkExecutor.tick``). Commands are step-limited to
            ``max_translation_m`` from the trusted pose, so the arm itself moves about that much per
            tick: keep this a little above ``max_translation_m`` (a 0.09 m glitch must be caught).
        pose_confirm_samples: consecutive later samples, each within ``max_pose_jump_m`` of the one
            before, that make a jumped pose trusted (the chunk is then dropped: the world changed).
    """

    workspace_min: tuple[float, float, float] = (0.25, -0.35, 0.005)
    workspace_max: tuple[float, float, float] = (0.85, 0.35, 0.60)
    clamp_to_workspace: bool = False
    workspace_clamp_margin_m: float = 0.0
    max_translation_m: float = 0.05
    max_rotation_deg: float = 15.0
    refuse_translation_m: float = 0.30
    refuse_rotation_deg: float = 90.0
    min_confidence: float = 0.2
    gripper_debounce_steps: int = 2
    gripper_debounce_s: float = 0.0
    gripper_threshold: float = 0.5
    max_pose_jump_m: float = 0.07
    pose_confirm_samples: int = 2

    def __post_init__(self) -> None:
        lo = np.asarray(self.workspace_min, dtype=np.float64)
        hi = np.asarray(self.workspace_max, dtype=np.float64)
        if lo.shape != (3,) or hi.shape != (3,) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError(f"workspace_min/max must be 3 finite numbers each, got {self.workspace_min} and "
                             f"{self.workspace_max}")
        if np.any(lo >= hi):
            raise ValueError(f"workspace_min must be below workspace_max in x, y, z; got {lo.tolist()} and "
                             f"{hi.tolist()}")
        self.workspace_min = tuple(float(v) for v in lo)
        self.workspace_max = tuple(float(v) for v in hi)
        for name in ("max_translation_m", "max_rotation_deg", "refuse_translation_m", "refuse_rotation_deg"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.refuse_translation_m < self.max_translation_m:
            raise ValueError(f"refuse_translation_m ({self.refuse_translation_m}) must be >= max_translation_m "
                             f"({self.max_translation_m})")
        if self.refuse_rotation_deg < self.max_rotation_deg:
            raise ValueError(f"refuse_rotation_deg ({self.refuse_rotation_deg}) must be >= max_rotation_deg "
                             f"({self.max_rotation_deg})")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if int(self.gripper_debounce_steps) != self.gripper_debounce_steps or self.gripper_debounce_steps < 1:
            raise ValueError(f"gripper_debounce_steps must be an integer >= 1, got {self.gripper_debounce_steps}")
        self.gripper_debounce_steps = int(self.gripper_debounce_steps)
        if not self.gripper_debounce_s >= 0:
            raise ValueError(f"gripper_debounce_s must be >= 0, got {self.gripper_debounce_s}")
        if not float(self.max_pose_jump_m) > 0:
            raise ValueError(f"max_pose_jump_m must be > 0, got {self.max_pose_jump_m}")
        if int(self.pose_confirm_samples) != self.pose_confirm_samples or self.pose_confirm_samples < 1:
            raise ValueError(f"pose_confirm_samples must be an integer >= 1, got {self.pose_confirm_samples}")
        self.pose_confirm_samples = int(self.pose_confirm_samples)
        if not 0.0 < self.gripper_threshold < 1.0:
            raise ValueError(f"gripper_threshold must be in (0, 1), got {self.gripper_threshold}")
        if not 0.0 <= float(self.workspace_clamp_margin_m) <= 0.05:
            raise ValueError(f"workspace_clamp_margin_m must be in [0, 0.05] m, got {self.workspace_clamp_margin_m}")
        if not isinstance(self.clamp_to_workspace, bool):
            raise ValueError(f"clamp_to_workspace must be true or false, got {self.clamp_to_workspace!r}")

    @classmethod
    def from_dict(cls, data: dict) -> "SafetyConfig":
        """Build from a mapping; unknown keys raise ValueError naming the valid ones."""
        if not isinstance(data, dict):
            raise ValueError(f"safety config must be a mapping, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown safety config keys {sorted(unknown)}; valid keys: {sorted(fields)}")
        return cls(**data)


def load_safety_config(path: str | Path) -> SafetyConfig:
    """Read ``config/safety.yaml`` (the mapping under its top-level ``safety`` key)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"safety config not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not isinstance(data.get("safety"), dict):
        raise ValueError(f"{path}: expected a top-level 'safety:' mapping")
    try:
        return SafetyConfig.from_dict(data["safety"])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


class Decision(NamedTuple):
    """Outcome of :meth:`SafetyEnvelope.check` (unpacks as ``allowed, pose, reason``).

    Attributes:
        allowed: whether ``pose`` may be sent.
        pose: ``(8,)`` command to send (possibly limited / clamped, unit quaternion, gripper 0 or 1),
            or None when refused.
        reason: empty when sent unchanged; otherwise why it was refused or how it was changed.
    """

    allowed: bool
    pose: np.ndarray | None
    reason: str


class SafetyEnvelope:
    """Stateful checker of pose commands (state: paused flag and the gripper debounce).

    Args:
        config: the limits.
    """

    def __init__(self, config: SafetyConfig | None = None) -> None:
        self.config = config or SafetyConfig()
        self._lo = np.asarray(self.config.workspace_min)
        self._hi = np.asarray(self.config.workspace_max)
        self._paused_reason: str | None = None
        self._last_refusal = ""
        self.reset_gripper()

    # ------------------------------------------------------------------ e-stop
    @property
    def paused(self) -> bool:
        """Whether every command is being refused (e-stop)."""
        return self._paused_reason is not None

    def pause(self, reason: str = "paused") -> None:
        """Refuse every command until :meth:`resume` (an e-stop)."""
        if self._paused_reason is None:
            logger.warning("safety envelope paused: %s", reason)
        self._paused_reason = reason or "paused"

    def resume(self) -> None:
        """Accept commands again; the gripper debounce restarts from the arm's measured state."""
        if self._paused_reason is not None:
            logger.warning("safety envelope resumed")
        self._paused_reason = None
        self._last_refusal = ""
        self.reset_gripper()

    def reset_gripper(self) -> None:
        """Forget the debounced gripper state; the next check starts from the measured one."""
        self._grip_state: bool | None = None
        self._grip_pending: bool | None = None
        self._grip_count = 0
        self._grip_since: float | None = None

    # ------------------------------------------------------------------ checks
    def check_target(self, target_pose: np.ndarray, reference_pose: np.ndarray,
                     confidence: float = 1.0) -> Decision:
        """The stateless checks 1-5 of a target: e-stop, finite values, confidence, workspace, jump.

        Used on every decoded step before it is queued (``reference_pose`` = the previous step,
        or the pose the motion starts from), so that no interpolated command heads towards a
        target that would itself be refused.

        Args:
            target_pose: ``(8,)`` target (base frame; any quaternion norm > 0).
            reference_pose: ``(8,)`` pose the jump check measures from.
            confidence: decoder confidence in [0, 1].

        Returns:
            A :class:`Decision` whose pose is the target with a unit quaternion (qw >= 0),
            clamped into the box when ``clamp_to_workspace`` allows it; the gripper is untouched.
        """
        cfg = self.config
        cmd = np.asarray(target_pose, dtype=np.float64).reshape(-1)
        cur = np.asarray(reference_pose, dtype=np.float64).reshape(-1)
        if cmd.shape != (8,) or cur.shape != (8,):
            raise ValueError(f"poses must have shape (8,) = [x y z qx qy qz qw gripper]; "
                             f"got {np.shape(target_pose)} and {np.shape(reference_pose)}")
        # 1. e-stop
        if self._paused_reason is not None:
            return self._refuse("paused", f"paused (e-stop): {self._paused_reason}")
        # 2. finite values
        if not np.all(np.isfinite(cmd)):
            return self._refuse("finite", f"command has NaN/inf values: {np.round(cmd, 4).tolist()}")
        if not np.all(np.isfinite(cur)):
            return self._refuse("finite", f"current pose has NaN/inf values: {np.round(cur, 4).tolist()}")
        confidence = float(confidence)
        if not np.isfinite(confidence):
            return self._refuse("finite", f"confidence is not finite: {confidence}")
        qn, qn_cur = np.linalg.norm(cmd[3:7]), np.linalg.norm(cur[3:7])
        if qn < 1e-6 or qn_cur < 1e-6:
            return self._refuse("finite", "zero quaternion in the command or the current pose")
        # 3. confidence
        if confidence < cfg.min_confidence:
            return self._refuse("confidence",
                                f"decoder confidence {confidence:.3f} < min_confidence {cfg.min_confidence}")
        notes = []
        # 4. workspace
        pos = cmd[:3]
        if np.any(pos < self._lo) or np.any(pos > self._hi):
            where = (f"target {np.round(pos, 3).tolist()} outside the workspace box "
                     f"{list(cfg.workspace_min)}..{list(cfg.workspace_max)}")
            outside = float(np.max(np.maximum(self._lo - pos, pos - self._hi)))
            if not cfg.clamp_to_workspace and outside > cfg.workspace_clamp_margin_m:
                return self._refuse("workspace", where)
            pos = np.clip(pos, self._lo, self._hi)
            notes.append(f"{where}; clamped to {np.round(pos, 3).tolist()}")
        # 5. implausible jumps
        dist = float(np.linalg.norm(pos - cur[:3]))
        angle = float(np.degrees((Rotation.from_quat(cur[3:7] / qn_cur).inv()
                                  * Rotation.from_quat(cmd[3:7] / qn)).magnitude()))
        if dist > cfg.refuse_translation_m:
            return self._refuse("jump", f"target is {dist:.3f} m from the current pose (> refuse_translation_m "
                                f"{cfg.refuse_translation_m})")
        if angle > cfg.refuse_rotation_deg:
            return self._refuse("jump", f"target is rotated {angle:.1f} deg from the current pose "
                                f"(> refuse_rotation_deg {cfg.refuse_rotation_deg})")
        quat = cmd[3:7] / qn
        if quat[3] < 0:
            quat = -quat
        return Decision(True, np.concatenate([pos, quat, cmd[7:]]), "; ".join(notes))

    def check(self, command_pose: np.ndarray, current_pose: np.ndarray, confidence: float = 1.0,
              now_s: float | None = None) -> Decision:
        """Decide whether and how ``command_pose`` may be sent (all checks 1-7).

        Args:
            command_pose: ``(8,)`` target ``[x y z qx qy qz qw gripper]`` (base frame; any quaternion norm > 0).
            current_pose: ``(8,)`` measured TCP pose of the arm (base frame; gripper = measured openness).
            confidence: decoder confidence of this command in [0, 1].
            now_s: monotonic time in seconds; required when ``gripper_debounce_s > 0``.

        Returns:
            A :class:`Decision`; refusals are also logged with their reason.

        Raises:
            ValueError: wrong array shapes, or ``now_s`` missing while ``gripper_debounce_s > 0``
                (programming errors, not unsafe commands).
        """
        cfg = self.config
        if cfg.gripper_debounce_s > 0 and now_s is None:
            raise ValueError("now_s is required when gripper_debounce_s > 0")
        first = self.check_target(command_pose, current_pose, confidence)
        if not first.allowed:
            return first
        cmd, cur = first.pose, np.asarray(current_pose, dtype=np.float64).reshape(-1)
        notes = [first.reason] if first.reason else []
        # 6. step limit
        limited, note = self.limit_step(cmd, cur)
        pos, quat = limited[:3], limited[3:7]
        if note:
            notes.append(note)
        # 7. gripper debounce
        grip, grip_note = self._debounce(cmd[7] > cfg.gripper_threshold, cur[7] > cfg.gripper_threshold, now_s)
        if grip_note:
            notes.append(grip_note)
        self._last_refusal = ""
        out = np.concatenate([pos, quat, [1.0 if grip else 0.0]])
        reason = "; ".join(notes)
        if reason:
            logger.debug("command changed: %s", reason)
        return Decision(True, out, reason)

    def limit_step(self, target_pose: np.ndarray, reference_pose: np.ndarray) -> tuple[np.ndarray, str]:
        """Check 6 alone: ``target_pose`` moved at most ``max_translation_m`` / ``max_rotation_deg`` from
        ``reference_pose`` (the same fraction of the way along the line and the slerp).

        Args:
            target_pose, reference_pose: ``(8,)`` finite poses with non-zero quaternions (base frame).

        Returns:
            ``(pose (8,), note)``: unit quaternion with ``qw >= 0``, the target's gripper; the note says
            how the step was limited ("" when it was not).
        """
        cfg = self.config
        cmd = np.asarray(target_pose, dtype=np.float64).reshape(-1)
        cur = np.asarray(reference_pose, dtype=np.float64).reshape(-1)
        rot_cur = Rotation.from_quat(cur[3:7] / np.linalg.norm(cur[3:7]))
        rot_cmd = Rotation.from_quat(cmd[3:7] / np.linalg.norm(cmd[3:7]))
        pos = cmd[:3]
        dist = float(np.linalg.norm(pos - cur[:3]))
        angle = float(np.degrees((rot_cur.inv() * rot_cmd).magnitude()))
        frac = min(1.0, cfg.max_translation_m / dist if dist > 0 else 1.0,
                   cfg.max_rotation_deg / angle if angle > 0 else 1.0)
        note = ""
        if frac < 1.0:
            pos = cur[:3] + frac * (pos - cur[:3])
            rot_cmd = Slerp([0.0, 1.0], Rotation.concatenate([rot_cur, rot_cmd]))([frac])[0]
            note = (f"step of {dist:.3f} m / {angle:.1f} deg limited to {frac * dist:.3f} m / "
                    f"{frac * angle:.1f} deg")
        quat = rot_cmd.as_quat()
        if quat[3] < 0:
            quat = -quat
        return np.concatenate([pos, quat, cmd[7:8]]), note

    def check_hold(self, hold_pose: np.ndarray, reference_pose: np.ndarray) -> Decision:
        """Where a hold may stop the arm: ``hold_pose`` (where it was last commanded) checked against
        ``reference_pose`` (the last trusted measured pose).

        A hold is a command too: finite values, non-zero quaternions, inside the workspace box (clamped
        into it) and step-limited (check 6) from the
        reference. Never refused for being paused (a hold is what an e-stop sends), for confidence or
        by the gripper debounce (the gripper stays as ``hold_pose`` has it).

        Returns:
            A :class:`Decision`; refused only when a pose is non-finite or has a zero quaternion.
        """
        cmd = np.asarray(hold_pose, dtype=np.float64).reshape(-1)
        cur = np.asarray(reference_pose, dtype=np.float64).reshape(-1)
        if cmd.shape != (8,) or cur.shape != (8,):
            raise ValueError(f"poses must have shape (8,) = [x y z qx qy qz qw gripper]; "
                             f"got {np.shape(hold_pose)} and {np.shape(reference_pose)}")
        if not (np.all(np.isfinite(cmd)) and np.all(np.isfinite(cur))) \
                or np.linalg.norm(cmd[3:7]) < 1e-6 or np.linalg.norm(cur[3:7]) < 1e-6:
            return Decision(False, None, "hold pose or reference not finite or with a zero quaternion")
        notes = []
        clipped = np.clip(cmd[:3], self._lo, self._hi)
        if np.any(clipped != cmd[:3]):
            notes.append(f"hold {np.round(cmd[:3], 3).tolist()} clamped into the workspace box")
            cmd = np.concatenate([clipped, cmd[3:]])
        out, note = self.limit_step(cmd, cur)
        if note:
            notes.append(note)
        return Decision(True, out, "; ".join(notes))

    def __call__(self, command_pose: np.ndarray, current_pose: np.ndarray, confidence: float = 1.0,
                 now_s: float | None = None) -> Decision:
        """Same as :meth:`check` (so an envelope can be passed where a ``check`` callable is expected)."""
        return self.check(command_pose, current_pose, confidence, now_s)

    # ------------------------------------------------------------------ internals
    def _debounce(self, want_open: bool, measured_open: bool, now_s: float | None) -> tuple[bool, str]:
        cfg = self.config
        if self._grip_state is None:
            self._grip_state = measured_open
        if want_open == self._grip_state:
            self._grip_pending, self._grip_count, self._grip_since = None, 0, None
            return self._grip_state, ""
        if want_open != self._grip_pending:
            self._grip_pending, self._grip_count, self._grip_since = want_open, 0, now_s
        self._grip_count += 1
        waited = 0.0 if now_s is None or self._grip_since is None else now_s - self._grip_since
        if self._grip_count >= cfg.gripper_debounce_steps and waited >= cfg.gripper_debounce_s:
            self._grip_state = want_open
            self._grip_pending, self._grip_count, self._grip_since = None, 0, None
            return self._grip_state, ""
        target = "open" if want_open else "close"
        return self._grip_state, (f"gripper {target} held back by debounce ({self._grip_count}/"
                                  f"{cfg.gripper_debounce_steps} commands, {waited:.2f}/{cfg.gripper_debounce_s} s)")

    def _refuse(self, kind: str, reason: str) -> Decision:
        if kind != self._last_refusal:
            logger.warning("command refused: %s", reason)
        else:
            logger.debug("command refused: %s", reason)
        self._last_refusal = kind
        return Decision(False, None, reason)
