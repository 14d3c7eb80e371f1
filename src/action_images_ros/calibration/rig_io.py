"""Write calibrated cameras as the rig YAML the stack reads (``geometry.load_rig``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import yaml

from ..geometry import Camera
from .result import CameraCalibration
from .transforms import matrix_to_pose7

HEADER = ("# Camera rig written by `action-images calibrate` (geometry.load_rig format).\n"
          "# Extrinsics: camera -> {frame} (OpenCV camera axes), quaternion scalar-last; K for width x height.\n"
          "# 'calibration' holds the fit statistics; load_rig ignores it. The stack projects without\n"
          "# distortion: images with non-zero 'distortion' must be rectified first.\n")


def rig_entry(result: CameraCalibration) -> dict:
    """The rig YAML entry of one camera: ``Camera.to_dict()`` plus a ``calibration`` block."""
    entry = Camera(K=result.K, T_world_cam=result.T_base_cam, width=result.width, height=result.height,
                   name=result.name).to_dict()
    entry["calibration"] = {
        "setup": result.setup,
        "intrinsics": result.intrinsics_source,
        "distortion": [float(v) for v in result.distortion],
        "reprojection_rms_px": round(float(result.rms_px), 4),
        "detections": int(result.num_detections),
        "corners": int(result.num_corners),
        "position_std_mm": round(float(result.position_std_mm), 4),
        "rotation_std_deg": round(float(result.rotation_std_deg), 5),
    }
    if result.focal_std_px is not None:
        entry["calibration"]["focal_std_px"] = round(float(result.focal_std_px), 3)
    if result.T_tcp_board is not None:
        entry["calibration"]["tcp_board_pose"] = [round(v, 6) for v in matrix_to_pose7(result.T_tcp_board)]
    return entry


def write_rig(path: str | Path, results: Iterable[CameraCalibration], frame_id: str = "base_link") -> Path:
    """Write the rig YAML (the layout of ``geometry.save_rig``, with the statistics added); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"frame_id": frame_id, "cameras": [rig_entry(r) for r in results]}
    path.write_text(HEADER.format(frame=frame_id) + yaml.safe_dump(data, sort_keys=False))
    return path
