"""Latency-aware chunk execution: timing, alignment, blending, requests, stalls, holds, cuts, safety."""

import logging

import numpy as np
import pytest

from action_images_ros.control.chunk_execution import (Chunk, ChunkExecutor, ExecutionConfig, ExecutionStats,
                                                       blend_poses)
from action_images_ros.control.safety import SafetyConfig, SafetyEnvelope

IDENT = [0.0, 0.0, 0.0, 1.0]


def pose(x, y=0.0, z=0.3, quat=IDENT, grip=1.0):
    return np.array([x, y, z, *quat, grip], dtype=np.float64)


def along_x(xs, grip=1.0, y=0.0):
    return np.stack([pose(x, y=y, grip=grip) for x in xs])


def chunk(stamp, times, xs, conf=None, start=None, grip=1.0, y=0.0):
    conf = np.full(len(xs), 0.9) if conf is None else conf
    return Chunk(stamp, np.asarray(times, float), along_x(xs, grip, y), np.asarray(conf, float), start)


def executor(envelope=None, **kw):
    """Commands exactly the pose due at the tick (``lead_s`` 0) unless a test asks otherwise."""
    return ChunkExecutor(ExecutionConfig(**{"lead_s": 0.0, **kw}), envelope)


def tick(ex, t, measured=None):
    """Tick with a fresh camera frame at ``t`` (frames never stale unless a test wants it)."""
    ex.observe_frame(t)
    return ex.tick(t, measured)


# --------------------------------------------------------------------------- Chunk
def test_pose_at_interpolates_position_and_takes_gripper_of_next_step():
    c = Chunk(0.0, np.array([1.0, 2.0]), np.stack([pose(0.5, grip=1.0), pose(0.7, y=0.2, grip=0.0)]),
              np.array([0.9, 0.9]), start_pose=pose(0.3, grip=1.0))
    np.testing.assert_allclose(c.pose_at(1.25)[:3], [0.55, 0.05, 0.3])
    assert c.pose_at(1.25)[7] == 0.0  # moving towards step 1 (closed)
    assert c.pose_at(1.0)[7] == 1.0 and c.pose_at(1.0)[0] == pytest.approx(0.5)  # at step 0 itself
    np.testing.assert_allclose(c.pose_at(0.5)[:3], [0.4, 0.0, 0.3])  # start pose (t=0) -> step 0 (t=1)
    np.testing.assert_allclose(c.pose_at(-3.0)[:3], [0.3, 0.0, 0.3])  # clamped to the start pose
    np.testing.assert_allclose(c.pose_at(9.0), pose(0.7, y=0.2, grip=0.0))  # after the end: last pose
    no_start = Chunk(0.0, np.array([1.0, 2.0]), c.poses, c.confidence)
    np.testing.assert_allclose(no_start.pose_at(0.5), c.poses[0])  # before step 0 without a start pose
    assert c.end_s == 2.0


def test_pose_at_slerps_rotation_about_a_known_axis():
    quarter_z = [0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)]  # 90 deg about z
    c = Chunk(0.0, np.array([1.0, 2.0]), np.stack([pose(0.5), pose(0.5, quat=quarter_z)]), np.ones(2))
    for t, deg in ((1.5, 45.0), (1.25, 22.5)):
        half = np.radians(deg) / 2
        np.testing.assert_allclose(c.pose_at(t)[3:7], [0.0, 0.0, np.sin(half), np.cos(half)], atol=1e-12)


def test_blend_poses_gripper_switches_at_half():
    a, b = pose(0.0, grip=1.0), pose(1.0, grip=0.0)
    assert blend_poses(a, b, 0.49)[7] == 1.0 and blend_poses(a, b, 0.5)[7] == 0.0
    assert blend_poses(a, b, 0.25)[0] == pytest.approx(0.25)


def test_from_keyframes_times():
    c = Chunk.from_keyframes(2.0, along_x([0.5, 0.6, 0.7]), np.ones(3), 0.1)
    np.testing.assert_allclose(c.times_s, [2.1, 2.2, 2.3])
    with pytest.raises(ValueError, match="step_dt_s"):
        Chunk.from_keyframes(2.0, along_x([0.5]), np.ones(1), 0.0)


@pytest.mark.parametrize("kw, match", [
    (dict(times_s=[0.2, 0.2]), "strictly increasing"),
    (dict(times_s=[0.0, 0.2]), "after stamp_s"),
    (dict(times_s=[0.1, np.nan]), "finite"),
    (dict(poses=np.zeros((2, 7))), "poses must have shape"),
    (dict(confidence=np.ones(3)), "confidence must have shape"),
    (dict(start_pose=np.zeros(7)), "start_pose"),
    (dict(times_s=[], poses=np.zeros((0, 8)), confidence=[]), "at least one step"),
])
def test_chunk_validation(kw, match):
    args = dict(stamp_s=0.0, times_s=[0.1, 0.2], poses=along_x([0.5, 0.6]), confidence=np.ones(2))
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        Chunk(**args)


# --------------------------------------------------------------------------- alignment
LAT_TIMES = [0.2, 0.4, 0.6, 0.8]
LAT_XS = [0.5, 0.6, 0.7, 0.8]


