"""Tasks of the simulated cell, by name."""

from __future__ import annotations

from .base import Task
from .pick_cube import PickCube
from .place_cube import PlaceCube
from .reach_target import ReachTarget
from .stack_cubes import StackCubes

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (ReachTarget, PickCube, PlaceCube, StackCubes)}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def make_task(name: str) -> Task:
    """A fresh task instance; unknown names raise ValueError listing the valid ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}")
    return TASKS[name]()
