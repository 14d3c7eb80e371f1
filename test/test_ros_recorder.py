"""recorder_node over real DDS with a real sim_node: per-episode bags, counts checked by a second
reader (``mcap``), then imported into episodes equal to what the simulated cell published."""

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Float32
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from _ros_fakes import matched
from action_images_ros.data import load_episode
from action_images_ros.data.bag_import import ImportConfig, import_bags
from action_images_ros.ros.graph import GraphOptions, build_graph, topic
from action_images_ros.ros.image_conversions import msg_to_image
from action_images_ros.ros.nodes.recorder_node import create_node as create_recorder
from action_images_ros.ros.nodes.sim_node import create_node as create_sim
from action_images_ros.ros.pose_conversions import pose_to_stamped, stamped_to_pose
from action_images_ros.ros.qos import image_qos
from action_images_ros.ros.runner import BackgroundSpinner
from action_images_ros.ros.spin import executors_for, spin_until
from action_images_ros.ros.stamps import ns_to_stamp, stamp_to_ns
from action_images_ros.ros.trajectory_conversion import trajectory_to_msg

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
VIEWS = ("front", "left_shoulder", "right_shoulder")
PER_TICK = [f"/cameras/{v}/{k}" for v in VIEWS for k in ("image_raw", "camera_info")] + [
    "/action_images/ee_pose", "/action_images/gripper_joint_states", "/joint_states"]


class Operator:
    """A third DDS participant: drives the lockstep cell (as the executor or a teleop device would),
    calls the episode and label services, and keeps what the cell published."""

    def __init__(self, context):
        import rclpy

        self.node = rclpy.create_node("operator", context=context)
        self.poses, self.images = [], defaultdict(dict)  # images: stamp -> view -> array
        self.node.create_subscription(PoseStamped, "/" + topic("current_pose"), self.poses.append, 100)
        for v in VIEWS:
            q = image_qos()
            q.depth = 50
            self.node.create_subscription(Image, "/" + topic("image", v), lambda m, v=v: self.images[
                stamp_to_ns(m.header.stamp)].__setitem__(v, msg_to_image(m)), q)
        self.command = self.node.create_publisher(MultiDOFJointTrajectory, "/" + topic("sim_command"), 10)
        self.tcp_target = self.node.create_publisher(PoseStamped, "/" + topic("sim_tcp_target"), 10)
        self.gripper_target = self.node.create_publisher(Float32, "/" + topic("sim_gripper_target"), 10)
        self.episode = {k: self.node.create_client(Trigger, "/" + topic(f"episode_{k}")) for k in ("start", "stop")}
        self.label = self.node.create_client(SetBool, "/recorder_node/label")

    @property
    def last(self):
        return stamp_to_ns(self.poses[-1].header.stamp)


