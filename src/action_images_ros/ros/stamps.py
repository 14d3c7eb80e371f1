"""``builtin_interfaces/Time`` <-> integer nanoseconds (exact; the synchronizer works in ns)."""

from __future__ import annotations

from builtin_interfaces.msg import Time

__all__ = ["stamp_to_ns", "ns_to_stamp", "MAX_STAMP_SEC"]

#: ``builtin_interfaces/Time.sec`` is an int32
MAX_STAMP_SEC = 2**31 - 1


def stamp_to_ns(stamp: Time) -> int:
    """``header.stamp`` -> nanoseconds since the epoch of its clock."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Nanoseconds (>= 0) -> ``builtin_interfaces/Time``."""
    ns = int(ns)
    if ns < 0:
        raise ValueError(f"a ROS stamp cannot be negative, got {ns} ns")
    if ns // 1_000_000_000 > MAX_STAMP_SEC:
        raise ValueError(f"a ROS stamp holds at most {MAX_STAMP_SEC} s (int32 seconds, 2038-01-19), got {ns} ns")
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
