"""Pinhole cameras, rotations, projection and triangulation (no ROS).

Conventions used throughout the package:

* Cameras follow OpenCV: x right, y down, z forward; pixel centres at integer
  coordinates, so ``u = fx * X/Z + cx``.
* ``T_world_cam`` is the 4x4 homogeneous camera-to-world transform (it maps a
  point in the camera frame into the world / robot base frame).
* A pose or action is ``[x, y, z, qx, qy, qz, qw, gripper]``: metres in the robot
  base frame, quaternion scalar-last (ROS order), gripper openness in [0, 1]
  with 1 = open.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

logger = logging.getLogger(__name__)

ACTION_DIM = 8


# --------------------------------------------------------------------------- rotations
def quat_to_matrix(quat_xyzw: np.ndarray) -> np.ndarray:
    """Quaternions ``(..., 4)`` scalar-last -> rotation matrices ``(..., 3, 3)``."""
    q = np.asarray(quat_xyzw, dtype=np.float64)
    flat = q.reshape(-1, 4)
    mats = Rotation.from_quat(flat).as_matrix()
    return mats.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(mats: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` -> quaternions ``(..., 4)`` scalar-last, qw >= 0."""
    m = np.asarray(mats, dtype=np.float64)
    flat = Rotation.from_matrix(m.reshape(-1, 3, 3)).as_quat()
    flat = np.where(flat[:, 3:4] < 0, -flat, flat)  # canonical sign keeps trajectories smooth
    return flat.reshape(m.shape[:-2] + (4,))


def rotation_angle_deg(q_a: np.ndarray, q_b: np.ndarray) -> np.ndarray:
    """Geodesic angle in degrees between two sets of quaternions ``(..., 4)``."""
    qa = np.asarray(q_a, dtype=np.float64).reshape(-1, 4)
    qb = np.asarray(q_b, dtype=np.float64).reshape(-1, 4)
    rel = Rotation.from_quat(qa).inv() * Rotation.from_quat(qb)
    return np.degrees(rel.magnitude()).reshape(np.shape(q_a)[:-1])


def pose_to_matrix(pose: np.ndarray) -> np.ndarray:
    """``[x y z qx qy qz qw (gripper)]`` -> 4x4 homogeneous transform."""
    pose = np.asarray(pose, dtype=np.float64)
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix(pose[3:7])
    T[:3, 3] = pose[:3]
    return T


def finger_openness(names, positions, max_width_m: float = 0.08, joint_prefix: str = "") -> float | None:
    """Gripper openness in [0, 1] from finger joint positions: the sum of the joints whose names contain
    ``finger`` (and start with ``joint_prefix``) over ``max_width_m`` (Franka's two fingers move 0..0.04 m
    each). None without a finger joint."""
    vals = [float(p) for n, p in zip(names, positions) if "finger" in n and n.startswith(joint_prefix)]
    if not vals:
        return None
    return float(np.clip(sum(vals) / max_width_m, 0.0, 1.0))


