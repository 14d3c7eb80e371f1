"""ChArUco boards: the board definition, its printable image and corner detection (OpenCV aruco).

Board frame (OpenCV's): origin at the outer top-left corner of the chessboard as
drawn by :func:`board_image`, x along the rows of squares (image right), y down the
columns (image down), z = x cross y, pointing INTO the board (away from the printed
face). Metres. A chessboard corner id ``k`` sits at ``board.getChessboardCorners()[k]``.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

#: ArUco dictionaries a board may use (the 4x4 ones have the biggest bits at a given marker size).
DICTIONARIES = ("DICT_4X4_50", "DICT_4X4_100", "DICT_4X4_250", "DICT_5X5_50", "DICT_5X5_100", "DICT_6X6_50",
                "DICT_6X6_250")


@dataclasses.dataclass(frozen=True)
class CharucoBoardConfig:
    """A ChArUco board.

    Attributes:
        squares_x: squares along the board's x axis (columns of the printed image).
        squares_y: squares along the board's y axis (rows).
        square_length_m: chessboard square side (m), as measured on the print.
        marker_length_m: ArUco marker side (m), < square_length_m.
        dictionary: ArUco dictionary name, one of ``DICTIONARIES``.
    """

    squares_x: int = 8
    squares_y: int = 6
    square_length_m: float = 0.05
    marker_length_m: float = 0.037
    dictionary: str = "DICT_4X4_50"

    def __post_init__(self) -> None:
        if self.squares_x < 3 or self.squares_y < 3:
            raise ValueError(f"a ChArUco board needs >= 3 x 3 squares, got {self.squares_x} x {self.squares_y}")
        if not self.square_length_m > 0:
            raise ValueError(f"square_length_m must be positive, got {self.square_length_m}")
        if not 0 < self.marker_length_m < self.square_length_m:
            raise ValueError(f"marker_length_m must be in (0, square_length_m={self.square_length_m}), "
                             f"got {self.marker_length_m}")
        if self.dictionary not in DICTIONARIES:
            raise ValueError(f"dictionary must be one of {list(DICTIONARIES)}, got {self.dictionary!r}")
        n_markers = (self.squares_x * self.squares_y) // 2
        capacity = int(self.dictionary.rsplit("_", 1)[1])
        if n_markers > capacity:
            raise ValueError(f"{self.squares_x} x {self.squares_y} squares need {n_markers} markers; "
                             f"{self.dictionary} has {capacity}")

    @property
    def size_m(self) -> tuple[float, float]:
        """Chessboard extent ``(x, y)`` in metres."""
        return self.squares_x * self.square_length_m, self.squares_y * self.square_length_m

    @property
    def num_corners(self) -> int:
        """Inner chessboard corners (the points detected and solved for)."""
        return (self.squares_x - 1) * (self.squares_y - 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CharucoBoardConfig":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            valid = [f.name for f in dataclasses.fields(cls)]
            raise ValueError(f"unknown board keys {sorted(unknown)}; valid: {valid}")
        return cls(**d)


def make_board(config: CharucoBoardConfig) -> cv2.aruco.CharucoBoard:
    """The OpenCV board object of ``config``."""
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, config.dictionary))
    return cv2.aruco.CharucoBoard((config.squares_x, config.squares_y), config.square_length_m,
                                  config.marker_length_m, dictionary)


def board_image(config: CharucoBoardConfig, px_per_m: float) -> np.ndarray:
    """The printable board, ``(H, W)`` uint8, no margin: pixel ``(u, v)`` covers board points
    ``x in [u, u+1) / px_per_m``, ``y in [v, v+1) / px_per_m``."""
    sx, sy = config.size_m
    w, h = int(round(sx * px_per_m)), int(round(sy * px_per_m))
    if abs(w - sx * px_per_m) > 1e-6 or abs(h - sy * px_per_m) > 1e-6:
        raise ValueError(f"px_per_m={px_per_m} does not give a whole number of pixels for the {sx} x {sy} m board")
    return make_board(config).generateImage((w, h), marginSize=0, borderBits=1)


@dataclasses.dataclass
class BoardDetection:
    """ChArUco corners found in one image.

    Attributes:
        ids: ``(N,)`` int chessboard corner ids.
        image_points: ``(N, 2)`` float64 pixel coordinates (OpenCV: pixel centres at integers).
        board_points: ``(N, 3)`` float64 corner positions in the board frame (m).
    """

    ids: np.ndarray
    image_points: np.ndarray
    board_points: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class BoardDetector:
    """Finds a board's chessboard corners in images (one detector object, reused for every image)."""

    def __init__(self, config: CharucoBoardConfig) -> None:
        self.config = config
        self.board = make_board(config)
        self._corners = np.asarray(self.board.getChessboardCorners(), dtype=np.float64)
        self._detector = cv2.aruco.CharucoDetector(self.board)

    def detect(self, image: np.ndarray) -> BoardDetection:
        """Corners in an ``(H, W)`` grey or ``(H, W, 3)`` RGB uint8 image (empty detection when none).

        Raises:
            ValueError: not a 2-D or 3-channel uint8 image.
        """
        img = np.asarray(image)
        if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
            raise ValueError(f"image must be (H, W) or (H, W, 3) uint8, got {img.shape} {img.dtype}")
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
        corners, ids, _, _ = self._detector.detectBoard(grey)
        if ids is None or len(ids) == 0:
            return BoardDetection(np.zeros(0, int), np.zeros((0, 2)), np.zeros((0, 3)))
        ids = ids.reshape(-1).astype(int)
        return BoardDetection(ids, corners.reshape(-1, 2).astype(np.float64), self._corners[ids].copy())