def test_stamp_alignment_skips_steps_already_past():
    ex = executor()
    res = ex.add_chunk(chunk(0.0, LAT_TIMES, LAT_XS), 0.35, pose(0.45))
    assert res.accepted and res.late_s == pytest.approx(0.35)
    cmd = tick(ex, 0.35)
    assert cmd.event == "command"
    # due at 0.35: 0.75 of the way from step 0 (0.2 s, x=0.5) to step 1 (0.4 s, x=0.6)
    assert cmd.pose[0] == pytest.approx(0.5 + 0.75 * 0.1)
    assert tick(ex, 0.6).pose[0] == pytest.approx(0.7)


def test_arrival_alignment_starts_at_step_zero_on_arrival():
    ex = executor(align="arrival")
    ex.add_chunk(chunk(0.0, LAT_TIMES, LAT_XS, start=pose(0.4)), 0.35, pose(0.4))
    assert tick(ex, 0.35).pose[0] == pytest.approx(0.4)  # the measured pose, now at arrival
    assert tick(ex, 0.45).pose[0] == pytest.approx(0.45)  # halfway to step 0, due 0.2 s after arrival
    assert tick(ex, 0.55).pose[0] == pytest.approx(0.5)  # step 0
    assert ex.current_chunk.end_s == pytest.approx(0.8 + 0.35)


def test_fully_late_chunk_goes_to_its_last_pose_blended():
    ex = executor(blend_s=0.2)
    ex.add_chunk(chunk(0.0, [0.5, 3.0], [0.3, 0.3]), 0.0, pose(0.3))
    assert tick(ex, 0.9).pose[0] == pytest.approx(0.3)
    res = ex.add_chunk(chunk(0.1, [0.2, 0.5, 0.8], [0.4, 0.6, 0.8]), 1.0, pose(0.3))
    assert res.accepted and res.late_s == pytest.approx(0.9) and "all steps past" in res.reason
    assert tick(ex, 1.0).pose[0] == pytest.approx(0.3)  # blend starts at the previous chunk
    assert tick(ex, 1.1).pose[0] == pytest.approx(0.55)  # mean of 0.3 and B's last pose 0.8
    assert tick(ex, 1.2).pose[0] == pytest.approx(0.8)
    assert tick(ex, 1.3).event == "stall"
    assert ex.stats.late_chunks == 1 and ex.stats.max_late_s == pytest.approx(0.9)


def test_fully_late_chunk_without_command_in_flight_is_commanded_once():
    ex = executor(blend_s=0.0)
    ex.add_chunk(chunk(0.1, [0.2, 0.5], [0.4, 0.6]), 1.0, pose(0.3))
    cmd = tick(ex, 1.05)  # after its (past) end, but it was never commanded
    assert cmd.event == "command" and cmd.pose[0] == pytest.approx(0.6)
    assert tick(ex, 1.1).event == "stall"


# --------------------------------------------------------------------------- blending
def _blend_setup(blend_s):
    ex = executor(blend_s=blend_s)
    # A(t) = 0.4 + 0.2 t on [0, 1]; B starts from what A commanded at B's stamp (A(0.25) = 0.45, not
    # B's start_pose: the command stream continues), B(t) = 0.45 + (t - 0.25) on [0.25, 0.5]
    ex.add_chunk(chunk(0.0, [0.5, 1.0], [0.5, 0.6], start=pose(0.4), grip=1.0), 0.0, pose(0.4))
    assert tick(ex, 0.2).pose[0] == pytest.approx(0.44)
    res = ex.add_chunk(chunk(0.25, [0.5, 1.0], [0.7, 0.8], start=pose(0.65), grip=0.0), 0.3, pose(0.44))
    assert res.accepted and ex.last_switch_s == 0.3
    return ex


def test_blend_has_no_jump_and_averages_at_the_midpoint():
    ex = _blend_setup(0.2)
    first = tick(ex, 0.3)
    assert abs(first.pose[0] - (0.4 + 0.2 * 0.3)) < 1e-12  # == A(0.3): no jump at the switch
    assert first.pose[7] == 1.0
    assert tick(ex, 0.35).pose[7] == 1.0  # w = 0.25: still A's gripper
    mid = tick(ex, 0.4)  # w = 0.5
    assert mid.pose[0] == pytest.approx(0.5 * ((0.4 + 0.2 * 0.4) + (0.45 + 0.15)))
    assert mid.pose[7] == 0.0  # B's gripper from w >= 0.5
    assert tick(ex, 0.5).pose[0] == pytest.approx(0.7)  # blend over: B


def test_blend_zero_jumps_to_the_new_chunk():
    ex = _blend_setup(0.0)
    assert tick(ex, 0.3).pose[0] == pytest.approx(0.45 + 0.05)


def test_chunk_arriving_during_a_blend_continues_smoothly():
    ex = _blend_setup(0.2)
    before = tick(ex, 0.35).pose[0]
    ex.add_chunk(chunk(0.3, [0.5, 1.0], [0.9, 0.9], start=pose(0.9)), 0.35, pose(0.5))
    assert tick(ex, 0.35).pose[0] == pytest.approx(before)


# --------------------------------------------------------------------------- requests
def test_wants_chunk_at_request_fraction_and_request_bookkeeping():
    ex = executor(request_fraction=0.5, request_timeout_s=1.0)
    assert ex.wants_chunk(0.0) and not ex.waiting  # no chunk
    ex.add_chunk(chunk(0.0, [0.25, 0.5, 0.75, 1.0], [0.5] * 4), 0.2, pose(0.5))
    # executable duration 0.2 .. 1.0 = 0.8 s -> wanted once 0.4 s are left, at 0.6
    assert not ex.wants_chunk(0.59) and ex.wants_chunk(0.6)
    ex.mark_requested(0.6, 0.6)
    assert ex.waiting and not ex.wants_chunk(0.7) and not ex.wants_chunk(1.59)
    assert ex.wants_chunk(1.6)  # unanswered for request_timeout_s
    ex.request_answered(0.6)
    assert not ex.waiting and ex.wants_chunk(0.7)
    ex.mark_requested(0.7, 0.7)
    ex.add_chunk(chunk(0.7, [0.8, 1.7], [0.5, 0.5]), 0.75, pose(0.5))  # a chunk answers the request
    assert not ex.waiting and not ex.wants_chunk(0.8)


