"""The action video on the wire and for RViz (no ROS): frame stacking, combined images, overlays, summaries.

A view's predicted action video ``(F, S, S, 3)`` travels as one image of ``F`` frames
stacked vertically, ``(F * S, S, 3)`` (``32FC3``, values in [0, 1], no quantisation), with
a CameraInfo describing one ``S x S`` frame; :func:`stack_frames` / :func:`unstack_frames`
convert. RViz gets the F frames combined into one image (:func:`combined_action_image`)
and drawn over the camera frame at the camera's resolution (:func:`overlay_on_frame`).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..codec import overlay_action_images

__all__ = ["stack_frames", "unstack_frames", "combined_action_image", "overlay_on_frame", "prediction_summary"]


def stack_frames(frames: np.ndarray) -> np.ndarray:
    """``(F, S, S, C)`` -> ``(F * S, S, C)`` (frame ``f`` = rows ``f*S .. (f+1)*S``)."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must have shape (F, H, W, C), got {frames.shape}")
    F, H, W, C = frames.shape
    return np.ascontiguousarray(frames.reshape(F * H, W, C))


def unstack_frames(video: np.ndarray, frame_height: int) -> np.ndarray:
    """``(F * H, W, C)`` -> ``(F, H, W, C)``; the image height must be a multiple of ``frame_height``."""
    video = np.asarray(video)
    if video.ndim != 3 or frame_height < 1 or video.shape[0] % frame_height:
        raise ValueError(f"an action video must be (F * {frame_height}, W, C) with F >= 1 frames stacked "
                         f"vertically; got an image of shape {video.shape}")
    return video.reshape(video.shape[0] // frame_height, frame_height, *video.shape[1:])


def combined_action_image(frames: np.ndarray) -> np.ndarray:
    """The F action images of one view in one uint8 image ``(S, S, 3)`` (per-pixel maximum)."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"action frames must have shape (F, S, S, 3), got {frames.shape}")
    return (np.clip(np.nan_to_num(frames.max(axis=0)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def overlay_on_frame(frame: np.ndarray, frames: np.ndarray, open_background: float = 0.25) -> np.ndarray:
    """The F action images of one view (combined) drawn over the camera frame at its own resolution.

    Args:
        frame: ``(H, W, 3)`` uint8 camera image.
        frames: ``(F, S, S, 3)`` action images in [0, 1] (model resolution, same field of view).
        open_background: the codec's gripper background level.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    act = np.clip(np.nan_to_num(np.asarray(frames, dtype=np.float32).max(axis=0)), 0.0, 1.0)
    act = cv2.resize(act, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR)
    return overlay_action_images(frame, act, open_background=open_background)


def prediction_summary(actions: np.ndarray, confidence: np.ndarray, stamp_ns: int, views, latency_s: float,
                       frame_age_s: float, seed: int, num_inference_steps: int, draws: int = 1) -> dict:
    """JSON-ready summary of one prediction (the ``/action_images/predict`` answer).

    Keys: ``stamp_ns`` (camera frames), ``views``, ``poses`` (F x ``[x y z qx qy qz qw]``, m, base
    frame), ``gripper`` (F, openness), ``confidence`` (F), ``latency_s`` (model call),
    ``frame_age_s`` (frame stamp -> outputs published), ``seed``, ``num_inference_steps``, ``draws`` (noise
    draws the call took: more than 1 when it drew again on low confidence).
    """
    a = np.asarray(actions, dtype=np.float64)
    return {
        "stamp_ns": int(stamp_ns),
        "views": list(views),
        "poses": np.round(a[:, :7], 5).tolist(),
        "gripper": np.round(a[:, 7], 4).tolist(),
        "confidence": np.round(np.asarray(confidence, dtype=np.float64), 4).tolist(),
        "latency_s": round(float(latency_s), 4),
        "frame_age_s": round(float(frame_age_s), 4),
        "seed": int(seed),
        "num_inference_steps": int(num_inference_steps),
        "draws": int(draws),
    }
