"""Camera calibration accuracy in the simulated cell (issue 11): per camera and set-up, the median / p95
position (mm) and rotation (deg) error of camera -> base against the true rig (config/cameras_sim.yaml)
over noisy trials. Run: python bench/bench_calibration.py [--trials 10]

Each trial is a new session (seeded board placements or arm poses) rendered at 640x480 and calibrated
by the same code as `action-images calibrate`, with the true intrinsics given (as a device reports them).
Noise: Gaussian jitter on the reported board poses (table) or TCP poses (gripper) per axis, and
Gaussian grey-level noise on the images.
"""

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from action_images_ros.calibration import (  # noqa: E402
    BoardDetector, CalibrationConfig, CalibrationError, calibrate_camera,
)
from action_images_ros.calibration.transforms import pose_error  # noqa: E402
from action_images_ros.geometry import load_rig  # noqa: E402
from action_images_ros.sim import default_rig_path  # noqa: E402
from action_images_ros.sim.calibration_capture import CaptureConfig, simulate_captures  # noqa: E402

# (label, set-up, captures (None = default), pose noise m, pose noise deg, image noise grey levels)
CONDITIONS = [
    ("table, 1 placement, clean", "table", None, 0.0, 0.0, 0.0),
    ("table, 1 placement, image noise 3", "table", None, 0.0, 0.0, 3.0),
    ("table, 1 placement, board pose 0.5 mm / 0.05 deg + image 3", "table", None, 0.0005, 0.05, 3.0),
    ("table, 3 placements, board pose 0.5 mm / 0.05 deg + image 3", "table", 3, 0.0005, 0.05, 3.0),
    ("gripper, 8 poses/camera, clean", "gripper", None, 0.0, 0.0, 0.0),
    ("gripper, 8 poses/camera, image noise 3", "gripper", None, 0.0, 0.0, 3.0),
    ("gripper, 8 poses/camera, arm pose 0.2 mm / 0.02 deg + image 3", "gripper", None, 0.0002, 0.02, 3.0),
    ("gripper, 16 poses/camera, arm pose 0.2 mm / 0.02 deg + image 3", "gripper", 48, 0.0002, 0.02, 3.0),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    args = ap.parse_args()
    rig = load_rig(default_rig_path())
    truth = {c.name: c.T_world_cam for c in rig}  # independent of the simulator: the YAML itself
    print(f"camera -> base error vs config/cameras_sim.yaml, {args.width}x{args.height}, {args.trials} trials each")
    for label, setup, n, pos_noise, rot_noise, img_noise in CONDITIONS:
        errs: dict[str, list[tuple[float, float, float]]] = {}
        refused, solve_s = 0, []
        for trial in range(args.trials):
            cfg = CaptureConfig(setup=setup, image_size=(args.width, args.height), num_captures=n, seed=1000 + trial,
                                pose_noise_m=pos_noise, pose_noise_deg=rot_noise, image_noise=img_noise)
            cap = simulate_captures(rig, cfg)
            detector = BoardDetector(cap.board)
            for v, cam in enumerate(cap.cameras):
                t0 = time.perf_counter()
                try:
                    r = calibrate_camera(cam.name, setup, list(cap.images[:, v]), list(cap.reported_poses), detector,
                                         CalibrationConfig(), K=cam.K)
                except CalibrationError:
                    refused += 1
                    continue
                solve_s.append(time.perf_counter() - t0)
                dp, dr = pose_error(r.T_base_cam, truth[cam.name])
                errs.setdefault(cam.name, []).append((1000 * dp, dr, r.rms_px))
        print(f"  {label}  (refused {refused}, calibrate {1e3 * np.median(solve_s):.0f} ms/camera)")
        for name, e in errs.items():
            a = np.asarray(e)
            med, p95 = np.median(a, axis=0), np.percentile(a, 95, axis=0)
            print(f"    {name:15s} n={len(a):2d}  pos median {med[0]:.2f} mm p95 {p95[0]:.2f} mm"
                  f" | rot median {med[1]:.3f} deg p95 {p95[1]:.3f} deg | RMS median {med[2]:.3f} px")


if __name__ == "__main__":
    main()
