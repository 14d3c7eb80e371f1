"""Loading a trained policy folder: the pipeline plus the clip settings it was trained with."""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

#: Written by ``action-images train`` next to the pipeline: the ClipConfig of the training data.
CLIP_CONFIG_FILE = "clip_config.json"


def load_policy(model_dir: str | Path, device: str = "cpu"):
    """``(pipeline, clip_settings dict)`` from a folder written by ``action-images train``.

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
    clip = {}
    clip_file = path / CLIP_CONFIG_FILE
    if clip_file.is_file():
        clip = json.loads(clip_file.read_text())
    else:
        logger.warning("%s has no %s; assuming frame_stride=2", path, CLIP_CONFIG_FILE)
    return pipe, clip
