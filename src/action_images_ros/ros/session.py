"""Run the whole node graph for a while and report the outcome (``action-images run``, demos, tests).

The graph comes from ``graph.build_graph`` (the same nodes, parameter files and remappings as
the launch files), started in this process (:class:`~.runner.InProcessGraph`, each node
spun in its own thread) or one process per node (:class:`~.runner.SubprocessGraph`). A
:class:`~.monitor.GraphMonitor` watches the outcome and can record the overlays.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter

from .graph import GraphOptions, NodeSpec, build_graph, rig_views, topic
from .monitor import GraphMonitor, OverlayRecorder
from .runner import BackgroundSpinner, InProcessGraph, SubprocessGraph

__all__ = ["SessionConfig", "run_session", "graph_specs", "run_graph_episodes", "EpisodeClient", "wait_for_status"]

logger = logging.getLogger(__name__)



@dataclasses.dataclass
class SessionConfig:
    """How long and how to run the graph.

    Attributes:
        duration_s: stop after this many seconds (> 0): of simulated time in the simulated cell
            (a loaded machine then changes only the wall time), of wall time on the real cell.
        wall_timeout_s: stop after this many seconds of wall time whatever happens (> 0).
        processes: one process per node (True) or all nodes in this process (False).
        stop_on_success: stop as soon as the simulated task reports success.
        record: write the per-view overlays of every prediction to this video (``.mp4`` / ``.avi``).
        record_fps: frames per second of that video.
        log_dir: with ``processes``, each node's output goes to ``<log_dir>/<node>.log``.
        node_parameters: extra parameters per node name, applied after the graph's own,
            e.g. ``{"policy_node": {"torch_threads": 1}}``.
    """

    duration_s: float = 60.0
    wall_timeout_s: float = 900.0
    processes: bool = False
    stop_on_success: bool = True
    record: Path | None = None
    record_fps: float = 2.0
    log_dir: Path | None = None
    node_parameters: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if not self.wall_timeout_s > 0:
            raise ValueError(f"wall_timeout_s must be > 0, got {self.wall_timeout_s}")
        if not self.record_fps > 0:
            raise ValueError(f"record_fps must be > 0, got {self.record_fps}")
        if self.record is not None and Path(self.record).suffix.lower() not in (".mp4", ".avi"):
            raise ValueError(f"record must be a .mp4 or .avi file, got {self.record}")


def graph_specs(options: GraphOptions, node_parameters: dict[str, dict[str, Any]] | None = None
                ) -> tuple[list[NodeSpec], list[str]]:
    """``(node specs, view names)`` for ``options``: views from its rig, extra parameters appended."""
    views = list(rig_views(options.rig))
    specs = build_graph(options, tuple(views))
    extra = dict(node_parameters or {})
    unknown = set(extra) - {s.name for s in specs}
    if unknown:
        raise ValueError(f"node_parameters for unknown nodes {sorted(unknown)}; nodes: {[s.name for s in specs]}")
    specs = [dataclasses.replace(s, overrides=s.overrides + tuple(extra.get(s.name, {}).items())) for s in specs]
    return specs, views


class _RunningGraph:
    """The graph's nodes started (in process or one process per node) with a GraphMonitor spinning beside
    them, on a Context of their own; ``with`` stops everything in order (the monitor's spinner, the
    nodes, the monitor, the context) and keeps the nodes' exit codes in :attr:`exit_codes`."""

    def __init__(self, specs, views, use_sim: bool, processes: bool, log_dir: Path | None = None,
                 recorder: OverlayRecorder | None = None) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.monitor = self.graph = self._spinner = None
        self._extra_nodes: list = []
        self.exit_codes: dict[str, int] = {}
        try:
            self.monitor = GraphMonitor(views, recorder, context=self.context,  # on the graph's clock (sim time)
                                        parameter_overrides=[Parameter("use_sim_time", value=use_sim)])
            self._spinner = BackgroundSpinner(self.context)
            self._spinner.add(self.monitor)
            self.graph = SubprocessGraph(specs, log_dir=log_dir) if processes else \
                InProcessGraph(specs, context=self.context)
        except BaseException:
            self.close()
            raise

    def add_node(self, node):
        """Spin one more node of this context beside the monitor (destroyed by :meth:`close`); returns it."""
        self._extra_nodes.append(node)
        self._spinner.add(node)
        return node

    def close(self) -> None:
        if self._spinner is not None:
            self._spinner.close()
        for node in self._extra_nodes:
            node.destroy_node()
        self._extra_nodes = []
        if self.graph is not None:
            self.exit_codes = self.graph.shutdown() or {}
        if self.monitor is not None:
            self.monitor.destroy_node()
        self.context.try_shutdown()

    def __enter__(self) -> "_RunningGraph":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_session(options: GraphOptions, config: SessionConfig | None = None) -> dict:
    """Start the graph, run it for ``config.duration_s`` (or until success), stop it; return the summary.

    Returns:
        ``GraphMonitor.summary()`` plus ``wall_s`` and, with ``processes``, ``exit_codes`` per node.
    """
    config = config or SessionConfig()
    specs, views = graph_specs(options, config.node_parameters)
    recorder = OverlayRecorder(config.record, views, config.record_fps) if config.record else None
    run = None
    summary: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    t0 = time.monotonic()

    def done(monitor) -> bool:
        if config.stop_on_success and monitor.succeeded:
            return True
        if time.monotonic() - t0 > config.wall_timeout_s:
            logger.error("stopped after wall_timeout_s %.0f s", config.wall_timeout_s)
            return True
        if options.use_sim:
            st = monitor.sim_status or {}
            return st.get("episode_time_s", 0.0) >= config.duration_s
        return time.monotonic() - t0 >= config.duration_s

    try:
        with _RunningGraph(specs, views, options.use_sim, config.processes, config.log_dir, recorder) as run:
            try:
                while not done(run.monitor):
                    time.sleep(0.02)
                    exited = run.graph.exited()
                    if exited:
                        logger.error("node(s) ended early: %s", exited)
                        extra["ended_early"] = exited
                        break
            finally:
                summary = run.monitor.summary()  # before the nodes stop
    except KeyboardInterrupt:
        logger.info("interrupted")
    finally:
        if recorder is not None:
            recorder.close()
    if config.processes and run is not None:
        extra["exit_codes"] = run.exit_codes
    summary.update(extra, wall_s=round(time.monotonic() - t0, 2))
    return summary


