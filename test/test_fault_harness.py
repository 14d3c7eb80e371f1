"""The fault harness on the robot's graph (one process per node): a short catalogue and a short soak.

The full catalogue and the 30-minute soak are ``bench/bench_faults.py``; this runs the subset
``fault_cases.SHORT`` and one minute of back-to-back episodes, and fails on any unsafe command,
node death, unlogged error or case not recovered within its bound.
"""

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_short_catalogue_and_soak_leave_every_node_alive_and_no_unsafe_command(tmp_path):
    from action_images_ros.ros.fault_cases import SHORT, by_name
    from action_images_ros.ros.fault_harness import FaultHarness, format_table, run_cases, run_soak
    from action_images_ros.ros.graph import GraphOptions
    from action_images_ros.sim.tasks import make_task

    options = GraphOptions(model="models/tiny", task="reach_target", seed=100000)
    with FaultHarness(options, tmp_path / "logs") as h:
        results = run_cases(h, by_name(SHORT), bound_scale=5.0)  # the bench holds the bounds themselves
        soak = run_soak(h, 1.0, int(make_task("reach_target").max_steps))
        checked = h.watch.commands_checked, h.watch.executed_checked
    table = format_table(results)
    assert len(results) == len(SHORT) and all(r.ok for r in results), table
    assert soak.alive and soak.unsafe == 0 and len(soak.episodes) >= 2, soak.episodes
    assert sum(e["success"] for e in soak.episodes) >= 1, soak.episodes
    assert checked[0] > 100 and checked[1] > 100  # the watch really saw the commands


def test_command_path_cases_move_nothing_unsafe_and_recover(tmp_path):
    """Issue 18's lockstep cases (pose glitches of 0.15 and 0.09 m, a forged trajectory stream, a previous
    episode's chunk after a reset, executor_node SIGKILL + restart): each logged, 0 unsafe commands (holds
    included), the loop moving again; the real-time silent-pose case runs in the bench."""
    from action_images_ros.ros.fault_cases import COMMAND_PATH, by_name
    from action_images_ros.ros.fault_harness import FaultHarness, format_table, run_cases
    from action_images_ros.ros.graph import GraphOptions

    options = GraphOptions(model="models/tiny", task="reach_target", seed=100000)
    with FaultHarness(options, tmp_path / "logs") as h:
        results = run_cases(h, by_name(COMMAND_PATH), bound_scale=5.0)  # the bench holds the bounds themselves
    table = format_table(results, log_lines=True)
    assert len(results) == len(COMMAND_PATH) and all(r.ok for r in results), table
    assert all(r.logged for r in results), table