def test_recorder_writes_one_bag_per_episode_and_import_matches_what_sim_published(ros_context_factory, tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    bags, eps = tmp_path / "bags", tmp_path / "episodes"
    recorder = create_recorder(context=ros_context_factory(), parameter_overrides=[
        Parameter("out_dir", value=str(bags)), Parameter("task", value="reach_target"),
        Parameter("use_sim_time", value=True), Parameter("settle_s", value=0.3), Parameter("close_delay_s", value=1.5)])
    spinner = BackgroundSpinner(recorder.context)  # its own thread, as its own process would
    spinner.add(recorder)
    spec = next(s for s in build_graph(GraphOptions(seed=7)) if s.name == "sim_node")  # the graph's remappings
    sim = create_sim(context=ros_context_factory(), cli_args=spec.ros_arguments() + [
        "-p", "image_width:=32", "-p", "image_height:=32"])
    op = Operator(ros_context_factory())
    exs = executors_for(sim, op.node)

    def call(client, request):
        fut = client.call_async(request)
        assert spin_until(exs, fut.done, 20.0), f"{client.srv_name} not answered"
        return fut.result()

    def tick(send):
        t = op.last
        send(t)
        assert spin_until(exs, lambda: op.last > t, 10.0), f"no tick after {t}"

    try:
        assert spin_until(exs, lambda: op.poses and op.label.service_is_ready(), 20.0), "no first tick"
        # episode 0: the executor's path, one sim/command per tick (a moving target)
        sent0 = []
        for _ in range(8):
            def send(t):
                p = stamped_to_pose(op.poses[-1])[0]
                target = np.r_[p[:3] + [0.01, 0.0, -0.005], p[3:7], 1.0]
                sent0.append((t, target))
                op.command.publish(trajectory_to_msg(target[None], np.ones(1), np.zeros(1), t, "base_link", "tcp"))
            tick(send)
        assert call(op.episode["stop"], Trigger.Request()).success
        ep0_ticks = sorted({stamp_to_ns(p.header.stamp) for p in op.poses})
        reply = json.loads(call(op.label, SetBool.Request(data=True)).message)
        assert reply["ok"] and reply["episode"] == 0 and reply["seed"] == 7
        # episode 1: teleop (tcp_target + gripper_target), the tick acknowledged by an empty sim/command
        assert call(op.episode["start"], Trigger.Request()).success
        sent1 = []
        for k in range(5):
            def send(t):
                p = stamped_to_pose(op.poses[-1])[0]
                target = np.r_[p[:3] + [0.0, 0.01, 0.0], p[3:7], 1.0]
                sent1.append((t, target))
                op.tcp_target.publish(pose_to_stamped(target, "base_link", ns_to_stamp(t)))
                op.gripper_target.publish(Float32(data=0.0 if k >= 2 else 1.0))
                spin_until(exs, lambda: False, 0.05)  # the teleop command lands before the tick's acknowledgement
                op.command.publish(trajectory_to_msg(np.zeros((0, 8)), np.ones(0), np.zeros(0), t, "base_link", "tcp"))
            tick(send)
        assert call(op.episode["stop"], Trigger.Request()).success
        assert json.loads(call(op.label, SetBool.Request(data=False)).message)["episode"] == 1
        ep1_ticks = sorted({stamp_to_ns(p.header.stamp) for p in op.poses} - set(ep0_ticks))
        assert spin_until(exs, lambda: all(len(op.images[t]) == len(VIEWS) for t in ep0_ticks + ep1_ticks), 10.0)
        assert spin_until(exs, lambda: len(recorder.recorder.closed_bags) == 2, 15.0), "bags not closed"
    finally:
        for ex in exs:
            ex.shutdown()
        spinner.close()
        recorder.destroy_node()
        sim.destroy_node()
        op.node.destroy_node()

    assert len(ep0_ticks) == len(sent0) + 1 and len(ep1_ticks) == len(sent1) + 1  # tick 0 + one per command
    closed = [p.name for p in recorder.recorder.closed_bags]
    assert closed == ["episode_000000_seed_7", "episode_000001_seed_8"]
    assert sorted(p.name for p in bags.iterdir() if not p.name.startswith(".")) == closed
    # the second, independent reader: mcap's own (not rosbags), counting every message it decodes
    for name, ticks, commands in ((closed[0], ep0_ticks, len(sent0)), (closed[1], ep1_ticks, len(sent1))):
        counts, stamps = Counter(), defaultdict(list)
        with open(bags / name / f"{name}.mcap", "rb") as f:
            for _, channel, message, decoded in make_reader(f, decoder_factories=[DecoderFactory()]
                                                            ).iter_decoded_messages():
                counts[channel.topic] += 1
                if hasattr(decoded, "header"):
                    stamps[channel.topic].append(decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec)
        for t in PER_TICK:  # one per tick published, all of them, nothing of the other episode
            assert counts[t] == len(ticks), (name, t, counts[t], len(ticks))
            assert sorted(stamps[t]) == ticks, (name, t)
        assert counts["/action_images/episode"] == 2  # its start and stop marks
        assert counts["/action_images/instruction"] >= 1
        assert counts["/sim/command"] == commands
    assert Counter(recorder.recorder.counts()["/sim/tcp_target"])["written"] == len(sent1)

    results = import_bags([bags], eps, ImportConfig(rig_path=REPO / "config" / "cameras_sim.yaml"))
    assert [(r.seed, r.success, r.num_steps) for r in results] == [(7, True, len(ep0_ticks)),
                                                                   (8, False, len(ep1_ticks))]
    published = {stamp_to_ns(p.header.stamp): stamped_to_pose(p)[0] for p in op.poses}
    for r, ticks, sent in ((results[0], ep0_ticks, sent0), (results[1], ep1_ticks, sent1)):
        ep = load_episode(r.path)
        assert ep.task == "reach_target" and ep.instruction.startswith("reach the ")
        want = np.array([published[t] for t in ticks])
        assert np.max(np.linalg.norm(ep.ee_pose[:, :3] - want[:, :3], axis=1)) <= 1e-3  # <= 1 mm (exact here)
        np.testing.assert_allclose(np.abs(np.sum(ep.ee_pose[:, 3:7] * want[:, 3:7], axis=1)), 1.0, atol=1e-9)
        for row, t in enumerate(ticks):
            for v, view in enumerate(VIEWS):
                np.testing.assert_array_equal(ep.rgb[row, v], op.images[t][view])
        np.testing.assert_allclose(ep.action[:len(sent), :7], np.array([s[1][:7] for s in sent]), atol=1e-12)
        np.testing.assert_allclose(ep.action[-1, :7], sent[-1][1][:7], atol=1e-12)  # the last row repeats it
        assert ep.cameras[0].width == 32
    assert load_episode(results[1].path).action[-1, 7] == 0.0  # the teleop gripper command


def test_recorder_refuses_a_label_before_any_episode_and_keeps_running(ros_context_factory, tmp_path):
    import rclpy

    recorder = create_recorder(context=ros_context_factory(), parameter_overrides=[
        Parameter("out_dir", value=str(tmp_path)), Parameter("views", value=["front"])])
    client_node = rclpy.create_node("labeller", context=ros_context_factory())
    label = client_node.create_client(SetBool, "/recorder_node/label")
    status = client_node.create_client(Trigger, "/recorder_node/status")
    bad = client_node.create_publisher(Image, "/cameras/front/image_raw", 10)
    exs = executors_for(recorder, client_node)
    try:
        assert spin_until(exs, lambda: label.service_is_ready() and status.service_is_ready(), 10.0)
        fut = label.call_async(SetBool.Request(data=True))
        assert spin_until(exs, fut.done, 10.0)
        assert not fut.result().success and "no episode" in json.loads(fut.result().message)["reason"]
        assert spin_until(exs, lambda: matched(recorder, client_node), 10.0)
        bad.publish(Image())  # stamp 0, no episode: counted, not recorded, nothing breaks
        fut = status.call_async(Trigger.Request())
        assert spin_until(exs, lambda: recorder.recorder.counts()["/cameras/front/image_raw"].get("received") == 1, 5.0)
        assert spin_until(exs, fut.done, 10.0) and fut.result().success
    finally:
        for ex in exs:
            ex.shutdown()
        recorder.destroy_node()
        client_node.destroy_node()
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_killed_recorder_leaves_the_finished_episodes_readable(ros_context_factory, tmp_path):
    """``action-images record-bag`` as its own process, SIGKILLed during episode 1: episode 0's bag is whole
    (and imports), episode 1's stays under ``.incomplete/`` where no reader takes it for a finished one."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import rclpy
    from sensor_msgs.msg import CameraInfo, JointState
    from std_msgs.msg import Header

    from action_images_ros import cli
    from action_images_ros.data.bags import BagError, BagReader, list_bags
    from action_images_ros.geometry import load_rig
    from action_images_ros.ros.camera_info import camera_to_info
    from action_images_ros.ros.episode import episode_header
    from action_images_ros.ros.image_conversions import image_to_msg
    from action_images_ros.ros.qos import latched_qos, state_qos

    out = tmp_path / "bags"
    proc = subprocess.Popen([sys.executable, "-m", "action_images_ros.cli", "record-bag", "--out", str(out),
                             "--views", "front", "--task", "reach_target", "--settle", "0.2", "--close-delay", "0.6"],
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")}, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = rclpy.create_node("cell", context=ros_context_factory())
    cam = load_rig(REPO / "config" / "cameras_sim.yaml")[0].scaled(16, 16)
    pubs = {"img": node.create_publisher(Image, "/cameras/front/image_raw", image_qos()),
            "info": node.create_publisher(CameraInfo, "/cameras/front/camera_info", image_qos()),
            "pose": node.create_publisher(PoseStamped, "/action_images/ee_pose", state_qos()),
            "grip": node.create_publisher(JointState, "/action_images/gripper_joint_states", state_qos()),
            "joints": node.create_publisher(JointState, "/joint_states", state_qos()),
            "cmd": node.create_publisher(MultiDOFJointTrajectory, "/sim/command", state_qos()),
            "episode": node.create_publisher(Header, "/action_images/episode", latched_qos())}

    def tick(ns):
        stamp = ns_to_stamp(ns)
        pubs["img"].publish(image_to_msg(np.full((16, 16, 3), ns // 10**8 % 256, np.uint8), "rgb8", "front", stamp))
        pubs["info"].publish(camera_to_info(cam, stamp=stamp))
        pose = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0])
        pubs["pose"].publish(pose_to_stamped(pose, "base_link", stamp))
        for key, names in (("grip", ["fr3_finger_joint1"]), ("joints", [f"fr3_joint{i}" for i in range(1, 8)])):
            js = JointState(name=names, position=[0.04] * len(names))
            js.header.stamp = stamp
            pubs[key].publish(js)
        pubs["cmd"].publish(trajectory_to_msg(np.r_[pose, 1.0][None], np.ones(1), np.zeros(1), ns, "base_link", "tcp"))
        time.sleep(0.02)

    try:
        deadline = time.monotonic() + 30.0
        while not all(p.get_subscription_count() for p in pubs.values()):
            assert time.monotonic() < deadline and proc.poll() is None, "the recorder did not subscribe"
            time.sleep(0.05)
        time.sleep(0.5)
        t0 = time.time_ns() // 10**8 * 10**8
        pubs["episode"].publish(episode_header(t0, 0, 7))
        for k in range(5):
            tick(t0 + k * 10**8)
        pubs["episode"].publish(episode_header(t0 + 4 * 10**8, 0, 7, running=False))
        deadline = time.monotonic() + 15.0
        while not (out / "episode_000000_seed_7" / "metadata.yaml").is_file():
            assert time.monotonic() < deadline, "episode 0's bag was not closed"
            time.sleep(0.05)
        pubs["episode"].publish(episode_header(t0 + 10**9, 1, 8))
        for k in range(3):
            tick(t0 + 10**9 + k * 10**8)
        deadline = time.monotonic() + 15.0
        while not (out / ".incomplete" / "episode_000001_seed_8").is_dir():
            assert time.monotonic() < deadline, "episode 1's bag was not opened"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()

    assert list_bags([out]) == [out / "episode_000000_seed_7"]
    with pytest.raises(BagError, match="not a finished rosbag2 bag"):
        with BagReader(out / ".incomplete" / "episode_000001_seed_8"):
            pass
    eps = tmp_path / "episodes"
    assert cli.main(["import-bag", str(out), "--out", str(eps), "--views", "front"]) == 0
    ep = load_episode(eps / "episode_000007.h5")
    assert ep.num_steps == 5 and ep.camera_names == ["front"] and ep.task == "reach_target"
    np.testing.assert_array_equal(ep.rgb[:, 0, 0, 0, 0], [(t0 + k * 10**8) // 10**8 % 256 for k in range(5)])
    assert cli.main(["import-bag", str(tmp_path / "nothing"), "--out", str(eps)]) == 2  # a clear one-line error


def test_bad_recorder_parameters_raise_a_clear_error(ros_context):
    with pytest.raises(ValueError, match="close_delay_s"):
        create_recorder(context=ros_context, parameter_overrides=[Parameter("close_delay_s", value=0.1)])
    with pytest.raises(FileNotFoundError, match="rig"):
        create_recorder(context=ros_context, parameter_overrides=[Parameter("rig", value="/nonexistent/rig.yaml")])
