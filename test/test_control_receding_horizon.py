"""Receding-horizon execution: step selection, interpolation, replanning, staleness holds."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from action_images_ros.control.receding_horizon import (
    RecedingHorizon, RecedingHorizonConfig, interpolate_poses, is_stale, select_steps,
)
from action_images_ros.geometry import rotation_angle_deg

DOWN = np.array([1.0, 0.0, 0.0, 0.0])


def traj(n, dx=0.02, grip=1.0):
    t = np.zeros((n, 8))
    t[:, 0] = 0.5 + dx * np.arange(1, n + 1)
    t[:, 2] = 0.3
    t[:, 3:7] = DOWN
    t[:, 7] = grip
    return t


START = np.array([0.5, 0.0, 0.3, *DOWN, 1.0])


def test_select_steps_cuts_at_uncertain_or_non_finite():
    t = traj(6)
    conf = np.array([0.9, 0.8, 0.1, 0.9, 0.9, 0.9])
    steps, c = select_steps(t, conf, k=4, min_confidence=0.2)
    assert len(steps) == 2 and np.allclose(c, [0.9, 0.8])
    steps, _ = select_steps(t, np.ones(6), k=10, min_confidence=0.2)
    assert len(steps) == 6
    t[1, 4] = np.nan
    steps, _ = select_steps(t, np.ones(6), k=4, min_confidence=0.2)
    assert len(steps) == 1
    t = traj(3)
    t[0, 3:7] = 0
    assert len(select_steps(t, np.ones(3), 3, 0.2)[0]) == 0
    with pytest.raises(ValueError, match="confidence must have shape"):
        select_steps(traj(3), np.ones(2), 2, 0.2)


def test_interpolation_chains_segments():
    targets = traj(2)
    targets[1, 3:7] = (Rotation.from_euler("z", 30, degrees=True) * Rotation.from_quat(DOWN)).as_quat()
    targets[1, 7] = 0.0
    out = interpolate_poses(START, targets, substeps=3)
    assert out.shape == (6, 8)
    np.testing.assert_allclose(out[2], targets[0])
    np.testing.assert_allclose(out[5, :3], targets[1, :3])
    assert rotation_angle_deg(out[5, 3:7], targets[1, 3:7]) < 1e-6
    np.testing.assert_allclose(out[:3, 0], [0.5 + 0.02 / 3, 0.5 + 0.04 / 3, 0.52])
    np.testing.assert_allclose(rotation_angle_deg(np.tile(DOWN, (3, 1)), out[3:, 3:7]), [10, 20, 30], atol=1e-6)
    assert list(out[:, 7]) == [1, 1, 1, 0, 0, 0]
    np.testing.assert_allclose(np.linalg.norm(out[:, 3:7], axis=1), 1.0)


def test_executes_first_k_steps_then_holds_until_next_plan():
    rh = RecedingHorizon(RecedingHorizonConfig(execute_steps=2, substeps=2, max_frame_gap_s=0.2))
    res = rh.set_trajectory(traj(8), np.ones(8), frame_stamp_s=10.0, current_pose=START, now_s=10.05)
    assert res.accepted and res.commands == 4
    poses = [rh.next_command(10.06 + 0.01 * i) for i in range(5)]
    assert [p.hold for p in poses] == [False] * 4 + [True]
    np.testing.assert_allclose(poses[3].pose, traj(8)[1])
    assert "no plan" in poses[4].reason


def test_new_trajectory_replaces_queue_and_starts_from_last_command():
    rh = RecedingHorizon(RecedingHorizonConfig(execute_steps=3, substeps=2))
    rh.set_trajectory(traj(5), np.ones(5), 0.0, START, 0.01)
    first = rh.next_command(0.02).pose
    newer = traj(5, dx=-0.01)
    res = rh.set_trajectory(newer, np.ones(5), 0.05, START, 0.06)
    assert res.commands == 6 and rh.pending == 6
    nxt = rh.next_command(0.07).pose
    np.testing.assert_allclose(nxt[:3], (first[:3] + newer[0, :3]) / 2)  # interpolated from the last command


def test_camera_dropout_holds_and_resumes():
    rh = RecedingHorizon(RecedingHorizonConfig(execute_steps=4, substeps=4, max_frame_gap_s=0.2))
    assert rh.frames_stale(0.0)  # never saw a frame
    rh.set_trajectory(traj(4), np.ones(4), 1.0, START, 1.05)
    assert not rh.next_command(1.1).hold
    rh.observe_frame(1.15)
    assert not rh.frames_stale(1.349) and rh.frames_stale(1.351)  # what the executor watchdog asks
    assert not rh.next_command(1.3).hold      # 150 ms since the last frame
    cmd = rh.next_command(1.36)              # 210 ms: stale
    assert cmd.hold and "stale" in cmd.reason and rh.pending == 0 and rh.last_command is None
    assert rh.next_command(1.5).hold
    rh.observe_frame(1.5)
    assert rh.next_command(1.51).hold and rh.pending == 0   # frames back, but no fresh plan yet
    rh.set_trajectory(traj(4), np.ones(4), 1.6, START, 1.7)
    cmd = rh.next_command(1.71)
    assert not cmd.hold
    np.testing.assert_allclose(cmd.pose[0], 0.5 + 0.02 / 4)  # restarted from the measured pose


def test_old_or_uncertain_plans_are_dropped():
    rh = RecedingHorizon(RecedingHorizonConfig(max_plan_age_s=0.5, min_confidence=0.3))
    res = rh.set_trajectory(traj(4), np.ones(4), 1.0, START, 1.6)
    assert not res.accepted and "600 ms old" in res.reason and rh.pending == 0
    rh.set_trajectory(traj(4), np.ones(4), 1.0, START, 1.1)
    res = rh.set_trajectory(traj(4), np.array([0.1, 1, 1, 1]), 1.2, START, 1.3)
    assert not res.accepted and rh.pending == 0


def test_drop_and_is_stale_and_config():
    rh = RecedingHorizon()
    rh.set_trajectory(traj(4), np.ones(4), 0.0, START, 0.0)
    rh.next_command(0.01)
    rh.drop()
    assert rh.pending == 0 and rh.last_command is None
    assert is_stale(None, 1.0, 0.2) and is_stale(0.0, 0.21, 0.2) and not is_stale(0.0, 0.2, 0.2)
    for kw in (dict(execute_steps=0), dict(substeps=1.5), dict(min_confidence=2), dict(max_frame_gap_s=0)):
        with pytest.raises(ValueError):
            RecedingHorizonConfig(**kw)


def test_target_check_cuts_the_plan_before_a_refused_step():
    from action_images_ros.control.safety import SafetyConfig, SafetyEnvelope

    env = SafetyEnvelope(SafetyConfig(workspace_max=(0.85, 0.35, 0.60), refuse_translation_m=0.15))
    rh = RecedingHorizon(RecedingHorizonConfig(execute_steps=4, substeps=2))
    t = traj(4, dx=0.1)  # x = 0.6, 0.7, 0.8, 0.9 (outside)
    res = rh.set_trajectory(t, np.ones(4), 0.0, START, 0.0, target_check=env.check_target)
    assert res.accepted and res.commands == 6 and "outside the workspace box" in res.reason
    assert max(rh.next_command(0.01 * i).pose[0] for i in range(6)) == pytest.approx(0.8)
    # a jump between consecutive steps is measured step to step, not from the start
    rh.drop()  # start from the measured pose again
    t = traj(3, dx=0.05)
    t[2, 1] = 0.2  # 0.2 m sideways from step 1
    res = rh.set_trajectory(t, np.ones(3), 0.1, START, 0.1, target_check=env.check_target)
    assert res.commands == 4 and "refuse_translation_m" in res.reason
    t = traj(2, dx=0.3)
    res = rh.set_trajectory(t, np.ones(2), 0.2, START, 0.2, target_check=env.check_target)
    assert not res.accepted and rh.pending == 0 and "first step refused" in res.reason
