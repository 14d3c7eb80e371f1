"""Runners of the node graph for environments without ``ros2 launch`` (this venv, tests, demos).

:class:`InProcessGraph` creates every node in this process; :class:`SubprocessGraph` starts
one process per node (as ``ros2 launch`` would), the nodes talking over DDS.

In process, each :class:`~action_images_ros.ros.graph.NodeSpec` of this package becomes a node created
by ``action_images_ros.ros.nodes.<executable>.create_node(context=..., cli_args=spec.ros_arguments())``:
the same parameter files, overrides and remappings ``ros2 launch`` would pass. Every node spins
in a thread of its own (a slow policy step does not stall the executor node), and shutdown
joins those threads before it destroys any node. Nodes of other packages (RViz) cannot run
in-process and are skipped with a warning.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from .graph import NodeSpec
from .share import PACKAGE

__all__ = ["BackgroundSpinner", "InProcessGraph", "SubprocessGraph"]

logger = logging.getLogger(__name__)


def _own_specs(specs):
    """The specs of this package's nodes; others (e.g. RViz) need ``ros2 launch`` and are skipped with a warning."""
    for spec in specs:
        if spec.package != PACKAGE:
            logger.warning("skipping node %r of package %r: only %s nodes run without ros2 launch",
                           spec.name, spec.package, PACKAGE)
            continue
        yield spec


class BackgroundSpinner:
    """Spins nodes in background threads, each with its own ``SingleThreadedExecutor`` (as separate
    processes would), and stops them cleanly.

    Why not one MultiThreadedExecutor: its worker threads may still hold a callback of a node that
    is being destroyed at shutdown, which rclpy reports as "exception was never retrieved: cannot
    use Destroyable". Here every callback runs to completion inside ``spin_once`` of its node's own
    thread, and :meth:`close` joins the threads before anything is destroyed.

    Args:
        context: the rclpy Context of the nodes.
        poll_s: ``spin_once`` timeout (how quickly a thread notices :meth:`close`).
    """

    def __init__(self, context: Context, poll_s: float = 0.02) -> None:
        self.context = context
        self._poll_s = float(poll_s)
        self._stop = threading.Event()
        self._threads: list[tuple[threading.Thread, SingleThreadedExecutor, object]] = []
        self.errors: list[str] = []  #: callbacks that raised (their node stopped), as "thread: exception"

    def add(self, node) -> None:
        """Start spinning ``node`` in a thread of its own."""
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(node)
        thread = threading.Thread(target=self._spin, args=(executor,), name=f"spin_{node.get_name()}", daemon=True)
        self._threads.append((thread, executor, node))
        thread.start()

    def _spin(self, executor: SingleThreadedExecutor) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                executor.spin_once(timeout_sec=self._poll_s)
            except (KeyboardInterrupt, ExternalShutdownException):
                return
            except Exception as exc:  # a callback raised: a node process would die, so this graph fails
                if not self.context.ok() or self._stop.is_set():  # shutting down under the wait set
                    return
                logger.exception("a callback of %s raised; its node stopped", threading.current_thread().name)
                self.errors.append(f"{threading.current_thread().name}: {exc!r}")
                return

    def close(self, timeout_s: float = 10.0) -> list:
        """Stop and join every thread (then their nodes may be destroyed); returns the nodes."""
        self._stop.set()
        for thread, _, _ in self._threads:
            thread.join(timeout=timeout_s)
            if thread.is_alive():
                logger.warning("spinner thread %s did not stop within %.0f s", thread.name, timeout_s)
        nodes = []
        for _, executor, node in self._threads:
            executor.remove_node(node)
            executor.shutdown(timeout_sec=timeout_s)
            nodes.append(node)
        self._threads = []
        return nodes


