"""Set-up (a): the board lies at measured poses (``T_base_board``), the camera is solved for.

Every detected corner is a known point in the base frame, so the camera pose is one
perspective-n-point problem over all corners of all board placements: initialised by
IPPE on the best single view (the exact solver for a planar target), then refined
jointly by reprojection least squares (which also gives its covariance).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .board import BoardDetection
from .least_squares import PoseSolution, project_pinhole, refine_poses
from .transforms import from_rvec, invert


def board_pose_in_camera(detection: BoardDetection, K: np.ndarray) -> np.ndarray:
    """``T_cam_board (4, 4)`` of one undistorted detection (IPPE, planar board; >= 4 corners).

    Raises:
        ValueError: fewer than 4 corners or the solver failed.
    """
    if len(detection) < 4:
        raise ValueError(f"a board pose needs >= 4 corners, got {len(detection)}")
    ok, rvec, tvec = cv2.solvePnP(detection.board_points, detection.image_points, K, None,
                                  flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise ValueError("solvePnP (IPPE) failed on a board detection")
    return from_rvec(rvec, tvec)


def solve_table(detections: Sequence[BoardDetection], T_base_boards: Sequence[np.ndarray],
                K: np.ndarray) -> PoseSolution:
    """Camera pose from boards at known poses.

    Args:
        detections: undistorted detections (one per image), each with >= 4 corners.
        T_base_boards: ``(4, 4)`` board -> base of each image (measured), same order.
        K: ``(3, 3)`` intrinsics.

    Returns:
        ``poses[0]`` = ``T_base_cam``, the RMS over all corners and the covariance.
    """
    if len(detections) != len(T_base_boards) or not detections:
        raise ValueError(f"need one board pose per detection (>= 1), got {len(detections)} detections and "
                         f"{len(T_base_boards)} poses")
    points_base = np.concatenate([d.board_points @ T[:3, :3].T + T[:3, 3] for d, T in zip(detections, T_base_boards)])
    measured = np.concatenate([d.image_points for d in detections])
    best = int(np.argmax([len(d) for d in detections]))
    T0 = T_base_boards[best] @ invert(board_pose_in_camera(detections[best], K))

    def residuals(poses: list[np.ndarray]) -> np.ndarray:
        T_cam_base = invert(poses[0])
        return (measured - project_pinhole(K, points_base @ T_cam_base[:3, :3].T + T_cam_base[:3, 3])).ravel()

    return refine_poses(residuals, [T0], len(measured))