def test_request_fraction_zero_wants_only_when_run_out():
    ex = executor(request_fraction=0.0)
    ex.add_chunk(chunk(0.0, [0.5, 1.0], [0.5, 0.5]), 0.0, pose(0.5))
    assert not ex.wants_chunk(0.99) and ex.wants_chunk(1.0)


# --------------------------------------------------------------------------- stalls / holds
def test_stall_counted_once_accumulates_and_ends_on_new_chunk():
    ex = executor(blend_s=0.0)
    ex.add_chunk(chunk(0.0, [0.1, 0.2], [0.5, 0.6]), 0.0, pose(0.5))
    assert tick(ex, 0.1).event == "command" and tick(ex, 0.2).event == "command"
    for t in (0.25, 0.3):  # ran out: the chunk's last pose stays the target (the arm holds there)
        cmd = tick(ex, t)
        assert cmd.event == "stall" and cmd.pose[0] == pytest.approx(0.6)
    assert ex.stats.stalls == 1 and ex.stats.stall_time_s == pytest.approx(0.1)
    ex.add_chunk(chunk(0.3, [0.4, 0.5], [0.6, 0.6]), 0.35, pose(0.6))
    assert ex.stats.stall_time_s == pytest.approx(0.15)
    assert tick(ex, 0.4).event == "command"
    assert ex.stats.stall_time_s == pytest.approx(0.15)
    assert tick(ex, 0.6).event == "stall"
    assert ex.stats.stalls == 2 and ex.stats.commands == 6


def test_a_step_limited_arm_still_reaches_the_last_pose_while_stalled():
    from action_images_ros.control.safety import SafetyConfig, SafetyEnvelope

    ex = ChunkExecutor(ExecutionConfig(blend_s=0.0, min_confidence=0.0, lead_s=0.0),
                       SafetyEnvelope(SafetyConfig(max_translation_m=0.05, min_confidence=0.0)))
    ex.observe_frame(0.0)
    ex.add_chunk(chunk(0.0, [0.1], [0.62]), 0.0, pose(0.5))  # 12 cm in one step: limited to 5 cm a command
    arm = pose(0.5)
    for k in range(1, 5):
        ex.observe_frame(0.1 * k)
        cmd = ex.tick(0.1 * k, arm)
        assert cmd.event == ("command" if k == 1 else "stall")
        arm = cmd.pose.copy()  # the arm reaches each command
    assert arm[0] == pytest.approx(0.62)  # 0.55, 0.60, 0.62, 0.62


def test_latency_aware_requests_go_out_as_early_as_the_policy_is_slow():
    ex = executor(request_fraction=0.25)
    ex.add_chunk(chunk(0.0, [0.25, 0.5, 0.75, 1.0], [0.5] * 4), 0.6, pose(0.5))  # this policy took 0.6 s
    # executable 0.6 .. 1.0: by request_fraction alone at 0.9; with the 0.6 s latency seen: at once
    assert ex.wants_chunk(0.6)
    slow = executor(request_fraction=0.25, latency_aware=False)
    slow.add_chunk(chunk(0.0, [0.25, 0.5, 0.75, 1.0], [0.5] * 4), 0.6, pose(0.5))
    assert not slow.wants_chunk(0.89) and slow.wants_chunk(0.9)


def test_stale_frames_hold_where_commanded_and_drop_the_chunk():
    ex = executor()
    measured = pose(0.48)
    ex.add_chunk(chunk(0.0, [0.5, 1.0], [0.5, 0.6]), 0.0, measured)
    sent = tick(ex, 0.1, measured)
    assert sent.event == "command" and sent.pose[0] == pytest.approx(0.484)  # 1/5 of the way 0.48 -> 0.5
    cmd = ex.tick(0.35, measured)  # last frame 0.1 s: 250 ms > 200 ms
    assert cmd.event == "hold" and cmd.pose is None
    np.testing.assert_array_equal(cmd.hold_pose, sent.pose)  # where it was commanded, not the lagging measurement
    assert ex.current_chunk is None and ex.last_command is None and ex.stats.holds == 1
    assert ex.tick(0.4, measured).event == "hold" and ex.stats.holds == 1  # one hold episode
    assert ex.wants_chunk(0.4)


def test_future_stamped_heartbeat_does_not_prevent_the_hold(caplog):
    ex = executor()
    ex.add_chunk(chunk(0.0, [0.5, 1.0], [0.5, 0.6]), 0.0, pose(0.5))
    assert tick(ex, 0.1).event == "command"
    with caplog.at_level(logging.WARNING):
        for t in (0.15, 0.2, 0.3, 0.35):
            ex.observe_frame(t + 100.0)  # a broken clock upstream
            cmd = ex.tick(t, pose(0.5))
    assert cmd.event == "hold"
    assert ex.stats.future_stamps == 4
    assert sum("future" in r.message for r in caplog.records) == 1  # logged once
    ex.observe_frame(0.36)  # a good frame after the broken ones still counts
    assert not ex.frames_stale(0.37)


