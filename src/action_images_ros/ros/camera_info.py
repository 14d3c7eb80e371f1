"""``geometry.Camera`` <-> ``sensor_msgs/msg/CameraInfo``.

CameraInfo carries the intrinsics only (K, P, R, distortion, image size) in the
camera's optical frame (``header.frame_id``, OpenCV axes). The extrinsics
(``T_world_cam``: camera -> robot base frame) travel separately, as static TF
and in the rig YAML, so :func:`info_to_camera` takes them as an argument and
:func:`info_to_rig_camera` takes them from a rig loaded with ``geometry.load_rig``.

Our cameras are ideal pinholes (rectified images): distortion ``plumb_bob``
with five zeros, ``R = I`` and ``P = [K | 0]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sensor_msgs.msg import CameraInfo

from ..cell_description import optical_frame_id
from ..geometry import Camera

__all__ = ["CameraInfoError", "camera_to_info", "info_to_camera", "info_to_rig_camera", "camera_name_from_frame"]

_OPTICAL_SUFFIX = optical_frame_id("")


class CameraInfoError(ValueError):
    """A CameraInfo that cannot be used (distorted, inconsistent, or not matching the rig)."""


def camera_to_info(camera: Camera, frame_id: str | None = None, stamp=None) -> CameraInfo:
    """A ``CameraInfo`` for ``camera`` (intrinsics only).

    Args:
        camera: the calibrated camera.
        frame_id: optical frame; None = ``"<camera.name>_optical_frame"`` (the URDF's frame).
        stamp: ``builtin_interfaces/Time`` for the header (None leaves it zero).
    """
    msg = CameraInfo()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = optical_frame_id(camera.name) if frame_id is None else frame_id
    msg.height, msg.width = int(camera.height), int(camera.width)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in camera.K.reshape(-1)]
    msg.r = [float(v) for v in np.eye(3).reshape(-1)]
    P = np.zeros((3, 4))
    P[:, :3] = camera.K
    msg.p = [float(v) for v in P.reshape(-1)]
    return msg


def camera_name_from_frame(frame_id: str) -> str:
    """``"front_optical_frame"`` -> ``"front"`` (frames without the suffix are returned unchanged)."""
    if frame_id.endswith(_OPTICAL_SUFFIX) and len(frame_id) > len(_OPTICAL_SUFFIX):
        return frame_id[: -len(_OPTICAL_SUFFIX)]
    return frame_id


def info_to_camera(msg: CameraInfo, T_world_cam: np.ndarray, name: str | None = None) -> Camera:
    """A ``Camera`` from a ``CameraInfo`` plus its extrinsics.

    Args:
        msg: intrinsics; must describe an undistorted pinhole (all distortion coefficients 0).
        T_world_cam: ``(4, 4)`` camera-to-base transform (from TF or the rig YAML).
        name: view name; None = derived from ``header.frame_id`` (``<name>_optical_frame``).

    Raises:
        CameraInfoError: non-zero distortion, a zero size, or a malformed K.
    """
    if int(msg.width) <= 0 or int(msg.height) <= 0:
        raise CameraInfoError(f"CameraInfo {msg.header.frame_id!r} has an empty image size {msg.width}x{msg.height}")
    d = np.asarray(msg.d, dtype=np.float64)
    if not np.all(np.isfinite(d)) or not np.all(np.isfinite(np.asarray(msg.k, dtype=np.float64))):
        raise CameraInfoError(f"CameraInfo {msg.header.frame_id!r} has non-finite values (NaN/inf) in K "
                              f"{list(msg.k)} or D {list(msg.d)}")
    if d.size and np.any(np.abs(d) > 1e-12):
        raise CameraInfoError(
            f"CameraInfo {msg.header.frame_id!r} has distortion {d.tolist()} ({msg.distortion_model}); "
            "the action-image codec needs rectified images (all coefficients 0)"
        )
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.allclose(K[2], [0.0, 0.0, 1.0]) or not (K[0, 0] > 0 and K[1, 1] > 0):
        raise CameraInfoError(f"CameraInfo {msg.header.frame_id!r} has an invalid K {K.tolist()}")
    name = camera_name_from_frame(msg.header.frame_id) if name is None else name
    try:
        return Camera(K=K, T_world_cam=np.asarray(T_world_cam, dtype=np.float64), width=int(msg.width),
                      height=int(msg.height), name=name)
    except ValueError as exc:
        raise CameraInfoError(str(exc)) from exc


def info_to_rig_camera(msg: CameraInfo, rig: Sequence[Camera], name: str | None = None,
                       intrinsics_tol_px: float = 0.5) -> Camera:
    """A ``Camera`` from a ``CameraInfo``, with the extrinsics of the same-named camera of ``rig``.

    The rig camera's intrinsics, scaled to the message's image size, must agree with the
    message's K within ``intrinsics_tol_px`` pixels (catches a wrong rig or a swapped topic).

    Raises:
        CameraInfoError: no camera of that name in the rig, or intrinsics that disagree.
    """
    name = camera_name_from_frame(msg.header.frame_id) if name is None else name
    by_name = {c.name: c for c in rig}
    if name not in by_name:
        raise CameraInfoError(f"camera {name!r} (frame {msg.header.frame_id!r}) is not in the rig {sorted(by_name)}")
    cam = info_to_camera(msg, by_name[name].T_world_cam, name=name)
    expected = by_name[name].scaled(cam.width, cam.height).K
    err = float(np.max(np.abs(expected - cam.K)))
    if err > intrinsics_tol_px:
        raise CameraInfoError(
            f"camera {name!r}: CameraInfo K {cam.K.round(2).tolist()} differs from the rig's "
            f"{expected.round(2).tolist()} by {err:.2f} px (> {intrinsics_tol_px})"
        )
    return cam
