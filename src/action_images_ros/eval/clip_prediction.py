"""Run a trained pipeline's modes on recorded clips and score them against the recording.

Shared by ``action-images predict`` (one clip, written out) and ``action-images
evaluate-video`` (many held-out clips, summarised). Clips come from
:class:`~action_images_ros.data.clips.ActionClipDataset` built with the clip
settings the model was trained with, so the truth is exactly what training
targeted: the same future rows ``t + s, t + 2s, ...`` (clamped to the last
row), the same pose source and gripper convention, the same resizing.

Shapes (``V`` views, ``F`` future keyframes, ``S`` model image size): frames are
channels last, ``(V, F, S, S, 3)`` floats in [0, 1]; poses ``(F, 8)`` =
``[x y z qx qy qz qw g]`` in metres, robot base frame.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

from ..data.clips import ActionClipDataset, ClipConfig
from ..geometry import Camera
from ..model.metrics import action_errors
from ..model.video_metrics import lpips_distance, motion_mask, psnr_per_image, ssim
from ..policy import PolicyRunner

#: The no-motion baseline, scored like a mode.
NO_MOTION = "no_motion"
#: Pipeline modes run by :func:`score_clip`: policy (video + actions), label (actions), world_model (video).
SCORED_MODES = ("policy", "label", "world_model")


def clip_config_for(pipeline, clip_record: dict[str, Any], only_success: bool | None = None) -> ClipConfig:
    """The :class:`ClipConfig` a model was trained with, from its ``clip_config.json`` record.

    Args:
        pipeline: the loaded ``ActionImagesPipeline`` (its image size / horizon are checked).
        clip_record: the dict from ``model_io.load_policy`` (may be empty: defaults, frame_stride 2).
        only_success: override the record's ``only_success`` (``predict`` takes any episode).

    Raises:
        ValueError: the record disagrees with the model (horizon, image size) or holds bad values.
    """
    cfg = pipeline.model_cfg
    fields = {f.name for f in dataclasses.fields(ClipConfig)}
    kwargs = {k: v for k, v in clip_record.items() if k in fields}
    kwargs.setdefault("horizon", cfg.num_future)
    kwargs.setdefault("image_size", cfg.image_size)
    if isinstance(kwargs.get("views"), list):
        kwargs["views"] = tuple(kwargs["views"])
    if only_success is not None:
        kwargs["only_success"] = only_success
    clip = ClipConfig(**kwargs)
    if (clip.horizon, clip.image_size) != (cfg.num_future, cfg.image_size):
        raise ValueError(f"clip settings (horizon {clip.horizon}, image_size {clip.image_size}) do not match the "
                         f"model (num_future {cfg.num_future}, image_size {cfg.image_size}); the model folder's "
                         f"clip_config.json belongs to another model")
    return clip


@dataclasses.dataclass
class ClipTruth:
    """The recorded clip at the model's resolution.

    Attributes:
        cond_rgb: uint8 ``(V, S, S, 3)`` current frames (row ``step``).
        cond_action: float32 ``(V, S, S, 3)`` action image of the current pose.
        future_rgb: float32 ``(V, F, S, S, 3)`` recorded future frames in [0, 1].
        future_action: float32 ``(V, F, S, S, 3)`` action images of ``actions``.
        actions: ``(F, 8)`` recorded future poses (the training targets).
        state: ``(8,)`` current pose.
        rows: ``(F,)`` episode rows of the future frames (clamped to the last row).
        step: row of the current frame.
        cameras: ``V`` cameras at ``S x S``.
        view_names: camera names in view order.
        instruction: the episode's language instruction.
    """

    cond_rgb: np.ndarray
    cond_action: np.ndarray
    future_rgb: np.ndarray
    future_action: np.ndarray
    actions: np.ndarray
    state: np.ndarray
    rows: np.ndarray
    step: int
    cameras: list[Camera]
    view_names: list[str]
    instruction: str = ""


def clip_truth(dataset: ActionClipDataset, index: int) -> ClipTruth:
    """Clip ``index`` of ``dataset`` as a :class:`ClipTruth` (numpy, channels last)."""
    item = dataset[index]
    e, t = dataset.episode_of(index)
    cond = item["cond_rgb"].numpy().transpose(0, 2, 3, 1)
    return ClipTruth(
        cond_rgb=np.round(cond * 255.0).astype(np.uint8),  # exact: the dataset stores uint8 / 255
        cond_action=item["cond_action"].numpy().transpose(0, 2, 3, 1),
        future_rgb=item["future_rgb"].numpy().transpose(0, 1, 3, 4, 2),
        future_action=item["future_action"].numpy().transpose(0, 1, 3, 4, 2),
        actions=item["actions"].numpy().astype(np.float64),
        state=item["state"].numpy().astype(np.float64),
        rows=dataset.future_rows(t, dataset.episodes[e].num_steps),
        step=t,
        cameras=dataset.cameras(e),
        view_names=list(dataset.view_names),
        instruction=item["instruction"],
    )


@dataclasses.dataclass
class ModeResult:
    """What one mode produced for one clip.

    Attributes:
        mode: ``policy`` | ``world_model`` | ``label`` | ``video`` | ``no_motion``.
        future_rgb: ``(V, F, S, S, 3)`` generated frames (the given ones in ``label`` mode).
        future_action: ``(V, F, S, S, 3)`` action images, or None (``video`` mode).
        actions: ``(F, 8)`` decoded poses (``policy``, ``label``, ``no_motion``), else None.
        confidence: ``(F,)`` decoder confidence where ``actions`` were decoded, else None.
        latency_s: wall time of the pipeline call (0 for the baseline).
    """

    mode: str
    future_rgb: np.ndarray
    future_action: np.ndarray | None
    actions: np.ndarray | None
    confidence: np.ndarray | None
    latency_s: float


def run_mode(pipeline, truth: ClipTruth, mode: str, num_inference_steps: int = 6, seed: int = 0) -> ModeResult:
    """Run one pipeline mode on a recorded clip.

    ``policy`` goes through :class:`~action_images_ros.rollout.PolicyRunner` (exactly what the
    closed loop calls); ``world_model`` is given the recorded future poses, ``label`` the recorded
    future frames; every mode starts from the current frames and pose.
    """
    if mode == "policy":
        runner = PolicyRunner(pipeline, truth.cameras, num_inference_steps=num_inference_steps)
        pred = runner.predict(truth.cond_rgb, truth.state, seed=seed, instruction=truth.instruction)
        return ModeResult(mode, pred.future_rgb, pred.future_action, pred.actions, pred.confidence, pred.latency_s)
    extra: dict[str, Any] = {}
    if pipeline.model_cfg.use_instruction:
        extra["instruction"] = truth.instruction
    if mode == "world_model":
        extra["actions"] = truth.actions
    elif mode == "label":
        extra["future_rgb"] = truth.future_rgb.transpose(0, 1, 4, 2, 3)
    elif mode != "video":
        raise ValueError(f"mode must be one of ['policy', 'world_model', 'label', 'video'], got {mode!r}")
    t0 = time.perf_counter()
    out = pipeline(cond_rgb=truth.cond_rgb.transpose(0, 3, 1, 2), state=truth.state, cameras=truth.cameras,
                   mode=mode, num_inference_steps=num_inference_steps,
                   generator=torch.Generator().manual_seed(int(seed)), **extra)
    latency = time.perf_counter() - t0
    return ModeResult(mode, np.asarray(out.future_rgb), _maybe_array(out.future_action), _maybe_array(out.actions),
                      _maybe_array(out.confidence), latency)


def _maybe_array(x) -> np.ndarray | None:
    return None if x is None else np.asarray(x)


def no_motion(truth: ClipTruth) -> ModeResult:
    """The no-motion baseline: every future frame is the current frame, every future pose the current pose."""
    F = truth.future_rgb.shape[1]
    frames = np.broadcast_to(truth.cond_rgb[:, None].astype(np.float32) / 255.0, truth.future_rgb.shape).copy()
    return ModeResult(NO_MOTION, frames, None, np.repeat(truth.state[None], F, axis=0), None, 0.0)


def frame_scores(result: ModeResult, truth: ClipTruth) -> dict[str, np.ndarray]:
    """Generated vs recorded frames, each ``(V, F)``: ``psnr`` (dB) and ``ssim`` over the whole frame, and
    ``psnr_moving`` / ``ssim_moving`` over the clip's moving region only (:func:`motion_mask`: where the arm
    and the objects it moves are at any frame; NaN for a view where nothing moves)."""
    current = truth.cond_rgb.astype(np.float64) / 255.0
    moving = motion_mask(current, truth.future_rgb)[:, None]  # (V, 1, S, S): the same region for every keyframe
    return {"psnr": psnr_per_image(result.future_rgb, truth.future_rgb),
            "ssim": ssim(result.future_rgb, truth.future_rgb),
            "psnr_moving": psnr_per_image(result.future_rgb, truth.future_rgb, mask=moving),
            "ssim_moving": ssim(result.future_rgb, truth.future_rgb, mask=moving)}


def action_scores(result: ModeResult, truth: ClipTruth) -> dict[str, np.ndarray]:
    """Per future step ``(F,)``: ``position_mm``, ``rotation_deg``, ``gripper_correct`` vs the recorded poses."""
    if result.actions is None:
        raise ValueError(f"mode {result.mode!r} decodes no actions")
    return action_errors(result.actions, truth.actions)


def score_clip(pipeline, truth: ClipTruth, num_inference_steps: int = 6, seed: int = 0,
               with_lpips: bool = False) -> dict[str, dict[str, dict[str, Any]]]:
    """Run :data:`SCORED_MODES` on one clip and score them, with the no-motion baseline and the codec floor.

    Returns a nested dict:

    * ``frames[m]`` for ``policy``, ``world_model``, ``no_motion``: ``psnr``, ``ssim``
      (and ``lpips`` with ``with_lpips``), each ``(V, F)``;
    * ``actions[m]`` for ``policy``, ``label``, ``no_motion`` and ``codec`` (the recorded action
      images decoded back): ``position_mm``, ``rotation_deg``, ``gripper_correct`` each ``(F,)``,
      plus ``confidence (F,)`` where a decoder ran;
    * ``latency_s[m]`` for the pipeline modes: ``{"call": seconds}``.

    All modes of one clip share ``seed``. An action-head model (no action-image stream) runs the
    policy mode only.
    """
    modes = [m for m in SCORED_MODES if getattr(pipeline, "action_head", None) is None or m == "policy"]
    results = {m: run_mode(pipeline, truth, m, num_inference_steps=num_inference_steps, seed=seed) for m in modes}
    results[NO_MOTION] = no_motion(truth)
    frames = {}
    for m in [m for m in ("policy", "world_model", NO_MOTION) if m in results]:
        frames[m] = frame_scores(results[m], truth)
        if with_lpips:
            frames[m]["lpips"] = lpips_distance(results[m].future_rgb, truth.future_rgb)
    actions = {}
    for m in [m for m in ("policy", "label", NO_MOTION) if m in results]:
        actions[m] = action_scores(results[m], truth)
        if results[m].confidence is not None:
            actions[m]["confidence"] = results[m].confidence
    codec_actions, codec_conf = pipeline.codec.decode(truth.future_action, truth.cameras)
    actions["codec"] = {**action_errors(codec_actions, truth.actions), "confidence": codec_conf}
    return {"frames": frames, "actions": actions,
            "latency_s": {m: {"call": results[m].latency_s} for m in modes}}
