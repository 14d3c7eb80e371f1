"""The whole graph over real DDS (slow): sim_node -> policy_node -> executor_node (sim backend) -> the arm.

The first test runs a tiny randomly initialised pipeline, one process per node, in the real-time
mode (the cell keeps moving while the policy thinks, as on the real arm), so that it checks the
plumbing and not a model's skill: an untrained UNet's action images stay close to the
conditioning action image of the current pose, so its decoded poses are near the arm and the
safety envelope lets (step-limited) commands through. This test process watches with a
GraphMonitor, calls the predict service and switches the cameras off and on (camera dropout).

The others are acceptance runs with the shipped ``models/tiny`` in lockstep: reach_target through
the multi-process graph, and consecutive episodes with resets through ``eval --graph``'s harness,
which must agree with the direct ``eval`` path on the same seeds.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from action_images_ros.control.safety import load_safety_config
from action_images_ros.ros.qos import image_qos
from action_images_ros.ros.graph import GraphOptions, topic
from action_images_ros.ros.monitor import GraphMonitor
from action_images_ros.ros.runner import SubprocessGraph
from action_images_ros.ros.session import SessionConfig, graph_specs, run_session
from action_images_ros.ros.spin import spin_until
from action_images_ros.ros.stamps import stamp_to_ns

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO_MODEL = "models/tiny"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    from action_images_ros.model.config import ModelConfig
    from action_images_ros.model.factory import build_pipeline

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny"
    build_pipeline(ModelConfig(image_size=32, num_future=2, block_out_channels=(8, 16))).save_pretrained(path)
    return path


def set_enabled(node, client, exs, value: bool):
    req = SetParameters.Request(parameters=[ParameterMsg(name="enabled", value=ParameterValue(
        type=ParameterType.PARAMETER_BOOL, bool_value=value))])
    fut = client.call_async(req)
    assert spin_until(exs, fut.done, 10.0) and fut.result().results[0].successful


def test_whole_graph_closed_loop_service_and_camera_dropout(ros_context, model_dir, tmp_path):
    specs, views = graph_specs(GraphOptions(model=str(model_dir), lockstep=False), {
        "policy_node": {"torch_threads": 1, "num_inference_steps": 2, "max_frame_age_s": 1.0},
    })
    graph = SubprocessGraph(specs, log_dir=tmp_path / "logs")
    monitor = GraphMonitor(views, context=ros_context, name="e2e_monitor",
                           parameter_overrides=[Parameter("use_sim_time", value=True)])
    frames = []  # stamps of the first view's images, as the executor's heartbeat sees them
    monitor.create_subscription(Image, topic("image", views[0]), lambda m: frames.append(
        stamp_to_ns(m.header.stamp)), image_qos())
    predict = monitor.create_client(Trigger, topic("predict"))
    cam_params = monitor.create_client(SetParameters, "sim_node/set_parameters")
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(monitor)
    exs = [ex]
    box = load_safety_config("config/safety.yaml")
    try:
        # 1. closed loop: predictions flow, the executor acts on them
        ok = spin_until(exs, lambda: len(monitor.predictions) >= 3 and len(monitor.move_stamps_ns()) >= 4 or graph.exited(), 120.0)
        assert not graph.exited(), f"a node died: {graph.exited()} (logs in {tmp_path / 'logs'})"
        assert ok, f"no closed loop within 120 s: {monitor.summary()}"
        assert monitor.sim_status["task"] == "reach_target"
        cmds = monitor.commanded_poses
        assert np.all(cmds[:, :3] >= np.asarray(box.workspace_min) - 1e-9)
        assert np.all(cmds[:, :3] <= np.asarray(box.workspace_max) + 1e-9)
        assert np.all(np.linalg.norm(np.diff(cmds[:, :3], axis=0), axis=1) <= box.max_translation_m + 1e-6)

        # 2. the predict service answers with a JSON summary
        assert spin_until(exs, predict.service_is_ready, 10.0)
        fut = predict.call_async(Trigger.Request())
        assert spin_until(exs, fut.done, 60.0)
        assert fut.result().success, fut.result().message
        summary = json.loads(fut.result().message)
        assert summary["views"] == views and len(summary["poses"]) == len(summary["confidence"]) >= 1

        # 3. camera dropout: the executor holds within max_frame_gap_s (0.2 s) of the last frame
        #    (its 50 Hz watchdog: + 20 ms, + 30 ms for scheduling on a loaded machine)
        assert spin_until(exs, cam_params.service_is_ready, 10.0)
        n_hold = monitor.events["hold"]
        set_enabled(monitor, cam_params, exs, False)
        assert spin_until(exs, lambda: monitor.events["hold"] > n_hold, 5.0), monitor.summary()
        assert "stale" in monitor.reasons["hold"]
        spin_until(exs, lambda: False, 1.0)
        assert spin_until(exs, lambda: monitor.undecided_commands() == 0, 5.0)  # every hold has its copy
        last_frame = frames[-1]
        # holds go out on executor/command too (they pass the envelope); no move after the dropout's limit,
        # and every hold after it is the same pose: the arm stays where it was commanded
        late_moves = [c for c in monitor.move_stamps_ns() if c > last_frame]
        assert all(c - last_frame <= 0.25e9 for c in late_moves), [(c - last_frame) / 1e6 for c in late_moves]
        poses = monitor.commanded_poses  # callbacks run only inside spin_until: stamps and poses agree
        held = poses[np.asarray(monitor.command_stamps_ns) > last_frame + 0.25e9]
        assert len(held) >= 1
        np.testing.assert_allclose(held, held[:1].repeat(len(held), 0), atol=1e-9)
        n_moves = len(monitor.move_stamps_ns())
        spin_until(exs, lambda: False, 1.0)
        assert spin_until(exs, lambda: monitor.undecided_commands() == 0, 5.0)
        assert len(monitor.move_stamps_ns()) == n_moves  # held

        # 4. the cameras come back: predictions and commands resume
        n_pred = len(monitor.predictions)
        set_enabled(monitor, cam_params, exs, True)
        resumed = lambda: len(monitor.predictions) > n_pred and len(monitor.move_stamps_ns()) > n_moves  # noqa: E731
        assert spin_until(exs, resumed, 60.0), monitor.summary()
    finally:
        ex.shutdown()
        monitor.destroy_node()
        codes = graph.shutdown()
    assert codes == {name: 0 for name in codes}, codes  # every node shut down cleanly on SIGINT


@pytest.mark.skipif(not (Path(REPO_MODEL) / "model_index.json").is_file(), reason=f"no shipped {REPO_MODEL}")
def test_shipped_model_completes_reach_target_through_the_graph(tmp_path):
    summary = run_session(GraphOptions(model=REPO_MODEL, task="reach_target"), SessionConfig(
        duration_s=150.0, processes=True, stop_on_success=True, log_dir=tmp_path / "logs"))
    assert summary["exit_codes"] == {n: 0 for n in summary["exit_codes"]}, summary
    assert summary["success"], summary


@pytest.mark.skipif(not (Path(REPO_MODEL) / "model_index.json").is_file(), reason=f"no shipped {REPO_MODEL}")
def test_graph_episodes_with_resets_agree_with_the_direct_path():
    """Three consecutive seeds through the graph (episode/stop, episode/start, the executor resetting on
    the new episode) and through the direct loop: the same outcomes on the same seeds."""
    import argparse

    from action_images_ros.commands.eval_policy import _run_direct, _run_graph, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)  # every option at its default, as the CLI would pass them
    args = parser.parse_args(["--model", REPO_MODEL, "--task", "reach_target", "--episodes", "3",
                              "--seed-offset", "100010", "--graph", "--no-videos", "--threads", "2"])
    graph = _run_graph(args)
    direct, _ = _run_direct(args, Path("/tmp"))  # (outcomes, runtime in use)
    assert [o.seed for o in graph] == [o.seed for o in direct] == [100_010, 100_011, 100_012]
    assert all(o.steps > 0 and o.predictions > 0 for o in graph)
    assert [o.success for o in graph] == [o.success for o in direct]
    for g, d in zip(graph, direct):
        if g.success:
            assert abs(g.steps - d.steps) <= 10, (g.steps, d.steps)  # lockstep: nearly the same episode
        assert g.stats["refused"] == 0 and g.stats["stalls"] == 0
