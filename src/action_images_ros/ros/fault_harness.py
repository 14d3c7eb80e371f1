"""The fault-injection and soak harness: the robot's graph, one process per node, under attack.

:class:`FaultHarness` starts the graph (``graph.build_graph``: sim_node, policy_node,
executor_node, each its own process, in lockstep), a :class:`~.safety_watch.SafetyWatch` that
checks every command against the envelope and the arm's measured pose, a
:class:`~.monitor.GraphMonitor`, and an injector node that publishes on the graph's real topics
and calls its real services. :func:`run_cases` runs a catalogue of cases (``ros/fault_cases.py``):
each starts a fresh episode, waits until the loop moves, injects, and measures how long until
the loop moves again ("recovered": a new chunk predicted from frames after the injection was
executed). :func:`run_soak` runs episodes back to back through the episode interface for a
while, sampling each node's resident memory. Both return rows for :func:`format_table`.

Used by ``bench/bench_faults.py`` (the full catalogue and a 30-minute soak) and by a slow test
(a short version).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from trajectory_msgs.msg import MultiDOFJointTrajectory

from ..control.safety import load_safety_config
from .graph import GraphOptions, topic
from .pose_conversions import stamped_to_pose
from .qos import latched_qos, state_qos
from .safety_watch import SafetyWatch
from .session import EpisodeClient, _RunningGraph, graph_specs
from .share import resolve_share_path
from .stamps import stamp_to_ns
from .trajectory_conversion import request_id_of

__all__ = ["Case", "CaseResult", "FaultHarness", "run_cases", "run_soak", "format_table", "rss_mb"]

logger = logging.getLogger(__name__)


def rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MiB (``/proc/<pid>/status`` VmRSS), None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


@dataclasses.dataclass(frozen=True)
class Case:
    """One fault.

    Attributes:
        name: short id (the table's first column).
        description: what is done.
        inject: ``inject(harness)``; returns when the fault is over (e.g. after a 10 s silence).
        logged: ``(node, regex)`` pairs: the fault must leave one of these lines in that node's log
            (or in the executor's status for ``node == "executor_status"``); empty = nothing to log.
        recover_s: bound (wall s) from the end of the fault until the loop moves again.
        lockstep: the graph the case runs on: lockstep (the default) or real time (a fault that only exists
            with ticks on a timer, e.g. a silent pose stream; ``bench_faults.py`` starts a second graph).
        fresh_frames: recovered = a chunk predicted from frames *after* the fault was executed (the default);
            False: from the newest tick at the end of the fault on (a restarted executor answering the tick
            the simulator offers it again is the loop moving again).
    """

    name: str
    description: str
    inject: Callable[["FaultHarness"], Any]
    logged: tuple[tuple[str, str], ...] = ()
    recover_s: float = 20.0
    lockstep: bool = True
    fresh_frames: bool = True


@dataclasses.dataclass
class CaseResult:
    name: str
    alive: bool
    logged: bool | None
    unsafe: int
    recovered_s: float | None
    bound_s: float
    note: str = ""
    failed: bool = False  # the case's own check failed (e.g. a call unanswered)
    holds: int = 0  # holds the executor sent during the case (each checked like any command)
    log_line: str = ""  # the first line of the expected log found (what the case produces)

    @property
    def ok(self) -> bool:
        return not self.failed and self.alive and self.unsafe == 0 and self.logged is not False and self.recovered_s is not None \
            and self.recovered_s <= self.bound_s


class _Progress(Node):
    """Wall arrival times of the policy's answers and executor commands (is the loop moving?).

    A trajectory counts only when it answers a chunk request seen on ``chunk_request`` (its request id): an
    injected or forged one must not make a broken loop look as if it moved."""

    def __init__(self, **kw) -> None:
        super().__init__("fault_progress", **kw)
        self.chunks: list[tuple[float, int]] = []  # (wall arrival, frame stamp ns)
        self.request_ids: deque = deque(maxlen=200)  # ids of the executor's chunk requests
        self.last_answer: MultiDOFJointTrajectory | None = None  # the newest real answer (for replay cases)
        self.commands: list[tuple[float, int]] = []
        self.poses: list[tuple[int, np.ndarray]] = []
        qos = state_qos(depth=50)
        self.create_subscription(MultiDOFJointTrajectory, "/" + topic("trajectory"), self._on_traj, qos)
        self.create_subscription(PoseStamped, "/" + topic("executor_command"), self._on_command, qos)
        self.create_subscription(PoseStamped, "/" + topic("current_pose"), self._on_pose, qos)
        self.create_subscription(MultiDOFJointTrajectory, "/" + topic("chunk_request"), self._on_request,
                                 latched_qos(10))

    def _on_request(self, msg: MultiDOFJointTrajectory) -> None:
        rid = request_id_of(msg)
        if rid:
            self.request_ids.append(rid)

    def _on_traj(self, msg: MultiDOFJointTrajectory) -> None:
        stamp_ns = stamp_to_ns(msg.header.stamp)
        newest = self.poses[-1][0] if self.poses else 0
        if msg.points and request_id_of(msg) in self.request_ids and stamp_ns <= newest + 1_000_000_000:
            self.chunks.append((time.monotonic(), stamp_ns))
            del self.chunks[:-500]
            self.last_answer = msg

    def _on_command(self, msg: PoseStamped) -> None:
        self.commands.append((time.monotonic(), stamp_to_ns(msg.header.stamp)))
        del self.commands[:-2000]

    def _on_pose(self, msg: PoseStamped) -> None:
        pose, stamp_ns = stamped_to_pose(msg)
        self.poses.append((stamp_ns, pose))
        del self.poses[:-50]

    def moving_since(self, t_wall: float, after_ns: int) -> float | None:
        """Wall time of the first command of a chunk predicted from frames after ``after_ns`` that arrived after
        ``t_wall``: a command stamped at or after that chunk's stamp (None: not yet)."""
        chunk = next(((t, s) for t, s in self.chunks if t >= t_wall and s > after_ns), None)
        if chunk is None:
            return None
        return next((t for t, s in self.commands if t >= chunk[0] and s >= chunk[1]), None)


class FaultHarness:
    """The graph, one process per node, with the watch, a monitor, progress tracking and an injector node.

    Args:
        options: the graph (simulated cell, lockstep by default).
        log_dir: each node's log goes to ``<log_dir>/<node>.log`` (read back for "error logged").
        node_parameters: extra parameters per node (as in ``session.SessionConfig``).
    """

    def __init__(self, options: GraphOptions, log_dir: Path, node_parameters: dict | None = None) -> None:
        self.options = options
        self.log_dir = Path(log_dir)
        specs, views = graph_specs(options, node_parameters)
        self.views = views
        self.specs = {s.name: s for s in specs}
        self.run = _RunningGraph(specs, views, True, processes=True, log_dir=self.log_dir)
        try:
            ctx = self.run.context
            safety_file = dict(self.specs["executor_node"].overrides).get("safety_config", "config/safety.yaml")
            self.watch = self.run.add_node(SafetyWatch(load_safety_config(resolve_share_path(safety_file)),
                                                       context=ctx))
            self.progress = self.run.add_node(_Progress(context=ctx))
            self.injector = self.run.add_node(Node("fault_injector", context=ctx))
            self.episodes = EpisodeClient(self.run.monitor)
            self._pubs: dict[tuple[str, type], Any] = {}
        except BaseException:
            self.run.close()
            raise

    # ------------------------------------------------------------------ helpers for the cases
    @property
    def graph(self):
        return self.run.graph

    @property
    def monitor(self):
        return self.run.monitor

    def publisher(self, name: str, msg_type: type, qos=None):
        """A publisher of the injector node on graph topic ``name`` (absolute)."""
        key = (name, msg_type)
        if key not in self._pubs:
            pub = self._pubs[key] = self.injector.create_publisher(msg_type, name, qos or state_qos())
            # discovery: every reader on the graph matched from here, then a moment for their side of the match
            # (not visible from this process; a reader that has not matched yet drops the first message)
            deadline = time.monotonic() + 5.0
            while pub.get_subscription_count() < self.injector.count_subscribers(name) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
        return self._pubs[key]

    def now_ns(self) -> int:
        """The newest simulated tick seen (ns)."""
        return self.progress.poses[-1][0] if self.progress.poses else 0

    def log_size(self, node: str) -> int:
        path = self.log_dir / f"{node}.log"
        return path.stat().st_size if path.exists() else 0

    def log_since(self, node: str, offset: int) -> str:
        path = self.log_dir / f"{node}.log"
        if not path.exists():
            return ""
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def rss(self) -> dict[str, float | None]:
        """Resident memory per node process (MiB)."""
        return {name: rss_mb(p.pid) for name, p in self.graph.processes.items()}

    def wait_moving(self, since_wall: float, timeout_s: float, after_ns: int | None = None) -> float | None:
        """Seconds from ``since_wall`` until the loop moves again: a chunk predicted from frames after
        ``after_ns`` (default: the newest tick now) is executed (None: not within ``timeout_s``)."""
        after_ns = self.now_ns() if after_ns is None else after_ns
        deadline = since_wall + timeout_s
        while time.monotonic() < deadline:
            t = self.progress.moving_since(since_wall, after_ns)
            if t is not None:
                return t - since_wall
            if self.graph.exited():
                return None
            time.sleep(0.02)
        return None

    def close(self) -> dict[str, int]:
        self.run.close()
        return self.run.exit_codes

    def __enter__(self) -> "FaultHarness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _logged(h: FaultHarness, case: Case, offsets: dict[str, int], status_since: int) -> tuple[bool | None, str]:
    """Whether the case left one of its expected lines, and the first such line (``node: line``)."""
    if not case.logged:
        return None, ""
    for node, pattern in case.logged:
        if node == "executor_status":
            text = "\n".join(f"{e.get('event')}: {e.get('reason')}" for e in h.monitor.status_log[status_since:])
        else:
            text = h.log_since(node, offsets.get(node, 0))
        line = next((ln for ln in text.splitlines() if re.search(pattern, ln, re.IGNORECASE)), None)
        if line is not None:
            return True, f"{node}: {line.strip()}"
    return False, ""


def run_cases(h: FaultHarness, cases: list[Case], start_timeout_s: float = 120.0,
              bound_scale: float = 1.0) -> list[CaseResult]:
    """Each case on a fresh episode: start it, wait until the loop moves, inject, measure (see the module doc).

    ``bound_scale`` stretches every recovery bound: the bench holds the stated bounds; the test suite, run
    on whatever else the machine does, checks that the loop recovers at all (speed is the bench's job).
    """
    results = []
    for case in cases:
        case = dataclasses.replace(case, recover_s=case.recover_s * bound_scale)
        t_start = time.monotonic()
        try:
            started = h.episodes.call("start")
        except RuntimeError as exc:
            results.append(CaseResult(case.name, not h.graph.exited(), None, h.watch.unsafe, None, case.recover_s,
                                      f"episode/start failed: {exc}", True))
            continue
        if h.wait_moving(t_start, start_timeout_s, int(round(started["stamp_s"] * 1e9)) - 1) is None:
            results.append(CaseResult(case.name, not h.graph.exited(), None, h.watch.unsafe, None, case.recover_s,
                                      "the loop did not move before the injection"))
            logger.error("case %s: the loop did not move before the injection", case.name)
            continue
        offsets = {name: h.log_size(name) for name in h.graph.processes}
        status_since = len(h.monitor.status_log)
        unsafe0, holds0 = h.watch.unsafe, h.watch.holds_checked
        logger.info("case %s: %s", case.name, case.description)
        note, failed = "", False
        try:
            note = case.inject(h) or ""
        except Exception as exc:  # a failed check is a finding, not a crash of the harness
            note, failed = f"{exc}", True
            logger.exception("case %s", case.name)
        t_end = time.monotonic()
        recovered = h.wait_moving(t_end, case.recover_s + 10.0, None if case.fresh_frames else h.now_ns() - 1)
        time.sleep(0.5)  # let late log lines land
        logged, line = _logged(h, case, offsets, status_since)
        res = CaseResult(case.name, not h.graph.exited(), logged,
                         h.watch.unsafe - unsafe0, None if recovered is None else round(recovered, 2),
                         case.recover_s, str(note), failed, h.watch.holds_checked - holds0, line)
        logger.info("case %s: %s", case.name, res)
        results.append(res)
        if h.graph.exited():
            logger.error("node(s) died: %s; stopping", h.graph.exited())
            break
    return results


@dataclasses.dataclass
class SoakResult:
    minutes: float
    episodes: list[dict]
    rss: dict[str, list[tuple[float, float]]]  # node -> [(minutes, MiB)]
    unsafe: int
    commands_checked: int
    executed_checked: int
    alive: bool

    def rss_growth(self, after_min: float = 1.0) -> dict[str, float]:
        """Per node: (newest RSS - RSS at ``after_min``) / RSS at ``after_min``, in %."""
        out = {}
        for node, samples in self.rss.items():
            base = next((mb for t, mb in samples if t >= after_min), None)
            if base and samples:
                out[node] = 100.0 * (samples[-1][1] - base) / base
        return out


def run_soak(h: FaultHarness, minutes: float, max_steps: int, stall_s: float = 30.0,
             rss_every_s: float = 10.0, progress: Callable[[dict], None] | None = None) -> SoakResult:
    """Episodes back to back for ``minutes`` of wall time, through ``episode/stop`` and ``episode/start``.

    An episode ends on success, at ``max_steps`` simulated steps, or when no command was sent for
    ``stall_s`` wall seconds (counted as a failure; nobody unsticks anything by hand).
    """
    t0 = time.monotonic()
    rss: dict[str, list[tuple[float, float]]] = {name: [] for name in h.graph.processes}
    next_rss = t0
    episodes: list[dict] = []
    current = h.episodes.call("start")
    while True:
        ep, seed = current["episode"], current["seed"]
        ep_t0 = time.monotonic()
        why = ""
        while not why:
            now = time.monotonic()
            if now >= next_rss:
                for name, mb in h.rss().items():
                    if mb is not None:
                        rss[name].append(((now - t0) / 60.0, mb))
                next_rss = now + rss_every_s
            if h.graph.exited():
                why = "node died"
                break
            statuses = h.monitor.episode_statuses(ep)
            last = statuses[-1] if statuses else {}
            if any(st.get("success") for st in statuses):
                why = "success"
            elif int(last.get("step", 0)) >= max_steps:
                why = "step budget"
            else:
                last_cmd = h.progress.commands[-1][0] if h.progress.commands else ep_t0
                if now - max(last_cmd, ep_t0) > stall_s:
                    why = f"no command for {stall_s:g} s"
            time.sleep(0.05)
        statuses = h.monitor.episode_statuses(ep)
        success = any(st.get("success") for st in statuses)
        steps = next((int(st["step"]) for st in statuses if st.get("success")), int(statuses[-1]["step"]) if
                     statuses else 0)
        episodes.append({"episode": ep, "seed": seed, "success": success, "steps": steps, "end": why,
                         "wall_s": round(time.monotonic() - ep_t0, 1)})
        if progress is not None:
            progress(episodes[-1])
        if why == "node died":
            break
        h.episodes.call("stop")
        if time.monotonic() - t0 >= minutes * 60.0:
            break
        current = h.episodes.call("start")
    for name, mb in h.rss().items():
        if mb is not None:
            rss[name].append(((time.monotonic() - t0) / 60.0, mb))
    return SoakResult(round((time.monotonic() - t0) / 60.0, 2), episodes, rss, h.watch.unsafe,
                      h.watch.commands_checked, h.watch.executed_checked, not h.graph.exited())


def format_table(results: list[CaseResult], log_lines: bool = False) -> str:
    """The harness table (markdown); ``log_lines``: a last column with the log line each case produced."""
    head = "| case | nodes alive | error logged | unsafe commands (holds among the sent) | recovered within | bound | ok |"
    lines = [head + (" log line |" if log_lines else ""), "|---|---|---|---|---|---|---|" + ("---|" if log_lines else "")]
    for r in results:
        logged = "n/a" if r.logged is None else ("yes" if r.logged else "NO")
        rec = "never" if r.recovered_s is None else f"{r.recovered_s:.2f} s"
        line = f" {_cell(r.log_line[:220])} |" if log_lines else ""
        lines.append(f"| {r.name} | {'yes' if r.alive else 'NO'} | {logged} | {r.unsafe} ({r.holds} holds) | {rec} | "
                     f"{r.bound_s:g} s | {'ok' if r.ok else 'FAIL'}{' (' + _cell(r.note) + ')' if r.note else ''} |"
                     + line)
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")
