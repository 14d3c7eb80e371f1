"""Exchange between views at the UNet's bottleneck.

The pixel-space UNet draws each view's future action images alone (views are folded into the batch), so
nothing makes the views agree on one 3-D pose: where the future is ambiguous (when to start carrying
the cube, how far) each view draws its own guess, the decoder's triangulation finds them inconsistent,
drops a view or lowers the confidence, and the executor holds (issue 17's "no exchange between views";
`docs/multitask.md`).

:class:`ViewMixer` is one pre-norm self-attention layer over the mid-block tokens of all views of a scene
(``V x h x w`` tokens; 3 x 8 x 8 = 192 at 64 px), with learned view and position embeddings, added as a
residual to the mid-block output before the up path reads it. The view's rays (Plücker channels) are
already in those features, so attention can relate a point in one view to its epipolar line in another.
Its output projection starts at zero: a mixer added to a trained model leaves its outputs unchanged until
fine-tuning moves it (``train --init-from`` with ``view_mixer: true``). It runs inside the UNet call
(``UNet2DBackbone.eager_network`` as a forward hook on the mid block; the exported and compiled runtimes
through ``runtimes.UNetWithFeatures``), so the gripper read-out and the action head read mixed features.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


class ViewMixer(ModelMixin, ConfigMixin):
    """Residual self-attention over all views' bottleneck tokens of each scene."""

    @register_to_config
    def __init__(self, channels: int = 128, num_views: int = 3, tokens_per_view: int = 64, heads: int = 4) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} must be divisible by heads {heads}")
        self.norm = torch.nn.LayerNorm(channels)
        self.view_embedding = torch.nn.Parameter(0.02 * torch.randn(num_views, 1, channels))
        self.position_embedding = torch.nn.Parameter(0.02 * torch.randn(1, tokens_per_view, channels))
        # Plain layers and scaled_dot_product_attention, not nn.MultiheadAttention: its eval-mode fast path
        # computes differently from its training path under autocast, and the ONNX export should see one graph.
        self.qkv = torch.nn.Linear(channels, 3 * channels)
        self.out_proj = torch.nn.Linear(channels, channels)
        torch.nn.init.zeros_(self.out_proj.weight)  # a fresh mixer changes nothing
        torch.nn.init.zeros_(self.out_proj.bias)

    def forward(self, mid: torch.Tensor) -> torch.Tensor:
        """``mid (B*V, C, h, w)`` (views of a scene consecutive, as the backbone folds them) -> the same
        shape, each view's tokens having attended to every view's."""
        V, L = self.config.num_views, self.config.tokens_per_view
        N, C, h, w = mid.shape
        if N % V or h * w != L:
            raise ValueError(f"the view mixer was built for {V} views of {L} bottleneck tokens; got a batch of "
                             f"{N} images of {h}x{w} tokens (a policy must use the views the model was trained on)")
        tokens = mid.reshape(N // V, V, C, L).transpose(2, 3)  # (B, V, L, C)
        x = self.norm((tokens + self.view_embedding + self.position_embedding).reshape(N // V, V * L, C))
        heads = self.config.heads
        q, k, v = self.qkv(x).reshape(N // V, V * L, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
        mixed = torch.nn.functional.scaled_dot_product_attention(q, k, v)  # (B, heads, V*L, C/heads)
        mixed = self.out_proj(mixed.transpose(1, 2).reshape(N // V, V * L, C))
        return mid + mixed.reshape(N // V, V, L, C).transpose(2, 3).reshape(N, C, h, w).to(mid.dtype)