def test_future_heartbeat_seen_before_any_clock_is_judged_later():
    ex = executor()
    ex.observe_frame(0.05)
    ex.observe_frame(1e9)
    assert not ex.frames_stale(0.1)  # 0.05 kept, 1e9 ignored
    assert ex.frames_stale(0.3)
    assert ex.stats.future_stamps == 1


def test_no_frames_at_all_holds():
    ex = executor()
    cmd = ex.tick(0.0, pose(0.5))
    assert cmd.event == "hold" and ex.stats.holds == 0  # nothing was interrupted


def test_a_chunk_taken_while_the_cameras_are_stale_is_dropped_with_one_log_line(caplog):
    ex = executor()
    assert ex.tick(0.0, pose(0.5)).event == "hold"  # no frame yet
    with caplog.at_level(logging.WARNING):
        assert ex.add_chunk(chunk(0.0, [0.5, 1.0], [0.5, 0.6]), 0.5, pose(0.5)).accepted  # its stamp: 0.5 s old
        cmd = ex.tick(0.55, pose(0.5))
        assert ex.tick(0.6, pose(0.5)).event == "hold"
    assert cmd.event == "hold" and "stale" in cmd.reason and ex.current_chunk is None
    assert ex.stats.chunks_dropped == 1 and ex.stats.holds == 0  # nothing was executed: no hold episode
    assert sum("chunk dropped" in r.message for r in caplog.records) == 1
    assert ex.wants_chunk(0.6)


def test_idle_without_chunk():
    ex = executor()
    cmd = tick(ex, 0.0, pose(0.5))
    assert cmd.event == "idle" and cmd.pose is None


# --------------------------------------------------------------------------- cuts
def test_confidence_cut_and_first_step_uncertain_drops_current():
    ex = executor(min_confidence=0.3)
    res = ex.add_chunk(chunk(0.0, [0.1, 0.2, 0.3, 0.4], [0.5] * 4, conf=[0.9, 0.9, 0.1, 0.9]), 0.0, pose(0.5))
    assert res.accepted and res.steps == 2 and "uncertain" in res.reason
    assert ex.current_chunk.end_s == pytest.approx(0.2)
    res = ex.add_chunk(chunk(0.05, [0.1, 0.2], [0.5, 0.5], conf=[0.2, 0.9]), 0.05, pose(0.5))
    assert not res.accepted and "first step" in res.reason
    assert ex.current_chunk is None and ex.stats.chunks_dropped == 1


def test_non_finite_and_zero_quaternion_cut():
    ex = executor()
    poses = along_x([0.5, 0.5, 0.5, 0.5])
    poses[2, 1] = np.nan
    res = ex.add_chunk(Chunk(0.0, [0.1, 0.2, 0.3, 0.4], poses, np.ones(4)), 0.0, pose(0.5))
    assert res.steps == 2 and "non-finite" in res.reason
    poses = along_x([0.5, 0.5, 0.5])
    poses[1, 3:7] = 0.0
    res = ex.add_chunk(Chunk(0.0, [0.1, 0.2, 0.3], poses, np.ones(3)), 0.0, pose(0.5))
    assert res.steps == 1
    res = ex.add_chunk(Chunk(0.0, [0.1, 0.2], along_x([0.5, 0.5]), np.array([np.nan, 1.0])), 0.0, pose(0.5))
    assert not res.accepted


def test_execute_fraction_cuts_the_tail():
    ex = executor(execute_fraction=0.5)
    res = ex.add_chunk(chunk(0.0, [0.25, 0.5, 0.75, 1.0], [0.5] * 4), 0.0, pose(0.5))
    assert res.steps == 2 and ex.current_chunk.end_s == pytest.approx(0.5)
    ex = executor(execute_fraction=0.1)
    res = ex.add_chunk(chunk(0.0, [0.25, 0.5], [0.5] * 2), 0.0, pose(0.5))
    assert res.accepted and res.steps == 1  # at least one step is kept


@pytest.mark.parametrize("stamp", [1_700_000_636.9616873, 1.7e9 + 0.1, 1.7e9 + 537.25])
@pytest.mark.parametrize(("fraction", "kept"), [(0.4, 2), (0.8, 4)])
def test_execute_fraction_keeps_the_step_on_the_limit_at_wall_clock_stamps(stamp, fraction, kept):
    """Regression: relative times of a ~1.7e9 s stamp carry ~2e-7 s of rounding; a step due exactly at
    execute_fraction of the chunk was dropped for some stamps and kept for others."""
    ex = executor(execute_fraction=fraction)
    times = stamp + 0.1 * np.arange(1, 6)
    res = ex.add_chunk(chunk(stamp, times, [0.5] * 5), stamp, pose(0.5))
    assert res.accepted and res.steps == kept


# --------------------------------------------------------------------------- safety envelope
def _env(**kw):
    return SafetyEnvelope(SafetyConfig(gripper_debounce_steps=1, **kw))


