"""The episode (trial) lifecycle shared by the simulated cell and a real cell's operator (no ROS).

An episode is *running* (the arm may be commanded) or *stopped* (the executor holds; nothing is
predicted or commanded until the next start). Three transitions, the same on every cell:

* ``start``: the next episode, with the next seed (``seed + 1``, or one given); a running episode
  is stopped first;
* ``reset``: the current episode again, same seed (a retry: the objects are put back);
* ``stop``: the running episode ends where it is.

:class:`EpisodeLifecycle` numbers the episodes and picks the seeds; the cell does what a
transition means for its world (the simulator resets MuJoCo; on a real cell the operator has
put the objects back before calling ``start``). ``ros/episode.py`` serves the transitions as
the ``episode/start``, ``episode/stop`` and ``episode/reset`` services and announces each on
the ``episode`` topic.
"""

from __future__ import annotations

import dataclasses
import re

__all__ = ["EpisodeLifecycle", "EpisodeState", "EpisodeError", "EpisodeMark", "mark_text", "parse_mark"]

_RUNNING = re.compile(r"^(\d+) seed (\d+)$")
_STOPPED = re.compile(r"^(-?\d+) stopped$")  # -1: no episode started yet


class EpisodeError(RuntimeError):
    """A transition that does not apply in the current state (e.g. ``stop`` with nothing running)."""


@dataclasses.dataclass(frozen=True)
class EpisodeState:
    """Where the lifecycle stands.

    Attributes:
        episode: episode number (0 for the first; -1 before any).
        seed: the episode's seed (the simulator's reset seed; a real cell's trial seed).
        running: whether the episode is running (False: stopped, or none yet).
    """

    episode: int
    seed: int
    running: bool

    def as_dict(self) -> dict:
        return {"episode": self.episode, "seed": self.seed, "state": "running" if self.running else "stopped"}


class EpisodeLifecycle:
    """Episode numbers, seeds and the running / stopped state (see the module docstring).

    Args:
        first_seed: seed of the first episode (>= 0).
    """

    def __init__(self, first_seed: int = 0) -> None:
        if int(first_seed) != first_seed or first_seed < 0:
            raise ValueError(f"first_seed must be an integer >= 0, got {first_seed}")
        self._state = EpisodeState(-1, int(first_seed) - 1, False)

    @property
    def state(self) -> EpisodeState:
        return self._state

    @property
    def running(self) -> bool:
        return self._state.running

    def start(self, seed: int | None = None) -> EpisodeState:
        """The next episode, running (seed: the previous + 1 unless given)."""
        if seed is not None and (int(seed) != seed or seed < 0):
            raise EpisodeError(f"seed must be an integer >= 0, got {seed}")
        nxt = self._state.seed + 1 if seed is None else int(seed)
        self._state = EpisodeState(self._state.episode + 1, nxt, True)
        return self._state

    def reset(self) -> EpisodeState:
        """The current episode's seed again, as a new running episode (a retry)."""
        if self._state.episode < 0:
            raise EpisodeError("no episode to reset yet: start one first")
        self._state = EpisodeState(self._state.episode + 1, self._state.seed, True)
        return self._state

    def stop(self) -> EpisodeState:
        """The running episode stops (an error when none is running)."""
        if not self._state.running:
            raise EpisodeError(f"episode {self._state.episode} is not running" if self._state.episode >= 0
                               else "no episode has started")
        self._state = dataclasses.replace(self._state, running=False)
        return self._state


@dataclasses.dataclass(frozen=True)
class EpisodeMark:
    """A transition as announced (``ros/episode.py``, recorded in bags): episode number, seed (None when
    stopped), running or not."""

    episode: int | None
    seed: int | None
    running: bool


def mark_text(episode: int, seed: int, running: bool = True) -> str:
    """The announcement's text: ``"<episode> seed <seed>"`` (running) or ``"<episode> stopped"``."""
    return f"{int(episode)} seed {int(seed)}" if running else f"{int(episode)} stopped"


def parse_mark(text: str) -> EpisodeMark:
    """The :class:`EpisodeMark` of an announcement's text; an unknown text reads as a running episode
    with no number (a plain "new trial" from any publisher)."""
    text = text.strip()
    m = _RUNNING.match(text)
    if m:
        return EpisodeMark(int(m.group(1)), int(m.group(2)), True)
    m = _STOPPED.match(text)
    if m:
        return EpisodeMark(int(m.group(1)), None, False)
    return EpisodeMark(None, None, True)
