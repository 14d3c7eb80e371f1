"""`action-images calibrate`: camera -> base extrinsics (and intrinsics) from ChArUco board images.

Real cell: ``action-images calibrate calib/dataset.yaml --out config/cameras_cell.yaml``, with the
input format of ``calibration/dataset.py`` (a folder of images per camera + the measured board
poses or the arm's TCP poses). Simulated cell: ``--sim table|gripper`` renders the board in the
MuJoCo cell, writes the same input format under ``--dataset-dir`` and calibrates it with the same
code, then prints each camera's error against the true rig.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "calibrate the cameras from ChArUco board images (or the simulated cell with --sim); write the rig YAML"
logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", nargs="?", type=Path, default=None,
                   help="calibration input YAML (format: action_images_ros/calibration/dataset.py)")
    p.add_argument("--out", type=Path, default=None,
                   help="rig YAML to write (default with --sim: <dataset-dir>/rig.yaml)")
    p.add_argument("--estimate-intrinsics", action="store_true",
                   help="estimate K from the images even where the input gives it")
    p.add_argument("--max-rms", type=float, default=None, help="refuse a camera above this reprojection RMS (px)")
    p.add_argument("--min-images", type=int, default=None, help="refuse a camera with fewer detections")
    p.add_argument("--max-position-std-mm", type=float, default=None,
                   help="refuse a camera whose 1-sigma position uncertainty is larger (default 2 mm)")
    p.add_argument("--max-rotation-std-deg", type=float, default=None,
                   help="refuse a camera whose 1-sigma rotation uncertainty is larger (default 0.2 deg)")
    sim = p.add_argument_group("simulated cell")
    sim.add_argument("--sim", choices=("table", "gripper"), default=None,
                     help="render the board in the simulated cell (table: one placement; gripper: arm poses)")
    sim.add_argument("--rig", type=Path, default=None,
                     help="true rig of the simulated cell (default config/cameras_sim.yaml)")
    sim.add_argument("--width", type=int, default=640)
    sim.add_argument("--height", type=int, default=480)
    sim.add_argument("--captures", type=int, default=None,
                     help="board placements / arm poses (default 1 / 8 per camera)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--pose-noise-mm", type=float, default=0.0, help="std of the reported poses' position error")
    sim.add_argument("--pose-noise-deg", type=float, default=0.0, help="std of the reported poses' rotation error")
    sim.add_argument("--image-noise", type=float, default=0.0, help="std of grey-level image noise (0..255)")
    sim.add_argument("--dataset-dir", type=Path, default=None,
                     help="where --sim writes images + dataset.yaml (default outputs/calibration_sim_<setup>)")


def run(args: argparse.Namespace) -> int:
    from ..calibration import CalibrationConfig, calibrate_dataset, load_dataset, write_rig

    if (args.dataset is None) == (args.sim is None):
        raise ValueError("give either a calibration dataset YAML or --sim table|gripper")
    truth = None
    if args.sim:
        dataset_path, truth = _simulate(args)
        out = args.out or dataset_path.parent / "rig.yaml"
    else:
        if args.out is None:
            raise ValueError("--out is required: the rig YAML to write")
        dataset_path, out = args.dataset, args.out
    dataset = load_dataset(dataset_path)
    if args.estimate_intrinsics:
        for cam in dataset.cameras:
            cam.K = None
    overrides = {}
    if args.max_rms is not None:
        overrides["max_rms_px"] = args.max_rms
    if args.min_images is not None:
        overrides[f"min_images_{dataset.setup}"] = args.min_images
    for name in ("max_position_std_mm", "max_rotation_std_deg"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    results = calibrate_dataset(dataset, CalibrationConfig(**overrides))
    write_rig(out, results.values(), frame_id=dataset.frame_id)
    for r in results.values():
        line = r.summary()
        if truth is not None:
            line += _error_vs_truth(r, truth)
        print(line)
    print(f"wrote {out}")
    return 0


def _simulate(args: argparse.Namespace):
    from ..geometry import load_rig
    from ..sim import default_rig_path
    from ..sim.calibration_capture import CaptureConfig, simulate_captures, write_dataset

    rig = load_rig(args.rig or default_rig_path())
    cfg = CaptureConfig(setup=args.sim, image_size=(args.width, args.height), num_captures=args.captures,
                        seed=args.seed, pose_noise_m=args.pose_noise_mm / 1000.0, pose_noise_deg=args.pose_noise_deg,
                        image_noise=args.image_noise)
    captures = simulate_captures(rig, cfg)
    folder = args.dataset_dir or Path("outputs") / f"calibration_sim_{args.sim}"
    path = write_dataset(folder, captures)
    logger.info("simulated %d captures x %d cameras -> %s", len(captures.images), len(captures.cameras), path)
    return path, {c.name: c for c in captures.cameras}


def _error_vs_truth(result, truth) -> str:
    from ..calibration.transforms import pose_error

    dp, dr = pose_error(result.T_base_cam, truth[result.name].T_world_cam)
    return f"; error vs the true rig {1000 * dp:.2f} mm / {dr:.3f} deg"
