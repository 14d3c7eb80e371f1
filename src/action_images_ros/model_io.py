"""Loading a trained policy folder: the pipeline with the policy settings it was trained with."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import PolicyConfig, load_policy_config

logger = logging.getLogger(__name__)


def load_policy(model_dir: str | Path, device: str = "cpu", runtime: str | None = None):
    """``(pipeline, PolicyConfig)`` from a folder written by ``action-images train``.

    The policy settings come from the folder's ``model_index.json`` (``policy_config``), or from
    the ``clip_config.json`` of older folders; ``pipeline.policy_cfg`` is set either way, and
    ``pipeline.runtime`` names the runtime in use.

    ``runtime``: where the network runs (:data:`~action_images_ros.model.runtimes.RUNTIMES`; eager torch
    is the reference); None: the folder's ``policy_config.runtime``, the one it was evaluated with. ONNX
    Runtime runs the network in float32 whatever the model's ``inference_bf16``.
    A runtime that cannot be set up here (not installed, a compile error, a CUDA device for ONNX
    Runtime) leaves eager torch in place with a warning: the policy still runs, as it was evaluated.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: it is not a readable pipeline folder (the message says what is missing), or an
            unknown runtime.
    """
    from .model.pipeline import ActionImagesPipeline
    from .model.runtimes import RUNTIMES, use_runtime

    if runtime is not None and runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")

    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder not found: {path}")
    pipe = ActionImagesPipeline.from_pretrained(path)
    pipe.to(device)
    policy_cfg: PolicyConfig = pipe.policy_cfg or load_policy_config(path)[0]
    pipe.policy_cfg = policy_cfg
    runtime = policy_cfg.runtime if runtime is None else runtime
    try:
        use_runtime(pipe, runtime)
    except Exception as exc:  # noqa: BLE001  any failure of a faster runtime falls back to the reference
        logger.warning("runtime %r is not available for %s (%s: %s); running eager torch", runtime, path,
                       type(exc).__name__, exc)
        use_runtime(pipe, "eager")
    return pipe, policy_cfg
