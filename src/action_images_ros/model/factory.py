"""Build a fresh :class:`ActionImagesPipeline` from a :class:`ModelConfig`."""

from __future__ import annotations

import logging

from .action_head import ActionHead
from .config import ModelConfig
from .denoisers import build_unet2d, build_wan_miniature, load_wan_pretrained
from .gripper_readout import GripperReadout
from .pipeline import ActionImagesPipeline
from .view_mixer import ViewMixer

logger = logging.getLogger(__name__)


def build_scheduler():
    """The default sampler: flow-matching Euler over 1000 training timesteps, no shift."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)


def build_pipeline(cfg: ModelConfig, scheduler=None, num_views: int = 3) -> ActionImagesPipeline:
    """A new pipeline for ``cfg``: randomly initialised (``unet2d``, miniature ``wan``) or loaded
    from ``cfg.wan.pretrained`` (large ``wan``). ``scheduler`` defaults to :func:`build_scheduler`.
    ``num_views`` sizes the action head (``action_output: head``), which reads every view at once."""
    if not isinstance(cfg, ModelConfig):
        raise ValueError(f"build_pipeline needs a ModelConfig, got {type(cfg).__name__}")
    vae = None
    if cfg.denoiser_type == "unet2d":
        denoiser = build_unet2d(cfg)
    elif cfg.wan.pretrained:
        denoiser, vae = load_wan_pretrained(cfg)
    else:
        denoiser, vae = build_wan_miniature(cfg)
    head = None
    if cfg.action_output == "head":
        head = ActionHead(feature_channels=cfg.block_out_channels[-1], num_views=int(num_views),
                          num_future=cfg.num_future)
    readout = gripper_readout_for(cfg, num_views) if cfg.gripper_readout else None
    mixer = view_mixer_for(cfg, num_views) if cfg.view_mixer else None
    pipe = ActionImagesPipeline(denoiser=denoiser, scheduler=scheduler or build_scheduler(), vae=vae,
                                action_head=head, gripper_readout=readout, view_mixer=mixer,
                                model_config=cfg.to_dict())
    logger.info("built %s pipeline: denoiser %.2f M parameters", cfg.denoiser_type,
                sum(p.numel() for p in denoiser.parameters()) / 1e6)
    return pipe


def gripper_readout_for(cfg: ModelConfig, num_views: int) -> GripperReadout:
    """A fresh (untrained) gripper read-out sized for ``cfg``'s UNet and ``num_views`` views."""
    return GripperReadout(feature_channels=cfg.block_out_channels[-1], num_views=int(num_views),
                          num_future=cfg.num_future)


def view_mixer_for(cfg: ModelConfig, num_views: int) -> ViewMixer:
    """A fresh view mixer (the identity until trained) for ``cfg``'s UNet bottleneck and ``num_views`` views."""
    side = cfg.image_size // 2 ** (len(cfg.block_out_channels) - 1)  # each level but the last halves it
    return ViewMixer(channels=cfg.block_out_channels[-1], num_views=int(num_views), tokens_per_view=side * side)


#: the model settings that belong to the gripper read-out alone (free to set when one is added)
READOUT_SETTINGS = ("loss_gripper_weight", "loss_gripper_change_weight", "gripper_readout_at",
                    "readout_pure_noise_share")


#: model settings that shape only the training objective (loss weights, noise levels), not the network
#: or its inference: fine-tuning may change them
TRAINING_SETTINGS = ("loss_rgb_weight", "loss_action_weight", "loss_blob_weight", "loss_gripper_weight",
                     "loss_gripper_change_weight", "sigma_logit_mean", "sigma_logit_std", "readout_pure_noise_share")


def _only(settings: dict, known: tuple, what: str) -> None:
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(f"not {what}: {unknown}; known: {list(known)}")


_SAME = object()


def _rebuilt(pipe: ActionImagesPipeline, cfg: ModelConfig, gripper_readout,
             view_mixer=_SAME) -> ActionImagesPipeline:
    """``pipe``'s modules (the same, not copies) under model configuration ``cfg``, with ``gripper_readout``
    (and ``view_mixer``, by default ``pipe``'s own)."""
    out = ActionImagesPipeline(denoiser=pipe.denoiser, scheduler=pipe.scheduler, vae=pipe.vae,
                               action_head=pipe.action_head, gripper_readout=gripper_readout,
                               view_mixer=pipe.view_mixer if view_mixer is _SAME else view_mixer,
                               model_config=cfg.to_dict())
    if pipe.policy_cfg is not None:
        out.set_policy_config(pipe.policy_cfg)
    return out.to(pipe.device)


def with_training_settings(pipe: ActionImagesPipeline, **settings) -> ActionImagesPipeline:
    """``pipe``'s components (the same modules) with other training-objective settings
    (:data:`TRAINING_SETTINGS`): how a fine-tune reweights its losses without touching the network."""
    import dataclasses

    _only(settings, TRAINING_SETTINGS, "training settings")
    return _rebuilt(pipe, dataclasses.replace(pipe.model_cfg, **settings), pipe.gripper_readout)


def with_gripper_readout(pipe: ActionImagesPipeline, num_views: int, **settings) -> ActionImagesPipeline:
    """``pipe``'s components (the same modules, not copies) plus a fresh gripper read-out: fine-tuning a
    trained action-image model into one whose decode reads the gripper (``gripper_readout``).

    ``settings``: the read-out's own model settings (:data:`READOUT_SETTINGS`), defaults otherwise.
    """
    import dataclasses

    if pipe.gripper_readout is not None:
        raise ValueError("the pipeline already has a gripper read-out")
    _only(settings, READOUT_SETTINGS, "read-out settings")
    cfg = dataclasses.replace(pipe.model_cfg, gripper_readout=True, **settings)  # validates: images, unet2d
    return _rebuilt(pipe, cfg, gripper_readout_for(cfg, num_views))


def without_gripper_readout(pipe: ActionImagesPipeline) -> ActionImagesPipeline:
    """``pipe``'s components (the same modules) without its gripper read-out: each keyframe's gripper is read
    from the drawn action images again, as the codec decodes them. The read-out's ablation on the same
    weights: the images, poses and confidence stay exactly those of ``pipe``."""
    import dataclasses

    if pipe.gripper_readout is None:
        raise ValueError("the pipeline has no gripper read-out to drop")
    return _rebuilt(pipe, dataclasses.replace(pipe.model_cfg, gripper_readout=False), None)


def with_view_mixer(pipe: ActionImagesPipeline, num_views: int) -> ActionImagesPipeline:
    """``pipe``'s components (the same modules) plus a fresh view mixer, which starts as the identity: the
    images, poses and confidence stay exactly ``pipe``'s until fine-tuning trains it (``view_mixer``)."""
    import dataclasses

    if pipe.view_mixer is not None:
        raise ValueError("the pipeline already has a view mixer")
    cfg = dataclasses.replace(pipe.model_cfg, view_mixer=True)  # validates: unet2d
    return _rebuilt(pipe, cfg, pipe.gripper_readout, view_mixer_for(cfg, num_views))
