"""Set-up (b), eye-to-hand: the camera is fixed, the board rides on the gripper at several arm poses.

Unknowns: ``X = T_base_cam`` (camera -> base) and ``Y = T_tcp_board`` (board -> TCP mount).
Measurements: the arm's ``A_i = T_base_tcp`` (forward kinematics) and the board's corners in
image ``i``. Model: a board corner ``P`` appears at ``project(K, X^-1 A_i Y P)``.

Method (why): a closed-form hand-eye solve initialises, a joint reprojection least squares
finishes.

1. ``cv2.calibrateHandEye`` (Park-Martin) with the inverted-pose convention for eye-to-hand:
   passing ``A_i^-1`` (base -> TCP) as "gripper -> base" turns OpenCV's eye-in-hand equation
   ``A_i X B_i = const`` into ``A_i^-1 X B_i = Y = const`` with ``B_i = T_cam_board`` from PnP, so the
   "camera -> gripper" it returns is ``X``. ``Y`` is then the mean of ``A_i^-1 X B_i``.
2. The closed forms treat each per-image PnP pose as exact and weigh rotation and translation
   ad hoc, while a planar board's PnP pose is poorly determined along the viewing axis. The
   least squares over ``(X, Y)`` minimises the pixel errors of every corner instead (maximum
   likelihood under corner noise), and yields the reprojection RMS the refusal checks and a
   covariance. ``cv2.calibrateRobotWorldHandEye`` solves the same ``A Y = X B`` in closed form
   but has the same weighting problem, so it would only be another initialiser.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from .board import BoardDetection
from .least_squares import PoseSolution, project_pinhole, refine_poses
from .table import board_pose_in_camera
from .transforms import invert, make_transform


def initial_hand_eye(T_base_tcps: Sequence[np.ndarray], T_cam_boards: Sequence[np.ndarray]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ``(T_base_cam, T_tcp_board)`` from >= 3 arm poses and per-image board poses."""
    T_tcp_bases = [invert(A) for A in T_base_tcps]
    R_x, t_x = cv2.calibrateHandEye([T[:3, :3] for T in T_tcp_bases], [T[:3, 3] for T in T_tcp_bases],
                                    [B[:3, :3] for B in T_cam_boards], [B[:3, 3] for B in T_cam_boards],
                                    method=cv2.CALIB_HAND_EYE_PARK)
    if not (np.all(np.isfinite(R_x)) and np.all(np.isfinite(t_x))):
        raise ValueError("cv2.calibrateHandEye found no solution: the arm poses need rotations about at least two "
                         "different axes")
    X = make_transform(R_x, t_x)
    Ys = [Ai @ X @ B for Ai, B in zip(T_tcp_bases, T_cam_boards)]
    R_y = Rotation.from_matrix(np.stack([Y[:3, :3] for Y in Ys])).mean().as_matrix()
    return X, make_transform(R_y, np.mean([Y[:3, 3] for Y in Ys], axis=0))


def solve_eye_to_hand(detections: Sequence[BoardDetection], T_base_tcps: Sequence[np.ndarray],
                      K: np.ndarray) -> PoseSolution:
    """Camera pose and board mount from a board on the gripper.

    Args:
        detections: undistorted detections, each with >= 4 corners, >= 3 of them.
        T_base_tcps: ``(4, 4)`` TCP -> base of each image (the arm's reported pose), same order.
        K: ``(3, 3)`` intrinsics.

    Returns:
        ``poses = [T_base_cam, T_tcp_board]``, the RMS over all corners and the covariance.
    """
    if len(detections) != len(T_base_tcps) or len(detections) < 3:
        raise ValueError(f"eye-to-hand needs one arm pose per detection and >= 3 of them, got {len(detections)} "
                         f"detections and {len(T_base_tcps)} poses")
    B = [board_pose_in_camera(d, K) for d in detections]
    X0, Y0 = initial_hand_eye(T_base_tcps, B)
    sizes = [len(d) for d in detections]
    measured = np.concatenate([d.image_points for d in detections])
    A = np.stack(T_base_tcps)

    def residuals(poses: list[np.ndarray]) -> np.ndarray:
        T_cam_base, Y = invert(poses[0]), poses[1]
        M = np.einsum("ij,njk->nik", T_cam_base, A) @ Y  # board -> camera per image
        pred = [d.board_points @ Mi[:3, :3].T + Mi[:3, 3] for d, Mi in zip(detections, M)]
        return (measured - project_pinhole(K, np.concatenate(pred))).ravel()

    return refine_poses(residuals, [X0, Y0], int(sum(sizes)))
