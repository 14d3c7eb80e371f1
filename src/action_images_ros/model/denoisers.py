"""Builders of the diffusers networks behind the two model configurations.

* ``unet2d``: a pixel-space :class:`diffusers.UNet2DModel`; one view is one
  sample, its future RGB and action-image keyframes are stacked as channels.
* ``wan``: a :class:`diffusers.WanTransformer3DModel` on
  :class:`diffusers.AutoencoderKLWan` latents, either loaded from a local
  pretrained folder or randomly initialised as a miniature.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .conditioning import NUM_FLAGS, NUM_RAY_CHANNELS, NUM_STATE_CHANNELS
from .config import ModelConfig

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- UNet2D
def unet_channels(cfg: ModelConfig) -> tuple[int, int]:
    """``(in_channels, out_channels)`` of the per-view UNet.

    Input per view: noisy future RGB ``(F*3)`` | noisy future action images
    ``(F*3)`` | current RGB ``(3)`` | current action image ``(3)`` | Plücker
    rays ``(6, optional)`` | current pose in the camera frame ``(10, optional)`` |
    instruction words (multi-hot, optional) | instruction grounding map (1, optional) | mode
    flags ``(3)``. Output: future RGB and action
    images ``(F*6)``.
    """
    f = cfg.num_future
    cin = (6 * f + 6 + (NUM_RAY_CHANNELS if cfg.use_plucker else 0)
           + (NUM_STATE_CHANNELS if cfg.use_state else 0) + cfg.num_instruction_channels + cfg.num_grounding_maps
           + NUM_FLAGS)
    return cin, 6 * f


def build_unet2d(cfg: ModelConfig) -> "torch.nn.Module":
    """A randomly initialised :class:`diffusers.UNet2DModel` for ``cfg`` (attention on the lowest levels only)."""
    from diffusers import UNet2DModel

    cin, cout = unet_channels(cfg)
    n = len(cfg.block_out_channels)
    attn = [i >= n - cfg.attention_levels for i in range(n)]
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
    net = UNet2DModel(
        sample_size=cfg.image_size,
        in_channels=cin,
        out_channels=cout,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        down_block_types=down,
        up_block_types=up,
        norm_num_groups=cfg.norm_num_groups,
        attention_head_dim=8,
    )
    if cfg.residual_to_current:
        # The output is a change w.r.t. the current frame: start from "no change".
        torch.nn.init.zeros_(net.conv_out.weight)
        torch.nn.init.zeros_(net.conv_out.bias)
    return net


# --------------------------------------------------------------------------- Wan
def wan_extra_channels(cfg: ModelConfig) -> int:
    """Conditioning channels concatenated to every Wan latent frame: rays (6, optional), pose in the
    camera frame (10, optional), instruction words (optional), is_action, given, dropped."""
    return ((NUM_RAY_CHANNELS if cfg.use_plucker else 0) + (NUM_STATE_CHANNELS if cfg.use_state else 0)
            + cfg.num_instruction_channels + cfg.num_grounding_maps + 3)


def build_wan_miniature(cfg: ModelConfig) -> tuple["torch.nn.Module", "torch.nn.Module"]:
    """A randomly initialised miniature ``(WanTransformer3DModel, AutoencoderKLWan)`` from ``cfg.wan``."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    w = cfg.wan
    vae = AutoencoderKLWan(
        base_dim=w.vae_base_dim,
        z_dim=w.vae_z_dim,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=w.vae_num_res_blocks,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * w.vae_z_dim,
        latents_std=[1.0] * w.vae_z_dim,
    )
    transformer = WanTransformer3DModel(
        patch_size=w.patch_size,
        num_attention_heads=w.num_attention_heads,
        attention_head_dim=w.attention_head_dim,
        in_channels=w.vae_z_dim + wan_extra_channels(cfg),
        out_channels=w.vae_z_dim,
        text_dim=w.text_dim,
        freq_dim=w.freq_dim,
        ffn_dim=w.ffn_dim,
        num_layers=w.num_layers,
        rope_max_seq_len=1024,
    )
    return transformer, vae


def widen_patch_embedding(transformer: "torch.nn.Module", in_channels: int) -> None:
    """Give a Wan transformer ``in_channels`` inputs, keeping the pretrained ones exact.

    The pretrained weights are copied into a zero-initialised wider
    ``Conv3d`` (so the extra conditioning channels start with no effect) and
    the config is updated with ``register_to_config(in_channels=...)`` so
    ``save_pretrained`` / ``from_pretrained`` reproduce the widened model.
    ``from_pretrained(..., ignore_mismatched_sizes=True)`` would instead
    re-initialise the whole embedding.
    """
    old = transformer.patch_embedding
    if in_channels < old.in_channels:
        raise ValueError(f"cannot narrow the patch embedding from {old.in_channels} to {in_channels} channels")
    if in_channels == old.in_channels:
        return
    new = torch.nn.Conv3d(in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                          device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    transformer.patch_embedding = new
    transformer.register_to_config(in_channels=in_channels)


def load_wan_pretrained(cfg: ModelConfig) -> tuple["torch.nn.Module", "torch.nn.Module"]:
    """Load ``(transformer, vae)`` from the local folder ``cfg.wan.pretrained`` and widen its input.

    Raises:
        FileNotFoundError: the folder or its ``transformer/`` / ``vae/`` subfolders are missing.
        ImportError: ``accelerate`` (needed by Wan's ``from_pretrained``) is not installed.
    """
    try:
        import accelerate  # noqa: F401
    except ImportError as exc:  # pragma: no cover - accelerate is a pinned requirement
        raise ImportError("loading a pretrained Wan model needs `accelerate`: pip install accelerate") from exc
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    root = Path(cfg.wan.pretrained).expanduser()
    for sub in ("transformer", "vae"):
        if not (root / sub / "config.json").is_file():
            raise FileNotFoundError(
                f"{root / sub}/config.json not found: wan.pretrained must be a local diffusers Wan folder "
                f"with transformer/ and vae/ subfolders (e.g. a downloaded Wan2.1-T2V-1.3B-Diffusers)"
            )
    dtype = getattr(torch, cfg.wan.torch_dtype)
    transformer = WanTransformer3DModel.from_pretrained(root, subfolder="transformer", torch_dtype=dtype)
    vae = AutoencoderKLWan.from_pretrained(root, subfolder="vae", torch_dtype=torch.float32)
    z = vae.config.z_dim
    if transformer.config.out_channels != z or transformer.config.in_channels != z:
        raise ValueError(
            f"{root}: expected a text-to-video Wan transformer with in_channels = out_channels = VAE z_dim = {z}, "
            f"got in={transformer.config.in_channels}, out={transformer.config.out_channels} "
            f"(image-to-video variants carry their own conditioning channels; use a T2V / TI2V checkpoint)"
        )
    widen_patch_embedding(transformer, z + wan_extra_channels(cfg))
    logger.info("loaded Wan transformer (%.0f M params) and VAE from %s",
                sum(p.numel() for p in transformer.parameters()) / 1e6, root)
    return transformer, vae
