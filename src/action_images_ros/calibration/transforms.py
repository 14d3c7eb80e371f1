"""Rigid transforms as 4x4 matrices: build, invert, convert, compare (thin layer over scipy)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ..geometry import matrix_to_quat, pose_to_matrix


def make_transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """``(4, 4)`` from a ``(3, 3)`` rotation and a ``(3,)`` translation."""
    T = np.eye(4)
    T[:3, :3] = rotation
    T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid ``(4, 4)`` transform."""
    R, t = T[:3, :3], T[:3, 3]
    return make_transform(R.T, -R.T @ t)


def from_rvec(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """``(4, 4)`` from an OpenCV rotation vector and translation."""
    return make_transform(Rotation.from_rotvec(np.asarray(rvec, dtype=np.float64).reshape(3)).as_matrix(), tvec)


def pose7_to_matrix(pose) -> np.ndarray:
    """``[x y z qx qy qz qw]`` (metres, scalar-last) -> ``(4, 4)``; the quaternion is normalised.

    Raises:
        ValueError: not 7 finite numbers or a zero quaternion.
    """
    p = np.asarray(pose, dtype=np.float64).reshape(-1)
    if p.shape != (7,) or not np.all(np.isfinite(p)):
        raise ValueError(f"a pose must be 7 finite numbers [x y z qx qy qz qw], got {pose!r}")
    n = np.linalg.norm(p[3:])
    if n < 1e-6:
        raise ValueError(f"pose has a zero quaternion: {pose!r}")
    return pose_to_matrix(np.concatenate([p[:3], p[3:] / n]))


def matrix_to_pose7(T: np.ndarray) -> list[float]:
    """``(4, 4)`` -> ``[x y z qx qy qz qw]`` as plain floats (qw >= 0)."""
    return [float(v) for v in np.concatenate([T[:3, 3], matrix_to_quat(T[:3, :3])])]


def pose_error(T_est: np.ndarray, T_true: np.ndarray) -> tuple[float, float]:
    """Position error (m) and geodesic rotation error (deg) between two ``(4, 4)`` poses."""
    dp = float(np.linalg.norm(T_est[:3, 3] - T_true[:3, 3]))
    dr = float(np.degrees(Rotation.from_matrix(T_est[:3, :3].T @ T_true[:3, :3]).magnitude()))
    return dp, dr


def perturb(T: np.ndarray, rng: np.random.Generator, pos_sigma_m: float, rot_sigma_deg: float) -> np.ndarray:
    """``T`` with Gaussian noise: ``pos_sigma_m`` per axis on the translation, a rotation of
    ``rot_sigma_deg`` per axis (rotation vector) applied in the frame of ``T``."""
    dR = Rotation.from_rotvec(np.radians(rot_sigma_deg) * rng.standard_normal(3)).as_matrix()
    return make_transform(T[:3, :3] @ dR, T[:3, 3] + pos_sigma_m * rng.standard_normal(3))
