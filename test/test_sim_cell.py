"""SimulatedCell (no ROS): determinism, the simulated clock across resets, held commands, bad commands."""

import numpy as np
import pytest

from action_images_ros.sim.cell import SimulatedCell

SIZE = (48, 64)


@pytest.fixture(scope="module")
def cell():
    c = SimulatedCell("reach_target", image_size=SIZE, seed=3)
    yield c
    c.close()


def test_first_episode_and_status(cell):
    cell.reset(seed=3)
    assert cell.seed == 3 and cell.camera_names == ["front", "left_shoulder", "right_shoulder"]
    obs = cell.observe()
    assert obs.images.shape == (3, *SIZE, 3) and obs.images.dtype == np.uint8 and obs.depth is None
    assert obs.ee_pose.shape == (8,) and obs.joint_positions.shape == (7,)
    st = cell.status()
    assert set(st) == {"task", "seed", "episode", "step", "episode_time_s", "time_s", "success", "instruction", "tcp",
                       "command"}
    np.testing.assert_allclose(st["tcp"], obs.ee_pose, atol=1e-6)  # what the watch compares commands with
    np.testing.assert_allclose(st["command"], cell.command, atol=1e-6)
    assert st["task"] == "reach_target" and st["seed"] == 3 and st["step"] == 0
    assert st["instruction"].startswith("reach the ")
    # the arm holds: the command after a reset is the measured pose, gripper open
    np.testing.assert_allclose(cell.command[:7], obs.ee_pose[:7])
    assert cell.command[7] == 1.0


def test_same_seed_same_episode(cell):
    def run(seed):
        cell.reset(seed=seed)
        target = cell.observe().ee_pose.copy()
        target[1] += 0.03
        cell.command_pose(target)
        for _ in range(3):
            obs = cell.step()
        return obs.images.copy(), obs.ee_pose.copy(), cell.instruction

    a, b, c = run(11), run(11), run(12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    assert not np.array_equal(a[0], c[0])  # another seed, another scene


def test_clock_is_monotonic_across_resets():
    c = SimulatedCell("reach_target", image_size=(32, 32), seed=5, clock_start_s=2.5)
    try:
        dt_ns = round(c.control_dt * 1e9)
        assert c.time_ns == 2_500_000_000 and c.episode == 0
        stamps = [c.time_ns]
        for _ in range(3):
            c.step()
            stamps.append(c.time_ns)
        assert c.reset() == 6 and c.episode == 1 and c.status()["step"] == 0
        stamps.append(c.time_ns)
        c.step()
        stamps.append(c.time_ns)
        # one control_dt per tick, including the reset (independent closed form: 2.5 s + k dt)
        assert stamps == [2_500_000_000 + k * dt_ns for k in range(6)]
        assert c.status()["time_s"] == pytest.approx(2.5 + 5 * 0.1)
        assert c.reset() == 7  # None = previous seed + 1
    finally:
        c.close()


def test_commanded_pose_is_approached_and_held(cell):
    cell.reset(seed=4)
    start = cell.observe().ee_pose.copy()
    target = start.copy()
    target[:3] += [0.05, 0.0, -0.02]  # 5.4 cm away
    cell.command_pose(target)
    dists = [np.linalg.norm(cell.observe().ee_pose[:3] - target[:3])]
    for _ in range(10):
        dists.append(np.linalg.norm(cell.step().ee_pose[:3] - target[:3]))
    assert dists[0] > 0.05 and dists[-1] < 0.005  # measured pose (the env's own sensing), not the command
    assert dists[3] < dists[0]
    np.testing.assert_allclose(cell.command[:7], target[:7])  # held until changed
    # gripper only: the pose command stays
    cell.command_gripper(0.0)
    np.testing.assert_allclose(cell.command, np.r_[target[:7], 0.0])
    for _ in range(5):
        obs = cell.step()
    assert obs.ee_pose[7] < 0.2  # fingers closed (measured)


@pytest.mark.parametrize("bad, match", [
    (np.r_[0.5, np.nan, 0.3, 1, 0, 0, 0], "NaN or infinite"),
    (np.r_[0.5, 0.0, 0.3, 0, 0, 0, 0, 1], "zero quaternion"),
    (np.zeros(6), "7 or 8 values"),
    ("abc", "7 or 8"),
])
def test_bad_pose_commands_raise_and_leave_the_command(cell, bad, match):
    before = cell.command
    with pytest.raises(ValueError, match=match):
        cell.command_pose(bad)
    np.testing.assert_array_equal(cell.command, before)


def test_bad_gripper_command_and_bad_settings(cell):
    before = cell.command
    with pytest.raises(ValueError, match="finite"):
        cell.command_gripper(float("inf"))
    np.testing.assert_array_equal(cell.command, before)
    with pytest.raises(ValueError, match="unknown task 'fly'"):
        SimulatedCell("fly")
    with pytest.raises(ValueError, match="clock_start_s must be > 0"):
        SimulatedCell("reach_target", clock_start_s=0.0)
