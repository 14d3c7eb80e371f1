"""Episode-cut rosbag2 recording (no ROS): serialized messages in, one bag per episode out.

The recorder node (``ros/nodes/recorder_node.py``) hands every message it receives to
:class:`EpisodeBagRecorder` as CDR bytes, and every ``episode`` mark as parsed. A worker thread
writes them; callbacks only enqueue.

Which episode a message belongs to (messages on different topics arrive in any order, and an
episode's first images may come before its mark):

* a message with a ``header`` (images, CameraInfo, poses, joint states, commands, the marks): by
  its stamp. Episode ``k`` spans ``[start_k, stop_k]`` (its stop mark's stamp, inclusive: the
  simulated cell stops at the stamp of its last tick) or ``[start_k, start_{k+1})``. A message
  outside every episode (before the first, between a stop and the next start) is not recorded.
* a message without one (``std_msgs/String`` instruction, ``std_msgs/Float32`` gripper target):
  to the episode whose mark arrived last before it (or up to ``min(0.1 s, settle_s / 2)`` after it).

Every message waits ``settle_s`` wall seconds in the queue before it is routed, so a mark that
arrives a little after its episode's first messages still routes them. A bag is closed
``close_delay_s`` wall seconds after its episode ended (the previous episode's bag stays open
meanwhile, beside the next one's); a message that reaches the recorder later than that is counted
as ``late`` and not recorded. Each bag's log time is the header stamp (capture time,
so the bag plays back in capture order) or, without a header, the receive time the node gives.

A latched topic without a header (the instruction: published once, when it changes) is also
carried into every new bag: its newest message is written first, 1 ns before the episode's start
(counted as ``carried``), so each bag holds the instruction in force even if it did not change.

Bounded: one bag per episode (``<out_dir>/episode_<episode>_seed_<seed>/``), and a bag that
reaches ``max_bag_mb`` is closed early (``custom_data.truncated``: the rest of that episode is
dropped, with an error logged). A crash leaves every closed bag whole; only the open one is left
under ``<out_dir>/.incomplete/`` (see ``data/bags.py``).

Each bag's ``metadata.yaml`` ``custom_data`` (all strings): ``action_images.episode``, ``.seed``,
``.start_ns``, ``.stop_ns`` (empty while the episode ran on), ``.task``, ``.topics`` (JSON
``{kind: topic}`` for the importer), ``.success`` (when labelled before the bag closed),
``.truncated``. The success label itself lives in ``labels.json`` beside it (:func:`label`), so an
operator can label an episode after its bag is closed.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import threading
import time
from pathlib import Path

from .bags import STAMPED_TYPES, BagError, BagWriter, bag_qos, header_stamp_ns, make_typestore, write_label

logger = logging.getLogger(__name__)

__all__ = ["RecorderConfig", "RecordedTopic", "EpisodeBagRecorder", "CUSTOM_PREFIX", "bag_name"]

CUSTOM_PREFIX = "action_images."


def bag_name(episode: int, seed: int | None) -> str:
    """``episode_000003_seed_100003`` (``_seed_none`` when the mark gave no seed)."""
    return f"episode_{int(episode):06d}_seed_{'none' if seed is None else int(seed)}"


@dataclasses.dataclass(frozen=True)
class RecordedTopic:
    """One recorded topic.

    Attributes:
        topic: the name stored in the bag (absolute, e.g. ``/cameras/front/image_raw``).
        msgtype: rosbag2 type name, e.g. ``sensor_msgs/msg/Image``.
        kind: what the importer reads it as (``image/front``, ``current_pose``, ...).
        depth: QoS history depth stored as the offered QoS (``ros2 bag play`` re-offers it).
        latched: transient local (the episode marks, the instruction).
    """

    topic: str
    msgtype: str
    kind: str
    depth: int = 10
    latched: bool = False


@dataclasses.dataclass
class RecorderConfig:
    """Settings of :class:`EpisodeBagRecorder`.

    Attributes:
        out_dir: directory of the per-episode bags (created if needed).
        topics: what to record.
        task: task name stored with every bag (the importer's default ``task``); may be empty.
        settle_s: wall seconds a message waits for the mark of its episode before it is routed
            (cross-topic delivery jitter is milliseconds; 0.5 s leaves a wide margin).
        close_delay_s: wall seconds a bag stays open after its episode ended, for messages still
            queued in DDS or in the node's executor (> ``settle_s``).
        max_bag_mb: a bag is closed early once this many MB of messages are in it.
        max_queue_mb: messages waiting to be written beyond this many MB are dropped (with an
            error logged): a disk slower than the cameras must not exhaust the memory.
    """

    out_dir: Path
    topics: tuple[RecordedTopic, ...]
    task: str = ""
    settle_s: float = 0.5
    close_delay_s: float = 3.0
    max_bag_mb: float = 8192.0
    max_queue_mb: float = 2048.0

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.topics = tuple(self.topics)
        if not self.topics:
            raise ValueError("topics must name at least one topic to record")
        names = [t.topic for t in self.topics]
        if len(set(names)) != len(names):
            raise ValueError(f"topics must be unique, got {names}")
        for t in self.topics:
            if t.msgtype not in make_typestore().types:
                raise ValueError(f"topic {t.topic!r}: unknown message type {t.msgtype!r}")
        for name in ("settle_s", "close_delay_s", "max_bag_mb", "max_queue_mb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0. Got {getattr(self, name)!r}")
        if self.close_delay_s <= self.settle_s:
            raise ValueError(f"`close_delay_s` must be > settle_s ({self.settle_s}). Got {self.close_delay_s!r}")


@dataclasses.dataclass
class _Episode:
    episode: int
    seed: int | None
    start_ns: int
    started_wall: float
    stop_ns: int | None = None  # inclusive end (a stop mark)
    next_start_ns: int | None = None  # exclusive end (the next start)
    ended_wall: float | None = None
    writer: BagWriter | None = None
    closed_path: Path | None = None
    label: bool | None = None
    truncated: bool = False
    skip: bool = False  # already running when the recorder started: not recorded

    def contains(self, stamp_ns: int) -> bool:
        if stamp_ns < self.start_ns:
            return False
        if self.stop_ns is not None and stamp_ns > self.stop_ns:
            return False
        return self.next_start_ns is None or stamp_ns < self.next_start_ns


class EpisodeBagRecorder:
    """See the module docstring. ``close()`` (or ``with``) finishes the open bag and stops the worker.

    Thread-safe: :meth:`submit`, :meth:`mark` and :meth:`label` are called from ROS callbacks.
    """

    def __init__(self, config: RecorderConfig, clock=time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._by_topic = {t.topic: t for t in config.topics}
        self._typestore = make_typestore()
        self._lock = threading.Condition()
        self._queue: collections.deque = collections.deque()  # (wall, topic, log_ns or None, data)
        self._queued_bytes = 0
        self._episodes: list[_Episode] = []
        self._stop = False
        self.stats = {t.topic: collections.Counter() for t in config.topics}
        self._latched: dict[str, bytes] = {}  # newest message of each latched topic without a header
        self.closed_bags: list[Path] = []
        config.out_dir.mkdir(parents=True, exist_ok=True)
        self._worker = threading.Thread(target=self._run, name="bag_recorder", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ input (any thread)
    def submit(self, topic: str, data: bytes, receive_ns: int | None = None) -> None:
        """One serialized message of a recorded topic; ``receive_ns`` (ROS time) is its log time when
        its type has no header."""
        with self._lock:
            self.stats[topic]["received"] += 1
            if self._queued_bytes + len(data) > self.config.max_queue_mb * 1e6:
                self.stats[topic]["dropped_queue_full"] += 1
                n = self.stats[topic]["dropped_queue_full"]
                if n == 1 or n % 100 == 0:  # not one line per frame
                    logger.error("recorder queue full (%.0f MB): %d %s message(s) dropped so far; the disk is "
                                 "slower than the cameras", self.config.max_queue_mb, n, topic)
                return
            self._queue.append((self._clock(), topic, receive_ns, data))
            self._queued_bytes += len(data)
            self._lock.notify_all()

    def mark(self, episode: int | None, seed: int | None, running: bool, stamp_ns: int,
             before_start: bool = False) -> None:
        """An ``episode`` message: ``running`` = episode ``episode`` starts at ``stamp_ns``, else it stopped
        there. ``before_start``: it was published before the recorder started (transient local
        history), so the episode is already under way and is not recorded (its start is missing)."""
        now = self._clock()
        with self._lock:
            last = self._episodes[-1] if self._episodes else None
            if running:
                if last is not None and last.episode == episode and last.start_ns == stamp_ns:
                    return  # the same mark again (a second publisher of the topic, a re-delivery)
                if episode is None:  # a plain "new trial" mark: our own numbering
                    episode = last.episode + 1 if last is not None else 0
                if last is not None and last.ended_wall is None:
                    last.next_start_ns, last.ended_wall = stamp_ns, now
                self._episodes.append(_Episode(episode, seed, stamp_ns, now, skip=before_start))
                if before_start:
                    logger.info("episode %s was already running when the recorder started: not recorded "
                                "(waiting for the next start)", episode)
            elif last is not None and last.ended_wall is None and (episode is None or episode == last.episode):
                last.stop_ns, last.ended_wall = stamp_ns, now
            self._lock.notify_all()

    def label(self, success: bool) -> dict:
        """The success label of the episode started last (running or finished); returns
        ``{episode, seed, success, bag}``. Raises ``ValueError`` when no episode has been recorded."""
        with self._lock:
            ep = next((e for e in reversed(self._episodes) if not e.skip), None)
            if ep is None:
                raise ValueError("no episode recorded yet: nothing to label")
            ep.label = bool(success)
            bag = ep.closed_path or (ep.writer.staging if ep.writer is not None else None)
            if bag is not None:  # moves with the directory when the bag is closed
                write_label(bag, ep.episode, ep.label)
            return {"episode": ep.episode, "seed": ep.seed, "success": ep.label,
                    "bag": str(ep.closed_path or (ep.writer.path if ep.writer else ""))}

    def counts(self) -> dict[str, dict[str, int]]:
        """Per topic: received, written, carried, outside_episode, late, dropped_queue_full, dropped_truncated."""
        with self._lock:
            return {t: dict(c) for t, c in self.stats.items()}

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every message received so far is routed and every ended episode's bag closed."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._queue or any(e.writer is not None and e.ended_wall is not None for e in self._episodes):
                if time.monotonic() > deadline:
                    return False
                self._lock.wait(0.05)
        return True

    def close(self) -> None:
        """Write what is queued, close the open bag (an episode still running ends here), stop."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._worker.join(timeout=60.0)

    def __enter__(self) -> "EpisodeBagRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    item = None
                    if self._queue and (self._stop or self._clock() >= self._queue[0][0] + self.config.settle_s):
                        item = self._queue.popleft()
                        self._queued_bytes -= len(item[3])
                    elif not self._stop:
                        wait = (self._queue[0][0] + self.config.settle_s - self._clock()) if self._queue else 0.1
                        self._lock.wait(max(0.001, min(wait, 0.1)))
                    stopping = self._stop and not self._queue
                if item is not None:
                    self._route(*item)
                self._close_ended(final=stopping)
                if stopping:
                    return
        except Exception:  # the node keeps running; the log says why recording stopped
            logger.exception("bag recorder stopped")
            with self._lock:
                for ep in self._episodes:
                    if ep.writer is not None:
                        ep.writer.abort()

    def _route(self, wall: float, topic: str, receive_ns: int | None, data: bytes) -> None:
        try:
            self._route_one(wall, topic, receive_ns, data)
        finally:
            if self._by_topic[topic].latched and self._by_topic[topic].msgtype not in STAMPED_TYPES:
                self._latched[topic] = data  # after it was routed: a bag opened for it does not carry it twice

    def _route_one(self, wall: float, topic: str, receive_ns: int | None, data: bytes) -> None:
        spec = self._by_topic[topic]
        stats = self.stats[topic]
        if spec.msgtype in STAMPED_TYPES:
            try:
                log_ns = header_stamp_ns(data)
            except BagError as exc:
                stats["malformed"] += 1
                logger.error("%s: message not recorded (%s)", topic, exc)
                return
            with self._lock:
                ep = next((e for e in reversed(self._episodes) if e.contains(log_ns)), None)
        else:  # the episode announced last when it arrived (or just after: its mark may trail it a little)
            grace = min(0.1, self.config.settle_s / 2)
            with self._lock:
                ep = next((e for e in reversed(self._episodes) if e.started_wall <= wall + grace), None)
            log_ns = receive_ns if receive_ns is not None else (ep.start_ns if ep is not None else 0)
            if ep is not None:
                log_ns = max(int(log_ns), ep.start_ns)  # a receive clock behind the capture stamps
        if ep is None or ep.skip:
            stats["outside_episode"] += 1
            return
        if ep.truncated:
            stats["dropped_truncated"] += 1
            return
        if ep.closed_path is not None:
            stats["late"] += 1
            logger.warning("%s message stamped %.3f s arrived after episode %d's bag was closed: not recorded",
                           topic, log_ns * 1e-9, ep.episode)
            return
        if ep.writer is None:
            self._open(ep)
        ep.writer.write(topic, log_ns, data)
        stats["written"] += 1
        if ep.writer.bytes_written > self.config.max_bag_mb * 1e6:
            logger.error("episode %d: bag reached max_bag_mb %.0f: closed early, the rest of the episode is "
                         "not recorded", ep.episode, self.config.max_bag_mb)
            ep.truncated = True
            self._close(ep)

    def _open(self, ep: _Episode) -> None:
        name = bag_name(ep.episode, ep.seed)
        path, k = self.config.out_dir / name, 1
        while path.exists() or (self.config.out_dir / ".incomplete" / path.name).exists():
            k += 1
            path = self.config.out_dir / f"{name}_{k}"
        topics = {t.topic: (t.msgtype, bag_qos(t.depth, t.latched)) for t in self.config.topics}
        ep.writer = BagWriter(path, topics, typestore=self._typestore)
        for topic, data in self._latched.items():  # state published once (the instruction) goes in every bag
            ep.writer.write(topic, ep.start_ns - 1, data)  # before anything of the episode: a newer one wins
            self.stats[topic]["carried"] += 1
        logger.info("episode %d (seed %s): recording %s", ep.episode, ep.seed, path)

    def _close_ended(self, final: bool = False) -> None:
        now = self._clock()
        with self._lock:
            oldest = self._queue[0][0] if self._queue else None
        for ep in list(self._episodes):
            if ep.writer is None:
                continue
            deadline = None if ep.ended_wall is None else ep.ended_wall + self.config.close_delay_s
            # everything received before the deadline is routed first (a worker that fell behind)
            if final or (deadline is not None and now >= deadline and (oldest is None or oldest > deadline)):
                self._close(ep)

    def _close(self, ep: _Episode) -> None:
        w = ep.writer
        p = CUSTOM_PREFIX
        for key, value in (("episode", ep.episode), ("seed", "" if ep.seed is None else ep.seed),
                           ("start_ns", ep.start_ns), ("stop_ns", "" if ep.stop_ns is None else ep.stop_ns),
                           ("next_start_ns", "" if ep.next_start_ns is None else ep.next_start_ns),
                           ("task", self.config.task), ("truncated", str(ep.truncated).lower()),
                           ("topics", json.dumps({t.kind: t.topic for t in self.config.topics}))):
            w.set_custom_data(p + key, str(value))
        with self._lock:
            if ep.label is not None:
                w.set_custom_data(p + "success", str(ep.label).lower())
            ep.closed_path = w.close()
            ep.writer = None
            if ep.label is not None:
                write_label(ep.closed_path, ep.episode, ep.label)
            self.closed_bags.append(ep.closed_path)
            self._lock.notify_all()
        logger.info("episode %d: bag closed, %d messages: %s", ep.episode, sum(w.counts.values()), ep.closed_path)
