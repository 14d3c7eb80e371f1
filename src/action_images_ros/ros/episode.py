"""The ``episode`` message: a new episode (a trial) starts at ``header.stamp``.

``std_msgs/Header``, transient local: ``stamp`` = the time of the episode's first observation,
``frame_id`` = ``"<episode> seed <seed>"`` (the simulated cell's reset seed; a real cell's
operator may publish ``"<trial> seed 0"``). The executor resets there; the policy numbers its
predictions per episode from it, so the sampler seeds equal those of ``action-images eval``.
"""

from __future__ import annotations

import re

from std_msgs.msg import Header

from .stamps import ns_to_stamp

__all__ = ["episode_header", "parse_episode"]

_FORMAT = re.compile(r"^(\d+) seed (\d+)$")


def episode_header(stamp_ns: int, episode: int, seed: int) -> Header:
    """The message announcing episode ``episode`` (reset seed ``seed``) from ``stamp_ns`` on."""
    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=f"{int(episode)} seed {int(seed)}")


def parse_episode(msg: Header) -> tuple[int | None, int | None]:
    """``(episode, seed)`` of an ``episode`` message, ``(None, None)`` if ``frame_id`` is not in the format."""
    m = _FORMAT.match(msg.frame_id.strip())
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)
