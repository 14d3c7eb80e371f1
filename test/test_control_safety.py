"""The safety envelope: every refusal rule, step limiting, clamping, gripper debounce, e-stop, config."""

import logging

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from action_images_ros.control.safety import Decision, SafetyConfig, SafetyEnvelope, load_safety_config
from action_images_ros.geometry import rotation_angle_deg

DOWN = [1.0, 0.0, 0.0, 0.0]  # tool pointing down


def pose(x, y, z, quat=DOWN, grip=1.0):
    return np.array([x, y, z, *quat, grip], dtype=np.float64)


CURRENT = pose(0.5, 0.0, 0.3)


def envelope(**kw):
    return SafetyEnvelope(SafetyConfig(**kw))


def test_small_step_passes_unchanged():
    env = envelope()
    cmd = pose(0.51, 0.01, 0.29)
    d = env.check(cmd, CURRENT, 0.9)
    assert isinstance(d, Decision) and d.allowed and d.reason == ""
    np.testing.assert_allclose(d.pose, cmd)
    ok, out, reason = d  # unpacks like the (allowed, pose, reason) tuple rollout.run_episode expects
    assert ok and out is d.pose


@pytest.mark.parametrize("bad", [
    pose(np.nan, 0.0, 0.3), pose(0.5, np.inf, 0.3), pose(0.5, 0.0, 0.3, grip=np.nan),
    pose(0.5, 0.0, 0.3, quat=[np.nan, 0, 0, 1]), pose(0.5, 0.0, 0.3, quat=[0, 0, 0, 0]),
])
def test_non_finite_or_zero_quaternion_refused(bad):
    d = envelope(clamp_to_workspace=True).check(bad, CURRENT, 1.0)
    assert not d.allowed and d.pose is None
    assert "NaN" in d.reason or "zero quaternion" in d.reason


def test_nan_current_pose_and_confidence_refused():
    env = envelope()
    assert not env.check(CURRENT, pose(np.nan, 0, 0.3), 1.0).allowed
    d = env.check(CURRENT, CURRENT, float("nan"))
    assert not d.allowed and "confidence is not finite" in d.reason


def test_low_confidence_refused():
    env = envelope(min_confidence=0.5)
    d = env.check(pose(0.51, 0, 0.3), CURRENT, 0.49)
    assert not d.allowed and "confidence 0.490 < min_confidence 0.5" in d.reason
    assert env.check(pose(0.51, 0, 0.3), CURRENT, 0.5).allowed


def test_out_of_workspace_refused_by_default_and_clamped_on_request():
    target = pose(0.52, 0.0, -0.01)  # below the table
    d = envelope().check(target, CURRENT, 1.0)
    assert not d.allowed and d.pose is None and "outside the workspace box" in d.reason
    d = envelope(clamp_to_workspace=True).check(target, pose(0.52, 0.0, 0.03), 1.0)
    assert d.allowed and "clamped" in d.reason and "limited" not in d.reason
    np.testing.assert_allclose(d.pose[:3], [0.52, 0.0, 0.005])
    # a clamped target is still step-limited
    d = envelope(clamp_to_workspace=True).check(target, CURRENT, 1.0)
    assert d.allowed and "clamped" in d.reason and "limited" in d.reason
    assert np.linalg.norm(d.pose[:3] - CURRENT[:3]) == pytest.approx(0.05)


def test_small_excursions_clamped_within_the_margin_larger_refused():
    near = pose(0.52, 0.0, 0.03)
    d = envelope(workspace_clamp_margin_m=0.02).check(pose(0.52, 0.0, -0.01), near, 1.0)  # 15 mm below the floor
    assert d.allowed and "clamped" in d.reason
    np.testing.assert_allclose(d.pose[:3], [0.52, 0.0, 0.005])
    d = envelope(workspace_clamp_margin_m=0.02).check(pose(0.52, 0.0, -0.03), near, 1.0)  # 35 mm below
    assert not d.allowed and "outside the workspace box" in d.reason
    with pytest.raises(ValueError, match="workspace_clamp_margin_m"):
        SafetyConfig(workspace_clamp_margin_m=0.2)


def test_large_step_limited_along_the_direction():
    env = envelope(max_translation_m=0.05, max_rotation_deg=15.0)
    target = pose(0.7, 0.0, 0.3)  # 0.2 m away
    d = env.check(target, CURRENT, 1.0)
    assert d.allowed and "limited" in d.reason
    np.testing.assert_allclose(d.pose[:3], [0.55, 0.0, 0.3], atol=1e-12)
    np.testing.assert_allclose(d.pose[3:7], DOWN, atol=1e-12)


def test_rotation_limit_and_combined_fraction():
    env = envelope(max_translation_m=0.05, max_rotation_deg=10.0)
    # 40 deg about z and 0.04 m: rotation binds (fraction 1/4) -> 0.01 m and 10 deg
    target_q = (Rotation.from_euler("z", 40, degrees=True) * Rotation.from_quat(DOWN)).as_quat()
    d = env.check(pose(0.54, 0.0, 0.3, quat=target_q), CURRENT, 1.0)
    assert d.allowed
    np.testing.assert_allclose(d.pose[:3], [0.51, 0.0, 0.3], atol=1e-9)
    assert rotation_angle_deg(np.array(DOWN), d.pose[3:7]) == pytest.approx(10.0, abs=1e-6)
    assert rotation_angle_deg(d.pose[3:7], target_q) == pytest.approx(30.0, abs=1e-6)
    assert np.linalg.norm(d.pose[3:7]) == pytest.approx(1.0)


