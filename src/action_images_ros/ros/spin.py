"""Spinning helpers for in-process graphs (tests, benches, ``action-images run``)."""

from __future__ import annotations

import sys
import time
from typing import Callable, Sequence

from rclpy.executors import Executor

__all__ = ["executors_for", "run_node", "spin_until"]


def executors_for(*nodes) -> list[Executor]:
    """One ``SingleThreadedExecutor`` per node, on the node's own context (nodes in separate DDS
    participants, as separate processes would be), for :func:`spin_until`."""
    from rclpy.executors import SingleThreadedExecutor

    executors = []
    for node in nodes:
        ex = SingleThreadedExecutor(context=node.context)
        ex.add_node(node)
        executors.append(ex)
    return executors


def spin_until(executors: Executor | Sequence[Executor], predicate: Callable[[], bool], timeout_s: float,
               poll_s: float = 0.005) -> bool:
    """Spin ``executors`` (round robin, ``spin_once``) until ``predicate()`` is true or ``timeout_s`` passes.

    Returns:
        Whether the predicate became true.
    """
    if isinstance(executors, Executor):
        executors = [executors]
    deadline = time.monotonic() + float(timeout_s)
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        for ex in executors:
            ex.spin_once(timeout_sec=poll_s)


def _limit_opencv_threads() -> None:
    """OpenCV keeps its own thread pool: bound it like OpenMP's (``OMP_NUM_THREADS``, set by the graph)."""
    import os

    n = os.environ.get("OMP_NUM_THREADS", "")
    if n.isdigit() and int(n) > 0:
        import cv2

        cv2.setNumThreads(int(n))


def run_node(create_node: Callable[[], object], args=None, num_threads: int = 1) -> None:
    """The ``main`` of every node: init, build, forward Python logging, spin, clean shutdown.

    Args:
        create_node: builds the node (after ``rclpy.init``).
        args: command-line arguments for ``rclpy.init``.
        num_threads: >1 spins a ``MultiThreadedExecutor`` (service callbacks beside timers).
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor

    from .log_bridge import forward_python_logging

    _limit_opencv_threads()
    rclpy.init(args=args)
    node, name = None, getattr(create_node, "__module__", "node").rsplit(".", 1)[-1]
    try:
        node = create_node()
        forward_python_logging(node.get_logger())
        executor = MultiThreadedExecutor(num_threads=num_threads) if num_threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # SIGINT shuts the context down under the executor; a message being taken at that moment
        # fails inside rclpy. That is a clean stop, not a crash; anything else is re-raised.
        if rclpy.ok():
            raise
    finally:
        t0 = time.monotonic()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        took = time.monotonic() - t0
        if took > 2.0:  # a slow stop (the launcher may give up on it): leave a trace; the node's logger is gone
            sys.stderr.write(f"[{name}] destroying the node and shutting rclpy down took {took:.1f} s\n")
