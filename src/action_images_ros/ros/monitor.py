"""GraphMonitor: a node that watches a running graph (outcome, commands, latencies) and can record overlays.

Used by ``action-images run`` (ros/session.py), the end-to-end tests and the latency bench.
It subscribes to graph topics only (``graph.topic``); it commands nothing.

Latency "frame stamp -> executed command": a trajectory carries the stamp of the camera frames
it was predicted from; the first executor command sent after that trajectory arrived (the
executor replaces its queue on arrival) is stamped when it was sent. Their difference is the
end-to-end latency of that prediction (camera -> policy -> decoder -> executor).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from trajectory_msgs.msg import MultiDOFJointTrajectory

from .graph import topic
from .image_conversions import msg_to_image
from .qos import image_qos, state_qos
from .stamps import stamp_to_ns

__all__ = ["GraphMonitor", "OverlayRecorder"]

EXECUTOR = "executor_node"


class OverlayRecorder:
    """Writes the per-view overlays of each prediction side by side into a video (one frame per prediction).

    Args:
        path: ``.mp4`` (mp4v) or ``.avi`` (MJPG) file.
        views: view order, left to right.
        fps: frames per second of the video (about the prediction rate).
    """

    def __init__(self, path: str | Path, views: list[str], fps: float = 2.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.views = list(views)
        self.fps = float(fps)
        self.frames = 0
        self._pending: dict[int, dict[str, np.ndarray]] = defaultdict(dict)
        self._writer = None
        self._lock = threading.Lock()

    def add(self, view: str, stamp_ns: int, image: np.ndarray) -> None:
        with self._lock:
            self._pending[stamp_ns][view] = image
            if len(self._pending[stamp_ns]) < len(self.views):
                return
            views = self._pending.pop(stamp_ns)
            for old in [s for s in self._pending if s < stamp_ns]:  # incomplete older sets never complete
                del self._pending[old]
            h = min(im.shape[0] for im in views.values())
            row = np.concatenate([cv2.resize(views[v], (int(views[v].shape[1] * h / views[v].shape[0]), h))
                                  for v in self.views], axis=1)
            if self._writer is None:
                fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
                self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (row.shape[1], row.shape[0]))
                if not self._writer.isOpened():
                    raise OSError(f"cannot write video {self.path} (OpenCV VideoWriter)")
            self._writer.write(cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
            self.frames += 1

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.release()
                self._writer = None


class GraphMonitor(Node):
    """Watches the graph. All attributes are safe to read from another thread.

    Attributes:
        sim_status: last ``sim/status`` (dict) or None.
        succeeded: whether the sim reported ``success`` at some point.
        events: counts of executor ``status`` events (``refused``, ``hold``, ``dropped`` ...).
        reasons: the last executor status per event.
        commands: executor commands received.
        command_stamps_ns: their header stamps (when each was sent), moves and holds alike.
        hold_stamps_ns: the stamps of the holds among them (``executor/hold`` carries the same messages).
        settle_s: how long a command with no copy on ``executor/hold`` (and no newer hold) stays undecided.
        predictions: prediction summaries received (dicts).
        latencies_s: frame stamp -> first command after that trajectory (s), per trajectory.
        trajectory_latencies_s: frame stamp -> the decoded trajectory received here (s).
        commanded_poses: ``(N, 7)`` commanded poses so far (base frame).

    Args:
        views: view names whose overlays are recorded (with ``recorder``).
        recorder: an :class:`OverlayRecorder`, or None.
    """

    def __init__(self, views: list[str] | None = None, recorder: OverlayRecorder | None = None,
                 name: str = "graph_monitor", **node_kwargs) -> None:
        super().__init__(name, **node_kwargs)
        qos = state_qos(10)
        self._lock = threading.Lock()
        self.sim_status: dict | None = None
        self.succeeded = False
        self.events: Counter = Counter()
        self.reasons: dict[str, str] = {}
        self.executor_stats: dict = {}
        self.status_log: list[dict] = []  # every executor status message, in order
        self._episode_statuses: dict[int, list[dict]] = {}  # sim status per tick, for the latest episodes
        self.refusals = 0
        self.commands = 0
        self.command_stamps_ns: list[int] = []
        self.hold_stamps_ns: set[int] = set()
        self._command_arrivals: list[float] = []  # monotonic, per command: when its hold copy was still due
        self._newest_hold_ns = -1
        self.settle_s = 0.5
        self.predictions: list[dict] = []
        self.latencies_s: list[float] = []
        self.trajectory_latencies_s: list[float] = []
        self._poses: list[list[float]] = []
        self._pending_traj_ns: int | None = None
        self.recorder = recorder
        self.create_subscription(String, topic("sim_status"), self._on_sim_status, qos)
        self.create_subscription(String, f"{EXECUTOR}/status", self._on_status, qos)
        self.create_subscription(PoseStamped, f"{EXECUTOR}/command", self._on_command, qos)
        self.create_subscription(PoseStamped, f"{EXECUTOR}/hold", self._on_hold, qos)
        self.create_subscription(MultiDOFJointTrajectory, topic("trajectory"), self._on_trajectory, qos)
        self.create_subscription(String, topic("prediction"), self._on_prediction, qos)
        if recorder is not None:
            for v in views or []:
                self.create_subscription(Image, topic("overlay", v), lambda m, v=v: recorder.add(
                    v, stamp_to_ns(m.header.stamp), msg_to_image(m, "rgb8")), image_qos())

    def episode_statuses(self, episode: int) -> list[dict]:
        """Every ``sim/status`` of ``episode`` received so far, in order (the last two episodes are kept)."""
        with self._lock:
            return list(self._episode_statuses.get(episode, []))

    @property
    def commanded_poses(self) -> np.ndarray:
        with self._lock:
            return np.asarray(self._poses, dtype=np.float64).reshape(-1, 7)

    def _on_sim_status(self, msg: String) -> None:
        status = json.loads(msg.data)
        with self._lock:
            self.sim_status = status
            ep = status.get("episode")
            if isinstance(ep, int):
                self._episode_statuses.setdefault(ep, []).append(status)
                for old in [e for e in self._episode_statuses if e < ep - 1]:
                    del self._episode_statuses[old]
            self.succeeded = self.succeeded or bool(status.get("success"))

    def _on_status(self, msg: String) -> None:
        event = json.loads(msg.data)
        with self._lock:
            self.events[event.get("event", "?")] += 1
            self.reasons[event.get("event", "?")] = event.get("reason", "")
            self.executor_stats = event.get("stats") or self.executor_stats
            self.status_log.append(event)

    def _on_trajectory(self, msg: MultiDOFJointTrajectory) -> None:
        if not msg.points:  # a refused request
            return
        stamp_ns = stamp_to_ns(msg.header.stamp)
        now_ns = self.get_clock().now().nanoseconds
        with self._lock:
            self._pending_traj_ns = stamp_ns
            self.trajectory_latencies_s.append((now_ns - stamp_ns) * 1e-9)

    def _on_command(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        with self._lock:
            self.commands += 1
            self.command_stamps_ns.append(stamp_to_ns(msg.header.stamp))
            self._command_arrivals.append(time.monotonic())
            self._poses.append([p.x, p.y, p.z, o.x, o.y, o.z, o.w])
            if self._pending_traj_ns is not None:
                self.latencies_s.append((stamp_to_ns(msg.header.stamp) - self._pending_traj_ns) * 1e-9)
                self._pending_traj_ns = None

    def _on_hold(self, msg: PoseStamped) -> None:
        with self._lock:
            stamp_ns = stamp_to_ns(msg.header.stamp)
            self.hold_stamps_ns.add(stamp_ns)
            self._newest_hold_ns = max(self._newest_hold_ns, stamp_ns)

    def move_stamps_ns(self) -> list[int]:
        """Stamps of the commands with no copy on ``executor/hold`` so far (a hold goes out on both). The two
        topics arrive in no set order: count moves once :meth:`undecided_commands` is 0."""
        with self._lock:
            return [c for c in self.command_stamps_ns if c not in self.hold_stamps_ns]

    def undecided_commands(self) -> int:
        """Commands whose copy on ``executor/hold`` may still come: a command without its copy is a move once a
        newer hold has arrived (one reliable writer delivers in order) or ``settle_s`` after it arrived."""
        with self._lock:
            now = time.monotonic()
            return sum(1 for c, t in zip(self.command_stamps_ns, self._command_arrivals)
                       if c not in self.hold_stamps_ns and c > self._newest_hold_ns and now - t <= self.settle_s)

    def _on_prediction(self, msg: String) -> None:
        summary = json.loads(msg.data)
        with self._lock:
            if summary.get("ok", True):
                self.predictions.append(summary)
            else:
                self.refusals += 1
                self.reasons["policy_refused"] = summary.get("reason", "")

    def summary(self) -> dict:
        """Outcome so far: success, counts, median latencies."""
        with self._lock:
            lat = np.asarray(self.latencies_s)
            traj = np.asarray(self.trajectory_latencies_s)
            frame_to_prediction = np.asarray([p["frame_age_s"] for p in self.predictions])
            model = np.asarray([p["latency_s"] for p in self.predictions])
            return {
                "success": self.succeeded,
                "sim_status": self.sim_status,
                "predictions": len(self.predictions),
                "policy_refusals": self.refusals,
                "executor_stats": dict(self.executor_stats),
                "commands": self.commands,
                "executor_events": dict(self.events),
                "last_reasons": dict(self.reasons),
                "model_latency_median_s": float(np.median(model)) if model.size else None,
                "frame_to_prediction_median_s": (float(np.median(frame_to_prediction))
                                                 if frame_to_prediction.size else None),
                "frame_to_trajectory_median_s": float(np.median(traj)) if traj.size else None,
                "frame_to_command_median_s": float(np.median(lat)) if lat.size else None,
                "frame_to_command_p95_s": float(np.percentile(lat, 95)) if lat.size else None,
                "video_frames": self.recorder.frames if self.recorder is not None else 0,
            }