def test_implausible_jump_refused():
    env = envelope(refuse_translation_m=0.3)
    d = env.check(pose(0.84, 0.3, 0.3), pose(0.3, -0.2, 0.3), 1.0)
    assert not d.allowed and "refuse_translation_m" in d.reason
    flipped = [0.0, 1.0, 0.0, 0.0]  # 180 deg from DOWN
    d = env.check(pose(0.5, 0.0, 0.3, quat=flipped), CURRENT, 1.0)
    assert not d.allowed and "refuse_rotation_deg" in d.reason


def test_pause_refuses_everything_until_resume():
    env = envelope()
    env.pause("operator e-stop")
    assert env.paused
    d = env.check(CURRENT, CURRENT, 1.0)
    assert not d.allowed and "paused (e-stop): operator e-stop" in d.reason
    env.resume()
    assert not env.paused and env.check(CURRENT, CURRENT, 1.0).allowed


def test_gripper_debounce_by_steps():
    env = envelope(gripper_debounce_steps=3)
    close = pose(0.5, 0.0, 0.3, grip=0.1)
    outs = [env.check(close, CURRENT, 1.0) for _ in range(3)]
    assert [o.pose[7] for o in outs] == [1.0, 1.0, 0.0]
    assert "debounce (1/3" in outs[0].reason and outs[2].reason == ""
    # an interrupted request restarts the count
    open_ = pose(0.5, 0.0, 0.3, grip=0.9)
    seq = [open_, open_, close, open_, open_, open_]
    assert [env.check(c, CURRENT, 1.0).pose[7] for c in seq] == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_gripper_debounce_by_time_and_initial_state_from_measurement():
    env = envelope(gripper_debounce_steps=1, gripper_debounce_s=0.5)
    closed_now = pose(0.5, 0.0, 0.3, grip=0.0)
    opening = pose(0.5, 0.0, 0.3, grip=1.0)
    assert env.check(opening, closed_now, 1.0, now_s=10.0).pose[7] == 0.0  # starts from the measured closed
    assert env.check(opening, closed_now, 1.0, now_s=10.4).pose[7] == 0.0
    assert env.check(opening, closed_now, 1.0, now_s=10.5).pose[7] == 1.0
    with pytest.raises(ValueError, match="now_s is required"):
        env.check(opening, closed_now, 1.0)


def test_refusals_logged_once_per_kind(caplog):
    env = envelope(min_confidence=0.5)
    with caplog.at_level(logging.WARNING, logger="action_images_ros.control.safety"):
        for c in (0.1, 0.2, 0.3):
            env.check(CURRENT, CURRENT, c)
        env.check(pose(np.nan, 0, 0), CURRENT, 1.0)
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 2 and "confidence 0.100" in msgs[0] and "NaN" in msgs[1]


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="shape"):
        envelope().check(np.zeros(7), CURRENT, 1.0)


@pytest.mark.parametrize("kw,match", [
    (dict(workspace_min=(0.9, 0, 0)), "below workspace_max"),
    (dict(workspace_min=(0, 0)), "3 finite numbers"),
    (dict(max_translation_m=0.0), "max_translation_m must be > 0"),
    (dict(refuse_translation_m=0.01), "refuse_translation_m"),
    (dict(min_confidence=1.5), "min_confidence"),
    (dict(gripper_debounce_steps=0), "gripper_debounce_steps"),
    (dict(gripper_debounce_s=-1.0), "gripper_debounce_s"),
    (dict(clamp_to_workspace="yes"), "clamp_to_workspace"),
])
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        SafetyConfig(**kw)


def test_yaml_config(tmp_path):
    cfg = load_safety_config("config/safety.yaml")
    assert cfg.clamp_to_workspace is False and cfg.workspace_min[2] > 0
    bad = tmp_path / "s.yaml"
    bad.write_text("safety:\n  max_translation: 0.1\n")
    with pytest.raises(ValueError, match="unknown safety config keys \\['max_translation'\\]"):
        load_safety_config(bad)
    bad.write_text("limits: {}\n")
    with pytest.raises(ValueError, match="top-level 'safety:'"):
        load_safety_config(bad)
    with pytest.raises(FileNotFoundError):
        load_safety_config(tmp_path / "missing.yaml")


def test_check_hold_limits_the_step_from_the_trusted_pose_and_ignores_pause_and_debounce():
    env = envelope(max_translation_m=0.05, max_rotation_deg=10.0)
    env.pause("e-stop")
    here = np.array([0.5, 0.0, 0.3, 0.0, 0.0, 0.0, 1.0, 0.0])
    far = np.array([0.7, 0.0, 0.3, 0.0, 0.0, 0.0, 1.0, 1.0])
    ok, pose, why = env.check_hold(far, here)
    assert ok and pose[0] == pytest.approx(0.55) and "limited" in why
    assert pose[7] == 1.0  # the hold's gripper as given: no debounce
    outside = far.copy()
    outside[2] = -0.2  # below the floor: clamped into the box first, then step-limited from the arm
    ok, pose, _ = env.check_hold(outside, here)
    assert ok and np.linalg.norm(pose[:3] - here[:3]) == pytest.approx(0.05) and pose[2] >= 0.005
    bad = far.copy()
    bad[0] = np.nan
    assert env.check_hold(bad, here).allowed is False
    np.testing.assert_allclose(env.check_hold(here, here).pose, here)
