"""Loading a trained policy folder: the pipeline with the policy settings it was trained with."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import PolicyConfig, load_policy_config

logger = logging.getLogger(__name__)


def load_policy(model_dir: str | Path, device: str = "cpu"):
    """``(pipeline, PolicyConfig)`` from a folder written by ``action-images train``.

    The policy settings come from the folder's ``model_index.json`` (``policy_config``), or from
    the ``clip_config.json`` of older folders; ``pipeline.policy_cfg`` is set either way.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: it is not a readable pipeline folder (the message says what is missing).
    """
    from .model.pipeline import ActionImagesPipeline

    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder not found: {path}")
    pipe = ActionImagesPipeline.from_pretrained(path)
    pipe.to(device)
    policy_cfg: PolicyConfig = pipe.policy_cfg or load_policy_config(path)[0]
    pipe.policy_cfg = policy_cfg
    return pipe, policy_cfg
