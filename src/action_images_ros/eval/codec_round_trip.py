"""Round-trip accuracy measurements of the action-image codec (used by bench/ and tests)."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from ..codec import ActionImageCodec
from ..geometry import Camera, rotation_angle_deg

#: The reference workspace of the issue: 0.5 x 0.5 x 0.4 m in front of the robot base.
WORKSPACE_MIN = np.array([0.30, -0.25, 0.05])
WORKSPACE_MAX = np.array([0.80, 0.25, 0.45])


def reference_rig(width: int = 128, height: int = 128) -> list[Camera]:
    """Three views ~1 m from the workspace centre: front, left and right shoulder (RLBench-like)."""
    centre = (WORKSPACE_MIN + WORKSPACE_MAX) / 2
    eyes = {"front": (1.45, 0.0, 0.75), "left_shoulder": (0.25, 0.85, 0.85), "right_shoulder": (0.25, -0.85, 0.85)}
    return [Camera.look_at(eye, centre, 55.0, width, height, name=n) for n, eye in eyes.items()]


def random_actions(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 8)`` uniformly random positions in the workspace, random rotations, binary gripper."""
    pos = rng.uniform(WORKSPACE_MIN, WORKSPACE_MAX, size=(n, 3))
    quat = Rotation.random(n, random_state=rng.integers(2**31)).as_quat()
    grip = rng.integers(0, 2, size=(n, 1)).astype(np.float64)
    return np.concatenate([pos, quat, grip], axis=1)


@dataclasses.dataclass
class RoundTripErrors:
    position_mm: np.ndarray
    rotation_deg: np.ndarray
    gripper_correct: np.ndarray
    confidence: np.ndarray

    def summary(self) -> dict:
        return {
            "pos_median_mm": float(np.median(self.position_mm)),
            "pos_p95_mm": float(np.percentile(self.position_mm, 95)),
            "rot_median_deg": float(np.median(self.rotation_deg)),
            "rot_p95_deg": float(np.percentile(self.rotation_deg, 95)),
            "gripper_accuracy": float(np.mean(self.gripper_correct)),
            "confidence_median": float(np.median(self.confidence)),
        }


def round_trip(
    codec: ActionImageCodec,
    cameras: list[Camera],
    actions: np.ndarray,
    noise_sigma: float = 0.0,
    intensity_jitter: float = 0.0,
    rng: np.random.Generator | None = None,
) -> RoundTripErrors:
    """Encode, optionally corrupt (additive Gaussian noise, per-blob intensity scale), decode, compare."""
    rng = rng or np.random.default_rng(0)
    imgs = codec.encode(actions, cameras)
    if intensity_jitter > 0:
        scale = rng.uniform(1 - intensity_jitter, 1 + intensity_jitter, size=imgs.shape[:2] + (1, 1, 3))
        imgs = imgs * scale.astype(np.float32)
    if noise_sigma > 0:
        imgs = imgs + rng.normal(0.0, noise_sigma, size=imgs.shape).astype(np.float32)
    dec, conf = codec.decode(imgs, cameras)
    return RoundTripErrors(
        position_mm=1000 * np.linalg.norm(dec[:, :3] - actions[:, :3], axis=1),
        rotation_deg=rotation_angle_deg(dec[:, 3:7], actions[:, 3:7]),
        gripper_correct=(dec[:, 7] > 0.5) == (actions[:, 7] > 0.5),
        confidence=conf,
    )
