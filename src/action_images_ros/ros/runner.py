"""In-process runner for the node graph (for environments without ``ros2 launch``, tests, demos).

Each :class:`~action_images_ros.ros.graph.NodeSpec` of this package becomes a node created
by ``action_images_ros.ros.<executable>.create_node(context=..., cli_args=spec.ros_arguments())``:
the same parameter files, overrides and remappings ``ros2 launch`` would pass. All nodes
spin in one ``MultiThreadedExecutor`` (each node's callbacks stay serialised in its default
callback group, so a slow policy step does not stall the executor node). Nodes of other
packages (RViz) cannot run in-process and are skipped with a warning.
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path
from typing import Callable, Sequence

import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor

from .graph import NodeSpec
from .share import PACKAGE

__all__ = ["InProcessGraph"]

logger = logging.getLogger(__name__)


class InProcessGraph:
    """Create the graph's nodes in this process.

    Args:
        specs: the nodes (``graph.build_graph(...)`` or a subset).
        context: an initialised rclpy Context; None = a new one (shut down by :meth:`shutdown`).
        share: package share dir for parameter files (None = ``share.share_dir()``).
        num_threads: executor threads.
    """

    def __init__(self, specs: Sequence[NodeSpec], context: Context | None = None, share: Path | None = None,
                 num_threads: int = 4) -> None:
        self._own_context = context is None
        if context is None:
            context = Context()
            rclpy.init(context=context)
        self.context = context
        self.nodes = {}
        self.executor = MultiThreadedExecutor(num_threads=num_threads, context=context)
        try:
            for spec in specs:
                if spec.package != PACKAGE:
                    logger.warning("skipping node %r of package %r: only %s nodes run in-process",
                                   spec.name, spec.package, PACKAGE)
                    continue
                module = importlib.import_module(f"{PACKAGE}.ros.{spec.executable}")
                node = module.create_node(context=context, cli_args=spec.ros_arguments(share))
                self.nodes[spec.name] = node
                self.executor.add_node(node)
        except Exception:
            self.shutdown()
            raise

    def spin(self, duration_s: float | None = None, until: Callable[[], bool] | None = None,
             poll_s: float = 0.01) -> bool:
        """Spin until ``until()`` is true or ``duration_s`` passes (both None: until shutdown).

        Returns:
            Whether ``until`` became true (False on timeout or without ``until``).
        """
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while self.context.ok():
            if until is not None and until():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self.executor.spin_once(timeout_sec=poll_s)
        return False

    def shutdown(self) -> None:
        """Destroy the nodes and, if it was created here, the context."""
        self.executor.shutdown()
        for node in self.nodes.values():
            node.destroy_node()
        self.nodes.clear()
        if self._own_context:
            self.context.try_shutdown()

    def __enter__(self) -> "InProcessGraph":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
