"""Why a closed-loop episode failed, read from its trace.

Every episode of ``eval`` keeps an :class:`EpisodeTrace`: per control tick the TCP position, the
task's object positions by role (``object``, ``target``, ``distractor<i>``), whether the gripper
touches the object and the gripper command; per prediction its lowest decoder confidence. A failed
episode gets one mode, the first that applies:

``refused_by_safety``   the envelope refused a command of the episode;
``low_confidence``      a quarter or more of the predictions fell below ``min_confidence``;
``wrong_target``        reach: the TCP went to a distractor (came within the success radius of
                        one, or approached one by 5 cm and ended nearer it than the target);
``missed_grasp``        the gripper closed but never held the object off the table;
``dropped_object``      the object was held off the table and left the gripper while it was closed;
``misplaced``           place/stack: the object was released and did not end where it should;
``timeout``             none of these: the step budget ran out (e.g. hovering, never closing, or
                        still carrying at the end).
"""

from __future__ import annotations

import dataclasses

import numpy as np

FAILURE_MODES = ("refused_by_safety", "low_confidence", "wrong_target", "missed_grasp", "dropped_object",
                 "misplaced", "timeout")
#: Object height above its start (m) that counts as "off the table".
LIFTED_M = 0.015
#: Share of low-confidence predictions that makes an episode a low-confidence failure.
LOW_CONFIDENCE_SHARE = 0.25
#: Gripper command below which the gripper counts as closed.
CLOSED_BELOW = 0.5


@dataclasses.dataclass
class EpisodeTrace:
    """Per tick state and per prediction confidence of one episode (see the module docstring)."""

    tcp: list = dataclasses.field(default_factory=list)
    objects: list = dataclasses.field(default_factory=list)
    held: list = dataclasses.field(default_factory=list)
    gripper_command: list = dataclasses.field(default_factory=list)
    min_confidence: list = dataclasses.field(default_factory=list)

    def add_tick(self, task_state: dict, gripper_command: float) -> None:
        self.tcp.append(np.asarray(task_state["tcp"], dtype=np.float64))
        self.objects.append({k: np.asarray(v, dtype=np.float64) for k, v in task_state["objects"].items()})
        self.held.append(bool(task_state["held"]))
        self.gripper_command.append(float(gripper_command))

    def add_prediction(self, confidence) -> None:
        c = np.asarray(confidence, dtype=np.float64)
        # NaN counts as no confidence, as in the executor
        self.min_confidence.append(float(np.nan_to_num(c, nan=0.0).min()) if c.size else 0.0)

    def facts(self) -> dict:
        """A few numbers behind the mode, for the episode record: did the gripper close, how high and
        how long was the object held, how near did the TCP come to the object and to the target."""
        closed = bool(np.any(np.asarray(self.gripper_command) < CLOSED_BELOW))
        out: dict = {"ticks": len(self.tcp), "gripper_closed": closed}
        if not self.tcp:
            return out
        tcp = np.stack(self.tcp)
        obj, target = self.track("object"), self.track("target")
        if obj is not None:
            out["object_lift_max_m"] = round(float(np.max(obj[:, 2] - obj[0, 2])), 4)
            out["held_ticks"] = int(np.sum(self.held))
            out["tcp_to_object_min_m"] = round(float(np.min(np.linalg.norm(tcp - obj, axis=1))), 4)
            if target is not None:
                out["object_to_target_final_m"] = round(float(np.linalg.norm(obj[-1, :2] - target[-1, :2])), 4)
        elif target is not None:
            out["tcp_to_target_min_m"] = round(float(np.min(np.linalg.norm(tcp - target, axis=1))), 4)
        return out

    def track(self, role: str) -> np.ndarray | None:
        """``(N, 3)`` positions of the object with ``role`` over the ticks (None if the task has none)."""
        if not self.objects or role not in self.objects[0]:
            return None
        return np.stack([o[role] for o in self.objects])


def classify_failure(trace: EpisodeTrace, stats: dict, success: bool, min_confidence: float,
                     reach_radius: float = 0.03) -> str | None:
    """The failure mode of an episode (None when it succeeded); see the module docstring."""
    if success:
        return None
    if int(stats.get("refused", 0)) > 0:
        return "refused_by_safety"
    conf = np.asarray(trace.min_confidence, dtype=np.float64)
    if conf.size and np.mean(conf < min_confidence) >= LOW_CONFIDENCE_SHARE:
        return "low_confidence"
    if not trace.tcp:
        return "timeout"
    tcp = np.stack(trace.tcp)
    target = trace.track("target")
    obj = trace.track("object")
    if obj is None:  # reaching
        distractors = [trace.track(k) for k in trace.objects[0] if k.startswith("distractor")]
        if target is not None and distractors:
            d_target = np.linalg.norm(tcp - target, axis=1)
            d_other = np.min([np.linalg.norm(tcp - d, axis=1) for d in distractors], axis=0)
            # it went to a distractor: touched one, or ended nearer one than the target, having
            # approached it (an arm that never left its start may also be nearer a distractor)
            approached = d_other[-1] < d_other[0] - 0.05
            if np.any(d_other < reach_radius) or (d_other[-1] < d_target[-1] and approached):
                return "wrong_target"
        return "timeout"
    closed = np.asarray(trace.gripper_command) < CLOSED_BELOW
    held = np.asarray(trace.held, dtype=bool)
    lifted = obj[:, 2] - obj[0, 2] > LIFTED_M
    carried = held & lifted
    if not carried.any():
        return "missed_grasp" if closed.any() else "timeout"
    if held[-1]:
        return "timeout"  # still carrying when the budget ran out
    last = int(np.nonzero(held)[0][-1])  # the last tick the gripper touched the object
    if closed[last] and (last + 1 >= len(closed) or closed[last + 1]):
        return "dropped_object"  # it slipped out of a closed gripper
    # Released on purpose: for pick any release is a drop, for place/stack it did not end where it should.
    return "dropped_object" if target is None else "misplaced"


def count_modes(modes: list[str | None]) -> dict[str, int]:
    """Counts per failure mode (all modes listed, zeros included) of a run's episodes."""
    return {m: sum(1 for x in modes if x == m) for m in FAILURE_MODES}
