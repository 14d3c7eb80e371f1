"""The episode interface of a cell: the ``episode`` topic and the ``episode/{start,stop,reset}`` services.

``episode`` (``std_msgs/Header``, transient local) announces every transition of
``control.episode_lifecycle``: ``stamp`` = when it takes effect (a start: the time of the
episode's first observation, or the operator's call on a real cell), ``frame_id`` =
``"<episode> seed <seed>"`` for a running episode, ``"<episode> stopped"`` when it stopped
(``"-1 stopped"``: none has started yet, the arm waits for the first start). The executor resets on a start (nothing predicted in the
previous episode acts in the new one) and holds while stopped; the policy numbers its
predictions per episode, so the sampler seeds equal those of ``action-images eval``; a recorder
cuts its episodes there.

The services (``std_srvs/Trigger``, answered with JSON; served by ``sim_node`` in the simulated
cell and by ``episode_node`` on a real one, so the harness, the recorder and an operator use the
same calls): ``episode/start`` (the next episode, next seed), ``episode/reset`` (the current
episode again, same seed), ``episode/stop`` (hold where it is). Every call is answered: a
transition that does not apply, or a cell that fails, answers ``success: false`` with the reason.
"""

from __future__ import annotations

import json
from typing import Callable

from std_msgs.msg import Header
from std_srvs.srv import Trigger

from ..control.episode_lifecycle import EpisodeError, EpisodeMark, EpisodeState, mark_text, parse_mark
from .qos import service_qos
from .stamps import ns_to_stamp

__all__ = ["episode_header", "parse_episode", "EpisodeMark", "EpisodeServices", "TRANSITIONS"]

TRANSITIONS = ("start", "stop", "reset")


def episode_header(stamp_ns: int, episode: int, seed: int, running: bool = True) -> Header:
    """The message announcing episode ``episode`` running from ``stamp_ns`` (or stopped there)."""
    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=mark_text(episode, seed, running))


def parse_episode(msg: Header) -> EpisodeMark:
    """The :class:`EpisodeMark` of an ``episode`` message (``episode_lifecycle.parse_mark``)."""
    return parse_mark(msg.frame_id)


class EpisodeServices:
    """Serves ``episode/start``, ``episode/stop`` and ``episode/reset`` on ``node``.

    Args:
        node: the cell's node.
        handlers: per transition, a callable returning ``(EpisodeState, extra dict)``; raising
            :class:`EpisodeError`, ``ValueError`` or ``RuntimeError`` answers ``success: false`` with
            the message (a cell's handler turns its own failures into one of these). The answer's JSON
            is the state plus ``extra``.
        callback_group: for the three services.
    """

    def __init__(self, node, handlers: dict[str, Callable[[], tuple[EpisodeState, dict]]],
                 callback_group=None) -> None:
        if set(handlers) != set(TRANSITIONS):
            raise ValueError(f"handlers for {sorted(TRANSITIONS)} needed, got {sorted(handlers)}")
        self._node = node
        self.services = [node.create_service(Trigger, f"episode/{name}", self._make_cb(name, handlers[name]),
                                             qos_profile=service_qos(), callback_group=callback_group)
                         for name in TRANSITIONS]

    def _make_cb(self, name: str, handler):
        def cb(request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
            try:
                state, extra = handler()
            except (EpisodeError, ValueError, RuntimeError) as exc:
                response.success, response.message = False, json.dumps({"ok": False, "reason": f"{name}: {exc}"})
                self._node.get_logger().warning(f"episode/{name} refused: {exc}")
                return response
            response.success = True
            response.message = json.dumps({"ok": True, **state.as_dict(), **extra})
            self._node.get_logger().info(f"episode/{name}: {response.message}")
            return response

        return cb