class InProcessGraph:
    """Create the graph's nodes in this process, each spun in its own thread (:class:`BackgroundSpinner`).

    Args:
        specs: the nodes (``graph.build_graph(...)`` or a subset).
        context: an initialised rclpy Context; None = a new one (shut down by :meth:`shutdown`).
        share: package share dir for parameter files (None = ``share.share_dir()``).
    """

    def __init__(self, specs: Sequence[NodeSpec], context: Context | None = None, share: Path | None = None) -> None:
        self._own_context = context is None
        if context is None:
            context = Context()
            rclpy.init(context=context)
        self.context = context
        self.nodes = {}
        self._spinner = BackgroundSpinner(context)
        try:
            for spec in _own_specs(specs):
                module = importlib.import_module(f"{PACKAGE}.ros.nodes.{spec.executable}")
                node = module.create_node(context=context, cli_args=spec.ros_arguments(share))
                self.nodes[spec.name] = node
                self._spinner.add(node)
        except Exception:
            self.shutdown()
            raise

    def exited(self) -> dict[str, str]:
        """Nodes whose callback raised (and so stopped), like :meth:`SubprocessGraph.exited`."""
        return {e.split(":")[0].removeprefix("spin_"): e for e in self._spinner.errors}

    def shutdown(self) -> None:
        """Stop spinning, destroy the nodes and, if it was created here, the context."""
        self._spinner.close()  # no callback runs on a node being destroyed
        for node in self.nodes.values():
            node.destroy_node()
        self.nodes.clear()
        if self._own_context:
            self.context.try_shutdown()

    def __enter__(self) -> "InProcessGraph":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


class SubprocessGraph:
    """Each node of this package in its own process: ``python -m action_images_ros.ros.<executable>``
    with the spec's ROS arguments (the same as ``ros2 launch`` passes), talking over DDS.

    Args:
        specs: the nodes (``graph.build_graph(...)`` or a subset); other packages' nodes are skipped.
        share: package share dir for parameter files (None = ``share.share_dir()``).
        env: environment of the processes (None = this one's); this checkout's ``src`` is put on
            ``PYTHONPATH`` so an uninstalled package runs too.
        log_dir: write each node's output to ``<log_dir>/<name>.log`` (None = inherit this process's).
    """

    def __init__(self, specs: Sequence[NodeSpec], share: Path | None = None, env: dict | None = None,
                 log_dir: Path | None = None) -> None:
        env = dict(os.environ if env is None else env)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.processes: dict[str, subprocess.Popen] = {}
        self._launch: dict[str, tuple] = {}
        self._logs = []
        try:
            for spec in _own_specs(specs):
                cmd = [sys.executable, "-m", f"{PACKAGE}.ros.nodes.{spec.executable}"] + spec.ros_arguments(share)
                node_env = {**env, **dict(spec.env)}
                out = None
                if log_dir is not None:
                    Path(log_dir).mkdir(parents=True, exist_ok=True)
                    out = open(Path(log_dir) / f"{spec.name}.log", "w")  # closed in shutdown()
                    self._logs.append(out)
                self._launch[spec.name] = (cmd, node_env, out)
                self.processes[spec.name] = subprocess.Popen(cmd, env=node_env, stdout=out,
                                                             stderr=subprocess.STDOUT if out else None)
        except Exception:
            self.shutdown()
            raise

    def exited(self) -> dict[str, int]:
        """Nodes whose process has ended, with their exit codes."""
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def kill(self, name: str) -> int:
        """SIGKILL node ``name`` (a crash, for fault tests); returns its exit code."""
        p = self.processes[name]
        p.kill()
        return p.wait()

    def restart(self, name: str) -> None:
        """Start node ``name`` again with the same command line (after :meth:`kill` or a crash)."""
        if self.processes[name].poll() is None:
            raise RuntimeError(f"node {name!r} is still running")
        cmd, env, out = self._launch[name]
        self.processes[name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)

    def shutdown(self, timeout_s: float = 30.0) -> dict[str, int]:
        """SIGINT every node (a clean rclpy shutdown), kill those still running after ``timeout_s``.

        Returns:
            Exit code per node.
        """
        for p in self.processes.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        codes = {}
        for name, p in self.processes.items():
            try:
                codes[name] = p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("node %r did not stop within %.0f s; killed", name, timeout_s)
                p.kill()
                codes[name] = p.wait()
        for f in self._logs:
            f.close()
        self._logs = []
        return codes

    def __enter__(self) -> "SubprocessGraph":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
