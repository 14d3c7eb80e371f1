"""Run the whole node graph for a while and report the outcome (``action-images run``, demos, tests).

The graph comes from ``graph.build_graph`` (the same nodes, parameter files and remappings as
the launch files), started in this process (:class:`~.runner.InProcessGraph`, one
MultiThreadedExecutor) or one process per node (:class:`~.runner.SubprocessGraph`). A
:class:`~.monitor.GraphMonitor` watches the outcome and can record the overlays.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from .graph import GraphOptions, NodeSpec, build_graph, rig_views
from .monitor import GraphMonitor, OverlayRecorder
from .runner import InProcessGraph, SubprocessGraph

__all__ = ["SessionConfig", "run_session", "graph_specs"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SessionConfig:
    """How long and how to run the graph.

    Attributes:
        duration_s: stop after this many seconds (> 0).
        processes: one process per node (True) or all nodes in this process (False).
        stop_on_success: stop as soon as the simulated task reports success.
        record: write the per-view overlays of every prediction to this video (``.mp4`` / ``.avi``).
        record_fps: frames per second of that video.
        log_dir: with ``processes``, each node's output goes to ``<log_dir>/<node>.log``.
        node_parameters: extra parameters per node name, applied after the graph's own,
            e.g. ``{"executor_node": {"max_plan_age_s": 3.0}}``.
    """

    duration_s: float = 60.0
    processes: bool = False
    stop_on_success: bool = True
    record: Path | None = None
    record_fps: float = 2.0
    log_dir: Path | None = None
    node_parameters: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
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


def run_session(options: GraphOptions, config: SessionConfig | None = None) -> dict:
    """Start the graph, run it for ``config.duration_s`` (or until success), stop it; return the summary.

    Returns:
        ``GraphMonitor.summary()`` plus ``wall_s`` and, with ``processes``, ``exit_codes`` per node.
    """
    config = config or SessionConfig()
    specs, views = graph_specs(options, config.node_parameters)
    context = Context()
    rclpy.init(context=context)
    recorder = OverlayRecorder(config.record, views, config.record_fps) if config.record else None
    monitor = graph = executor = None
    extra: dict[str, Any] = {}
    t0 = time.monotonic()

    def done() -> bool:
        return config.stop_on_success and monitor.succeeded

    try:
        monitor = GraphMonitor(views, recorder, context=context)
        if config.processes:
            graph = SubprocessGraph(specs, log_dir=config.log_dir)
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(monitor)
            while time.monotonic() - t0 < config.duration_s and not done():
                executor.spin_once(timeout_sec=0.05)
                exited = graph.exited()
                if exited:
                    logger.error("node process(es) ended early: %s", exited)
                    break
        else:
            graph = InProcessGraph(specs, context=context)
            graph.executor.add_node(monitor)
            graph.spin(duration_s=config.duration_s, until=done)
    except KeyboardInterrupt:
        logger.info("interrupted")
    finally:
        summary = monitor.summary() if monitor is not None else {}
        if executor is not None:
            executor.shutdown()
        if graph is not None:
            codes = graph.shutdown()
            if config.processes:
                extra["exit_codes"] = codes
        if monitor is not None:
            monitor.destroy_node()
        if recorder is not None:
            recorder.close()
        context.try_shutdown()
    summary.update(extra, wall_s=round(time.monotonic() - t0, 2))
    return summary