def validate_actions(actions: np.ndarray) -> np.ndarray:
    """Check an action trajectory has shape ``(T, 8)`` and return it as float64."""
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != ACTION_DIM:
        raise ValueError(
            f"actions must have shape (T, {ACTION_DIM}) = [x, y, z, qx, qy, qz, qw, gripper]; got {a.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise ValueError("actions contain NaN or infinite values")
    norms = np.linalg.norm(a[:, 3:7], axis=1)
    if np.any(norms < 1e-6):
        raise ValueError("actions contain a zero quaternion (columns 3:7 must be [qx, qy, qz, qw])")
    return a


# --------------------------------------------------------------------------- camera
@dataclasses.dataclass
class Camera:
    """A calibrated pinhole camera in the OpenCV convention.

    Attributes:
        K: ``(3, 3)`` intrinsic matrix in pixels.
        T_world_cam: ``(4, 4)`` camera-to-world transform (metres).
        width: image width in pixels.
        height: image height in pixels.
        name: view name, e.g. ``"front"``.
    """

    K: np.ndarray
    T_world_cam: np.ndarray
    width: int
    height: int
    name: str = "camera"

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64)
        self.T_world_cam = np.asarray(self.T_world_cam, dtype=np.float64)
        if self.K.shape != (3, 3):
            raise ValueError(f"Camera {self.name!r}: K must be 3x3, got {self.K.shape}")
        if self.T_world_cam.shape != (4, 4):
            raise ValueError(f"Camera {self.name!r}: T_world_cam must be 4x4, got {self.T_world_cam.shape}")
        if not (np.all(np.isfinite(self.K)) and np.all(np.isfinite(self.T_world_cam))):
            raise ValueError(f"Camera {self.name!r}: K and T_world_cam must be finite (no NaN/inf), got "
                             f"K={self.K.tolist()}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"Camera {self.name!r}: width/height must be positive, got {self.width}x{self.height}")
        R = self.T_world_cam[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
            raise ValueError(f"Camera {self.name!r}: T_world_cam rotation is not a proper rotation matrix")
        if not (self.K[0, 0] > 0 and self.K[1, 1] > 0):
            raise ValueError(f"Camera {self.name!r}: focal lengths must be positive, got K={self.K.tolist()}")
        self.width = int(self.width)
        self.height = int(self.height)

    # ---- constructors
    @classmethod
    def from_fovy(cls, fovy_deg: float, width: int, height: int, T_world_cam: np.ndarray, name: str = "camera"):
        """Square-pixel camera from a vertical field of view (MuJoCo's convention)."""
        fy = (height / 2.0) / np.tan(np.radians(fovy_deg) / 2.0)
        K = np.array([[fy, 0.0, (width - 1) / 2.0], [0.0, fy, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
        return cls(K=K, T_world_cam=T_world_cam, width=width, height=height, name=name)

    @classmethod
    def look_at(
        cls,
        eye: Sequence[float],
        target: Sequence[float],
        fovy_deg: float,
        width: int,
        height: int,
        up: Sequence[float] = (0.0, 0.0, 1.0),
        name: str = "camera",
    ) -> "Camera":
        """Camera at ``eye`` looking at ``target`` with image-up close to ``up`` (world frame)."""
        eye = np.asarray(eye, dtype=np.float64)
        z = np.asarray(target, dtype=np.float64) - eye
        if np.linalg.norm(z) < 1e-9:
            raise ValueError("look_at: eye and target coincide")
        z /= np.linalg.norm(z)
        x = np.cross(z, np.asarray(up, dtype=np.float64))  # OpenCV: y = down = -up, x = y x z
        if np.linalg.norm(x) < 1e-9:
            raise ValueError("look_at: viewing direction is parallel to 'up'")
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        T = np.eye(4)
        T[:3, :3] = np.stack([x, y, z], axis=1)
        T[:3, 3] = eye
        return cls.from_fovy(fovy_deg, width, height, T, name=name)

    # ---- derived quantities
    @property
    def T_cam_world(self) -> np.ndarray:
        """World-to-camera transform ``(4, 4)``."""
        R = self.T_world_cam[:3, :3]
        t = self.T_world_cam[:3, 3]
        T = np.eye(4)
        T[:3, :3] = R.T
        T[:3, 3] = -R.T @ t
        return T

    @property
    def position(self) -> np.ndarray:
        """Optical centre in the world frame ``(3,)``."""
        return self.T_world_cam[:3, 3].copy()

    @property
    def projection_matrix(self) -> np.ndarray:
        """``(3, 4)`` matrix P = K [R | t] mapping world points to pixels."""
        return self.K @ self.T_cam_world[:3, :]

    # ---- projection
    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Project world points ``(..., 3)``.

        Returns:
            uv: ``(..., 2)`` pixel coordinates (undefined where not in front),
            depth: ``(...,)`` z in the camera frame (metres),
            in_front: ``(...,)`` bool, depth > 1 mm.
        """
        pts = np.asarray(points_world, dtype=np.float64)
        if pts.shape[-1] != 3:
            raise ValueError(f"points must have shape (..., 3), got {pts.shape}")
        Tcw = self.T_cam_world
        pc = pts @ Tcw[:3, :3].T + Tcw[:3, 3]
        depth = pc[..., 2]
        in_front = depth > 1e-3
        z = np.where(in_front, depth, 1.0)
        u = self.K[0, 0] * pc[..., 0] / z + self.K[0, 1] * pc[..., 1] / z + self.K[0, 2]
        v = self.K[1, 1] * pc[..., 1] / z + self.K[1, 2]
        return np.stack([u, v], axis=-1), depth, in_front

    def in_image(self, uv: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether pixel coordinates ``(..., 2)`` lie inside the image (with ``margin`` px)."""
        uv = np.asarray(uv)
        return (
            (uv[..., 0] >= -0.5 + margin)
            & (uv[..., 0] <= self.width - 0.5 - margin)
            & (uv[..., 1] >= -0.5 + margin)
            & (uv[..., 1] <= self.height - 0.5 - margin)
        )

    def pixel_rays(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rays through pixels ``(..., 2)``: origin ``(3,)`` and unit directions ``(..., 3)`` in world."""
        uv = np.asarray(uv, dtype=np.float64)
        ones = np.ones(uv.shape[:-1] + (1,))
        d_cam = np.concatenate([uv, ones], axis=-1) @ np.linalg.inv(self.K).T
        d_world = d_cam @ self.T_world_cam[:3, :3].T
        d_world /= np.linalg.norm(d_world, axis=-1, keepdims=True)
        return self.position, d_world

    def backproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` at camera-frame ``depth`` (z, metres) along pixels ``(..., 2)``."""
        uv = np.asarray(uv, dtype=np.float64)
        ones = np.ones(uv.shape[:-1] + (1,))
        d_cam = np.concatenate([uv, ones], axis=-1) @ np.linalg.inv(self.K).T  # z = 1
        pc = d_cam * np.asarray(depth, dtype=np.float64)[..., None]
        return pc @ self.T_world_cam[:3, :3].T + self.T_world_cam[:3, 3]

    # ---- image-space edits
    def scaled(self, width: int, height: int) -> "Camera":
        """The same camera for an image resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, 0] *= sx
        K[0, 1] *= sx
        K[1, 1] *= sy
        # Pixel centres are at integers, so the principal point scales about -0.5.
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return dataclasses.replace(self, K=K, width=int(width), height=int(height))

    def cropped(self, x0: int, y0: int, width: int, height: int) -> "Camera":
        """The camera for the crop ``[y0:y0+height, x0:x0+width]`` of its image."""
        if x0 < 0 or y0 < 0 or x0 + width > self.width or y0 + height > self.height:
            raise ValueError(
                f"crop ({x0}, {y0}, {width}, {height}) exceeds image {self.width}x{self.height} of {self.name!r}"
            )
        K = self.K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        return dataclasses.replace(self, K=K, width=int(width), height=int(height))

    # ---- (de)serialisation
    def to_dict(self) -> dict:
        quat = matrix_to_quat(self.T_world_cam[:3, :3])
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "K": [[float(v) for v in row] for row in self.K],
            "position": [float(v) for v in self.T_world_cam[:3, 3]],
            "quaternion_xyzw": [float(v) for v in quat],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Camera":
        missing = {"name", "width", "height", "position", "quaternion_xyzw"} - set(d)
        if missing:
            raise ValueError(f"camera entry is missing keys {sorted(missing)}: {d}")
        if "K" in d:
            K = np.asarray(d["K"], dtype=np.float64)
        elif "fovy_deg" in d:
            return cls.from_fovy(
                float(d["fovy_deg"]), int(d["width"]), int(d["height"]),
                _pose_dict_to_T(d), name=str(d["name"]),
            )
        else:
            raise ValueError(f"camera {d.get('name')!r} needs either 'K' or 'fovy_deg'")
        return cls(K=K, T_world_cam=_pose_dict_to_T(d), width=int(d["width"]), height=int(d["height"]),
                   name=str(d["name"]))


def _pose_dict_to_T(d: dict) -> np.ndarray:
    q = np.asarray(d["quaternion_xyzw"], dtype=np.float64)
    if q.shape != (4,) or np.linalg.norm(q) < 1e-6:
        raise ValueError(f"camera {d.get('name')!r}: quaternion_xyzw must be 4 non-zero numbers, got {d['quaternion_xyzw']}")
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix(q / np.linalg.norm(q))
    T[:3, 3] = np.asarray(d["position"], dtype=np.float64)
    return T


# --------------------------------------------------------------------------- rigs
def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def perturb_rig(cameras: Sequence[Camera], shift_m: float, turn_deg: float, rng: np.random.Generator) -> list[Camera]:
    """Every camera's optical centre moved ``shift_m`` and its orientation turned ``turn_deg``, each
    in a random direction (about a random axis through the optical centre); intrinsics unchanged."""
    out = []
    for cam in cameras:
        T = np.array(cam.T_world_cam, dtype=np.float64)
        T[:3, 3] = T[:3, 3] + shift_m * _unit(rng)
        T[:3, :3] = Rotation.from_rotvec(np.radians(turn_deg) * _unit(rng)).as_matrix() @ T[:3, :3]
        out.append(dataclasses.replace(cam, K=cam.K.copy(), T_world_cam=T))
    return out


def jittered_rig(cameras: Sequence[Camera], max_shift_m: float, max_turn_deg: float,
                 rng: np.random.Generator) -> list[Camera]:
    """Each camera moved and turned as :func:`perturb_rig` does, by its own amounts drawn uniformly from
    ``[0, max_shift_m]`` and ``[0, max_turn_deg]`` (the nominal rig's neighbourhood is covered, not a shell
    around it): per-episode rigs for training data that should transfer to a rebuilt cell."""
    if max_shift_m < 0 or max_turn_deg < 0:
        raise ValueError(f"camera jitter must be >= 0, got {max_shift_m} m and {max_turn_deg} deg")
    return [perturb_rig([cam], rng.uniform(0.0, max_shift_m), rng.uniform(0.0, max_turn_deg), rng)[0]
            for cam in cameras]


def load_rig(path: str | Path) -> list[Camera]:
    """Read a camera rig YAML (``{frame_id: ..., cameras: [...]}``) into Cameras."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"camera rig file not found: {path}")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), list) or not data["cameras"]:
        raise ValueError(f"{path}: expected a mapping with a non-empty 'cameras' list")
    cams = [Camera.from_dict(c) for c in data["cameras"]]
    names = [c.name for c in cams]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: camera names must be unique, got {names}")
    return cams


def save_rig(path: str | Path, cameras: Iterable[Camera], frame_id: str = "base_link") -> None:
    """Write cameras as a rig YAML readable by :func:`load_rig`."""
    data = {"frame_id": frame_id, "cameras": [c.to_dict() for c in cameras]}
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def rig_frame_id(path: str | Path) -> str:
    """The frame the rig's extrinsics are expressed in (default ``base_link``)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    return str(data.get("frame_id", "base_link"))


# --------------------------------------------------------------------------- triangulation
def triangulate(
    cameras: Sequence[Camera], uv: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares intersection of pixel rays.

    Minimises ``sum_v w_v * |(I - d_v d_v^T)(X - o_v)|^2`` per point, the squared
    distances from X to each view's ray, in closed form.

    Args:
        cameras: ``V`` cameras.
        uv: ``(V, N, 2)`` pixel coordinates of N points in each view.
        weights: ``(V, N)`` non-negative weights; 0 = not seen in that view.

    Returns:
        points: ``(N, 3)`` world points (zeros where not solvable),
        ok: ``(N,)`` bool, True where at least two views with non-parallel rays
        contributed.
    """
    uv = np.asarray(uv, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    V = len(cameras)
    if uv.ndim != 3 or uv.shape[0] != V or uv.shape[2] != 2:
        raise ValueError(f"uv must have shape (V={V}, N, 2), got {uv.shape}")
    if w.shape != uv.shape[:2]:
        raise ValueError(f"weights must have shape {uv.shape[:2]}, got {w.shape}")
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    uv = np.where(np.isfinite(uv), uv, 0.0)
    N = uv.shape[1]
    A = np.zeros((N, 3, 3))
    b = np.zeros((N, 3))
    eye = np.eye(3)
    for v, cam in enumerate(cameras):
        origin, d = cam.pixel_rays(uv[v])  # (3,), (N, 3)
        P = eye[None] - d[:, :, None] * d[:, None, :]  # projector orthogonal to the ray
        A += w[v][:, None, None] * P
        b += w[v][:, None] * (P @ origin)
    n_views = (w > 0).sum(axis=0)
    # A is singular with <2 views or parallel rays; its smallest eigenvalue tells.
    eig_min = np.linalg.eigvalsh(A)[:, 0] if N else np.zeros(0)
    w_sum = np.maximum(w.sum(axis=0), 1e-12)
    ok = (n_views >= 2) & (eig_min / w_sum > 1e-6)
    X = np.zeros((N, 3))
    if np.any(ok):
        X[ok] = np.linalg.solve(A[ok], b[ok][..., None])[..., 0]
    return X, ok
