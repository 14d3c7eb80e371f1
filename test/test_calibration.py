"""Camera calibration (issue 11, part 1), checked against independent truth.

* the solvers on exactly projected corners (``geometry.Camera.project``, no OpenCV in the loop):
  table PnP, eye-to-hand and intrinsics recover the poses / K they were made from;
* the simulated board: detected corners land where the true cameras project the true board;
* both set-ups in the simulated cell at 640x480: camera -> base within 2 mm / 0.2 deg (median per
  camera over trials) of ``config/cameras_sim.yaml`` itself;
* refusals: board out of view, too few arm poses, wrong intrinsics (the K of another image size);
* the CLI: ``--sim`` writes a rig ``geometry.load_rig`` reads, and the dataset it wrote calibrates
  to the same rig through the real-cell path.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from action_images_ros.calibration import (  # noqa: E402
    BoardDetection, BoardDetector, CalibrationConfig, CalibrationError, CharucoBoardConfig, calibrate_camera,
    calibrate_dataset, load_dataset, make_board, read_camera_info,
)
from action_images_ros.calibration.hand_eye import initial_hand_eye, solve_eye_to_hand  # noqa: E402
from action_images_ros.calibration.intrinsics import estimate_intrinsics  # noqa: E402
from action_images_ros.calibration.table import solve_table  # noqa: E402
from action_images_ros.calibration.transforms import invert, make_transform, pose_error  # noqa: E402
from action_images_ros.cli import main as cli_main  # noqa: E402
from action_images_ros.geometry import Camera, load_rig  # noqa: E402
from action_images_ros.sim.calibration_board import BoardCell, BoardSceneConfig  # noqa: E402
from action_images_ros.sim.calibration_capture import CaptureConfig, simulate_captures, write_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RIG_PATH = REPO / "config" / "cameras_sim.yaml"
W, H = 640, 480
MAX_MM, MAX_DEG = 2.0, 0.2


@pytest.fixture(scope="module")
def true_rig():
    """camera name -> camera -> base (4, 4), read from the YAML (not from the simulator)."""
    return {c.name: c.T_world_cam for c in load_rig(RIG_PATH)}


def _random_rotation(rng, max_deg):
    v = rng.normal(size=3)
    return Rotation.from_rotvec(np.radians(max_deg) * rng.uniform() * v / np.linalg.norm(v)).as_matrix()


def _exact_detection(camera: Camera, T_base_board: np.ndarray, board: CharucoBoardConfig) -> BoardDetection:
    """Every corner, projected by geometry.Camera (independent of the OpenCV code under test)."""
    pts = np.asarray(make_board(board).getChessboardCorners(), dtype=np.float64)
    uv, _, front = camera.project(pts @ T_base_board[:3, :3].T + T_base_board[:3, 3])
    assert front.all() and camera.in_image(uv).all()
    return BoardDetection(np.arange(len(pts)), uv, pts)


def _facing_board(camera: Camera, centre, board: CharucoBoardConfig, rng, max_deg) -> np.ndarray:
    """Board -> base near ``centre``, printed face (-z) towards the camera, tilted by up to ``max_deg``."""
    z = np.asarray(centre, float) - camera.position
    z /= np.linalg.norm(z)
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z], axis=1) @ _random_rotation(rng, max_deg)
    sx, sy = board.size_m
    return make_transform(R, np.asarray(centre) - R @ [sx / 2, sy / 2, 0.0])


# --------------------------------------------------------------------------- solvers on exact data
def test_table_solver_exact():
    rng = np.random.default_rng(0)
    board = CharucoBoardConfig(7, 5, 0.07, 0.05)
    for cam in load_rig(RIG_PATH):
        cam = cam.scaled(W, H)
        T_board = _facing_board(cam, [0.55, 0.0, 0.0], board, rng, 40.0)
        sol = solve_table([_exact_detection(cam, T_board, board)], [T_board], cam.K)
        dp, dr = pose_error(sol.poses[0], cam.T_world_cam)
        assert dp < 1e-6 and dr < 1e-5 and sol.rms_px < 1e-6


def test_eye_to_hand_solver_exact():
    """X = camera -> base and Y = board -> TCP from exactly projected corners at random arm poses."""
    rng = np.random.default_rng(1)
    board = CharucoBoardConfig(6, 5, 0.04, 0.028)
    Y = make_transform(_random_rotation(rng, 180.0), [0.01, -0.12, 0.05])
    for cam in load_rig(RIG_PATH):
        cam = cam.scaled(W, H)
        dets, arm = [], []
        for _ in range(8):
            T_board = _facing_board(cam, [0.55, 0.0, 0.3] + rng.uniform(-0.1, 0.1, 3), board, rng, 40.0)
            dets.append(_exact_detection(cam, T_board, board))
            arm.append(T_board @ invert(Y))
        # The closed form alone (the eye-to-hand convention of cv2.calibrateHandEye) is already exact.
        X0, Y0 = initial_hand_eye(arm, [invert(cam.T_world_cam) @ T @ Y for T in arm])
        assert pose_error(X0, cam.T_world_cam)[0] < 1e-6 and pose_error(Y0, Y)[0] < 1e-6
        sol = solve_eye_to_hand(dets, arm, cam.K)
        dp, dr = pose_error(sol.poses[0], cam.T_world_cam)
        dpy, dry = pose_error(sol.poses[1], Y)
        assert dp < 1e-6 and dr < 1e-5 and dpy < 1e-6 and dry < 1e-5, (cam.name, dp, dr, dpy, dry)


def test_intrinsics_exact():
    rng = np.random.default_rng(2)
    board = CharucoBoardConfig(7, 5, 0.03, 0.022)
    cam = Camera.look_at([0.0, 0.0, 0.0], [0.0, 0.0, 1.0], 55.0, W, H, up=(0.0, -1.0, 0.0))
    K_true = cam.K.copy()
    K_true[0, 2] += 7.0  # a principal point off the centre, so it is really estimated
    cam = Camera(K_true, cam.T_world_cam, W, H)
    dets = [_exact_detection(cam, _facing_board(cam, [0.0, 0.0, 0.45] + rng.uniform(-0.05, 0.05, 3), board, rng,
                                                45.0), board) for _ in range(10)]
    K, dist, rms, focal_std = estimate_intrinsics(dets, W, H)
    np.testing.assert_allclose(K, K_true, atol=1e-3)
    assert rms < 1e-3 and focal_std < 1e-3 and not np.any(dist)


# --------------------------------------------------------------------------- the simulated board
@pytest.mark.parametrize("setup", ["table", "gripper"])
def test_sim_board_projects_where_the_true_cameras_see_it(setup, true_rig):
    """Detected corners vs the true board corners projected by the rig's cameras (texture mapping)."""
    cap = simulate_captures(load_rig(RIG_PATH), CaptureConfig(setup=setup, seed=3, num_captures=3))
    detector = BoardDetector(cap.board)
    errors = []
    for i in range(len(cap.images)):
        T_board = cap.true_poses[i] if setup == "table" else cap.true_poses[i] @ cap.true_tcp_board
        for v, cam in enumerate(cap.cameras):
            np.testing.assert_allclose(cam.T_world_cam, true_rig[cam.name], atol=1e-6)
            det = detector.detect(cap.images[i, v])
            if len(det):
                uv, _, _ = cam.project(det.board_points @ T_board[:3, :3].T + T_board[:3, 3])
                errors.append(np.linalg.norm(det.image_points - uv, axis=1))
    errors = np.concatenate(errors)
    assert len(errors) >= 3 * CaptureConfig(setup=setup).board.num_corners // 2
    assert np.median(errors) < 0.15 and errors.max() < 0.6, (np.median(errors), errors.max())


