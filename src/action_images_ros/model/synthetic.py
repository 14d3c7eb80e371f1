"""A synthetic reaching task with the dataset's item layout, for tests and learning checks.

A cube (a square on the table) and a top-down gripper (a disc with a bar along
the tool x axis) are rendered into ``V`` calibrated views. From a random
current pose the gripper moves at constant speed towards a pre-grasp pose above
the cube, turning to the cube's yaw, and closes once it is there. Items carry
exactly the keys of the training dataset:

``cond_rgb (V,3,H,W)``, ``cond_action (V,3,H,W)``, ``future_rgb (V,F,3,H,W)``,
``future_action (V,F,3,H,W)`` (all float32 in [0, 1]), ``actions (F,8)``,
``state (8,)``, ``K (V,3,3)``, ``T_world_cam (V,4,4)``.

Each item is generated from ``(seed, index)`` alone, so a dataset is
reproducible and costs no disk.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..codec import ActionImageCodec
from ..eval.codec_round_trip import reference_rig
from ..geometry import Camera

#: Region of the table where cubes lie and of the air where the gripper starts (metres, base frame).
CUBE_MIN, CUBE_MAX = np.array([0.38, -0.18]), np.array([0.72, 0.18])
START_MIN, START_MAX = np.array([0.32, -0.24, 0.15]), np.array([0.78, 0.24, 0.42])
CUBE_HALF = 0.025  #: cube half size (m)
PREGRASP_HEIGHT = 0.08  #: goal height above the cube centre (m)
SPEED = 0.04  #: gripper travel per future keyframe (m)
TABLE_Z = 0.0


def top_down_quat(yaw: np.ndarray) -> np.ndarray:
    """Quaternions ``(..., 4)`` xyzw of a gripper pointing down (tool z = -world z) turned by ``yaw`` (rad)."""
    down = Rotation.from_matrix(np.diag([1.0, -1.0, -1.0]))
    return (Rotation.from_euler("z", np.atleast_1d(yaw)[:, None]) * down).as_quat()


class SyntheticReachDataset(torch.utils.data.Dataset):
    """``length`` random reaching clips seen by a fixed rig of ``num_views`` cameras.

    Args:
        length: number of items.
        image_size: square image side (pixels).
        num_future: future keyframes per clip.
        num_views: 2 or 3 views of the reference rig (front, left, right shoulder).
        seed: base seed; item ``i`` uses ``(seed, i)``.
        codec: action-image codec (default: ``ActionImageCodec(image_size, image_size)``).
    """

    def __init__(self, length: int, image_size: int = 64, num_future: int = 4, num_views: int = 3,
                 seed: int = 0, codec: ActionImageCodec | None = None) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        if not 2 <= num_views <= 3:
            raise ValueError(f"num_views must be 2 or 3 (reference rig), got {num_views}")
        self.length = int(length)
        self.size = int(image_size)
        self.num_future = int(num_future)
        self.seed = int(seed)
        self.cameras: list[Camera] = reference_rig(self.size, self.size)[:num_views]
        self.codec = codec or ActionImageCodec(self.size, self.size)
        self._K = np.stack([c.K for c in self.cameras]).astype(np.float32)
        self._T = np.stack([c.T_world_cam for c in self.cameras]).astype(np.float32)
        self._bg = self._background()

    def __len__(self) -> int:
        return self.length

    # ------------------------------------------------------------------ scene
    def sample_episode(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cube ``(x, y, yaw)``, current pose ``(8,)`` and future poses ``(F, 8)``."""
        cube = np.array([*rng.uniform(CUBE_MIN, CUBE_MAX), rng.uniform(-np.pi / 4, np.pi / 4)])
        p0 = rng.uniform(START_MIN, START_MAX)
        yaw0 = rng.uniform(-np.pi / 2, np.pi / 2)
        goal = np.array([cube[0], cube[1], TABLE_Z + CUBE_HALF + PREGRASP_HEIGHT])
        # The cube looks the same every 90 degrees: turn the short way.
        dyaw = (cube[2] - yaw0 + np.pi / 4) % (np.pi / 2) - np.pi / 4
        d = goal - p0
        dist = max(np.linalg.norm(d), 1e-9)
        k = np.arange(1, self.num_future + 1)
        alpha = np.minimum(1.0, k * SPEED / dist)
        pos = p0 + alpha[:, None] * d
        yaw = yaw0 + alpha * dyaw
        grip = np.where(alpha >= 1.0, 0.0, 1.0)
        future = np.concatenate([pos, top_down_quat(yaw), grip[:, None]], axis=1)
        state = np.concatenate([p0, top_down_quat(yaw0)[0], [1.0]])
        return cube, state, future

    def _background(self) -> np.ndarray:
        """Per-view ``(V, H, W, 3)`` table-and-wall background with a projected grid (fixed rig)."""
        S = self.size
        out = np.empty((len(self.cameras), S, S, 3), np.float32)
        for v, cam in enumerate(self.cameras):
            uv = np.stack(np.meshgrid(np.arange(S), np.arange(S)), axis=-1).astype(np.float64)
            o, d = cam.pixel_rays(uv)
            s = (TABLE_Z - o[2]) / np.where(np.abs(d[..., 2]) > 1e-6, d[..., 2], -1e-6)
            hit = o + s[..., None] * d
            on_table = (s > 0) & (np.abs(hit[..., 1]) < 0.5) & (hit[..., 0] > 0.0) & (hit[..., 0] < 1.0)
            grid = ((np.floor(hit[..., 0] / 0.1) + np.floor(hit[..., 1] / 0.1)) % 2 == 0)
            img = np.empty((S, S, 3), np.float32)
            img[:] = (0.78, 0.80, 0.84)  # wall
            table = np.where(grid[..., None], (0.62, 0.55, 0.47), (0.56, 0.50, 0.43))
            img[on_table] = table[on_table]
            out[v] = img
        return out

    def render(self, cube: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """RGB frames ``(V, T, 3, H, W)`` in [0, 1] of the cube and the gripper at ``poses (T, 8)``."""
        S, sub = self.size, 4  # cv2 sub-pixel drawing: coordinates x 2**sub
        scale = float(1 << sub)
        c, s = np.cos(cube[2]), np.sin(cube[2])
        corners = np.array([[cube[0] + CUBE_HALF * (c * a - s * b), cube[1] + CUBE_HALF * (s * a + c * b),
                             TABLE_Z + 2 * CUBE_HALF] for a, b in ((1, 1), (-1, 1), (-1, -1), (1, -1))])
        base = corners - np.array([0.0, 0.0, 2 * CUBE_HALF])
        R = Rotation.from_quat(poses[:, 3:7]).as_matrix()
        frames = np.empty((len(self.cameras), len(poses), S, S, 3), np.float32)
        for v, cam in enumerate(self.cameras):
            f = cam.K[0, 0]
            top_uv, _, _ = cam.project(corners)
            bot_uv, _, _ = cam.project(base)
            for t, pose in enumerate(poses):
                img = self._bg[v].copy()
                for face in range(4):  # cube sides, then top
                    quad = np.stack([bot_uv[face], bot_uv[(face + 1) % 4], top_uv[(face + 1) % 4], top_uv[face]])
                    cv2.fillConvexPoly(img, np.round(quad * scale).astype(np.int32), (0.55, 0.08, 0.08),
                                       cv2.LINE_AA, sub)
                cv2.fillConvexPoly(img, np.round(top_uv * scale).astype(np.int32), (0.85, 0.15, 0.12),
                                   cv2.LINE_AA, sub)
                p = pose[:3]
                ends = np.stack([p - 0.04 * R[t, :, 0], p + 0.04 * R[t, :, 0], p])
                uv, depth, front = cam.project(ends)
                if front.all():
                    width = 0.012 + 0.02 * pose[7]  # fingers spread when open
                    thick = max(1, int(round(f * width / depth[2])))
                    a, b = (np.round(uv[:2] * scale).astype(np.int32)).tolist()
                    cv2.line(img, tuple(a), tuple(b), (0.15, 0.15, 0.18), thick, cv2.LINE_AA, sub)
                    r = max(1, int(round(scale * f * 0.018 / depth[2])))
                    centre = tuple(np.round(uv[2] * scale).astype(np.int32).tolist())
                    cv2.circle(img, centre, r, (0.25, 0.45, 0.85), -1, cv2.LINE_AA, sub)
                frames[v, t] = img
        return np.clip(frames, 0.0, 1.0).transpose(0, 1, 4, 2, 3)

    # ------------------------------------------------------------------ items
    def item_from(self, cube: np.ndarray, state: np.ndarray, future: np.ndarray) -> dict[str, np.ndarray]:
        """The dataset item for a given scene (see module docstring for keys and shapes)."""
        rgb = self.render(cube, np.concatenate([state[None], future]))
        act = self.codec.encode(np.concatenate([state[None], future]), self.cameras).transpose(0, 1, 4, 2, 3)
        return {
            "cond_rgb": rgb[:, 0], "cond_action": np.ascontiguousarray(act[:, 0]),
            "future_rgb": np.ascontiguousarray(rgb[:, 1:]), "future_action": np.ascontiguousarray(act[:, 1:]),
            "actions": future.astype(np.float32), "state": state.astype(np.float32),
            "K": self._K.copy(), "T_world_cam": self._T.copy(),
        }

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, int(index)])
        return self.item_from(*self.sample_episode(rng))
