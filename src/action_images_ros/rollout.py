"""Closed-loop (receding-horizon) control of the simulated cell by the policy pipeline.

ROS-free: ``action-images eval`` and the tests run it directly; the ROS nodes
run the same pieces (``PolicyRunner`` + the safety envelope) across processes.

Each cycle: observe all views -> one ``policy`` call predicts F future keyframes
(``frame_stride`` control steps apart) -> execute the first ``execute_keyframes``
of them, interpolating the commanded pose over ``frame_stride`` control steps
-> observe again. Low-confidence keyframes are not executed (the arm holds).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from .codec import overlay_action_images
from .control.receding_horizon import interpolate_poses
from .geometry import Camera

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RolloutConfig:
    """Receding-horizon settings.

    Attributes:
        num_inference_steps: denoising steps per prediction.
        frame_stride: control steps between predicted keyframes (must match training clips).
        execute_keyframes: keyframes executed before predicting again (1..F).
        min_confidence: keyframes decoded with less confidence are not executed.
        max_steps: control-step limit of an episode (None = the task's own limit).
        seed: seeds the sampler's noise per prediction (reproducible episodes).
    """

    num_inference_steps: int = 6
    frame_stride: int = 2
    execute_keyframes: int = 2
    min_confidence: float = 0.2
    max_steps: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.num_inference_steps <= 100:
            raise ValueError(f"num_inference_steps must be in [1, 100], got {self.num_inference_steps}")
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {self.frame_stride}")
        if self.execute_keyframes < 1:
            raise ValueError(f"execute_keyframes must be >= 1, got {self.execute_keyframes}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")


@dataclasses.dataclass
class Prediction:
    """One policy call.

    Attributes:
        actions: ``(F, 8)`` decoded keyframe poses (base frame).
        confidence: ``(F,)`` decoder confidence.
        future_rgb: ``(V, F, S, S, 3)`` generated frames in [0, 1].
        future_action: ``(V, F, S, S, 3)`` generated action images in [0, 1].
        cond_rgb: ``(V, S, S, 3)`` uint8, the observation at model resolution.
        latency_s: wall time of the call (resize + sampling + decoding).
    """

    actions: np.ndarray
    confidence: np.ndarray
    future_rgb: np.ndarray
    future_action: np.ndarray
    cond_rgb: np.ndarray
    latency_s: float

    def overlays(self) -> np.ndarray:
        """``(V, F, S, S, 3)`` uint8: predicted action images over the current frame."""
        V, F = self.future_action.shape[:2]
        base = np.broadcast_to(self.cond_rgb[:, None], (V, F) + self.cond_rgb.shape[1:])
        return overlay_action_images(np.ascontiguousarray(base), self.future_action)


class PolicyRunner:
    """Runs the pipeline's ``policy`` mode on full-resolution multi-view frames.

    Args:
        pipeline: an ``ActionImagesPipeline``.
        cameras: the calibrated views (any resolution; rescaled to the model's).
        num_inference_steps: denoising steps.
    """

    def __init__(self, pipeline, cameras: Sequence[Camera], num_inference_steps: int = 6) -> None:
        self.pipeline = pipeline
        self.size = int(pipeline.model_cfg.image_size)
        if len(cameras) < 2:
            raise ValueError(f"the policy needs at least 2 calibrated views, got {len(cameras)}")
        self.cameras = list(cameras)
        self.model_cameras = [c.scaled(self.size, self.size) for c in self.cameras]
        self.num_inference_steps = int(num_inference_steps)

    def to_model_resolution(self, images: np.ndarray) -> np.ndarray:
        """``(V, H, W, 3)`` uint8 -> ``(V, S, S, 3)`` uint8 (area interpolation)."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[0] != len(self.cameras) or images.shape[-1] != 3:
            raise ValueError(f"images must have shape (V={len(self.cameras)}, H, W, 3), got {images.shape}")
        for cam, img in zip(self.cameras, images):
            if img.shape[:2] != (cam.height, cam.width):
                raise ValueError(f"view {cam.name!r}: image is {img.shape[1]}x{img.shape[0]} but the camera is "
                                 f"calibrated for {cam.width}x{cam.height}")
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 RGB, got {images.dtype}")
        if images.shape[1:3] == (self.size, self.size):
            return images
        return np.stack([cv2.resize(im, (self.size, self.size), interpolation=cv2.INTER_AREA) for im in images])

    def predict(self, images: np.ndarray, ee_pose: np.ndarray, seed: int | None = None,
                instruction: str | None = None) -> Prediction:
        """Predict future keyframes from ``images (V, H, W, 3)`` uint8, the current pose ``(8,)`` and,
        for models that follow one, the ``instruction``."""
        t0 = time.perf_counter()
        small = self.to_model_resolution(images)
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        out = self.pipeline(
            cond_rgb=small.transpose(0, 3, 1, 2).astype(np.float32) / 255.0,
            state=np.asarray(ee_pose, dtype=np.float64),
            instruction=instruction if self.pipeline.model_cfg.use_instruction else None,
            cameras=self.model_cameras,
            mode="policy",
            num_inference_steps=self.num_inference_steps,
            generator=gen,
        )
        return Prediction(
            actions=np.asarray(out.actions),
            confidence=np.asarray(out.confidence),
            future_rgb=np.asarray(out.future_rgb),
            future_action=np.asarray(out.future_action),
            cond_rgb=small,
            latency_s=time.perf_counter() - t0,
        )


@dataclasses.dataclass
class EpisodeOutcome:
    """Result of one closed-loop episode."""

    seed: int
    success: bool
    steps: int
    predictions: int
    latency_median_s: float
    refused: int
    frames: list[np.ndarray]  #: per prediction, ``(S, V*S, 3)`` uint8 strip of overlays (when recorded)


def run_episode(
    env,
    runner: PolicyRunner,
    config: RolloutConfig,
    seed: int,
    safety: Callable[[np.ndarray, np.ndarray, float], tuple[bool, np.ndarray, str]] | None = None,
    record: bool = False,
) -> EpisodeOutcome:
    """Run one closed-loop episode of ``env`` (a ``sim`` env) from ``reset(seed)``.

    Args:
        safety: optional ``check(target (8,), current (8,), confidence) -> (allowed, pose, reason)``;
            refused keyframes are not executed (the arm holds its last command).
        record: keep an overlay strip per prediction (for failure videos).
    """
    obs = env.reset(seed)
    max_steps = config.max_steps or env.max_episode_steps
    steps = n_pred = refused = 0
    latencies: list[float] = []
    frames: list[np.ndarray] = []
    command = obs.ee_pose.copy()
    command[7] = 1.0 if command[7] > 0.5 else 0.0
    while steps < max_steps and not env.success():
        pred = runner.predict(obs.images, obs.ee_pose, seed=config.seed * 100_003 + seed * 1009 + n_pred,
                              instruction=env.instruction)
        n_pred += 1
        latencies.append(pred.latency_s)
        if record:
            ov = pred.overlays()[:, 0]
            frames.append(np.concatenate(list(ov), axis=1))
        executed = False
        for j in range(min(config.execute_keyframes, len(pred.actions))):
            target = pred.actions[j].copy()
            target[7] = 1.0 if target[7] > 0.5 else 0.0
            if pred.confidence[j] < config.min_confidence:
                logger.debug("keyframe %d refused: confidence %.2f", j, pred.confidence[j])
                refused += 1
                break
            if safety is not None:
                ok, target, reason = safety(target, obs.ee_pose, float(pred.confidence[j]))
                if not ok:
                    logger.debug("keyframe %d refused by safety: %s", j, reason)
                    refused += 1
                    break
            for pose in interpolate_poses(command, target[None], config.frame_stride):
                obs, _ = env.step(pose)
                steps += 1
                if env.success() or steps >= max_steps:
                    break
            command = target
            executed = True
            if env.success() or steps >= max_steps:
                break
        if not executed:  # hold position for one keyframe so time advances and the view can change
            for _ in range(config.frame_stride):
                obs, _ = env.step(command)
                steps += 1
    return EpisodeOutcome(
        seed=seed,
        success=bool(env.success()),
        steps=steps,
        predictions=n_pred,
        latency_median_s=float(np.median(latencies)) if latencies else 0.0,
        refused=refused,
        frames=frames,
    )
