"""The joint video + action-image diffusion model (diffusers).

Public API::

    from action_images_ros.model import (ActionImagesPipeline, ActionImagesPipelineOutput, ModelConfig,
                                         TrainConfig, build_pipeline, train)

Submodules: ``config`` (typed configs), ``conditioning`` (modes, Plücker rays),
``denoisers`` (UNet2D / Wan builders), ``backbones`` (stream layouts per
denoiser), ``pipeline`` (sampling, save/load), ``factory``, ``objective``
(training loss), ``training`` (loop, checkpoints), ``synthetic`` (toy
reaching data), ``metrics``.

Importing this package does not import torch/diffusers until a name is used.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ModelConfig": "config",
    "TrainConfig": "config",
    "WanConfig": "config",
    "load_configs": "config",
    "ActionImagesPipeline": "pipeline",
    "ActionImagesPipelineOutput": "pipeline",
    "build_pipeline": "factory",
    "train": "training",
    "TrainResult": "training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