def test_board_cell_rejects_place_board_on_gripper_mount():
    with BoardCell(load_rig(RIG_PATH), 64, 48, BoardSceneConfig(board=CharucoBoardConfig(6, 5, 0.04, 0.028),
                                                                mount="gripper")) as cell:
        with pytest.raises(ValueError, match="table mount"):
            cell.place_board(np.eye(4))


# --------------------------------------------------------------------------- both set-ups vs the true rig
def _calibrate_session(setup, seed, **capture):
    cap = simulate_captures(load_rig(RIG_PATH), CaptureConfig(setup=setup, seed=seed, image_size=(W, H), **capture))
    detector = BoardDetector(cap.board)
    return cap, {cam.name: calibrate_camera(cam.name, setup, list(cap.images[:, v]), list(cap.reported_poses),
                                            detector, CalibrationConfig(), K=cam.K)
                 for v, cam in enumerate(cap.cameras)}


@pytest.mark.parametrize("setup", ["table", "gripper"])
def test_setup_recovers_true_rig(setup, true_rig):
    errors = {name: [] for name in true_rig}
    mount_errors = []
    for seed in range(3):
        cap, results = _calibrate_session(setup, seed)
        for name, r in results.items():
            errors[name].append(pose_error(r.T_base_cam, true_rig[name]))
            assert r.rms_px < 0.3 and r.width == W and r.height == H
            assert r.num_detections == 1 if setup == "table" else r.num_detections >= 6
            if setup == "gripper":
                mount_errors.append(pose_error(r.T_tcp_board, cap.true_tcp_board))
    for name, e in errors.items():
        e = np.asarray(e)
        assert np.median(e[:, 0]) * 1000 <= MAX_MM and np.median(e[:, 1]) <= MAX_DEG, (name, e)
    if mount_errors:
        m = np.asarray(mount_errors)
        assert np.median(m[:, 0]) * 1000 <= MAX_MM and np.median(m[:, 1]) <= MAX_DEG, m