def test_envelope_refusal_then_next_chunk_starts_from_measured_pose():
    """Regression: the old executor blended from the last command forever after a refusal."""
    ex = executor(envelope=_env(), blend_s=0.2)
    here = pose(0.5, y=0.2)
    ex.add_chunk(chunk(0.0, [0.5, 1.0], [0.5, 0.5], y=0.2, start=here), 0.0, here)
    assert tick(ex, 0.1, here).event == "command"
    moved = pose(0.5, y=-0.2)  # something (an env reset) moved the arm 0.4 m
    for t in (0.2, 0.25):  # not trusted until confirmed: hold where commanded (nothing new is sent)
        cmd = tick(ex, t, moved)
        assert cmd.event == "hold" and cmd.pose is None and cmd.hold_pose is None and "jumped 0.400 m" in cmd.reason
    cmd = tick(ex, 0.3, moved)  # the second sample confirms it: the world changed, hold there
    assert cmd.event == "hold" and cmd.pose is None and "confirmed" in cmd.reason
    np.testing.assert_array_equal(cmd.hold_pose, moved)
    assert ex.current_chunk is None and ex.last_command is None and ex.stats.pose_jumps == 1
    assert ex.stats.suspect_poses == 2 and ex.wants_chunk(0.3)
    res = ex.add_chunk(chunk(0.3, [0.5, 0.7], [0.51, 0.52], y=-0.2, start=moved), 0.35, moved)
    assert res.accepted
    cmd = tick(ex, 0.4, moved)
    assert cmd.event == "command"
    # B(0.4) = start (x 0.5) halfway to step 0 (x 0.51); nothing of the refused chunk's y = +0.2 left
    np.testing.assert_allclose(cmd.pose[:3], [0.505, -0.2, 0.3], atol=1e-9)


def test_a_far_target_is_refused_when_the_jump_guard_allows_the_move():
    ex = executor(envelope=_env(max_pose_jump_m=1.0))
    here = pose(0.5, y=0.2)
    ex.add_chunk(chunk(0.0, [0.5, 1.0], [0.5, 0.5], y=0.2, start=here), 0.0, here)
    assert tick(ex, 0.1, here).event == "command"
    moved = pose(0.5, y=-0.2)
    cmd = tick(ex, 0.2, moved)
    assert cmd.event == "refused" and cmd.pose is None and "refuse_translation_m" in cmd.reason
    assert ex.current_chunk is None and ex.last_command is None and ex.stats.refused == 1


def test_envelope_cuts_refused_steps_and_uses_clamped_poses():
    ex = executor(envelope=_env(workspace_clamp_margin_m=0.01))
    poses = along_x([0.5, 0.52, 0.54, 0.56])
    poses[1, 2] = 0.0  # 5 mm below the floor (0.005): clamped
    poses[3, 0] = 0.99  # outside the box: refused, the chunk ends before it
    res = ex.add_chunk(Chunk(0.0, [0.1, 0.2, 0.3, 0.4], poses, np.ones(4)), 0.0, pose(0.5))
    assert res.accepted and res.steps == 3 and "refused" in res.reason
    assert ex.current_chunk.poses[1, 2] == pytest.approx(0.005)
    res = ex.add_chunk(chunk(0.05, [0.1, 0.2], [0.99, 0.5]), 0.05, pose(0.5))
    assert not res.accepted and "first step refused" in res.reason and ex.current_chunk is None


def test_a_chunk_is_judged_against_the_measured_pose_not_its_own_start_pose():
    """Regression (forged chunks): the first-step check and the path start used the message's own start pose."""
    ex = executor(envelope=_env())
    far_start = pose(0.8)  # the chunk claims the arm was at x=0.8: 0.35 m from where it is measured
    res = ex.add_chunk(chunk(0.0, [0.1], [0.79], start=far_start), 0.0, pose(0.45))
    assert not res.accepted and "start state refused" in res.reason and "refuse_translation_m" in res.reason
    res = ex.add_chunk(chunk(0.0, [0.1], [0.79], start=pose(0.45)), 0.0, pose(0.45))  # first step 0.34 m away
    assert not res.accepted and "first step refused" in res.reason
    res = ex.add_chunk(chunk(0.0, [0.2], [0.6], start=pose(0.6)), 0.0, pose(0.45))  # start claimed 0.15 m ahead
    assert res.accepted
    np.testing.assert_allclose(ex.current_chunk.start_pose[:3], [0.45, 0.0, 0.3])  # the path starts at the arm
    assert tick(ex, 0.1, pose(0.45)).pose[0] == pytest.approx(0.5)  # 0.45 -> 0.6 halfway, within the 5 cm step


def test_envelope_step_limit_applies_to_commands():
    ex = executor(envelope=_env(max_translation_m=0.01), blend_s=0.0)
    ex.add_chunk(chunk(0.0, [0.1], [0.6]), 0.1, pose(0.5))
    cmd = tick(ex, 0.1, pose(0.5))
    assert cmd.event == "command" and cmd.pose[0] == pytest.approx(0.51) and "limited" in cmd.reason


def test_paused_envelope_sends_nothing_and_wants_nothing():
    env = _env()
    ex = executor(envelope=env)
    ex.add_chunk(chunk(0.0, [0.5, 1.0], [0.5, 0.5]), 0.0, pose(0.5))
    env.pause("test")
    cmd = tick(ex, 0.1, pose(0.5))
    assert cmd.event == "paused" and cmd.pose is None and not ex.wants_chunk(0.1)
    env.resume()
    assert tick(ex, 0.2, pose(0.5)).event == "idle" and ex.wants_chunk(0.2)


def test_measured_pose_must_be_valid():
    ex = executor(envelope=_env())
    with pytest.raises(ValueError, match="measured_pose"):
        ex.tick(0.0, pose(np.nan))
    with pytest.raises(ValueError, match="measured_pose"):
        ex.tick(0.0, None)
    assert executor().tick(0.0, None).event == "hold"  # None is fine without an envelope


