"""The calibration input: one YAML file, a folder of images per camera, the board and its poses.

Format (paths relative to the YAML file)::

    setup: gripper            # "table": board at measured poses; "gripper": board on the gripper
    frame_id: base_link       # frame of every pose below and of the rig written
    board: {squares_x: 6, squares_y: 5, square_length_m: 0.035, marker_length_m: 0.026,
            dictionary: DICT_4X4_50}
    cameras:
      - name: front
        images: front         # folder holding <capture id>.png|.jpg per capture
        K: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]   # intrinsics as given by the device, or
        distortion: [k1, k2, p1, p2, k3]           # (optional, with K; default zeros)
        width: 640                                 # (optional, with K) the size K is for
        height: 480
        # camera_info: front_info.yaml             # a ROS camera_info YAML instead of K, or
        #                                          # neither: estimated from the images
    captures:
      - id: "000"             # image file stem, the same in every camera folder
        tcp_pose: [x, y, z, qx, qy, qz, qw]        # gripper set-up: TCP -> base (the arm's FK)
      - id: "001"
        board_pose: [x, y, z, qx, qy, qz, qw]      # table set-up: board -> base (measured)

Poses are metres and scalar-last quaternions, ``pose = T_frame_x`` (x -> frame). The board
frame is OpenCV's (``board.py``): origin at the outer top-left chessboard corner, x along the
squares' rows, y down the columns, z into the board. A capture whose image is missing in a
camera's folder is skipped for that camera (it did not see or did not record it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import yaml

from .board import CharucoBoardConfig
from .result import SETUPS
from .transforms import matrix_to_pose7, pose7_to_matrix

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
POSE_KEY = {"table": "board_pose", "gripper": "tcp_pose"}


@dataclasses.dataclass
class CameraInput:
    """One camera's images and intrinsics.

    Attributes:
        name: camera name (the rig's view name).
        images: folder of the camera's images.
        K: ``(3, 3)`` given intrinsics, or None to estimate them.
        distortion: ``(5,)`` OpenCV distortion of the images (zeros = rectified).
        image_size: ``(width, height)`` the intrinsics are for (checked against the images), None = unchecked.
    """

    name: str
    images: Path
    K: np.ndarray | None = None
    distortion: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(5))
    image_size: tuple[int, int] | None = None


@dataclasses.dataclass
class Capture:
    """One arm/board configuration: ``id`` (image stem) and ``pose`` ``(4, 4)`` (board or TCP -> base)."""

    id: str
    pose: np.ndarray


@dataclasses.dataclass
class CalibrationDataset:
    """A parsed calibration input (see the module docstring for the file format)."""

    setup: str
    board: CharucoBoardConfig
    cameras: list[CameraInput]
    captures: list[Capture]
    frame_id: str = "base_link"

    def __post_init__(self) -> None:
        if self.setup not in SETUPS:
            raise ValueError(f"setup must be one of {list(SETUPS)}, got {self.setup!r}")
        if not self.cameras:
            raise ValueError("a calibration dataset needs at least one camera")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        ids = [c.id for c in self.captures]
        if len(set(ids)) != len(ids):
            raise ValueError(f"capture ids must be unique, got {ids}")

    def image_path(self, camera: CameraInput, capture_id: str) -> Path | None:
        """The image of ``capture_id`` in the camera's folder, None when there is none."""
        for suffix in IMAGE_SUFFIXES:
            path = camera.images / f"{capture_id}{suffix}"
            if path.is_file():
                return path
        return None

    def load_images(self, camera: CameraInput) -> list[np.ndarray | None]:
        """The camera's grey images ``(H, W)`` uint8 in capture order (None where missing).

        Raises:
            FileNotFoundError: the camera's image folder does not exist.
            ValueError: an image cannot be read.
        """
        if not camera.images.is_dir():
            raise FileNotFoundError(f"camera {camera.name!r}: image folder not found: {camera.images}")
        out = []
        for cap in self.captures:
            path = self.image_path(camera, cap.id)
            if path is None:
                out.append(None)
                continue
            img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise ValueError(f"camera {camera.name!r}: cannot read image {path}")
            out.append(img)
        return out


def read_camera_info(path: str | Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``K (3, 3)``, ``distortion (5,)``, width, height from a ROS camera_info YAML
    (``camera_calibration_parsers`` layout: ``image_width``, ``camera_matrix: {data: [...]}``,
    ``distortion_coefficients: {data: [...]}``)."""
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    try:
        K = np.asarray(data["camera_matrix"]["data"], dtype=np.float64).reshape(3, 3)
        width, height = int(data["image_width"]), int(data["image_height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a camera_info YAML (needs image_width, image_height, "
                         f"camera_matrix.data with 9 numbers): {exc}") from None
    D = np.zeros(5)
    d = (data.get("distortion_coefficients") or {}).get("data") or []
    D[:min(len(d), 5)] = np.asarray(d[:5], dtype=np.float64)
    return K, D, width, height


def _camera_from_dict(d: dict, root: Path) -> CameraInput:
    if not isinstance(d, dict) or "name" not in d or "images" not in d:
        raise ValueError(f"each camera entry needs 'name' and 'images', got {d!r}")
    K, D, size = None, np.zeros(5), None
    if "K" in d and "camera_info" in d:
        raise ValueError(f"camera {d['name']!r}: give 'K' or 'camera_info', not both")
    if "K" in d:
        K = np.asarray(d["K"], dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"camera {d['name']!r}: K must be 3x3, got {K.shape}")
        if "distortion" in d:
            dist = np.asarray(d["distortion"], dtype=np.float64).reshape(-1)
            if dist.size not in (4, 5):
                raise ValueError(f"camera {d['name']!r}: distortion must be 4 or 5 numbers, got {dist.size}")
            D[:dist.size] = dist
        if "width" in d or "height" in d:
            size = (int(d["width"]), int(d["height"]))
    elif "camera_info" in d:
        K, D, w, h = read_camera_info(root / d["camera_info"])
        size = (w, h)
    return CameraInput(name=str(d["name"]), images=root / str(d["images"]), K=K, distortion=D, image_size=size)


def load_dataset(path: str | Path) -> CalibrationDataset:
    """Parse a calibration YAML (format in the module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a missing or malformed entry (named in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration dataset not found: {path}")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with setup, board, cameras, captures")
    missing = {"setup", "board", "cameras", "captures"} - set(data)
    if missing:
        raise ValueError(f"{path}: missing keys {sorted(missing)}")
    setup = data["setup"]
    if setup not in SETUPS:
        raise ValueError(f"{path}: setup must be one of {list(SETUPS)}, got {setup!r}")
    key = POSE_KEY[setup]
    captures = []
    for i, c in enumerate(data["captures"] or []):
        if not isinstance(c, dict) or "id" not in c or key not in c:
            raise ValueError(f"{path}: capture {i} needs 'id' and '{key}' (the {setup} set-up), got {c!r}")
        captures.append(Capture(id=str(c["id"]), pose=pose7_to_matrix(c[key])))
    root = path.parent
    return CalibrationDataset(setup=setup, board=CharucoBoardConfig.from_dict(dict(data["board"])),
                              cameras=[_camera_from_dict(c, root) for c in data["cameras"] or []],
                              captures=captures, frame_id=str(data.get("frame_id", "base_link")))


def save_dataset(path: str | Path, dataset: CalibrationDataset) -> None:
    """Write ``dataset`` as a calibration YAML (image folders relative to its folder when inside it)."""
    path = Path(path)
    root = path.parent.resolve()
    cams = []
    for c in dataset.cameras:
        images = Path(c.images).resolve()
        rel = images.relative_to(root) if images.is_relative_to(root) else images
        entry = {"name": c.name, "images": str(rel)}
        if c.K is not None:
            entry["K"] = [[float(v) for v in row] for row in c.K]
            entry["distortion"] = [float(v) for v in c.distortion]
            if c.image_size is not None:
                entry["width"], entry["height"] = int(c.image_size[0]), int(c.image_size[1])
        cams.append(entry)
    key = POSE_KEY[dataset.setup]
    data = {"setup": dataset.setup, "frame_id": dataset.frame_id, "board": dataset.board.to_dict(), "cameras": cams,
            "captures": [{"id": c.id, key: [round(v, 9) for v in matrix_to_pose7(c.pose)]} for c in dataset.captures]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
