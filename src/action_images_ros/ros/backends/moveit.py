"""moveit_py (``MoveItPy``) plans and executes, in a process of its own (``moveit_worker``).

* Start-up refuses an incomplete or unsafe configuration (``moveit_config.moveit_params``: robot,
  pipelines, ``plan_request_params`` with velocity/acceleration scaling <= ``moveit_max_*_scaling``,
  controllers), naming each missing piece, before any process starts.
* Targets are TCP poses converted to the IK tip of ``moveit_group`` (``tip_link``, ``fr3_link8``).
* :meth:`MoveItBackend.send` (one pose per control tick) queues a goal: the newest wins.
  :meth:`MoveItBackend.send_chunk` executes a chunk's keyframes as ONE time-parameterised trajectory
  (up to the first gripper change; the gripper moves after it), not plan-stop-plan.
* :meth:`MoveItBackend.hold` (e-stop, stale state, refusal) never waits for MoveIt: it drops what is
  pending and stops the running execution; a plan still running is not executed.
* The gripper moves only after its goal executed successfully; a repeat is not re-sent.
* Failures (no plan, IK, execution, an exception in the worker) show in :meth:`status`; the worker
  survives them.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import threading

import numpy as np

from ..stamps import stamp_to_ns
from . import moveit_worker
from .base import BackendConfig, BackendUnavailable, ExecutorBackend, TipTransform
from .grippers import make_gripper
from .moveit_config import moveit_params, write_params_file

__all__ = ["MoveItBackend"]

logger = logging.getLogger(__name__)


class MoveItBackend(ExecutorBackend):
    """moveit_py plan + execute in a worker process (see the module docstring)."""

    runs_paths = True

    name = "moveit"

    def __init__(self, node, config: BackendConfig) -> None:
        try:
            found = importlib.util.find_spec("moveit.planning") is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise BackendUnavailable(
                "executor backend 'moveit' needs moveit_py (ros-jazzy-moveit-py) and a sourced ROS 2 install with "
                "the FR3 MoveIt config; use backend:=servo or backend:=sim otherwise")
        self._config = config
        self._tip = TipTransform(config)
        self._params_file = None
        kwargs = self._moveit_kwargs(config)  # raises BackendUnavailable naming what is missing
        self._gripper = make_gripper(node, config)
        self._lock = threading.Condition()
        self._outbox: list[tuple] = []
        self._seq = 0
        self._stopped_seq = 0
        self._openness: dict[int, float] = {}
        self._last_error: str | None = None
        self.events: list[tuple] = []  # every answer of the worker, in order (status and tests read it)
        settings = {"group": config.moveit_group, "tip_link": config.tip_link,
                    "velocity_scaling": config.moveit_max_velocity_scaling,
                    "acceleration_scaling": config.moveit_max_acceleration_scaling,
                    "ik_timeout_s": config.moveit_ik_timeout_s}
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs DDS threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=moveit_worker.main, args=(child, kwargs, settings), name="moveit_worker",
                                 daemon=True)
        self._proc.start()
        child.close()
        self._wait_ready(config.moveit_start_timeout_s)
        self._closed = False
        self._threads = [threading.Thread(target=self._send_loop, name="moveit_send", daemon=True),
                         threading.Thread(target=self._recv_loop, name="moveit_recv", daemon=True)]
        for t in self._threads:
            t.start()
        logger.info("MoveItPy runs in process %s (group %s, tip %s)", self._proc.pid, config.moveit_group,
                    config.tip_link)

    def _moveit_kwargs(self, config: BackendConfig) -> dict:
        """MoveItPy keyword arguments (one merged parameter file); raises BackendUnavailable when incomplete."""
        params = moveit_params(config)
        self._params_file = write_params_file(params, config.moveit_node_name)
        # moveit_py >= 2.9 (Jazzy) takes launch_params_filepaths (a list); MoveItPy otherwise also reads
        # this process's --params-file arguments (executor_node's own), so the file is always given.
        return {"node_name": config.moveit_node_name, "launch_params_filepaths": [self._params_file],
                "provide_planning_service": config.moveit_provide_planning_service}

    def _wait_ready(self, timeout_s: float) -> None:
        answer = self._conn.recv() if self._conn.poll(timeout_s) else None
        if answer is None or answer[0] != "ready":
            self._proc.terminate()
            self._proc.join(timeout=5.0)
            self._remove_params_file()
            why = answer[1] if answer else f"no answer within moveit_start_timeout_s {timeout_s} s"
            raise BackendUnavailable(f"executor backend 'moveit': {why}")

    # ------------------------------------------------------------------ commands (never block)
    def _post(self, msg: tuple, replaces_goal: bool) -> None:
        with self._lock:
            if replaces_goal:  # a goal not yet handed to the worker is replaced by a newer one
                self._outbox = [m for m in self._outbox if m[0] not in ("goal", "path")]
            self._outbox.append(msg)
            self._lock.notify()

    def send(self, pose: np.ndarray, stamp) -> None:
        pose = np.asarray(pose, dtype=np.float64)
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._openness[seq] = float(pose[7])
        tip = self._tip.to_tip(pose[:7])
        self._post(("goal", seq, tip.tolist(), self._config.base_frame, stamp_to_ns(stamp)), True)

    def send_chunk(self, poses: np.ndarray, times_s: np.ndarray, stamp) -> int:
        poses = np.asarray(poses, dtype=np.float64).reshape(-1, 8)
        times_s = np.asarray(times_s, dtype=np.float64).reshape(-1)
        if len(poses) == 0 or len(times_s) != len(poses):
            raise ValueError(f"send_chunk needs poses (N, 8) and times_s (N,), got {poses.shape} and {times_s.shape}")
        change = np.flatnonzero(poses[:, 7] != poses[0, 7])
        end = int(change[0]) + 1 if len(change) else len(poses)  # up to the first gripper change, then the gripper
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._openness[seq] = float(poses[end - 1, 7])
        tips = np.stack([self._tip.to_tip(p[:7]) for p in poses[:end]])
        self._post(("path", seq, tips.tolist(), times_s[:end].tolist(), self._config.base_frame), True)
        return end

    def hold(self, current_pose: np.ndarray | None) -> None:
        with self._lock:
            self._stopped_seq = self._seq
            self._openness.clear()
        self._post(("stop", self._stopped_seq), True)
        self._gripper.forget()

    def status(self) -> str | None:
        return self._last_error or self._gripper.problem

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._post(("quit",), True)
        self._proc.join(timeout=5.0)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5.0)
        with self._lock:
            self._lock.notify_all()
        self._remove_params_file()

    def _remove_params_file(self) -> None:
        if self._params_file:
            try:
                os.unlink(self._params_file)
            except OSError:
                pass
            self._params_file = None

    # ------------------------------------------------------------------ pipe threads
    def _send_loop(self) -> None:
        while True:
            with self._lock:
                while not self._outbox and not self._closed:
                    self._lock.wait()
                if not self._outbox:
                    return
                msg = self._outbox.pop(0)
            try:
                self._conn.send(msg)  # may block while the worker is busy: only this thread waits
            except (OSError, ValueError):
                return
            if msg[0] == "quit":
                return

    def _recv_loop(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                if not self._closed:
                    self._last_error = "the MoveIt worker process ended; restart executor_node"
                    logger.error(self._last_error)
                return
            self.events.append(msg)
            kind, seq = msg[0], msg[1]
            with self._lock:
                openness = self._openness.pop(seq, None)
                cancelled = seq <= self._stopped_seq
            if kind == "done" and msg[2]:
                self._last_error = None
                if openness is not None and not cancelled:
                    self._gripper.command(openness)
            elif kind == "done" and cancelled:  # stopped by a hold: what the executor asked for
                logger.info("MoveIt execution stopped by a hold (%s)", msg[3])
            elif kind == "done":
                self._last_error = f"MoveIt execution failed: {msg[3]}"
                logger.error(self._last_error)
            elif kind == "failed":
                self._last_error = msg[2]
                logger.error(self._last_error)
