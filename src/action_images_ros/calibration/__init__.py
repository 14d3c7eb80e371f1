"""Camera calibration from ChArUco board images (no ROS): intrinsics and camera -> base extrinsics.

Two set-ups (``CalibrationDataset.setup``):

* ``table``: the board lies at measured poses ``T_base_board``; each camera's pose is a
  perspective-n-point solve over every corner (``table.py``).
* ``gripper``: eye-to-hand, cameras fixed, the board rigidly on the gripper at several arm
  poses ``T_base_tcp``; closed-form hand-eye + joint reprojection least squares (``hand_eye.py``).

Quick start::

    from action_images_ros.calibration import CalibrationConfig, calibrate_dataset, load_dataset, write_rig
    results = calibrate_dataset(load_dataset("calib/dataset.yaml"), CalibrationConfig())
    write_rig("config/cameras_cell.yaml", results.values())

A camera with too few detections or a residual above the thresholds raises ``CalibrationError``
naming it and the numbers.
"""

from .board import BoardDetection, BoardDetector, CharucoBoardConfig, board_image, make_board
from .dataset import CalibrationDataset, CameraInput, Capture, load_dataset, read_camera_info, save_dataset
from .pipeline import calibrate_camera, calibrate_dataset
from .result import SETUPS, CalibrationConfig, CalibrationError, CameraCalibration
from .rig_io import write_rig

__all__ = ["BoardDetection", "BoardDetector", "CalibrationConfig", "CalibrationDataset", "CalibrationError",
           "CameraCalibration", "CameraInput", "Capture", "CharucoBoardConfig", "SETUPS", "board_image",
           "calibrate_camera", "calibrate_dataset", "load_dataset", "make_board", "read_camera_info", "save_dataset",
           "write_rig"]
