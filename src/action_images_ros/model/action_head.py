"""The action-head baseline: future poses regressed from the backbone's features.

This is the ablation the Action Images paper runs against its own method: the
same video backbone, the same inputs, but the future end-effector poses come
out of a small head on the denoiser's bottleneck features instead of being
drawn as action images and decoded by triangulation. The head sees every
view's mid-block features (average-pooled to ``pool x pool``), concatenated in
the rig's view order, and the current pose; it outputs, per future keyframe,
the position change (world frame, in units of ``position_scale`` metres), the
rotation change ``R_future R_current^T`` as its first two columns (the 6-D
representation of Zhou et al. 2019, offset from the identity), and the
gripper opening (absolute, offset by 0.5: the state's gripper is the last command
on the robot and the previous one in training, so a change would carry an
offset between the two). The last layer starts at zero, so an untrained head
predicts "no motion" (and a half-open gripper).
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from scipy.spatial.transform import Rotation

from .conditioning import rotation_matrices

#: Per keyframe: position change (3), rotation change as two matrix columns (6), gripper opening - 0.5 (1).
POSE_DIMS = 10
_EYE6 = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # first two columns of the identity, column-major


def _two_columns(R: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` -> ``(..., 6)``: first column then second column."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def _from_two_columns(six: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt of two (not necessarily orthonormal) columns -> ``(..., 3, 3)`` rotation."""
    a, b = six[..., :3], six[..., 3:]
    c0 = a / a.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    b = b - (c0 * b).sum(-1, keepdim=True) * c0
    c1 = b / b.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    return torch.stack([c0, c1, torch.cross(c0, c1, dim=-1)], dim=-1)


def state_features(state: torch.Tensor) -> torch.Tensor:
    """``(B, 8)`` world-frame pose -> ``(B, 10)``: position, rotation's two columns, gripper."""
    return torch.cat([state[:, :3], _two_columns(rotation_matrices(state[:, 3:7])), state[:, 7:8]], dim=-1)


def encode_targets(state: torch.Tensor, future: torch.Tensor, position_scale: float) -> torch.Tensor:
    """Regression targets ``(B, F, 10)`` of future poses ``(B, F, 8)`` relative to ``state (B, 8)``."""
    R_cur = rotation_matrices(state[:, 3:7])[:, None]
    R_fut = rotation_matrices(future[..., 3:7])
    d_rot = _two_columns(R_fut @ R_cur.transpose(-1, -2)) - torch.tensor(_EYE6, device=state.device)
    d_pos = (future[..., :3] - state[:, None, :3]) / position_scale
    d_grip = future[..., 7:8] - 0.5
    return torch.cat([d_pos, d_rot, d_grip], dim=-1)


def decode_outputs(state: np.ndarray, raw: np.ndarray, position_scale: float) -> np.ndarray:
    """Head outputs ``(F, 10)`` for one scene at ``state (8,)`` -> poses ``(F, 8)`` ``[x y z qx qy qz qw g]``."""
    raw_t = torch.as_tensor(np.asarray(raw, dtype=np.float64))
    R_rel = _from_two_columns(raw_t[:, 3:9] + torch.tensor(_EYE6, dtype=torch.float64)).numpy()
    R_cur = Rotation.from_quat(np.asarray(state[3:7], dtype=np.float64)).as_matrix()
    quats = Rotation.from_matrix(R_rel @ R_cur).as_quat()
    pos = np.asarray(state[:3], dtype=np.float64) + position_scale * raw_t[:, :3].numpy()
    grip = np.clip(0.5 + raw_t[:, 9].numpy(), 0.0, 1.0)
    return np.concatenate([pos, quats, grip[:, None]], axis=1)


def multiview_inputs(pooling: torch.nn.Module, features: torch.Tensor, state: torch.Tensor, num_views: int,
                     name: str) -> torch.Tensor:
    """``(B, V * C * p * p + 10)``: every view's pooled bottleneck ``features (B, V, C, h, w)``, in the rig's
    view order, then the current pose ``state (B, 8)`` as :func:`state_features` (the input of a head)."""
    B, V = features.shape[:2]
    if V != num_views:
        raise ValueError(f"the {name} was built for {num_views} views, got {V}")
    pooled = pooling(features.flatten(0, 1).float()).reshape(B, -1)
    return torch.cat([pooled, state_features(state.float())], dim=-1)


def head_mlp(num_views: int, feature_channels: int, pool: int, hidden: int, outputs: int) -> torch.nn.Sequential:
    """The 3-layer MLP of a head over :func:`multiview_inputs`; its last layer starts at zero (an untrained
    head outputs 0: no motion for the action head, undecided for the gripper read-out)."""
    mlp = torch.nn.Sequential(
        torch.nn.Linear(num_views * feature_channels * pool * pool + POSE_DIMS, hidden), torch.nn.SiLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
        torch.nn.Linear(hidden, outputs),
    )
    torch.nn.init.zeros_(mlp[-1].weight)
    torch.nn.init.zeros_(mlp[-1].bias)
    return mlp


class ActionHead(ModelMixin, ConfigMixin):
    """MLP from pooled multi-view bottleneck features + the current pose to ``F`` future poses (as changes)."""

    @register_to_config
    def __init__(self, feature_channels: int = 128, num_views: int = 3, num_future: int = 4, pool: int = 2,
                 hidden: int = 256, position_scale: float = 0.05) -> None:
        super().__init__()
        self.pooling = torch.nn.AdaptiveAvgPool2d(pool)
        self.mlp = head_mlp(num_views, feature_channels, pool, hidden, num_future * POSE_DIMS)

    def forward(self, features: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``features (B, V, C, h, w)``, ``state (B, 8)`` -> ``(B, F, 10)`` pose changes."""
        x = multiview_inputs(self.pooling, features, state, self.config.num_views, "action head")
        return self.mlp(x).reshape(x.shape[0], self.config.num_future, POSE_DIMS)
