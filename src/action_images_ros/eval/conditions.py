"""Named, seeded robustness conditions of the simulated cell.

A condition changes what the cameras see or what the policy is told about them, never the task:

* ``viewpoint_*``: every camera moved by ``camera_shift_m`` in a random direction and turned by
  ``camera_turn_deg`` about a random axis (intrinsics unchanged); the cell renders from the new
  rig and the policy is given it (a re-calibrated cell that was rebuilt a little differently);
* ``calibration_error``: the cell renders from the true rig, the policy is given a rig that is off
  by ``calibration_error_m`` / ``calibration_error_deg`` per camera (a calibration that is wrong);
* ``lighting``, ``table_colour``: the scene's light or colours change (``sim.scene.SceneConfig``).

Random offsets are drawn per episode from ``(condition.seed, episode seed)``, so every episode of a
run sees another rig and the same seeds give the same rigs on every machine.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..geometry import Camera, perturb_rig

__all__ = ["Condition", "CONDITIONS", "get_condition", "perturb_rig", "episode_rigs"]


@dataclasses.dataclass(frozen=True)
class Condition:
    """One robustness setting; see the module docstring. All sizes are per camera."""

    name: str
    description: str
    seed: int = 0
    camera_shift_m: float = 0.0
    camera_turn_deg: float = 0.0
    calibration_error_m: float = 0.0
    calibration_error_deg: float = 0.0
    scene: dict = dataclasses.field(default_factory=dict)  #: ``SceneConfig`` fields changed

    def __post_init__(self) -> None:
        for name in ("camera_shift_m", "camera_turn_deg", "calibration_error_m", "calibration_error_deg"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"condition {self.name!r}: {name} must be finite and >= 0, got {v}")

    @property
    def moves_cameras(self) -> bool:
        return self.camera_shift_m > 0 or self.camera_turn_deg > 0

    @property
    def miscalibrated(self) -> bool:
        return self.calibration_error_m > 0 or self.calibration_error_deg > 0


CONDITIONS: dict[str, Condition] = {c.name: c for c in (
    Condition("in_domain", "the training cell"),
    Condition("viewpoint_small",
              "every camera moved 3 cm and turned 3 deg (random directions); policy told the new rig",
              seed=1, camera_shift_m=0.03, camera_turn_deg=3.0),
    Condition("viewpoint_large",
              "every camera moved 6 cm and turned 6 deg (random directions); policy told the new rig",
              seed=2, camera_shift_m=0.06, camera_turn_deg=6.0),
    Condition("lighting", "lights at 55 % intensity, key light from the left side",
              scene={"light_scale": 0.55, "key_light_dir": (0.2, -1.0, -0.6)}),
    Condition("table_colour", "grey-blue table top, dark floor",
              scene={"table_rgba": (0.45, 0.50, 0.58, 1.0), "floor_rgba": (0.18, 0.18, 0.20, 1.0)}),
    Condition("calibration_error", "cameras where they were trained; the policy's rig off by 3 mm and 0.3 deg",
              seed=4, calibration_error_m=0.003, calibration_error_deg=0.3),
)}


def get_condition(name: str) -> Condition:
    """The named condition (ValueError listing the names otherwise)."""
    if name not in CONDITIONS:
        raise ValueError(f"unknown condition {name!r}; conditions are {', '.join(CONDITIONS)}")
    return CONDITIONS[name]


def episode_rigs(condition: Condition, cameras: list[Camera], episode_seed: int) -> tuple[list[Camera], list[Camera]]:
    """``(rendered, given)`` rigs of one episode: where the cell's cameras are, and what the policy
    is told about them, for ``cameras`` (the cell's own rig) under ``condition``."""
    rng = np.random.default_rng([int(condition.seed), int(episode_seed)])
    rendered = perturb_rig(cameras, condition.camera_shift_m, condition.camera_turn_deg, rng) \
        if condition.moves_cameras else list(cameras)
    given = perturb_rig(rendered, condition.calibration_error_m, condition.calibration_error_deg, rng) \
        if condition.miscalibrated else rendered
    return rendered, given
