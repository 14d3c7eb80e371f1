"""``PolicyRunner``: full-resolution multi-view frames + pose + instruction -> one timed, decoded chunk.

The one place a prediction is made and decoded: ``action-images eval`` (direct, simulated time),
``policy_node`` (the ROS graph and the real cell) and ``evaluate-video`` all call
:meth:`PolicyRunner.predict`; :meth:`Prediction.to_chunk` gives the executor
(``control.chunk_execution``) every step's absolute due time, ``stamp + k * keyframe_dt``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import cv2
import numpy as np
import torch

from ..codec import overlay_action_images
from ..control.chunk_execution import Chunk, ExecutionConfig, executed_steps, usable_prefix
from ..geometry import Camera

__all__ = ["PolicyRunner", "Prediction", "prediction_seed"]


def prediction_seed(base_seed: int, episode_seed: int, n: int) -> int:
    """The sampler seed of the ``n``-th prediction (from 0) of the episode reset with ``episode_seed``:
    the same in ``action-images eval`` and in policy_node, so both paths sample the same noise."""
    return int(base_seed) * 100_003 + int(episode_seed) * 1009 + int(n)


@dataclasses.dataclass
class Prediction:
    """One policy call.

    Attributes:
        actions: ``(F, 8)`` decoded keyframe poses (base frame).
        confidence: ``(F,)`` decoder confidence.
        time_from_start_s: ``(F,)`` seconds after the frames' capture each keyframe is due.
        future_rgb: ``(V, F, S, S, 3)`` generated frames in [0, 1].
        future_action: ``(V, F, S, S, 3)`` generated action images in [0, 1].
        cond_rgb: ``(V, S, S, 3)`` uint8, the observation at model resolution.
        state: ``(8,)`` the measured pose the prediction was conditioned on.
        latency_s: wall time of the call (resize + sampling + all draws + decoding).
        draws: noise draws the call took (1 + the redraws it needed, ``PolicyRunner``).
    """

    actions: np.ndarray
    confidence: np.ndarray
    time_from_start_s: np.ndarray
    future_rgb: np.ndarray
    future_action: np.ndarray
    cond_rgb: np.ndarray
    state: np.ndarray
    latency_s: float
    draws: int = 1

    def overlays(self) -> np.ndarray:
        """``(V, F, S, S, 3)`` uint8: predicted action images over the current frame."""
        V, F = self.future_action.shape[:2]
        base = np.broadcast_to(self.cond_rgb[:, None], (V, F) + self.cond_rgb.shape[1:])
        return overlay_action_images(np.ascontiguousarray(base), self.future_action)

    def to_chunk(self, stamp_s: float) -> Chunk:
        """The executable chunk: keyframes due at ``stamp_s + time_from_start_s``, starting from ``state``.

        ``stamp_s`` is the capture time of the frames (ROS time / simulated time), not the time
        the prediction finished: the executor skips what is already past when it arrives late.
        """
        return Chunk(stamp_s=float(stamp_s), times_s=float(stamp_s) + self.time_from_start_s,
                     poses=self.actions, confidence=self.confidence, start_pose=self.state)


class PolicyRunner:
    """Runs the pipeline's ``policy`` mode on full-resolution multi-view frames.

    Args:
        pipeline: an ``ActionImagesPipeline`` with its ``policy_cfg`` (``model_io.load_policy``).
        cameras: the calibrated views (any resolution; rescaled to the model's).
        num_inference_steps: denoising steps (None = the model's ``policy_cfg.num_inference_steps``).
        execution: the executor's settings, with the cell's ``min_confidence`` (``config.execution_config_for``).
            With them, a draw the executor would cut on confidence (a keyframe within ``execute_fraction``
            under ``min_confidence``, or non-finite: ``control.chunk_execution.usable_steps``) is drawn again
            with further noise of the same generator, up to ``redraws`` times, and the draw that runs
            furthest (then: the highest mean confidence over those keyframes) is kept. The safety envelope's
            own refusals (workspace, step limits) are not foreseen: they depend on the measured pose. None =
            one draw, as sampled (open-loop benchmarks).
        redraws: the most further draws (None = the model's ``policy_cfg.redraws``).
    """

    def __init__(self, pipeline, cameras: Sequence[Camera], num_inference_steps: int | None = None,
                 execution: ExecutionConfig | None = None, redraws: int | None = None) -> None:
        from ..config import PolicyConfig, check_redraws

        self.pipeline = pipeline
        self.policy_cfg = getattr(pipeline, "policy_cfg", None) or PolicyConfig()
        self.size = int(pipeline.model_cfg.image_size)
        if len(cameras) < 2:
            raise ValueError(f"the policy needs at least 2 calibrated views, got {len(cameras)}")
        self.cameras = list(cameras)
        self.model_cameras = [c.scaled(self.size, self.size) for c in self.cameras]
        steps = self.policy_cfg.num_inference_steps if num_inference_steps is None else num_inference_steps
        if not 1 <= int(steps) <= 100:
            raise ValueError(f"num_inference_steps must be in [1, 100], got {steps}")
        self.num_inference_steps = int(steps)
        F = int(pipeline.model_cfg.num_future)
        self.time_from_start_s = self.policy_cfg.keyframe_dt_s * np.arange(1, F + 1)
        asked = None if redraws is None else check_redraws(redraws)
        if asked and execution is None:
            raise ValueError("redraws need the executor's settings (execution=, with the cell's min_confidence): "
                             "without them no draw can be judged")
        self.execution = execution
        if execution is None:  # nothing to judge a draw by: one draw, as sampled
            self.redraws, self._kept = 0, F
        else:
            self.redraws = self.policy_cfg.redraws if asked is None else asked
            # the keyframes the executor keeps (receding horizon): only they decide whether a draw runs whole
            self._kept = executed_steps(self.time_from_start_s, execution.execute_fraction)

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
        """Predict future keyframes from ``images (V, H, W, 3)`` uint8, the measured pose ``(8,)`` (base
        frame) and, for models that follow one, the ``instruction``."""
        t0 = time.perf_counter()
        state = np.asarray(ee_pose, dtype=np.float64).reshape(-1)
        if state.shape != (8,) or not np.all(np.isfinite(state)):
            raise ValueError(f"ee_pose must be 8 finite values [x y z qx qy qz qw gripper], got {state.tolist()}")
        small = self.to_model_resolution(images)
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        inputs = dict(
            cond_rgb=small.transpose(0, 3, 1, 2).astype(np.float32) / 255.0,
            state=state,
            instruction=instruction if self.pipeline.model_cfg.use_instruction else None,
            cameras=self.model_cameras,
            mode="policy",
            num_inference_steps=self.num_inference_steps,
        )
        best, best_score, draws = None, None, 0
        while draws <= self.redraws:
            # A further draw continues the same generator: fresh noise, the same for every path given the seed.
            out = self.pipeline(**inputs, generator=gen)
            draws += 1
            if self.redraws == 0:
                best = out
                break
            conf = np.asarray(out.confidence, dtype=np.float64)[:self._kept]
            runs = usable_prefix(np.asarray(out.actions)[:self._kept], conf, self.execution.min_confidence)
            score = (runs, float(np.nan_to_num(conf, nan=0.0).mean()))
            if best_score is None or score > best_score:
                best, best_score = out, score
            if runs == self._kept:
                break
        out = best
        return Prediction(
            actions=np.asarray(out.actions),
            confidence=np.asarray(out.confidence),
            time_from_start_s=self.time_from_start_s.copy(),
            future_rgb=np.asarray(out.future_rgb),
            future_action=np.asarray(out.future_action),
            cond_rgb=small,
            state=state.copy(),
            latency_s=time.perf_counter() - t0,
            draws=draws,
        )