# --------------------------------------------------------------------------- refusals
def test_refuses_board_out_of_view(tmp_path):
    """The table board off in a corner no camera sees: every camera refused, with its numbers."""
    cap = simulate_captures(load_rig(RIG_PATH), CaptureConfig(setup="table", seed=0, table_center=(2.5, 0.0)))
    with pytest.raises(CalibrationError) as info:
        calibrate_dataset(load_dataset(write_dataset(tmp_path, cap)))
    msg = str(info.value)
    for name in ("front", "left_shoulder", "right_shoulder"):
        assert f"camera {name!r}" in msg
    assert "board found (>= 8 corners) in 0 of 1 images; the table set-up needs >= 1" in msg
    assert set(info.value.failures) == {"front", "left_shoulder", "right_shoulder"} and not info.value.results


def test_refuses_too_few_arm_poses():
    cap = simulate_captures(load_rig(RIG_PATH), CaptureConfig(setup="gripper", seed=0, num_captures=6))
    detector = BoardDetector(cap.board)
    cam = cap.cameras[0]
    with pytest.raises(CalibrationError, match=r"camera 'front'.* in 2 of 6 images; the gripper set-up needs >= 6"):
        calibrate_camera(cam.name, "gripper", list(cap.images[:, 0]), list(cap.reported_poses), detector,
                         CalibrationConfig(), K=cam.K)


@pytest.mark.parametrize("setup", ["table", "gripper"])
def test_refuses_wrong_intrinsics(setup):
    """The rig's 256x256 K used on 640x480 images (a real mistake): the residual gives it away."""
    cap = simulate_captures(load_rig(RIG_PATH), CaptureConfig(setup=setup, seed=0))
    detector = BoardDetector(cap.board)
    wrong = {c.name: c.K for c in load_rig(RIG_PATH)}
    for v, cam in enumerate(cap.cameras):
        with pytest.raises(CalibrationError, match=rf"camera '{cam.name}': reprojection RMS \d+\.\d+ px > "
                                                   r"max_rms_px 1\.0 px") as info:
            calibrate_camera(cam.name, setup, list(cap.images[:, v]), list(cap.reported_poses), detector,
                             CalibrationConfig(), K=wrong[cam.name])
        assert float(str(info.value).split("reprojection RMS ")[1].split(" px")[0]) > 1.0


