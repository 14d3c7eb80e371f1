"""Spinning helpers for in-process graphs (tests, benches, ``action-images run``)."""

from __future__ import annotations

import time
from typing import Callable, Sequence

from rclpy.executors import Executor

__all__ = ["spin_until"]


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
