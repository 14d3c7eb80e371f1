"""Calibration captures in the simulated cell: board/arm poses, rendered views, optional noise.

:func:`simulate_captures` plays a calibration session against the true rig and returns what a
real session records (images + reported poses) together with the truth; :func:`write_dataset`
stores it in the calibration input format (``calibration/dataset.py``), so the simulated session
is calibrated by exactly the code a real one is.

Poses are ``(4, 4)`` in the robot base frame (metres). Noise (``CaptureConfig``) models the
measurement: Gaussian jitter on the *reported* board or TCP poses (the truth is rendered) and
Gaussian grey-level noise on the images.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from ..calibration.board import CharucoBoardConfig
from ..calibration.dataset import CalibrationDataset, CameraInput, Capture, save_dataset
from ..calibration.result import SETUPS
from ..calibration.transforms import invert, make_transform, perturb
from ..geometry import Camera
from .calibration_board import BoardCell, BoardSceneConfig

#: Default boards, sized for 640 x 480 views ~1.1 m away (>= ~20 px squares, so every corner is found):
#: a 49 x 35 cm table board (fits an A2 print) and a 24 x 20 cm board on the gripper.
TABLE_BOARD = CharucoBoardConfig(squares_x=7, squares_y=5, square_length_m=0.07, marker_length_m=0.05)
GRIPPER_BOARD = CharucoBoardConfig(squares_x=6, squares_y=5, square_length_m=0.04, marker_length_m=0.028)


@dataclasses.dataclass
class CaptureConfig:
    """A simulated calibration session.

    Attributes:
        setup: ``"table"`` or ``"gripper"``.
        image_size: ``(width, height)`` of every view (px).
        num_captures: board placements (table) or arm poses (gripper); None = 1 (table) / 8 per camera (gripper).
        board: the board; None = ``TABLE_BOARD`` / ``GRIPPER_BOARD``.
        seed: seeds every random choice (same seed, same session).
        table_center: mean board centre on the table (m, base frame).
        table_spread: half-ranges (m) of the uniform board-centre offset in x, y.
        table_yaw_deg: half-range of the uniform board yaw (deg).
        gripper_box_min, gripper_box_max: box (m) the board centre is drawn in (gripper set-up).
        gripper_tilt_deg: largest angle between the board normal and the direction to the camera it is
            turned to (deg). Rotation variety is what makes eye-to-hand well-posed: with 25 deg tilts and
            rolls instead of 40 / 45 deg, the camera error under arm-pose noise was ~1.5x larger.
        gripper_roll_deg: half-range of the board's rotation about its normal (deg).
        pose_noise_m: per-axis std of the reported pose's position error (m).
        pose_noise_deg: per-axis std of the reported pose's rotation error (deg).
        image_noise: std of Gaussian grey-level noise added to the images (0..255 scale).
    """

    setup: str = "table"
    image_size: tuple[int, int] = (640, 480)
    num_captures: int | None = None
    board: CharucoBoardConfig | None = None
    seed: int = 0
    table_center: tuple[float, float] = (0.55, 0.0)
    table_spread: tuple[float, float] = (0.05, 0.08)
    table_yaw_deg: float = 30.0
    gripper_box_min: tuple[float, float, float] = (0.35, -0.25, 0.12)
    gripper_box_max: tuple[float, float, float] = (0.70, 0.25, 0.50)
    gripper_tilt_deg: float = 40.0
    gripper_roll_deg: float = 45.0
    pose_noise_m: float = 0.0
    pose_noise_deg: float = 0.0
    image_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.setup not in SETUPS:
            raise ValueError(f"setup must be one of {list(SETUPS)}, got {self.setup!r}")
        if self.num_captures is not None and self.num_captures < 1:
            raise ValueError(f"num_captures must be >= 1, got {self.num_captures}")
        if self.board is None:
            self.board = TABLE_BOARD if self.setup == "table" else GRIPPER_BOARD
        for name in ("pose_noise_m", "pose_noise_deg", "image_noise", "gripper_tilt_deg", "gripper_roll_deg"):
            if getattr(self, name) < 0:
                raise ValueError(f"CaptureConfig.{name} must be >= 0, got {getattr(self, name)}")


@dataclasses.dataclass
class SimulatedCaptures:
    """A simulated session and its truth.

    Attributes:
        setup: ``"table"`` or ``"gripper"``.
        board: the board.
        cameras: the true cameras at the image size (K and ``T_world_cam`` = camera -> base).
        images: ``(N, V, H, W, 3)`` uint8, capture-major, views in ``cameras`` order.
        reported_poses: ``(N, 4, 4)`` the poses a calibration is given (board -> base or TCP -> base, with noise).
        true_poses: ``(N, 4, 4)`` the rendered poses.
        true_tcp_board: ``(4, 4)`` board -> TCP mount (gripper set-up), else None.
    """

    setup: str
    board: CharucoBoardConfig
    cameras: list[Camera]
    images: np.ndarray
    reported_poses: np.ndarray
    true_poses: np.ndarray
    true_tcp_board: np.ndarray | None = None


def _board_facing(center: np.ndarray, toward: np.ndarray, tilt: np.ndarray, roll: float) -> np.ndarray:
    """Board-centre frame -> base with the printed face (-board z) towards ``toward`` tilted by the rotation vector
    ``tilt`` (rad), board y as close to 'down' as the plane allows, then rolled by ``roll`` about the normal."""
    n = toward - center
    n = Rotation.from_rotvec(tilt).apply(n / np.linalg.norm(n))
    z = -n
    y = np.array([0.0, 0.0, -1.0]) - np.dot([0.0, 0.0, -1.0], z) * z
    if np.linalg.norm(y) < 1e-6:  # board horizontal: any in-plane direction will do
        y = np.array([1.0, 0.0, 0.0])
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    R = np.stack([x, y, z], axis=1) @ Rotation.from_rotvec([0.0, 0.0, roll]).as_matrix()
    return make_transform(R, center)


def _centre_to_origin(T_center: np.ndarray, board: CharucoBoardConfig) -> np.ndarray:
    """Board frame (origin at the corner) of a board whose centre frame is ``T_center``."""
    sx, sy = board.size_m
    return T_center @ make_transform(np.eye(3), [-sx / 2, -sy / 2, 0.0])


def _fully_visible(camera: Camera, T_base_board: np.ndarray, board: CharucoBoardConfig, margin: float = 10) -> bool:
    sx, sy = board.size_m
    corners = np.array([[0, 0, 0], [sx, 0, 0], [sx, sy, 0], [0, sy, 0]], dtype=np.float64)
    pts = corners @ T_base_board[:3, :3].T + T_base_board[:3, 3]
    uv, _, front = camera.project(pts)
    normal = -T_base_board[:3, 2]  # the printed face must look towards the camera
    faces = np.dot(normal, camera.position - T_base_board[:3, 3]) > 0
    return bool(faces and np.all(front) and np.all(camera.in_image(uv, margin)))


def simulate_captures(rig: Sequence[Camera], config: CaptureConfig) -> SimulatedCaptures:
    """Render a calibration session of ``config.setup`` with the cameras of ``rig``.

    Table set-up: each capture places the board flat on the table near ``table_center``.
    Gripper set-up: capture ``k`` turns the board towards camera ``k mod V`` (tilted and rolled at
    random), reached by IK; poses the arm cannot reach or that hide the board from that camera are
    redrawn. Every capture is rendered by every camera.
    """
    rng = np.random.default_rng(config.seed)
    width, height = config.image_size
    scene = BoardSceneConfig(board=config.board, mount=config.setup)
    images, reported, true = [], [], []
    with BoardCell(rig, width, height, scene) as cell:
        cams = cell.cameras
        n = config.num_captures or (1 if config.setup == "table" else 8 * len(cams))
        T_tcp_board = None
        for k in range(n):
            if config.setup == "table":
                xy = np.asarray(config.table_center) + rng.uniform(-1, 1, 2) * np.asarray(config.table_spread)
                yaw = np.radians(config.table_yaw_deg) * rng.uniform(-1, 1)
                # Face up (board z into the table), the printed face on top of the backing plate.
                R = Rotation.from_euler("z", yaw).as_matrix() @ np.diag([1.0, -1.0, -1.0])
                T_center = make_transform(R, [xy[0], xy[1], scene.thickness_m])
                cell.place_board(_centre_to_origin(T_center, config.board))
                pose = cell.board_pose()
            else:
                T_tcp_board = _gripper_pose(cell, cams[k % len(cams)], config, rng)
                pose = cell.tcp_pose()
            images.append(cell.render())
            true.append(pose)
            reported.append(perturb(pose, rng, config.pose_noise_m, config.pose_noise_deg))
    imgs = np.stack(images)
    if config.image_noise > 0:
        imgs = np.clip(imgs + rng.normal(0.0, config.image_noise, imgs.shape), 0, 255).astype(np.uint8)
    return SimulatedCaptures(setup=config.setup, board=config.board, cameras=cams, images=imgs,
                             reported_poses=np.stack(reported), true_poses=np.stack(true), true_tcp_board=T_tcp_board)


def _gripper_pose(cell: BoardCell, camera: Camera, config: CaptureConfig, rng: np.random.Generator,
                  tries: int = 200) -> np.ndarray:
    """Move the arm to a random pose showing the board to ``camera``; returns the true board -> TCP."""
    lo, hi = np.asarray(config.gripper_box_min), np.asarray(config.gripper_box_max)
    T_tcp_board = invert(cell.tcp_pose()) @ cell.board_pose()
    for _ in range(tries):
        center = rng.uniform(lo, hi)
        tilt = rng.normal(size=3)
        tilt *= np.radians(config.gripper_tilt_deg) * rng.uniform() / np.linalg.norm(tilt)
        roll = np.radians(config.gripper_roll_deg) * rng.uniform(-1, 1)
        T_board = _centre_to_origin(_board_facing(center, camera.position, tilt, roll), config.board)
        if not _fully_visible(camera, T_board, config.board):
            continue
        if cell.move_tcp(T_board @ invert(T_tcp_board)):
            return T_tcp_board
    raise RuntimeError(f"no reachable arm pose shows the board to camera {camera.name!r} in {tries} tries")


def write_dataset(folder: str | Path, captures: SimulatedCaptures) -> Path:
    """Store ``captures`` as a calibration input: ``<folder>/<camera>/<id>.png`` + ``<folder>/dataset.yaml``.

    The dataset gives each camera's exact intrinsics, as a device reports them (RealSense, CameraInfo).
    Returns the YAML path.
    """
    folder = Path(folder)
    cams = []
    for v, cam in enumerate(captures.cameras):
        (folder / cam.name).mkdir(parents=True, exist_ok=True)
        for i in range(len(captures.images)):
            cv2.imwrite(str(folder / cam.name / f"{i:03d}.png"), cv2.cvtColor(captures.images[i, v], cv2.COLOR_RGB2BGR))
        cams.append(CameraInput(name=cam.name, images=folder / cam.name, K=cam.K.copy(),
                                image_size=(cam.width, cam.height)))
    ds = CalibrationDataset(setup=captures.setup, board=captures.board, cameras=cams,
                            captures=[Capture(id=f"{i:03d}", pose=p) for i, p in enumerate(captures.reported_poses)])
    path = folder / "dataset.yaml"
    save_dataset(path, ds)
    return path