# --------------------------------------------------------------------------- reset / stamps
def test_reset_ignores_chunks_stamped_before_it():
    ex = executor()
    ex.add_chunk(chunk(0.0, [0.5, 1.0], [0.5, 0.5]), 0.0, pose(0.5))
    tick(ex, 0.1)
    ex.mark_requested(0.9, 1.0)
    ex.reset(now_s=2.0)
    assert ex.current_chunk is None and ex.last_command is None and not ex.waiting
    assert ex.stats == ExecutionStats()
    ex.mark_requested(2.0, 2.0)
    res = ex.add_chunk(chunk(1.9, [2.1, 2.2], [0.5, 0.5]), 2.05, pose(0.5))
    assert not res.accepted and "reset" in res.reason and ex.current_chunk is None
    assert ex.waiting  # an answer from before the reset does not answer this episode's request
    assert ex.add_chunk(chunk(2.0, [2.1, 2.2], [0.5, 0.5]), 2.05, pose(0.5)).accepted
    ex.reset(now_s=0.0, keep_stats=True)  # a sim restarting its clock
    assert ex.stats.chunks_accepted == 1


def test_old_and_future_chunks_dropped_current_kept():
    ex = executor(max_plan_age_s=5.0)
    ex.add_chunk(chunk(4.0, [4.5, 8.0], [0.5, 0.5]), 4.0, pose(0.5))
    res = ex.add_chunk(chunk(10.0, [10.5], [0.6]), 15.5, pose(0.5))
    assert not res.accepted and "max_plan_age_s" in res.reason and res.late_s == pytest.approx(5.5)
    res = ex.add_chunk(chunk(7.5, [7.6], [0.6]), 6.0, pose(0.5))
    assert not res.accepted and "future" in res.reason
    assert ex.current_chunk.stamp_s == 4.0 and ex.stats.chunks_dropped == 2
    res = ex.add_chunk(chunk(3.0, [4.5], [0.6]), 6.0, pose(0.5))
    assert not res.accepted and "out of order" in res.reason
    assert ex.add_chunk(chunk(6.5, [6.6], [0.6]), 6.0, pose(0.5)).accepted  # < 1 s ahead: a small skew


def test_chunk_stamp_counts_as_a_frame():
    ex = executor()
    ex.add_chunk(chunk(0.0, [0.1, 0.5], [0.5, 0.5]), 0.05, pose(0.5))
    assert ex.tick(0.15, pose(0.5)).event == "command"


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("field, value", [
    ("blend_s", -0.1), ("request_fraction", 1.5), ("execute_fraction", 0.0), ("execute_fraction", 1.1),
    ("align", "now"), ("max_plan_age_s", 0.0), ("max_frame_gap_s", -1.0), ("min_confidence", 2.0),
    ("request_timeout_s", 0.0), ("blend_s", float("nan")), ("blend_s", "x"),
])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ExecutionConfig(**{field: value})


def test_config_from_dict_and_back():
    cfg = ExecutionConfig.from_dict({"blend_s": 0.1, "align": "arrival"})
    assert cfg.blend_s == 0.1 and cfg.align == "arrival"
    assert ExecutionConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown execution config keys \['substeps'\].*blend_s"):
        ExecutionConfig.from_dict({"substeps": 2})
    with pytest.raises(ValueError, match="mapping"):
        ExecutionConfig.from_dict([1])


def test_stats_as_dict():
    ex = executor()
    ex.add_chunk(chunk(0.0, [0.5], [0.5]), 0.0, pose(0.5))
    tick(ex, 0.1)
    d = ex.stats.as_dict()
    assert d["commands"] == 1 and d["chunks_accepted"] == 1 and set(d) >= {"stalls", "stall_time_s", "holds"}


def test_request_state_forecasts_where_the_arm_will_be_when_a_late_policy_answers():
    ex = executor(blend_s=0.0)
    measured = pose(0.5, grip=0.3)
    assert np.array_equal(ex.request_state(0.0, measured), measured)  # no chunk: the measured pose
    ex.add_chunk(chunk(0.0, [0.25, 0.5, 0.75, 1.0], [0.55, 0.6, 0.65, 0.7]), 0.0, pose(0.5))
    assert np.array_equal(ex.request_state(0.1, measured), measured)  # answered at once so far: measured
    ex.add_chunk(chunk(0.0, [0.25, 0.5, 0.75, 1.0], [0.55, 0.6, 0.65, 0.7]), 0.3, pose(0.5))  # 0.3 s late
    state = ex.request_state(0.4, measured)
    assert state[0] == pytest.approx(0.5 + 0.2 * 0.7)  # the chunk at 0.4 + 0.3 s: linear between 0.5 and 0.75
    assert state[7] == pytest.approx(0.3)  # the gripper as measured
    assert ex.request_state(5.0, measured)[0] == pytest.approx(0.7)  # past the end: its last pose
    off = executor(blend_s=0.0, forecast_state=False)
    off.add_chunk(chunk(0.0, [0.25, 0.5], [0.55, 0.6]), 0.3, pose(0.5))
    assert np.array_equal(off.request_state(0.4, measured), measured)