def _call(client, request, timeout_s: float):
    """Call a service of the graph from the harness (its node spins in the background); None on timeout."""
    if not client.wait_for_service(timeout_sec=timeout_s):
        raise RuntimeError(f"service {client.srv_name} is not available")
    future = client.call_async(request)
    deadline = time.monotonic() + timeout_s
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    return future.result() if future.done() else None


class EpisodeClient:
    """The cell's ``episode/{start,stop,reset}`` services (``ros/episode.py``) for a node spun in the background."""

    def __init__(self, node, timeout_s: float = 60.0) -> None:
        from std_srvs.srv import Trigger

        self._trigger = Trigger
        self._timeout_s = float(timeout_s)
        self._clients = {k: node.create_client(Trigger, "/" + topic(f"episode_{k}")) for k in ("start", "stop", "reset")}

    def call(self, transition: str) -> dict:
        """The answer's JSON; raises RuntimeError when there is none or the transition was refused."""
        answer = _call(self._clients[transition], self._trigger.Request(), self._timeout_s)
        if answer is None:
            raise RuntimeError(f"episode/{transition}: no answer within {self._timeout_s:g} s")
        reply = json.loads(answer.message)
        if not answer.success:
            raise RuntimeError(f"episode/{transition} refused: {reply.get('reason', answer.message)}")
        return reply


def wait_for_status(monitor, predicate, timeout_s: float, since: int = 0) -> dict:
    """The first executor status at index >= ``since`` of ``monitor.status_log`` that satisfies ``predicate``."""
    deadline = time.monotonic() + timeout_s
    while True:
        for event in monitor.status_log[since:]:
            if predicate(event):
                return event
        if time.monotonic() > deadline:
            raise RuntimeError(f"no executor status as expected within {timeout_s:g} s")
        time.sleep(0.01)


def run_graph_episodes(options: GraphOptions, episodes: int, processes: bool = False, log_dir: Path | None = None,
                       node_parameters: dict[str, dict[str, Any]] | None = None,
                       episode_timeout_s: float = 600.0) -> list:
    """``episodes`` consecutive seeds (``options.seed`` on) through the node graph; one ``EpisodeOutcome`` each.

    The graph is the robot's (sim_node, policy_node, executor_node); between episodes the harness
    uses the cell's episode interface as an operator would: ``episode/stop`` (the simulated world
    stands still, the executor holds and reports the episode's statistics), then ``episode/start``
    (the next seed; the executor resets on the new ``episode``). An episode ends on success or
    after the task's step budget, exactly as in ``eval.closed_loop.run_episode``.
    """
    from ..eval.closed_loop import EpisodeOutcome
    from ..sim.tasks import make_task

    if not options.use_sim:
        raise ValueError("graph episodes need the simulated cell (use_sim)")
    max_steps = int(make_task(options.task).max_steps)
    specs, views = graph_specs(options, node_parameters)
    outcomes: list = []
    with _RunningGraph(specs, views, True, processes, log_dir) as run:
        monitor, graph = run.monitor, run.graph
        episodes_client = EpisodeClient(monitor)
        for i in range(episodes):
            t0 = time.monotonic()
            n_pred0 = len(monitor.predictions)

            def ending(st: dict) -> bool:
                return st.get("episode") == i and (bool(st.get("success")) or int(st.get("step", 0)) >= max_steps)

            def over() -> bool:
                return any(ending(st) for st in monitor.episode_statuses(i))

            while not over():
                if time.monotonic() - t0 > episode_timeout_s:
                    logger.error("episode %d did not end within %.0f s of wall time", i, episode_timeout_s)
                    break
                if graph.exited():
                    raise RuntimeError(f"node(s) ended early: {graph.exited()}")
                time.sleep(0.01)
            # the first status that ended it (the world may step once more before the stop lands)
            status = next((dict(st) for st in monitor.episode_statuses(i) if ending(st)), dict(monitor.sim_status or {}))
            since = len(monitor.status_log)
            episodes_client.call("stop")
            end = wait_for_status(monitor, lambda e: e.get("event") == "episode_end"
                                  and f"episode {i} stopped" in e.get("reason", ""), 60.0, since)
            preds = monitor.predictions[n_pred0:]
            outcomes.append(EpisodeOutcome(
                seed=int(status.get("seed", options.seed + i)), success=bool(status.get("success")),
                steps=int(status.get("step", 0)), predictions=len(preds),
                latency_median_s=float(np.median([p["latency_s"] for p in preds])) if preds else 0.0,
                stats=end.get("stats", {}), draws=sum(int(p.get("draws", 1)) for p in preds)))
            logger.info("episode %d (seed %s): %s in %d steps, %.0f s wall", i, status.get("seed"),
                        "success" if status.get("success") else "failure", int(status.get("step", 0)),
                        time.monotonic() - t0)
            if i + 1 < episodes:
                since = len(monitor.status_log)
                episodes_client.call("start")
                wait_for_status(monitor, lambda e: e.get("event") == "reset"
                                and f"episode {i + 1} seed" in e.get("reason", ""), 60.0, since)
    return outcomes
