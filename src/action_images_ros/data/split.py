"""Deterministic train / held-out split of episodes by episode index."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from .episode import episode_index_from_path


def is_held_out(index: int, held_out_fraction: float) -> bool:
    """Whether episode ``index`` is held out: evenly spaced, ``held_out_fraction`` of all indices.

    Index ``i`` is held out when ``floor((i + 1) f) > floor(i f)``, so the choice
    depends only on the index (adding episodes never moves one between sets).
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    if index < 0:
        raise ValueError(f"episode index must be >= 0, got {index}")
    f = float(held_out_fraction)
    return math.floor((index + 1) * f + 1e-9) > math.floor(index * f + 1e-9)


def split_episodes(paths: Sequence[str | Path], held_out_fraction: float = 0.1) -> tuple[list[Path], list[Path]]:
    """Split episode files into ``(train, held_out)`` by the index in their ``episode_XXXXXX.h5`` name.

    Files with another name use their position in ``paths`` as index. With
    ``held_out_fraction = 0.1`` indices 9, 19, 29, ... are held out.
    """
    train: list[Path] = []
    held: list[Path] = []
    for pos, p in enumerate(map(Path, paths)):
        idx = episode_index_from_path(p)
        (held if is_held_out(pos if idx is None else idx, held_out_fraction) else train).append(p)
    return train, held
