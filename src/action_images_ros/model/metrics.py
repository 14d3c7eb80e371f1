"""Error measures of generated actions and frames (numpy, no learned metrics)."""

from __future__ import annotations

import numpy as np

from ..geometry import rotation_angle_deg


def action_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
    """Per-step errors of predicted actions ``(..., 8)`` against the truth ``(..., 8)``.

    Returns:
        ``position_mm`` (Euclidean, millimetres), ``rotation_deg`` (geodesic angle),
        ``gripper_correct`` (bool, openness thresholded at 0.5), each of shape ``(...)``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.shape[-1] != 8:
        raise ValueError(f"pred {pred.shape} and true {true.shape} must both be (..., 8)")
    return {
        "position_mm": 1000.0 * np.linalg.norm(pred[..., :3] - true[..., :3], axis=-1),
        "rotation_deg": rotation_angle_deg(pred[..., 3:7], true[..., 3:7]),
        "gripper_correct": (pred[..., 7] > 0.5) == (true[..., 7] > 0.5),
    }


def psnr(pred: np.ndarray, true: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio (dB) of images in ``[0, data_range]`` over all pixels."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} differ in shape")
    mse = float(np.mean((pred - true) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)
