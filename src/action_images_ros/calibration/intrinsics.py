"""Intrinsics from board detections (when the camera does not report them): ``cv2.calibrateCamera``."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .board import BoardDetection


def estimate_intrinsics(
    detections: Sequence[BoardDetection], width: int, height: int, fix_distortion: bool = True
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Zhang's method over planar board views.

    Args:
        detections: the board seen in >= 3 different poses (more, tilted differently, is better).
        width, height: image size (px).
        fix_distortion: keep zero distortion (rectified streams, e.g. RealSense colour) or estimate
            ``k1, k2, p1, p2`` (``k3`` stays 0: it overfits with a few views).

    Returns:
        ``K (3, 3)``, ``distortion (5,)``, the reprojection RMS (px) and the 1-sigma uncertainty of
        ``fx`` (px) from OpenCV's covariance: a small board far away, or views tilted alike, leave the
        focal length (hence the camera's distance) poorly determined, and this number says so.

    Raises:
        ValueError: fewer than 3 detections.
    """
    if len(detections) < 3:
        raise ValueError(f"estimating intrinsics needs >= 3 board detections, got {len(detections)}")
    obj = [d.board_points.astype(np.float32) for d in detections]
    img = [d.image_points.astype(np.float32) for d in detections]
    flags = cv2.CALIB_FIX_K3
    if fix_distortion:
        flags |= cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2 | cv2.CALIB_ZERO_TANGENT_DIST
    rms, K, dist, _, _, std, _, _ = cv2.calibrateCameraExtended(obj, img, (int(width), int(height)), None, None,
                                                                flags=flags)
    return (np.asarray(K, dtype=np.float64), np.asarray(dist, dtype=np.float64).reshape(-1)[:5], float(rms),
            float(std.reshape(-1)[0]))
