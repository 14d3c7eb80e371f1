"""Approximate-time synchronisation of N message streams (message_filters is not on PyPI).

:class:`ApproximateTimeSync` is the ROS-free core: it takes ``(view, stamp_ns, payload)``
and emits a :class:`SyncedSet` (one message per view) whenever every view holds a
message and a set of them lies within ``slop`` of each other. :class:`MultiViewSubscriber`
is the thin rclpy adapter: one subscription per topic, stamps from ``header.stamp``.
rclpy is imported only by the adapter, so the core runs anywhere.

Matching rule (deterministic, emits sets in time order): the *earliest* complete set
among the queued messages is emitted, i.e. the smallest ``t`` (a queued stamp) for which
every view has a message in ``[t - slop, t]`` (inclusive); per view the message nearest
``t`` is taken. The emitted messages and everything older in their views are removed,
and a message not newer than the last one emitted for its view is dropped on arrival
(late). Unmatched messages wait, so arrivals may come in any order, across views and
within a view, as long as they are no older than the last emitted set; each view keeps
at most ``queue_size`` messages (the oldest is dropped). Stamps are integer nanoseconds,
so slop edges are exact.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import threading
from typing import Any, Callable, Sequence

__all__ = ["ApproximateTimeSync", "SyncedSet", "MultiViewSubscriber"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SyncedSet:
    """One message per view, stamps within the slop.

    Attributes:
        stamps_ns: per view stamp (ns).
        payloads: per view payload (the ROS messages in the adapter).
    """

    stamps_ns: tuple[int, ...]
    payloads: tuple[Any, ...]

    @property
    def stamp_ns(self) -> int:
        """The set's stamp: the latest of its views (ns)."""
        return max(self.stamps_ns)

    @property
    def spread_ns(self) -> int:
        """Latest minus earliest stamp of the set (ns)."""
        return max(self.stamps_ns) - min(self.stamps_ns)


class ApproximateTimeSync:
    """Approximate-time synchroniser over ``num_views`` streams (see the module docstring).

    Args:
        num_views: number of streams (>= 1).
        queue_size: messages kept per view while waiting for the others (>= 1).
        slop_s: largest stamp spread within a set (seconds, >= 0; inclusive).

    Not thread-safe by itself (the ROS adapter locks around it).
    """

    def __init__(self, num_views: int, queue_size: int = 5, slop_s: float = 0.01) -> None:
        if int(num_views) != num_views or num_views < 1:
            raise ValueError(f"num_views must be an integer >= 1, got {num_views}")
        if int(queue_size) != queue_size or queue_size < 1:
            raise ValueError(f"queue_size must be an integer >= 1, got {queue_size}")
        if not slop_s >= 0:
            raise ValueError(f"slop_s must be >= 0 seconds, got {slop_s}")
        self.num_views = int(num_views)
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(float(slop_s) * 1e9))
        self.reset()

    def reset(self) -> None:
        """Forget every queued message and the drop counters."""
        self._stamps: list[list[int]] = [[] for _ in range(self.num_views)]
        self._payloads: list[list[Any]] = [[] for _ in range(self.num_views)]
        self._emitted_ns: list[int | None] = [None] * self.num_views
        #: per view: messages dropped (late, queue overflow, older than an emitted set, or same-stamp duplicate)
        self.dropped = [0] * self.num_views
        #: sets emitted so far
        self.emitted = 0

    @property
    def newest_emitted_ns(self) -> int | None:
        """The newest stamp of any emitted set's message (None before the first set)."""
        return max((e for e in self._emitted_ns if e is not None), default=None)

    def queued(self, view: int) -> int:
        """Messages waiting in ``view``'s queue."""
        return len(self._stamps[view])

    def add(self, view: int, stamp_ns: int, payload: Any) -> list[SyncedSet]:
        """Queue a message of ``view`` and return the sets it completes (usually 0 or 1)."""
        if not 0 <= int(view) < self.num_views:
            raise ValueError(f"view must be in 0..{self.num_views - 1}, got {view}")
        view, stamp_ns = int(view), int(stamp_ns)
        last = self._emitted_ns[view]
        if last is not None and stamp_ns <= last:
            self.dropped[view] += 1
            logger.debug("view %d: message stamped %d ns is not newer than the last set (%d ns); dropped",
                         view, stamp_ns, last)
            return []
        stamps, payloads = self._stamps[view], self._payloads[view]
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:  # duplicate stamp: keep the newest payload
            payloads[i] = payload
            self.dropped[view] += 1
        else:
            stamps.insert(i, stamp_ns)
            payloads.insert(i, payload)
            if len(stamps) > self.queue_size:
                del stamps[0], payloads[0]
                self.dropped[view] += 1
        return self._match()

    def _match(self) -> list[SyncedSet]:
        out = []
        while all(self._stamps):
            picks = self._earliest_set()
            if picks is None:
                break
            stamps_set = tuple(self._stamps[v][i] for v, i in enumerate(picks))
            payload_set = tuple(self._payloads[v][i] for v, i in enumerate(picks))
            for v, i in enumerate(picks):
                self.dropped[v] += i  # older than the pick: can no longer be emitted
                del self._stamps[v][: i + 1], self._payloads[v][: i + 1]
                self._emitted_ns[v] = stamps_set[v]
            self.emitted += 1
            out.append(SyncedSet(stamps_set, payload_set))
        return out

    def _earliest_set(self) -> list[int] | None:
        """Per view the index of the earliest complete set's message, or None if there is none."""
        t_min = max(stamps[0] for stamps in self._stamps)  # every view needs a message at or before t
        candidates = sorted({t for stamps in self._stamps for t in stamps if t >= t_min})
        for t in candidates:
            picks = []
            for stamps in self._stamps:
                i = bisect.bisect_right(stamps, t) - 1
                if stamps[i] < t - self.slop_ns:
                    break
                picks.append(i)
            else:
                return picks
        return None


