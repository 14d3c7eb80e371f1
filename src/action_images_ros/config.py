"""One configuration per trained policy, saved in its model folder: what every node reads.

A model folder (``action-images train``'s ``final/`` or ``models/tiny``) holds, in
``model_index.json``:

* ``model_config``: the network, its conditioning and the action-image **codec** it was
  trained with (``ModelConfig``: ``codec_sigma_frac``, ``codec_axis_length``, ``codec_open_background``);
* ``policy_config`` (this module's :class:`PolicyConfig`): the **clip** settings of the training
  data (horizon, ``frame_stride``, views, the held-out episodes), the control period of the data
  (so a keyframe is ``frame_stride * control_dt_s`` seconds ahead), the default sampling steps and
  the **execution** settings (``control.chunk_execution.ExecutionConfig``) it was evaluated with.

Nodes read these from the model folder (:func:`load_policy_config`, JSON only: no torch), so the
settings of one trained policy live in one place. Folders written before ``policy_config``
existed keep their ``clip_config.json``; it is read instead (execution settings default).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .control.chunk_execution import ExecutionConfig

__all__ = ["PolicyConfig", "load_policy_config", "execution_config_for", "LEGACY_CLIP_CONFIG_FILE", "MAX_REDRAWS",
           "check_redraws"]

logger = logging.getLogger(__name__)

#: The clip record of checkpoints written before ``policy_config`` (read, never written).
LEGACY_CLIP_CONFIG_FILE = "clip_config.json"

#: the shipped policy the nodes, the graph and `make demo` run unless told otherwise (also written in
#: config/policy.yaml, executor.yaml and decoder.yaml): action images on all four tasks (models/fourtask/README.md)
DEFAULT_MODEL = "models/fourtask"

#: the most further noise draws one prediction may take (``PolicyConfig.redraws``)
MAX_REDRAWS = 8

#: where a policy's network runs (model/runtimes.py); eager torch is the reference
RUNTIMES = ("eager", "onnxruntime", "openvino", "compile")


@dataclasses.dataclass
class PolicyConfig:
    """What a trained policy needs beyond its network (see the module docstring).

    Attributes:
        clip: the clip record of the training data: ``ClipConfig`` fields (``horizon``,
            ``frame_stride``, ``image_size``, ``views``...) plus metadata (``train_episodes``,
            ``held_out_episodes``).
        control_dt_s: seconds per episode row of the training data (simulated cell: 0.1).
        num_inference_steps: denoising steps per prediction by default.
        execution: how chunks are executed (``ExecutionConfig``).
        redraws: further noise draws a prediction may take when the executor would cut it on confidence (a
            kept keyframe under the cell's ``min_confidence``, or non-finite); the draw that runs furthest
            is kept (``policy.runner.PolicyRunner``). 0 = one draw, as sampled.
        runtime: where the network runs by default (one of :data:`RUNTIMES`; ``model.runtimes``), the one
            the policy was evaluated with. The node, ``eval`` and ``predict`` use it unless told otherwise.
    """

    clip: dict[str, Any] = dataclasses.field(default_factory=lambda: {"frame_stride": 2})
    control_dt_s: float = 0.1
    num_inference_steps: int = 6
    execution: ExecutionConfig = dataclasses.field(default_factory=ExecutionConfig)
    redraws: int = 0
    runtime: str = "eager"

    def __post_init__(self) -> None:
        if isinstance(self.execution, dict):
            self.execution = ExecutionConfig.from_dict(self.execution)
        self.clip = dict(self.clip)
        stride = self.clip.setdefault("frame_stride", 2)
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"policy_config.clip.frame_stride must be an integer >= 1, got {stride!r}")
        if not 0.001 <= float(self.control_dt_s) <= 10.0:
            raise ValueError(f"policy_config.control_dt_s must be in [0.001, 10] s, got {self.control_dt_s}")
        self.control_dt_s = float(self.control_dt_s)
        if not 1 <= int(self.num_inference_steps) <= 100:
            raise ValueError(f"policy_config.num_inference_steps must be in [1, 100], got {self.num_inference_steps}")
        self.num_inference_steps = int(self.num_inference_steps)
        self.redraws = check_redraws(self.redraws, "policy_config.redraws")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"policy_config.runtime must be one of {list(RUNTIMES)}, got {self.runtime!r}")

    @property
    def keyframe_dt_s(self) -> float:
        """Seconds between consecutive predicted keyframes (``frame_stride * control_dt_s``)."""
        return int(self.clip["frame_stride"]) * self.control_dt_s

    @property
    def views(self) -> list[str] | None:
        """View names the model was trained on, in order (None if the record does not say)."""
        views = self.clip.get("views")
        return list(views) if views else None

    def to_dict(self) -> dict[str, Any]:
        out = {"clip": dict(self.clip), "control_dt_s": self.control_dt_s,
               "num_inference_steps": self.num_inference_steps, "execution": self.execution.to_dict()}
        if self.redraws:  # written only when set, so a folder without it still loads in older checkouts
            out["redraws"] = self.redraws
        if self.runtime != "eager":  # likewise
            out["runtime"] = self.runtime
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "PolicyConfig":
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"policy_config: unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**data)


def check_redraws(value, name: str = "redraws") -> int:
    """``value`` as the number of further draws, or ValueError naming ``name`` (an integer in [0, MAX_REDRAWS])."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= MAX_REDRAWS:
        raise ValueError(f"{name} must be an integer in [0, {MAX_REDRAWS}], got {value!r}")
    return int(value)


def load_policy_config(model_dir: str | Path) -> tuple[PolicyConfig, dict[str, Any]]:
    """``(PolicyConfig, model_config dict)`` of a model folder, from its JSON files only (no torch).

    Raises:
        FileNotFoundError: no folder or no ``model_index.json``.
        ValueError: unreadable JSON or bad values (the message names the file).
    """
    path = Path(model_dir)
    index_path = path / "model_index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"{path} is not a model folder: {index_path.name} is missing")
    try:
        index = json.loads(index_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{index_path} is not valid JSON ({exc})") from exc
    model_config = dict(index.get("model_config") or {})
    if index.get("policy_config"):
        return PolicyConfig.from_dict(index["policy_config"]), model_config
    legacy = path / LEGACY_CLIP_CONFIG_FILE
    if legacy.is_file():
        try:
            clip = json.loads(legacy.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{legacy} is not valid JSON ({exc})") from exc
        return PolicyConfig(clip=clip), model_config
    logger.warning("%s has neither a policy_config nor %s; assuming frame_stride=2, control_dt 0.1 s",
                   path, LEGACY_CLIP_CONFIG_FILE)
    return PolicyConfig(), model_config


def execution_config_for(model_dir: str | Path, overrides: str | dict | None, min_confidence: float) -> ExecutionConfig:
    """The execution settings a model folder was saved with, ``overrides`` (a YAML mapping or a dict:
    deliberate changes for one cell or one run) applied, and the cell's ``min_confidence`` (from its
    safety file: one setting, one place). Used by ``action-images eval`` and executor_node alike.

    Raises:
        ValueError: unknown or invalid override keys, or ``min_confidence`` among them.
    """
    policy_cfg, _ = load_policy_config(model_dir)
    extra = yaml.safe_load(overrides) if isinstance(overrides, str) else dict(overrides or {})
    extra = extra or {}
    if not isinstance(extra, dict):
        raise ValueError(f"execution overrides must be a YAML mapping, e.g. '{{blend_s: 0.0}}', got {overrides!r}")
    if "min_confidence" in extra:
        raise ValueError("min_confidence is the cell's safety setting: set it in the safety file, not in the "
                         "execution overrides")
    merged = {**policy_cfg.execution.to_dict(), **extra, "min_confidence": float(min_confidence)}
    return ExecutionConfig.from_dict(merged)