def test_request_state_gives_the_last_gripper_command_as_in_training():
    """Training states carry the previous gripper command; a gripper closed on a cube measures 'half open'."""
    ex = executor(blend_s=0.0)
    holding = pose(0.5, grip=0.62)
    ex.add_chunk(chunk(0.0, [0.1, 0.2], [0.55, 0.6], grip=0.0), 0.0, holding)
    assert tick(ex, 0.1, holding).pose[7] == 0.0
    assert ex.request_state(0.1, holding)[7] == 0.0  # the command, not the measured 0.62
    assert ex.request_state(0.1, holding)[0] == 0.5  # the rest as measured
    ex.reset(now_s=0.0)
    assert ex.request_state(0.0, holding)[7] == pytest.approx(0.62)  # a new episode: measured until it commands


def test_lead_commands_the_pose_due_one_control_period_later():
    ex = executor(blend_s=0.0, lead_s=0.1)
    ex.add_chunk(chunk(0.0, [0.2, 0.4], [0.6, 0.7], start=pose(0.5)), 0.0, pose(0.5))
    assert tick(ex, 0.0).pose[0] == pytest.approx(0.55)  # due at 0.1: reached by the end of this control step
    assert tick(ex, 0.1).pose[0] == pytest.approx(0.6)
    assert tick(ex, 0.3).event == "command" and tick(ex, 0.3).pose[0] == pytest.approx(0.7)
    assert tick(ex, 0.35).event == "stall"  # its end (0.4) is commanded already: ran out


def test_a_glitched_pose_is_not_trusted_and_the_arm_holds_where_commanded():
    """One bad sample 0.15 m (or 0.09 m) off: no new target that tick, the chunk survives, no command moves the
    target more than one envelope step from where it was commanded."""
    for glitch in (0.15, 0.09):
        env = SafetyEnvelope(SafetyConfig(workspace_min=(0.0, -1.0, 0.0), workspace_max=(1.5, 1.0, 1.0)))
        ex = executor(env)
        ex.observe_frame(0.0)
        assert ex.add_chunk(chunk(0.0, [0.1, 0.2, 0.3, 0.4, 0.5], [0.52, 0.54, 0.56, 0.58, 0.6]), 0.0,
                            pose(0.5)).accepted
        sent = [tick(ex, 0.1, pose(0.5)).pose, tick(ex, 0.2, pose(0.52)).pose]
        cmd = tick(ex, 0.3, pose(0.52, y=glitch))  # the bad sample
        assert cmd.event == "hold" and cmd.pose is None and cmd.hold_pose is None, cmd
        assert f"jumped {glitch:.3f} m" in cmd.reason
        assert ex.current_chunk is not None and ex.stats.suspect_poses == 1 and ex.stats.pose_jumps == 0
        for t in (0.4, 0.5):
            cmd = tick(ex, t, pose(0.52 + 0.02 * round((t - 0.2) / 0.1)))  # the real arm again
            assert cmd.event == "command"
            sent.append(cmd.pose)
        steps = np.linalg.norm(np.diff(np.stack(sent)[:, :3], axis=0), axis=1)
        assert steps.max() <= env.config.max_translation_m + 1e-9 and abs(sent[-1][1]) < 1e-9


def test_a_real_jump_is_confirmed_by_the_next_samples_then_the_chunk_is_dropped():
    """The world changed under the executor (a reset it has not been told of yet): the old chunk must not act."""
    env = SafetyEnvelope(SafetyConfig(workspace_min=(0.0, -1.0, 0.0), workspace_max=(1.5, 1.0, 1.0),
                                      pose_confirm_samples=2))
    ex = executor(env)
    ex.observe_frame(0.0)
    assert ex.add_chunk(chunk(0.0, [0.1, 0.2, 0.3, 0.4], [0.52, 0.54, 0.56, 0.58]), 0.0, pose(0.5)).accepted
    assert tick(ex, 0.1, pose(0.5)).pose is not None
    assert tick(ex, 0.2, pose(0.52)).pose is not None  # 2 cm per tick: the arm following its commands
    for t, stamp in ((0.3, 0.3), (0.35, 0.3), (0.4, 0.4)):  # (0.35: the same sample again confirms nothing)
        ex.observe_frame(t)
        cmd = ex.tick(t, pose(0.8, y=0.1), pose_stamp_s=stamp)  # 0.297 m in one tick: teleported
        assert cmd.event == "hold" and cmd.hold_pose is None and "jumped 0.297 m" in cmd.reason
    assert ex.request_state(0.4, pose(0.8, y=0.1))[0] == pytest.approx(0.52)  # untrusted: the trusted pose
    ex.observe_frame(0.5)
    cmd = ex.tick(0.5, pose(0.8, y=0.1), pose_stamp_s=0.5)  # the second new sample confirms it
    assert cmd.event == "hold" and "confirmed" in cmd.reason
    np.testing.assert_allclose(cmd.hold_pose, pose(0.8, y=0.1))
    assert ex.current_chunk is None and ex.last_command is None and ex.stats.pose_jumps == 1
    assert ex.wants_chunk(0.5)  # a fresh chunk from where the arm now is
    assert tick(ex, 0.55, pose(0.8, y=0.1)).event == "idle"  # no second jump: the new pose is trusted
    ex.reset(now_s=0.6)
    assert tick(ex, 0.7, pose(0.3)).event == "idle" and ex.stats.pose_jumps == 0  # a reset re-baselines it