class MultiViewSubscriber:
    """Subscribes to N stamped topics and calls ``callback(messages: tuple)`` per synchronised set.

    Messages are checked at the border, before they are queued, so one bad message can neither
    blind the synchroniser nor stay in memory: ``validate(msg)`` (a reason string, or None when
    the message is fine) and, with ``now_ns``, a stamp more than ``future_tolerance_s`` ahead of
    the node's clock (a broken clock upstream: queued, it would make every real message "late"
    for good) are dropped with a throttled warning. If the clock jumps back behind the last
    emitted set (a restarted simulation or bag), the synchroniser starts afresh.

    Args:
        node: the rclpy node that owns the subscriptions.
        topics: ``[(topic, msg_type), ...]``; every message type needs a ``header``.
        callback: called with a tuple of messages in ``topics`` order (from the executor thread).
        qos: QoS profile (or depth) of every subscription.
        queue_size, slop_s: as in :class:`ApproximateTimeSync`.
        callback_group: optional rclpy callback group for the subscriptions.
        now_ns: the node's clock in ns (None: stamps are not checked); 0 = no time yet (not checked).
        future_tolerance_s: largest accepted lead of a stamp over ``now_ns``.
        validate: ``msg -> reason | None`` run on every message before it is queued.
    """

    def __init__(self, node, topics: Sequence[tuple[str, type]], callback: Callable[[tuple], None], qos,
                 queue_size: int = 5, slop_s: float = 0.01, callback_group=None,
                 now_ns: Callable[[], int] | None = None, future_tolerance_s: float = 1.0,
                 validate: Callable[[Any], str | None] | None = None) -> None:
        from .node_support import KeyedThrottle  # rclpy: only the adapter needs it
        from .stamps import stamp_to_ns

        if not topics:
            raise ValueError("MultiViewSubscriber needs at least one topic")
        self._stamp_to_ns = stamp_to_ns
        self.sync = ApproximateTimeSync(len(topics), queue_size=queue_size, slop_s=slop_s)
        self._callback = callback
        self._lock = threading.Lock()
        self._logger = node.get_logger()
        self._topics = [t for t, _ in topics]
        self._now_ns = now_ns
        self._tolerance_ns = int(round(float(future_tolerance_s) * 1e9))
        self._validate = validate
        #: messages refused at the border (invalid, or stamped in the future), per topic index
        self.refused = [0] * len(topics)
        self._throttle = KeyedThrottle(2.0)
        self.subscriptions = [
            node.create_subscription(msg_type, topic, self._make_cb(i), qos, callback_group=callback_group)
            for i, (topic, msg_type) in enumerate(topics)
        ]

    def _refuse(self, view: int, kind: str, reason: str) -> None:
        self.refused[view] += 1
        if self._throttle((view, kind)):  # per topic and kind, not per call site
            self._logger.warning(f"{self._topics[view]}: message dropped: {reason}")

    def _admit(self, view: int, msg, stamp_ns: int) -> bool:
        if self._validate is not None:
            reason = self._validate(msg)
            if reason:
                self._refuse(view, "invalid", reason)
                return False
        now = self._now_ns() if self._now_ns is not None else 0
        if now > 0:
            if stamp_ns > now + self._tolerance_ns:
                self._refuse(view, "future", f"stamped {(stamp_ns - now) * 1e-9:.3f} s in the future of this node's clock "
                                   f"(> {self._tolerance_ns * 1e-9:g} s): a clock upstream is wrong")
                return False
            newest = self.sync.newest_emitted_ns
            if newest is not None and newest > now + self._tolerance_ns:
                self._logger.warning(f"the clock is {(newest - now) * 1e-9:.3f} s behind the last synchronised set "
                                     "(it jumped back): synchronising afresh")
                self.sync.reset()
        return True

    def _make_cb(self, view: int):
        def cb(msg) -> None:
            stamp_ns = self._stamp_to_ns(msg.header.stamp)
            with self._lock:
                if not self._admit(view, msg, stamp_ns):
                    return
                sets = self.sync.add(view, stamp_ns, msg)
            for s in sets:
                self._callback(s.payloads)

        return cb
