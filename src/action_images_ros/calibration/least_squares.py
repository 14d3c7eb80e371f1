"""Joint reprojection least squares over rigid poses, with the solution's covariance.

Each unknown pose is parameterised around its initial value as ``R = R0 exp([dr]x)``,
``t = t0 + dt`` (6 numbers: rotation vector in the pose's own frame, translation in
its parent frame), so the covariance of ``dt`` is directly the position uncertainty
of the pose and that of ``dr`` its rotation uncertainty, with no singularity at any
orientation.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from .transforms import make_transform


@dataclasses.dataclass
class PoseSolution:
    """Refined poses and fit statistics.

    Attributes:
        poses: the refined ``(4, 4)`` poses, in the order given.
        rms_px: reprojection RMS over all points (px).
        num_points: points in the fit.
        covariance: ``(6P, 6P)`` covariance of ``[dr_0, dt_0, dr_1, dt_1, ...]`` (rad, m),
            scaled by the residual variance.
    """

    poses: list[np.ndarray]
    rms_px: float
    num_points: int
    covariance: np.ndarray

    def position_std_mm(self, index: int = 0) -> float:
        """1-sigma position uncertainty of pose ``index`` (mm, sqrt of the trace of its 3x3 block)."""
        c = self.covariance[6 * index + 3:6 * index + 6, 6 * index + 3:6 * index + 6]
        return float(1000.0 * np.sqrt(max(np.trace(c), 0.0)))

    def rotation_std_deg(self, index: int = 0) -> float:
        """1-sigma rotation uncertainty of pose ``index`` (deg)."""
        c = self.covariance[6 * index:6 * index + 3, 6 * index:6 * index + 3]
        return float(np.degrees(np.sqrt(max(np.trace(c), 0.0))))


def project_pinhole(K: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """Pixels ``(N, 2)`` of camera-frame points ``(N, 3)`` (no distortion; z is clamped to 1 mm so a
    point behind the camera gives a large residual instead of a sign flip)."""
    z = np.maximum(points_cam[:, 2:3], 1e-3)
    xy = points_cam[:, :2] / z
    return np.stack([K[0, 0] * xy[:, 0] + K[0, 1] * xy[:, 1] + K[0, 2], K[1, 1] * xy[:, 1] + K[1, 2]], axis=1)


def _apply(T0: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return make_transform(T0[:3, :3] @ Rotation.from_rotvec(delta[:3]).as_matrix(), T0[:3, 3] + delta[3:])


def refine_poses(
    residuals: Callable[[list[np.ndarray]], np.ndarray],
    initial: Sequence[np.ndarray],
    num_points: int,
) -> PoseSolution:
    """Minimise the squared pixel residuals over the poses.

    Args:
        residuals: poses -> ``(2 * num_points,)`` pixel residuals (measured - predicted).
        initial: ``P`` initial ``(4, 4)`` poses.
        num_points: the points the residuals cover.

    Returns:
        The refined poses, RMS and covariance.
    """
    initial = [np.asarray(T, dtype=np.float64) for T in initial]
    n = 6 * len(initial)

    def fun(x: np.ndarray) -> np.ndarray:
        return residuals([_apply(T0, x[6 * i:6 * i + 6]) for i, T0 in enumerate(initial)])

    # Linear loss = maximum likelihood under Gaussian corner noise, which is what the RMS and the
    # covariance assume; outliers are not expected from ChArUco ids (each corner is identified).
    sol = least_squares(fun, np.zeros(n), method="trf", x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    r = sol.fun
    dof = max(r.size - n, 1)
    J = sol.jac
    try:
        cov = np.linalg.inv(J.T @ J) * float(r @ r) / dof
    except np.linalg.LinAlgError:  # singular: the data do not determine the poses
        cov = np.full((n, n), np.inf)
    poses = [_apply(T0, sol.x[6 * i:6 * i + 6]) for i, T0 in enumerate(initial)]
    return PoseSolution(poses=poses, rms_px=float(np.sqrt(float(r @ r) / max(num_points, 1))),
                        num_points=int(num_points), covariance=cov)
