"""Calibration settings, per-camera results and the refusal error."""

from __future__ import annotations

import dataclasses

import numpy as np

SETUPS = ("table", "gripper")


@dataclasses.dataclass
class CalibrationConfig:
    """Acceptance thresholds and solver settings.

    Attributes:
        min_corners_per_image: an image counts as a detection only with at least this many
            ChArUco corners (fewer give unstable per-image poses).
        min_images_table: detections a camera needs in the table set-up (one measured board pose suffices).
        min_images_gripper: detections a camera needs in the gripper (eye-to-hand) set-up; the
            hand-eye problem needs >= 3 poses with rotations about different axes, more average noise.
        min_images_intrinsics: detections needed to estimate intrinsics from the images (when none are given).
        max_rms_px: largest accepted reprojection RMS (pixels, over all corners of all detections)
            of the final model; a higher one means wrong intrinsics, wrong poses or a moved board.
        max_position_std_mm: largest accepted 1-sigma camera position uncertainty (mm, from the
            solver's covariance); a higher one means too little or degenerate motion.
        max_rotation_std_deg: same for the camera rotation (degrees).
        max_focal_std_rel: largest accepted 1-sigma focal length uncertainty, relative to fx, of
            estimated intrinsics; the camera's distance errs by the same fraction (0.002 = 2 mm at 1 m).
        fix_distortion: when estimating intrinsics, keep zero lens distortion (True) or estimate
            k1, k2, p1, p2 (False).
    """

    min_corners_per_image: int = 8
    min_images_table: int = 1
    min_images_gripper: int = 6
    min_images_intrinsics: int = 8
    max_rms_px: float = 1.0
    max_position_std_mm: float = 2.0
    max_rotation_std_deg: float = 0.2
    max_focal_std_rel: float = 0.002
    fix_distortion: bool = True

    def __post_init__(self) -> None:
        if self.min_corners_per_image < 4:
            raise ValueError(f"min_corners_per_image must be >= 4 (a pose needs 4 points), got "
                             f"{self.min_corners_per_image}")
        if self.min_images_table < 1:
            raise ValueError(f"min_images_table must be >= 1, got {self.min_images_table}")
        if self.min_images_gripper < 3:
            raise ValueError(f"min_images_gripper must be >= 3 (hand-eye needs 3 poses), got {self.min_images_gripper}")
        if self.min_images_intrinsics < 3:
            raise ValueError(f"min_images_intrinsics must be >= 3, got {self.min_images_intrinsics}")
        for name in ("max_rms_px", "max_position_std_mm", "max_rotation_std_deg", "max_focal_std_rel"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CalibrationConfig.{name} must be positive, got {getattr(self, name)}")

    def min_images(self, setup: str) -> int:
        return self.min_images_table if setup == "table" else self.min_images_gripper


@dataclasses.dataclass
class CameraCalibration:
    """One camera's calibration.

    Attributes:
        name: camera name.
        setup: ``"table"`` or ``"gripper"``.
        width, height: image size (px).
        K: ``(3, 3)`` intrinsics used (given or estimated).
        distortion: ``(5,)`` OpenCV distortion ``k1 k2 p1 p2 k3`` used.
        intrinsics_source: ``"given"`` or ``"estimated"``.
        T_base_cam: ``(4, 4)`` camera -> robot base (OpenCV camera axes), metres.
        rms_px: reprojection RMS (px) of the final model over ``num_corners`` corners.
        num_detections: images in which the board was detected and used.
        num_corners: corners over those images.
        position_std_mm: 1-sigma camera position uncertainty (mm, sqrt of the covariance trace),
            intrinsics taken as exact.
        rotation_std_deg: 1-sigma camera rotation uncertainty (deg), intrinsics taken as exact.
        focal_std_px: 1-sigma uncertainty of estimated ``fx`` (px); None for given intrinsics.
        T_tcp_board: ``(4, 4)`` board -> TCP mount estimated in the gripper set-up, else None.
        used_captures: capture ids of the detections used.
    """

    name: str
    setup: str
    width: int
    height: int
    K: np.ndarray
    distortion: np.ndarray
    intrinsics_source: str
    T_base_cam: np.ndarray
    rms_px: float
    num_detections: int
    num_corners: int
    position_std_mm: float
    rotation_std_deg: float
    focal_std_px: float | None = None
    T_tcp_board: np.ndarray | None = None
    used_captures: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        """One line: name, detections, RMS, uncertainty."""
        return (f"{self.name}: {self.num_detections} detections ({self.num_corners} corners), reprojection RMS "
                f"{self.rms_px:.3f} px, 1-sigma {self.position_std_mm:.2f} mm / {self.rotation_std_deg:.3f} deg "
                f"({self.setup} set-up, {self.intrinsics_source} intrinsics)")


class CalibrationError(ValueError):
    """A calibration refused for one or more cameras.

    Attributes:
        failures: camera name -> reason (with the numbers and the threshold).
        results: the cameras that passed, by name.
    """

    def __init__(self, failures: dict[str, str], results: dict[str, CameraCalibration] | None = None) -> None:
        self.failures = dict(failures)
        self.results = dict(results or {})
        super().__init__("calibration refused for " + "; ".join(f"camera {n!r}: {r}" for n, r in failures.items()))


def check_result(result: CameraCalibration, config: CalibrationConfig) -> str | None:
    """The reason ``result`` is refused under ``config`` (None when accepted)."""
    problems = []
    if result.rms_px > config.max_rms_px:
        problems.append(f"reprojection RMS {result.rms_px:.2f} px > max_rms_px {config.max_rms_px} px "
                        "(wrong intrinsics, wrong poses or a board that moved?)")
    if result.position_std_mm > config.max_position_std_mm:
        problems.append(f"position uncertainty {result.position_std_mm:.2f} mm > max_position_std_mm "
                        f"{config.max_position_std_mm} (too few or too similar board/arm poses)")
    if result.rotation_std_deg > config.max_rotation_std_deg:
        problems.append(f"rotation uncertainty {result.rotation_std_deg:.3f} deg > max_rotation_std_deg "
                        f"{config.max_rotation_std_deg} (too few or too similar board/arm poses)")
    if result.focal_std_px is not None and result.focal_std_px > config.max_focal_std_rel * result.K[0, 0]:
        problems.append(f"estimated focal length uncertain: fx {result.K[0, 0]:.1f} +- {result.focal_std_px:.1f} px "
                        f"({100 * result.focal_std_px / result.K[0, 0]:.2f} % > max_focal_std_rel "
                        f"{100 * config.max_focal_std_rel:.2f} %); give K from the device / CameraInfo or add "
                        "close, strongly tilted board views")
    return "; ".join(problems) or None
