"""The own-cell path end to end in the simulated cell: teleoperated demonstrations recorded over ROS 2
into rosbag2 → import-bag → train → eval, and the recorded episode against the directly generated one."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from rclpy.parameter import Parameter
from std_srvs.srv import SetBool, Trigger

from action_images_ros.ros.graph import GraphOptions, build_graph, topic
from action_images_ros.ros.nodes.recorder_node import create_node as create_recorder
from action_images_ros.ros.nodes.sim_node import create_node as create_sim
from action_images_ros.ros.nodes.teleop_node import create_node as create_teleop
from action_images_ros.ros.runner import BackgroundSpinner
from action_images_ros.ros.spin import executors_for, spin_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
SIZE, SEED, EPISODES = 32, 500, 3


def test_record_import_train_eval_and_the_demonstration_equals_the_direct_episode(ros_context_factory, tmp_path):
    import rclpy

    from action_images_ros.cli import main
    from action_images_ros.data import load_episode
    from action_images_ros.data.bag_import import ImportConfig, import_bags
    from action_images_ros.sim import make_env
    from action_images_ros.sim.rollout import run_expert_episode

    bags, eps = tmp_path / "bags", tmp_path / "episodes"
    recorder = create_recorder(context=ros_context_factory(), parameter_overrides=[
        Parameter("out_dir", value=str(bags)), Parameter("task", value="reach_target"),
        Parameter("use_sim_time", value=True), Parameter("settle_s", value=0.3), Parameter("close_delay_s", value=1.0)])
    spinner = BackgroundSpinner(recorder.context)
    spinner.add(recorder)
    # The cell first, then the device. The cell ticks only once its controller (the teleop) is there, so
    # the recorder must have matched every cell topic it records, and the device's commands, before that
    # moment: otherwise, on a loaded machine, episode 0 begins before the recording does and is skipped.
    graph = {s.name: s for s in build_graph(GraphOptions(seed=SEED))}
    sim = create_sim(context=ros_context_factory(), cli_args=graph["sim_node"].ros_arguments() + [
        "-p", f"image_width:={SIZE}", "-p", f"image_height:={SIZE}"])
    recorded = {sub.topic_name for sub in recorder.subscriptions}
    cell_pubs = [pub for pub in sim.publishers if pub.topic_name in recorded]
    assert cell_pubs, "the recorder records none of the cell's topics"
    assert spin_until(executors_for(sim), lambda: all(
        pub.get_subscription_count() >= 1 and recorder.count_publishers(pub.topic_name) >= 1
        for pub in cell_pubs), 30.0), [p.topic_name for p in cell_pubs if p.get_subscription_count() < 1]
    teleop = create_teleop(context=ros_context_factory(), cli_args=[  # the teleop device, on the graph's topics
        "--ros-args", "-r", f"episode:=/{topic('episode')}", "-r", f"current_pose:=/{topic('current_pose')}",
        "-r", f"gripper_joint_states:=/{topic('gripper_joint_states')}", "-r", f"sim/command:=/{topic('sim_command')}"])
    op = rclpy.create_node("operator", context=ros_context_factory())
    episode = {k: op.create_client(Trigger, "/" + topic(f"episode_{k}")) for k in ("start", "stop")}
    label = op.create_client(SetBool, "/recorder_node/label")
    # the recorder hears the device's commands too before the cell starts ticking
    assert spin_until(executors_for(teleop, op), lambda: teleop._pub.get_subscription_count() >= 1, 20.0)
    exs = executors_for(sim, teleop, op)

    def call(client, request):
        fut = client.call_async(request)
        assert spin_until(exs, fut.done, 30.0), f"{client.srv_name} not answered"
        return fut.result()

    outcomes = []
    try:
        assert spin_until(exs, lambda: label.service_is_ready() and episode["stop"].service_is_ready(), 20.0)
        for i in range(EPISODES):  # the operator: demonstrate, stop, label with the outcome, next
            assert spin_until(exs, lambda: teleop.targets_sent > 0 and teleop.done, 120.0), f"episode {i} not done"
            stop = json.loads(call(episode["stop"], Trigger.Request()).message)
            outcomes.append(bool(stop["outcome"]["success"]))
            assert json.loads(call(label, SetBool.Request(data=outcomes[-1])).message)["ok"]
            if i + 1 < EPISODES:
                assert call(episode["start"], Trigger.Request()).success
                assert spin_until(exs, lambda: not teleop.done, 10.0)
        assert spin_until(exs, lambda: len(recorder.recorder.closed_bags) == EPISODES, 20.0), "bags not closed"
    finally:
        for ex in exs:
            ex.shutdown()
        spinner.close()
        for node in (recorder, sim, teleop, op):
            node.destroy_node()
    assert all(outcomes), outcomes  # the scripted expert succeeds on these seeds

    results = import_bags([bags], eps, ImportConfig(rig_path=REPO / "config" / "cameras_sim.yaml"))
    assert len(results) == EPISODES
    files = sorted(eps.glob("*.h5"))
    assert len(files) == EPISODES
    imported = [load_episode(f) for f in files]
    assert sorted(e.seed for e in imported) == [SEED + k for k in range(EPISODES)]
    assert all(e.success for e in imported)

    # the demonstration recorded over ROS equals the expert episode generated directly (same seed)
    env = make_env("reach_target", image_size=SIZE)
    try:
        first = next(e for e in imported if e.seed == SEED)
        direct = run_expert_episode(env, SEED)
    finally:
        env.close()
    n = min(len(first.ee_pose), len(direct.observations))
    assert n >= len(direct.observations) - 1
    direct_pose = np.stack([o.ee_pose for o in direct.observations[:n]])
    assert np.abs(first.ee_pose[:n, :3] - direct_pose[:, :3]).max() <= 1e-3
    direct_rgb = np.stack([o.images for o in direct.observations[:n]])
    assert np.array_equal(first.rgb[:n], direct_rgb)

    # train a few steps on the imported demonstrations, then run the trained policy closed loop
    cfg = yaml.safe_load((REPO / "config" / "model_tiny.yaml").read_text())
    cfg["model"].update(image_size=SIZE, num_future=2, block_out_channels=[8, 16], attention_levels=0)
    cfg["train"] = {"learning_rate": 0.001, "batch_size": 2, "mixed_precision": "no"}
    cfg["data"] = {"horizon": 2, "image_size": SIZE}
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "model.yaml"), "--data", str(eps), "--out", str(run),
                 "--max-steps", "3", "--held-out", "0", "--threads", "2"]) == 0
    assert main(["eval", "--model", str(run / "model"), "--task", "reach_target", "--episodes", "1",
                 "--image-size", str(SIZE), "--no-videos", "--out", str(tmp_path / "eval")]) == 0
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert res["episodes"] == 1 and res["per_episode"][0]["predictions"] > 0