# --------------------------------------------------------------------------- a chunk is an answer
def test_only_the_answer_to_the_outstanding_request_is_executed():
    ex = executor(envelope=_env())
    here = pose(0.5)
    ex.observe_frame(0.0)
    ex.mark_requested(0.0, 0.0, request_id="a1", state=here)
    for rid, start, why in (("", here, "'a1'"), ("zz", here, "'a1'"), ("a1", pose(0.52), "asked from"),
                            ("a1", None, "no start state")):
        res = ex.add_chunk(chunk(0.0, [0.2, 0.4], [0.52, 0.54], start=start), 0.05, here, request_id=rid)
        assert not res.accepted and "not an answer" in res.reason and why in res.reason, res.reason
        assert ex.waiting and ex.outstanding_id == "a1"  # still open: a forger cannot close it either
    ex.request_answered(0.0, request_id="zz")  # an empty answer with another id closes nothing
    assert ex.waiting
    assert ex.add_chunk(chunk(0.0, [0.2, 0.4], [0.52, 0.54], start=here), 0.05, here, request_id="a1").accepted
    assert not ex.waiting and ex.stats.not_answers == 4
    # answered: the same answer again (a replay) is not an answer to anything
    res = ex.add_chunk(chunk(0.0, [0.2, 0.4], [0.52, 0.54], start=here), 0.06, here, request_id="a1")
    assert not res.accepted and "no request is outstanding" in res.reason
    assert tick(ex, 0.1, here).event == "command"


def test_a_chunk_of_the_previous_episode_is_refused_after_a_reset_even_stamped_in_the_new_one():
    ex = executor(envelope=_env())
    ex.observe_frame(0.0)
    ex.mark_requested(0.0, 0.0, request_id="old", state=pose(0.6))
    ex.reset(now_s=1.0)
    ex.observe_frame(1.0)
    ex.mark_requested(1.0, 1.0, request_id="new", state=pose(0.4))
    # predicted from the previous episode's state, stamped at the new episode's first tick
    res = ex.add_chunk(chunk(1.0, [1.2, 1.4], [0.58, 0.56], start=pose(0.6)), 1.05, pose(0.4), request_id="old")
    assert not res.accepted and "not an answer" in res.reason
    assert tick(ex, 1.1, pose(0.4)).event == "idle"  # nothing moved
    assert ex.add_chunk(chunk(1.0, [1.2, 1.4], [0.42, 0.44], start=pose(0.4)), 1.15, pose(0.4),
                        request_id="new").accepted


def test_without_ids_any_chunk_answers_as_in_the_eval_loop():
    ex = executor()
    ex.mark_requested(0.0, 0.0)
    assert ex.add_chunk(chunk(0.0, [0.2], [0.5]), 0.0, pose(0.5)).accepted and not ex.waiting


def test_a_refusal_holds_where_commanded_and_commands_move_at_most_one_step_from_the_last():
    env = _env(max_translation_m=0.05)
    ex = executor(envelope=env, blend_s=0.0)
    ex.add_chunk(chunk(0.0, [0.1, 0.2], [0.52, 0.54]), 0.0, pose(0.5))
    first = tick(ex, 0.1, pose(0.5)).pose
    assert first[0] == pytest.approx(0.52)
    env.config.min_confidence = 0.95  # the next command is refused (confidence 0.9)
    cmd = tick(ex, 0.2, pose(0.51))
    assert cmd.event == "refused"
    np.testing.assert_allclose(cmd.hold_pose, first)  # where it was commanded, not the lagging measurement
    env.config.min_confidence = 0.2
    # the measurement reads 5.5 cm ahead of the last trusted pose (inside the trust bound, a small glitch):
    # the target 0.65 is limited to 5 cm from it (0.615) AND to 5 cm from the last command (0.52 -> 0.57)
    ex.add_chunk(chunk(0.2, [0.3], [0.65]), 0.2, pose(0.565))
    cmd = tick(ex, 0.3, pose(0.565))
    assert cmd.event == "command" and cmd.pose[0] == pytest.approx(0.57) and "from the last command" in cmd.reason


def test_hold_pose_is_checked_against_the_trusted_pose():
    env = _env(max_translation_m=0.05)
    ex = executor(envelope=env)
    assert ex.hold_pose() is None  # nothing known yet
    np.testing.assert_allclose(ex.hold_pose(pose(0.5, grip=0.7))[:7], pose(0.5)[:7])  # trusted = measured
    assert ex.hold_pose(pose(0.5, grip=0.7))[7] == 1.0  # measured opening 0.7: open
    ex.add_chunk(chunk(0.0, [0.1], [0.53]), 0.0, pose(0.5))
    assert tick(ex, 0.1, pose(0.5)).pose[0] == pytest.approx(0.53)
    env.pause("e-stop")  # a hold is still allowed while paused (it is what an e-stop sends)
    assert ex.hold_pose()[0] == pytest.approx(0.53)


def test_no_hold_pose_while_the_measured_pose_jumped_unconfirmed():
    """A hold sent into a world that changed (a reset not announced yet) would drag the arm back: nothing new."""
    ex = executor(envelope=_env())
    ex.add_chunk(chunk(0.0, [0.1], [0.52]), 0.0, pose(0.5))
    assert tick(ex, 0.1, pose(0.5)).pose is not None
    assert ex.hold_pose(pose(0.5, y=0.12)) is None  # the measurement jumped 0.12 m: unknown where the arm is
    assert tick(ex, 0.2, pose(0.5, y=0.12)).hold_pose is None and ex.hold_pose() is None  # pending jump
    tick(ex, 0.3, pose(0.51))  # the next sample is back where trusted: the jump was a glitch
    assert ex.hold_pose(pose(0.51))[0] == pytest.approx(0.52)  # hold where commanded
