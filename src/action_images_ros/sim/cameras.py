"""Camera rig <-> MuJoCo cameras: exact intrinsics/extrinsics of the rendered images.

MuJoCo renders a pinhole camera with square pixels, a vertical field of view
``fovy`` and the principal point at the image centre, looking along its local
-z with +y up. In OpenCV terms (``geometry.Camera``) that is

* ``fy = (H / 2) / tan(fovy / 2)``, ``fx = fy``, ``cx = (W - 1) / 2``, ``cy = (H - 1) / 2``
* ``R_world_cam = cam_xmat @ diag(1, -1, -1)``, ``t = cam_xpos``.

Rig cameras given by ``K`` must therefore have square pixels, no skew and a
centred principal point (within 0.5 px); :func:`cameras_for_image` rejects
others with a ValueError rather than rendering something the K does not describe.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..geometry import Camera, matrix_to_quat

#: OpenCV camera axes (x right, y down, z forward) -> MuJoCo camera axes (x right, y up, z back).
CV_TO_MUJOCO = np.diag([1.0, -1.0, -1.0])


def fovy_deg(camera: Camera) -> float:
    """Vertical field of view (degrees) of a MuJoCo-renderable camera.

    Raises:
        ValueError: the camera has non-square pixels, skew or an off-centre principal point.
    """
    K = camera.K
    fx, fy, skew, cx, cy = K[0, 0], K[1, 1], K[0, 1], K[0, 2], K[1, 2]
    problems = []
    if abs(fx - fy) > 1e-6 * fy:
        problems.append(f"fx={fx:.3f} != fy={fy:.3f}")
    if abs(skew) > 1e-9:
        problems.append(f"skew={skew}")
    if abs(cx - (camera.width - 1) / 2) > 0.5 or abs(cy - (camera.height - 1) / 2) > 0.5:
        problems.append(f"principal point ({cx:.2f}, {cy:.2f}) is not the image centre")
    if problems:
        raise ValueError(f"camera {camera.name!r} cannot be rendered by MuJoCo: " + "; ".join(problems))
    return float(np.degrees(2.0 * np.arctan((camera.height / 2.0) / fy)))


def cameras_for_image(rig: Sequence[Camera], width: int, height: int) -> list[Camera]:
    """The rig's cameras as rendered at ``width`` x ``height`` pixels.

    The vertical field of view and the pose are kept; with the rig's aspect
    ratio this equals ``camera.scaled(width, height)``, with another aspect the
    horizontal field of view changes (as MuJoCo renders it).
    """
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return [Camera.from_fovy(fovy_deg(c), int(width), int(height), c.T_world_cam, name=c.name) for c in rig]


def mujoco_camera_pose(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Position ``(3,)`` and MuJoCo orientation quaternion ``(4,)`` scalar-FIRST ``[w x y z]``."""
    R_mj = camera.T_world_cam[:3, :3] @ CV_TO_MUJOCO
    qx, qy, qz, qw = matrix_to_quat(R_mj)
    return camera.T_world_cam[:3, 3].copy(), np.array([qw, qx, qy, qz])


def camera_from_mujoco(
    cam_xpos: np.ndarray, cam_xmat: np.ndarray, fovy: float, width: int, height: int, name: str
) -> Camera:
    """OpenCV camera of a MuJoCo camera from ``data.cam_xpos``/``data.cam_xmat`` and ``model.cam_fovy``."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(cam_xmat, dtype=np.float64).reshape(3, 3) @ CV_TO_MUJOCO
    T[:3, 3] = np.asarray(cam_xpos, dtype=np.float64)
    return Camera.from_fovy(float(fovy), int(width), int(height), T, name=name)
