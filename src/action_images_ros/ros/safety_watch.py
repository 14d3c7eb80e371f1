"""SafetyWatch: an independent check of every command against the envelope and the arm's real pose.

A node of the fault harness (``ros/fault_harness.py``); it commands nothing. It checks, with its
own arithmetic (not the executor's ``SafetyEnvelope``), two streams:

* ``executor_node/command`` (what the executor sent): finite, a unit-norm quaternion, inside the
  workspace box, and within ``max_translation_m`` / ``max_rotation_deg`` of the pose the arm
  measured at the command's stamp (the executor's tick; the newest earlier pose if that one
  was not seen) or of the newest pose measured when it was sent (a lockstep tick finished after
  the world stepped on is computed from the newer pose); the first finite pose per stamp counts,
  so a bogus pose injected at the same stamp can neither hide nor fake a violation;
* ``sim/status`` of the simulated cell (what the arm executed): the command the cell held at
  tick ``k`` against the arm's pose at tick ``k - 1`` of the same episode. A command computed
  for the previous episode's arm and applied after a reset (the reset race) shows up here.

Holds are commands too: executor_node publishes every hold on ``~/command`` (so each is checked
above like any command) and on ``~/hold``; the watch counts them (:attr:`holds_checked`) and keeps
the recent ones (:attr:`sent`: ``(stamp_ns, pose (7,), is_hold)``) and the recent executed targets
(:attr:`executed`: ``(episode, step, command (8,))``) for the cases that judge where the arm was sent.

A small tolerance (``tolerance_m``, ``tolerance_deg``) absorbs rounding of the JSON status.
Every violation is kept in :attr:`violations` with its reason.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import OrderedDict, deque

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from scipy.spatial.transform import Rotation
from std_msgs.msg import String

from ..control.safety import SafetyConfig
from .graph import topic
from .pose_conversions import stamped_to_pose
from .qos import state_qos

__all__ = ["SafetyWatch", "Violation", "command_problem"]


@dataclasses.dataclass(frozen=True)
class Violation:
    """One unsafe command: where it was seen, its stamp (s) and why."""

    source: str
    stamp_s: float
    reason: str


def command_problem(command: np.ndarray, reference: np.ndarray | None, cfg: SafetyConfig,
                    tolerance_m: float = 1e-3, tolerance_deg: float = 0.5) -> str | None:
    """Why ``command`` ``(>= 7,)`` is unsafe for an arm at ``reference`` (None: not known), or None."""
    c = np.asarray(command, dtype=np.float64)
    if c.shape[0] < 7 or not np.all(np.isfinite(c)):
        return f"non-finite command {c.tolist()}"
    if abs(np.linalg.norm(c[3:7]) - 1.0) > 1e-3:
        return f"quaternion of norm {np.linalg.norm(c[3:7]):.4f}"
    lo = np.asarray(cfg.workspace_min) - tolerance_m
    hi = np.asarray(cfg.workspace_max) + tolerance_m
    if np.any(c[:3] < lo) or np.any(c[:3] > hi):
        return f"position {np.round(c[:3], 4).tolist()} outside the workspace box"
    if reference is None:
        return None
    r = np.asarray(reference, dtype=np.float64)
    dist = float(np.linalg.norm(c[:3] - r[:3]))
    if dist > cfg.max_translation_m + tolerance_m:
        return f"{dist:.3f} m from the measured pose (> max_translation_m {cfg.max_translation_m})"
    angle = float(np.degrees((Rotation.from_quat(c[3:7]) * Rotation.from_quat(r[3:7]).inv()).magnitude()))
    if angle > cfg.max_rotation_deg + tolerance_deg:
        return f"{angle:.1f} deg from the measured pose (> max_rotation_deg {cfg.max_rotation_deg})"
    return None


class SafetyWatch(Node):
    """See the module docstring.

    Args:
        config: the cell's safety envelope (the limits the commands must respect).
        node_kwargs: as for ``rclpy.node.Node`` (``context=``, ...).
    """

    def __init__(self, config: SafetyConfig, tolerance_m: float = 1e-3, tolerance_deg: float = 0.5,
                 **node_kwargs) -> None:
        super().__init__("safety_watch", **node_kwargs)
        self.config = config
        self._tol = (float(tolerance_m), float(tolerance_deg))
        self._lock = threading.Lock()
        self._poses: OrderedDict[int, np.ndarray] = OrderedDict()  # measured pose per stamp (newest 1000)
        self._previous: dict | None = None  # the previous sim/status
        self.violations: list[Violation] = []
        self.commands_checked = 0
        self.executed_checked = 0
        self.holds_checked = 0
        self._hold_keys: deque = deque(maxlen=200)  # (stamp_ns, rounded position) of recent holds
        self.sent: deque = deque(maxlen=2000)  # (stamp_ns, pose (7,), is_hold) of every command, newest last
        self.executed: deque = deque(maxlen=2000)  # (episode, step, command (8,)) the simulated arm held
        qos = state_qos(depth=50)
        self.create_subscription(PoseStamped, "/" + topic("current_pose"), self._on_pose, qos)
        self.create_subscription(PoseStamped, "/" + topic("executor_command"), self._on_command, qos)
        self.create_subscription(PoseStamped, "/" + topic("executor_command").rsplit("/", 1)[0] + "/hold",
                                 self._on_hold, qos)
        self.create_subscription(String, "/" + topic("sim_status"), self._on_status, qos)

    def _on_pose(self, msg: PoseStamped) -> None:
        pose, stamp_ns = stamped_to_pose(msg)
        if not np.all(np.isfinite(pose)) or abs(np.linalg.norm(pose[3:7]) - 1.0) > 1e-3:
            return
        with self._lock:
            if stamp_ns in self._poses:
                return
            self._poses[stamp_ns] = pose
            while len(self._poses) > 1000:
                self._poses.popitem(last=False)

    def _reference(self, stamp_ns: int) -> np.ndarray | None:
        if stamp_ns in self._poses:
            return self._poses[stamp_ns]
        earlier = [s for s in self._poses if s <= stamp_ns]
        return self._poses[max(earlier)] if earlier else None

    def _flag(self, source: str, stamp_s: float, reason: str) -> None:
        self.violations.append(Violation(source, stamp_s, reason))
        self.get_logger().error(f"UNSAFE {source} at {stamp_s:.3f} s: {reason}")

    def _on_command(self, msg: PoseStamped) -> None:
        pose, stamp_ns = stamped_to_pose(msg)
        with self._lock:
            problem = command_problem(pose, self._reference(stamp_ns), self.config, *self._tol)
            if problem and self._poses:
                newest = self._poses[next(reversed(self._poses))]
                if command_problem(pose, newest, self.config, *self._tol) is None:
                    problem = None
            self.commands_checked += 1
            key = (stamp_ns, tuple(np.round(pose[:3], 9)))
            self.sent.append((stamp_ns, pose[:7].copy(), key in self._hold_keys))
            if problem:
                self._flag("executor_node/command", stamp_ns * 1e-9, problem)

    def _on_hold(self, msg: PoseStamped) -> None:
        """A hold (also published on ``~/command``, checked there): counted, and marked in :attr:`sent`."""
        pose, stamp_ns = stamped_to_pose(msg)
        key = (stamp_ns, tuple(np.round(pose[:3], 9)))
        with self._lock:
            self.holds_checked += 1
            self._hold_keys.append(key)
            for i in range(len(self.sent) - 1, max(-1, len(self.sent) - 50), -1):  # already seen on ~/command
                if self.sent[i][0] == stamp_ns and tuple(np.round(self.sent[i][1][:3], 9)) == key[1]:
                    self.sent[i] = (self.sent[i][0], self.sent[i][1], True)
                    break

    def _on_status(self, msg: String) -> None:
        st = json.loads(msg.data)
        with self._lock:
            prev, self._previous = self._previous, st
            if "command" in st:
                self.executed.append((st.get("episode"), int(st.get("step", 0)),
                                      np.asarray(st["command"], dtype=np.float64)))
            if "command" not in st or prev is None or "tcp" not in prev:
                return
            if st.get("episode") != prev.get("episode") or int(st.get("step", 0)) == 0:
                return  # a reset tick: the cell put the arm somewhere new and holds it there
            if int(st.get("step", 0)) != int(prev.get("step", -1)) + 1:
                return  # a tick was missed: no reference
            problem = command_problem(st["command"], prev["tcp"], self.config, *self._tol)
            self.executed_checked += 1
            if problem:
                self._flag("sim arm (executed)", float(st.get("time_s", 0.0)), problem)

    @property
    def unsafe(self) -> int:
        with self._lock:
            return len(self.violations)
