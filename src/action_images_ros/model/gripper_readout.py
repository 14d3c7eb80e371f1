"""The gripper read-out: a learned piece inside the decode of action images.

An action-image model draws each future keyframe's gripper as the B-channel background of its
action images, and the codec reads it back as the background's median. On the four-task cell the
drawn background sat half-way (decoded 0.55 where it should close) at exactly the keyframes that
open or close the gripper, while a regression head on the same network's bottleneck features read
those events right 85-92 % of the time (docs/multitask.md, ``bench/bench_gripper_events.py``).

With ``ModelConfig.gripper_readout`` the poses of the keyframes still come from the codec's
triangulation of the generated action images; only their gripper opening is replaced by this
classifier's probability of "open". It reads every view's mid-block features, average-pooled, and the
current pose, like the action head (:mod:`.action_head`), and outputs one logit per keyframe. Which
denoising step's features is ``ModelConfig.gripper_readout_at``: ``last_step`` (the step that produced
the decoded images; trained on every noise level) or ``first_step`` (pure noise in the generated
streams; trained only on the rows drawn at sigma = 1, ``readout_pure_noise_share``), where there is no
drawn gripper to copy. Trained with a binary cross-entropy against the recorded opening (open = above
0.5) on the scenes whose action images are generated. The last layer starts at zero: an untrained
read-out says 0.5 (undecided).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .action_head import head_mlp, multiview_inputs


class GripperReadout(ModelMixin, ConfigMixin):
    """MLP from pooled multi-view bottleneck features + the current pose to ``F`` gripper logits (open > 0)."""

    @register_to_config
    def __init__(self, feature_channels: int = 128, num_views: int = 3, num_future: int = 4, pool: int = 2,
                 hidden: int = 128) -> None:
        super().__init__()
        self.pooling = torch.nn.AdaptiveAvgPool2d(pool)
        self.mlp = head_mlp(num_views, feature_channels, pool, hidden, num_future)

    def forward(self, features: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``features (B, V, C, h, w)``, ``state (B, 8)`` -> ``(B, F)`` logits of "open"."""
        return self.mlp(multiview_inputs(self.pooling, features, state, self.config.num_views, "gripper read-out"))


def gripper_targets(actions: torch.Tensor) -> torch.Tensor:
    """``(B, F)`` 0/1 targets (1 = open) of future poses ``(B, F, 8)``."""
    return (actions[..., 7] > 0.5).float()
