"""A synthetic episode for the data tests: reference rig, a reach-and-lift path, a bright spot drawn at the EE."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from action_images_ros.eval.codec_round_trip import reference_rig
from action_images_ros.data.episode import Episode


def synthetic_poses(steps: int) -> np.ndarray:
    """``(steps, 8)`` poses: move 25 cm while turning 90 deg about z, close the gripper at 60 %."""
    t = np.linspace(0.0, 1.0, steps)
    start, end = np.array([0.45, -0.15, 0.35]), np.array([0.60, 0.10, 0.15])
    pos = start + t[:, None] * (end - start)
    down = Rotation.from_matrix(np.diag([1.0, -1.0, -1.0]))
    slerp = Slerp([0, 1], Rotation.concatenate([down, Rotation.from_euler("z", 90, degrees=True) * down]))
    quat = slerp(t).as_quat()
    grip = (t < 0.6).astype(np.float64)
    return np.concatenate([pos, quat, grip[:, None]], axis=1)


def synthetic_episode(steps: int = 12, size: int = 96, seed: int = 7, success: bool = True,
                      depth: bool = False) -> Episode:
    """An :class:`Episode` whose RGB shows a white 3x3 spot where the EE position projects."""
    cams = reference_rig(size, size)
    poses = synthetic_poses(steps)
    rng = np.random.default_rng(seed)
    rgb = rng.integers(40, 90, size=(steps, len(cams), size, size, 3), dtype=np.uint8)
    for v, cam in enumerate(cams):
        uv, _, _ = cam.project(poses[:, :3])
        for t, (u, w) in enumerate(np.round(uv).astype(int)):
            rgb[t, v, w - 1:w + 2, u - 1:u + 2] = 255
    action = np.concatenate([poses[1:], poses[-1:]])
    return Episode(
        rgb=rgb,
        ee_pose=poses,
        action=action,
        joint_positions=rng.normal(size=(steps, 7)),
        gripper=poses[:, 7].copy(),
        time=np.arange(steps) * 0.05,
        cameras=cams,
        task="reach_target",
        instruction="reach the red target",
        seed=seed,
        success=success,
        control_dt=0.05,
        depth=rng.uniform(0.5, 2.0, size=(steps, len(cams), size, size)).astype(np.float32) if depth else None,
    )