def test_refuses_estimated_intrinsics_it_cannot_trust():
    """Intrinsics from the far, small gripper board: OpenCV's own fx uncertainty is > 0.2 %, so refused;
    one table view is too few to estimate them at all."""
    cap = simulate_captures(load_rig(RIG_PATH), CaptureConfig(setup="gripper", seed=0))
    detector = BoardDetector(cap.board)
    with pytest.raises(CalibrationError, match=r"camera 'front': estimated focal length uncertain: fx \d+\.\d "
                                               r"\+- \d+\.\d px"):
        calibrate_camera("front", "gripper", list(cap.images[:, 0]), list(cap.reported_poses), detector,
                         CalibrationConfig(), K=None)
    table = simulate_captures(load_rig(RIG_PATH), CaptureConfig(setup="table", seed=0))
    with pytest.raises(CalibrationError, match="no intrinsics given and only 1 detections"):
        calibrate_camera("front", "table", list(table.images[:, 0]), list(table.reported_poses),
                         BoardDetector(table.board), CalibrationConfig(), K=None)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="min_corners_per_image"):
        CalibrationConfig(min_corners_per_image=3)
    with pytest.raises(ValueError, match="max_rms_px"):
        CalibrationConfig(max_rms_px=0.0)
    with pytest.raises(ValueError, match="markers"):
        CharucoBoardConfig(12, 12, 0.02, 0.015, "DICT_4X4_50")


# --------------------------------------------------------------------------- input format and CLI
def test_camera_info_yaml(tmp_path):
    info = {"image_width": 640, "image_height": 480, "camera_name": "front",
            "camera_matrix": {"rows": 3, "cols": 3, "data": [600.0, 0, 320.0, 0, 601.0, 240.0, 0, 0, 1]},
            "distortion_model": "plumb_bob", "distortion_coefficients": {"rows": 1, "cols": 5,
                                                                         "data": [0.1, -0.2, 0.001, 0.002, 0.0]}}
    path = tmp_path / "front.yaml"
    path.write_text(yaml.safe_dump(info))
    K, D, w, h = read_camera_info(path)
    assert (w, h) == (640, 480) and K[1, 1] == 601.0 and K[0, 2] == 320.0
    np.testing.assert_allclose(D, [0.1, -0.2, 0.001, 0.002, 0.0])


def test_dataset_refuses_intrinsics_of_another_image_size(tmp_path):
    """A dataset whose K is declared for 256x256 while the images are 640x480 is refused before solving."""
    path = write_dataset(tmp_path, simulate_captures(load_rig(RIG_PATH), CaptureConfig(setup="table", seed=0)))
    data = yaml.safe_load(path.read_text())
    small = {c.name: c for c in load_rig(RIG_PATH)}
    for cam in data["cameras"]:
        cam.update(K=small[cam["name"]].K.tolist(), width=256, height=256)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(CalibrationError, match="camera 'front': the intrinsics are for 256x256 images, the images "
                                               "are 640x480"):
        calibrate_dataset(load_dataset(path))
    del data["captures"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ValueError, match=r"missing keys \['captures'\]"):
        load_dataset(path)


def test_cli_sim_table_writes_a_rig_the_stack_reads(tmp_path, true_rig, capsys):
    out = tmp_path / "rig.yaml"
    assert cli_main(["calibrate", "--sim", "table", "--dataset-dir", str(tmp_path / "ds"), "--out", str(out)]) == 0
    assert "error vs the true rig" in capsys.readouterr().out
    cams = load_rig(out)
    assert [c.name for c in cams] == list(true_rig)
    for c in cams:
        assert (c.width, c.height) == (W, H)
        dp, dr = pose_error(c.T_world_cam, true_rig[c.name])
        assert dp * 1000 <= 3 * MAX_MM and dr <= 3 * MAX_DEG  # one session; the medians are tested above
    entries = yaml.safe_load(out.read_text())["cameras"]
    assert all(e["calibration"]["detections"] == 1 and e["calibration"]["reprojection_rms_px"] < 0.3
               for e in entries)
    # The dataset --sim wrote goes through the real-cell path to the same rig.
    out2 = tmp_path / "rig2.yaml"
    assert cli_main(["calibrate", str(tmp_path / "ds" / "dataset.yaml"), "--out", str(out2)]) == 0
    for a, b in zip(cams, load_rig(out2)):
        np.testing.assert_allclose(a.T_world_cam, b.T_world_cam, atol=1e-9)


def test_cli_refusal_is_one_error_line(tmp_path, capsys):
    assert cli_main(["calibrate", "--sim", "gripper", "--captures", "6", "--dataset-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "calibration refused for camera 'front'" in err and "needs >= 6" in err
    assert not (tmp_path / "rig.yaml").exists()
