"""Action-image codec: accuracy targets of issue 2, robustness and bad input."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from action_images_ros.codec import ActionImageCodec, overlay_action_images
from action_images_ros.eval.codec_round_trip import random_actions, reference_rig, round_trip
from action_images_ros.geometry import Camera, rotation_angle_deg


@pytest.fixture(scope="module")
def rig128():
    return reference_rig(128, 128)


def test_encode_representation(rig128):
    codec = ActionImageCodec(128, 128)
    # Gripper pointing down (tool z = -world z), tool x = world x, open.
    q = Rotation.from_matrix(np.diag([1.0, -1.0, -1.0])).as_quat()
    a = np.array([[0.55, 0.0, 0.25, *q, 1.0], [0.55, 0.0, 0.25, *q, 0.0]])
    img = codec.encode(a, rig128)
    assert img.shape == (3, 2, 128, 128, 3) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0 + 1e-6
    pts = codec.action_points(a)
    np.testing.assert_allclose(pts[0, 1], [0.65, 0.0, 0.25])  # p + 0.1 m along tool x
    np.testing.assert_allclose(pts[0, 2], [0.55, 0.0, 0.35])  # p - 0.1 m along tool z (= up)
    for v, cam in enumerate(rig128):
        uv, _, _ = cam.project(pts[0])
        for c in range(3):
            x, y = np.round(uv[c]).astype(int)
            assert img[v, 0, y, x, c] > 0.95  # each channel peaks at its own point
    # Gripper: B background 0.25 when open, 0 when closed.
    assert np.median(img[:, 0, ..., 2]) == pytest.approx(0.25, abs=1e-3)
    assert np.median(img[:, 1, ..., 2]) == pytest.approx(0.0, abs=1e-3)


def test_clean_round_trip_128(rig128):
    codec = ActionImageCodec(128, 128)
    e = round_trip(codec, rig128, random_actions(300, np.random.default_rng(0))).summary()
    assert e["pos_median_mm"] <= 1.0 and e["pos_p95_mm"] <= 3.0
    assert e["rot_median_deg"] <= 0.5 and e["rot_p95_deg"] <= 2.0
    assert e["gripper_accuracy"] == 1.0


def test_noisy_round_trip_128(rig128):
    codec = ActionImageCodec(128, 128)
    rng = np.random.default_rng(1)
    e = round_trip(codec, rig128, random_actions(300, rng), noise_sigma=0.05, intensity_jitter=0.1, rng=rng).summary()
    assert e["pos_median_mm"] <= 5.0 and e["rot_median_deg"] <= 3.0
    assert e["gripper_accuracy"] == 1.0


def test_clean_round_trip_64():
    codec = ActionImageCodec(64, 64)
    e = round_trip(codec, reference_rig(64, 64), random_actions(300, np.random.default_rng(2))).summary()
    assert e["pos_median_mm"] <= 3.0


def test_continuous_gripper_and_non_square_two_views():
    cams = reference_rig(160, 96)[:2]
    codec = ActionImageCodec(96, 160)
    a = random_actions(20, np.random.default_rng(3))
    a[:, 7] = np.linspace(0, 1, 20)
    dec, conf = codec.decode(codec.encode(a, cams), cams)
    np.testing.assert_allclose(dec[:, 7], a[:, 7], atol=1e-3)
    ok = conf > 0.5
    assert ok.mean() > 0.8
    assert np.median(np.linalg.norm(dec[ok, :3] - a[ok, :3], axis=1)) < 1e-3


def test_missing_view_and_off_image_points(rig128):
    codec = ActionImageCodec(128, 128)
    a = random_actions(10, np.random.default_rng(4))
    img = codec.encode(a, rig128)
    img[1] = 0.0  # one camera dropped out entirely
    img[1, ..., 2] = 0.25 * a[:, 7, None, None]
    dec, conf = codec.decode(img, rig128)
    ok = conf > 0
    assert ok.sum() >= 5  # most steps still see all points in the two other views
    assert np.all(np.linalg.norm(dec[ok, :3] - a[ok, :3], axis=1) < 3e-3)
    assert np.all(rotation_angle_deg(dec[ok, 3:7], a[ok, 3:7]) < 2.0)
    # A pose far outside every view: unrecoverable, confidence 0, finite values.
    far = a[:1].copy()
    far[0, :3] = [5.0, 5.0, 5.0]
    mixed = np.concatenate([a[:1], far])
    dec, conf = codec.decode(codec.encode(mixed, rig128), rig128)
    assert conf[0] > 0.5 and conf[1] == 0.0
    assert np.isfinite(dec).all()
    np.testing.assert_allclose(dec[1, :7], dec[0, :7])  # holds the nearest recovered step


@pytest.mark.parametrize("view,shift", [(0, [0.0, 0.04, 0.0]), (1, [0.04, 0.0, 0.0]), (2, [0.0, 0.0, 0.04])])
def test_one_view_misplacing_a_blob_is_outvoted(rig128, view, shift):
    """Generated images can put one view's blob a few pixels off: the two agreeing views decide.
    (A shift along an epipolar line of the other views would be truly ambiguous with 3 views.)"""
    codec = ActionImageCodec(128, 128)
    a = random_actions(8, np.random.default_rng(5))
    a[:, :3] = [0.55, 0.0, 0.25]  # in every view, away from the borders
    good = codec.encode(a, rig128)
    moved = a.copy()
    moved[:, :3] += shift  # one view draws the red (position) blob 4 cm off
    bad = good.copy()
    bad[view, ..., 0] = codec.encode(moved, rig128)[view, ..., 0]
    dec, conf = codec.decode(bad, rig128)
    assert np.all(np.linalg.norm(dec[:, :3] - a[:, :3], axis=1) < 2e-3)
    assert np.all(conf > 0.3)
    # Two views only: nothing to outvote with, the disagreement shows as low confidence instead.
    keep = [v for v in range(3) if v != (view + 1) % 3]
    _, conf2 = codec.decode(bad[keep], [rig128[v] for v in keep])
    assert np.all(conf2 < conf)


def test_blank_and_nan_images_give_zero_confidence(rig128):
    codec = ActionImageCodec(128, 128)
    blank = np.zeros((3, 4, 128, 128, 3), np.float32)
    dec, conf = codec.decode(blank, rig128)
    assert np.all(conf == 0) and np.isfinite(dec).all()
    blank[0, 0, 5, 5, 0] = np.nan
    dec, conf = codec.decode(blank, rig128)
    assert np.isfinite(dec).all() and np.isfinite(conf).all()


def test_bad_inputs(rig128):
    codec = ActionImageCodec(128, 128)
    a = random_actions(2, np.random.default_rng(5))
    with pytest.raises(ValueError, match=r"\(T, 8\)"):
        codec.encode(a[:, :7], rig128)
    with pytest.raises(ValueError, match="scaled"):
        codec.encode(a, reference_rig(64, 64))
    img = codec.encode(a, rig128)
    with pytest.raises(ValueError, match=r"\(V, T, H, W, 3\)"):
        codec.decode(img[0], rig128)
    with pytest.raises(ValueError, match="one camera per view"):
        codec.decode(img, rig128[:2])
    with pytest.raises(ValueError, match="at least 2 views"):
        codec.decode(img[:1], rig128[:1])
    with pytest.raises(ValueError, match="codec works at"):
        codec.decode(img[:, :, :64], rig128)
    with pytest.raises(ValueError, match="sigma_frac"):
        ActionImageCodec(64, 64, sigma_frac=0.0)


def test_overlay(rig128):
    codec = ActionImageCodec(128, 128)
    a = random_actions(1, np.random.default_rng(6))
    a[0, 7] = 1.0
    img = codec.encode(a, rig128)[:, 0]
    rgb = np.full((3, 128, 128, 3), 100, np.uint8)
    out = overlay_action_images(rgb, img)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    uv, _, _ = rig128[0].project(a[:, :3])
    x, y = np.round(uv[0]).astype(int)
    if 0 <= x < 128 and 0 <= y < 128:
        assert out[0, y, x, 0] > 200  # red blob at the position
    assert np.all(out[0, 0, 0] == [40, 120, 255])  # open-gripper border
    with pytest.raises(ValueError):
        overlay_action_images(rgb[0], img)
