"""Calibrate cameras from board images: detect -> intrinsics -> solve the set-up -> accept or refuse."""

from __future__ import annotations

import logging
from typing import Sequence

import cv2
import numpy as np

from .board import BoardDetection, BoardDetector
from .dataset import CalibrationDataset
from .hand_eye import solve_eye_to_hand
from .intrinsics import estimate_intrinsics
from .result import SETUPS, CalibrationConfig, CalibrationError, CameraCalibration, check_result
from .table import solve_table

logger = logging.getLogger(__name__)


def _undistort(det: BoardDetection, K: np.ndarray, dist: np.ndarray) -> BoardDetection:
    if not np.any(dist):
        return det
    pts = cv2.undistortPoints(det.image_points.reshape(-1, 1, 2), K, dist, P=K).reshape(-1, 2)
    return BoardDetection(det.ids, pts.astype(np.float64), det.board_points)


def calibrate_camera(
    name: str,
    setup: str,
    images: Sequence[np.ndarray | None],
    poses: Sequence[np.ndarray],
    detector: BoardDetector,
    config: CalibrationConfig,
    K: np.ndarray | None = None,
    distortion: np.ndarray | None = None,
    capture_ids: Sequence[str] | None = None,
) -> CameraCalibration:
    """One camera's pose in the base frame.

    Args:
        name: camera name (for messages and the result).
        setup: ``"table"`` (``poses`` = board -> base) or ``"gripper"`` (``poses`` = TCP -> base).
        images: ``(H, W)`` grey or ``(H, W, 3)`` RGB uint8 per capture; None where the camera has none.
        poses: ``(4, 4)`` per capture (metres, base frame), same order.
        detector: the board's detector.
        config: thresholds.
        K: ``(3, 3)`` given intrinsics; None = estimate them from the detections.
        distortion: ``(5,)`` distortion of the images with the given K (default zeros).
        capture_ids: names of the captures (default their indices).

    Returns:
        The accepted calibration.

    Raises:
        CalibrationError: too few detections, or the result fails a threshold (the message names
            the camera and the numbers).
    """
    if setup not in SETUPS:
        raise ValueError(f"setup must be one of {list(SETUPS)}, got {setup!r}")
    if len(images) != len(poses):
        raise ValueError(f"camera {name!r}: {len(images)} images but {len(poses)} poses")
    ids = [str(i) for i in range(len(images))] if capture_ids is None else list(capture_ids)
    # 1. Detect.
    dets, used_poses, used_ids, sizes = [], [], [], set()
    for img, pose, cid in zip(images, poses, ids):
        if img is None:
            continue
        sizes.add(img.shape[:2])
        det = detector.detect(img)
        if len(det) >= config.min_corners_per_image:
            dets.append(det)
            used_poses.append(np.asarray(pose, dtype=np.float64))
            used_ids.append(cid)
        else:
            logger.debug("camera %s, capture %s: %d corners (< %d), skipped", name, cid, len(det),
                         config.min_corners_per_image)
    n_images = sum(img is not None for img in images)
    if len(sizes) > 1:
        raise ValueError(f"camera {name!r}: images of different sizes {sorted(sizes)}")
    need = config.min_images(setup)
    if len(dets) < need:
        raise CalibrationError({name: f"board found (>= {config.min_corners_per_image} corners) in {len(dets)} of "
                                      f"{n_images} images; the {setup} set-up needs >= {need}"})
    height, width = next(iter(sizes))
    # 2. Intrinsics: given (device / CameraInfo) or estimated from the same detections.
    if K is None:
        if len(dets) < config.min_images_intrinsics:
            raise CalibrationError({name: f"no intrinsics given and only {len(dets)} detections; estimating them "
                                          f"needs >= {config.min_images_intrinsics} (or give K / camera_info)"})
        K, distortion, rms_k, focal_std = estimate_intrinsics(dets, width, height, config.fix_distortion)
        source = "estimated"
        logger.info("camera %s: intrinsics estimated from %d views, RMS %.3f px, fx %.2f +- %.2f px", name,
                    len(dets), rms_k, K[0, 0], focal_std)
    else:
        K = np.asarray(K, dtype=np.float64)
        source, focal_std = "given", None
    distortion = np.zeros(5) if distortion is None else np.asarray(distortion, dtype=np.float64).reshape(5)
    dets = [_undistort(d, K, distortion) for d in dets]
    # 3. Solve the set-up (a solver's ValueError is a problem of this camera's data: refuse the camera).
    try:
        sol = (solve_table if setup == "table" else solve_eye_to_hand)(dets, used_poses, K)
    except ValueError as exc:
        raise CalibrationError({name: f"{setup} solve failed: {exc}"}) from exc
    T_tcp_board = sol.poses[1] if setup == "gripper" else None
    result = CameraCalibration(
        name=name, setup=setup, width=int(width), height=int(height), K=K, distortion=distortion,
        intrinsics_source=source, T_base_cam=sol.poses[0], rms_px=sol.rms_px, num_detections=len(dets),
        num_corners=sol.num_points, position_std_mm=sol.position_std_mm(0), rotation_std_deg=sol.rotation_std_deg(0),
        focal_std_px=focal_std, T_tcp_board=T_tcp_board, used_captures=used_ids)
    # 4. Accept or refuse.
    reason = check_result(result, config)
    if reason is not None:
        raise CalibrationError({name: f"{reason} [{result.summary()}]"})
    logger.info("calibrated %s", result.summary())
    return result


def calibrate_dataset(dataset: CalibrationDataset, config: CalibrationConfig | None = None
                      ) -> dict[str, CameraCalibration]:
    """Calibrate every camera of ``dataset``.

    Returns:
        name -> calibration, in the dataset's camera order.

    Raises:
        CalibrationError: one or more cameras refused; it lists every refused camera and carries the
            accepted ones in ``results``.
    """
    config = config or CalibrationConfig()
    detector = BoardDetector(dataset.board)
    poses = [c.pose for c in dataset.captures]
    ids = [c.id for c in dataset.captures]
    results, failures = {}, {}
    for cam in dataset.cameras:
        images = dataset.load_images(cam)
        sizes = {(img.shape[1], img.shape[0]) for img in images if img is not None}
        if cam.K is not None and cam.image_size is not None and sizes and sizes != {tuple(cam.image_size)}:
            # K of another resolution is a common mistake; the residual would catch it later, less clearly.
            failures[cam.name] = (f"the intrinsics are for {cam.image_size[0]}x{cam.image_size[1]} images, the "
                                  f"images are {' / '.join(f'{w}x{h}' for w, h in sorted(sizes))}")
            continue
        try:
            results[cam.name] = calibrate_camera(cam.name, dataset.setup, images, poses, detector, config, K=cam.K,
                                                 distortion=cam.distortion, capture_ids=ids)
        except CalibrationError as exc:
            failures.update(exc.failures)
    if failures:
        raise CalibrationError(failures, results)
    return results
