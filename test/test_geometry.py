"""Camera conventions, rig YAML round trip, triangulation."""

import numpy as np
import pytest

from action_images_ros.geometry import (
    Camera, load_rig, matrix_to_quat, quat_to_matrix, rotation_angle_deg, save_rig, triangulate,
    validate_actions,
)
from action_images_ros.eval.codec_round_trip import reference_rig


def test_projection_back_projects_onto_ray():
    rng = np.random.default_rng(1)
    for cam in reference_rig(160, 120):
        pts = rng.uniform([0.3, -0.25, 0.05], [0.8, 0.25, 0.45], size=(50, 3))
        uv, depth, in_front = cam.project(pts)
        assert in_front.all()
        origin, d = cam.pixel_rays(uv)
        # Distance of each point from its pixel's ray.
        rel = pts - origin
        dist = np.linalg.norm(rel - (rel * d).sum(1, keepdims=True) * d, axis=1)
        assert dist.max() < 1e-9
        np.testing.assert_allclose(cam.backproject(uv, depth), pts, atol=1e-9)


def test_opencv_convention_and_look_at():
    cam = Camera.look_at(eye=(0, 0, 1), target=(0, 0, 0), fovy_deg=60, width=64, height=48, up=(1, 0, 0))
    uv, depth, _ = cam.project(np.array([[0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(uv[0], [(64 - 1) / 2, (48 - 1) / 2])
    assert depth[0] == pytest.approx(1.0)
    # World +x is image-up, so a point at +x lands above the centre (smaller v).
    uv2, _, _ = cam.project(np.array([[0.1, 0.0, 0.0]]))
    assert uv2[0, 1] < uv[0, 1]
    _, _, in_front = cam.project(np.array([[0.0, 0.0, 2.0]]))
    assert not in_front[0]


def test_scaled_and_cropped_intrinsics_match_image_operations():
    cam = reference_rig(128, 128)[0]
    pts = np.array([[0.5, 0.1, 0.2], [0.6, -0.1, 0.3]])
    uv, _, _ = cam.project(pts)
    small = cam.scaled(64, 32)
    uv_s, _, _ = small.project(pts)
    np.testing.assert_allclose(uv_s[:, 0], (uv[:, 0] + 0.5) * 0.5 - 0.5)
    np.testing.assert_allclose(uv_s[:, 1], (uv[:, 1] + 0.5) * 0.25 - 0.5)
    crop = cam.cropped(10, 20, 100, 90)
    uv_c, _, _ = crop.project(pts)
    np.testing.assert_allclose(uv_c, uv - [10, 20])
    with pytest.raises(ValueError, match="exceeds image"):
        cam.cropped(100, 0, 100, 10)


def test_rig_yaml_round_trip(tmp_path):
    cams = reference_rig(96, 72)
    path = tmp_path / "rig.yaml"
    save_rig(path, cams)
    back = load_rig(path)
    assert [c.name for c in back] == [c.name for c in cams]
    for a, b in zip(cams, back):
        np.testing.assert_allclose(a.K, b.K)
        np.testing.assert_allclose(a.T_world_cam, b.T_world_cam, atol=1e-12)
        assert (a.width, a.height) == (b.width, b.height)


def test_rig_yaml_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_rig(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras: [{name: a, width: 10, height: 10}]\n")
    with pytest.raises(ValueError, match="missing keys"):
        load_rig(bad)
    bad.write_text("foo: 1\n")
    with pytest.raises(ValueError, match="cameras"):
        load_rig(bad)


def test_camera_rejects_bad_values():
    with pytest.raises(ValueError, match="K must be 3x3"):
        Camera(K=np.eye(2), T_world_cam=np.eye(4), width=10, height=10)
    T = np.eye(4)
    T[0, 0] = 2.0
    with pytest.raises(ValueError, match="rotation"):
        Camera(K=np.eye(3), T_world_cam=T, width=10, height=10)


def test_quaternion_helpers_round_trip():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(20, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q2 = matrix_to_quat(quat_to_matrix(q))
    assert np.all(rotation_angle_deg(q, q2) < 1e-6)
    assert np.all(q2[:, 3] >= 0)


def test_validate_actions_errors():
    with pytest.raises(ValueError, match=r"\(T, 8\)"):
        validate_actions(np.zeros((3, 7)))
    with pytest.raises(ValueError, match="NaN"):
        validate_actions(np.full((1, 8), np.nan))
    with pytest.raises(ValueError, match="zero quaternion"):
        validate_actions(np.zeros((1, 8)))


def test_triangulate_weighted_and_degenerate():
    cams = reference_rig(128, 128)
    X = np.array([[0.5, 0.0, 0.2], [0.7, 0.1, 0.3]])
    uv = np.stack([c.project(X)[0] for c in cams])
    pts, ok = triangulate(cams, uv, np.ones((3, 2)))
    assert ok.all()
    np.testing.assert_allclose(pts, X, atol=1e-9)
    # One view only: not solvable, flagged, finite.
    w = np.zeros((3, 2))
    w[0] = 1
    pts, ok = triangulate(cams, uv, w)
    assert not ok.any() and np.isfinite(pts).all()
    with pytest.raises(ValueError, match="uv must have shape"):
        triangulate(cams, uv[:2], np.ones((2, 2)))
