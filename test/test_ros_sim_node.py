"""sim_node over real DDS: lockstep ticks, commanded poses, reset, real-time mode, bad commands, dropout."""

import json
from collections import defaultdict

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from action_images_ros.ros.image_conversions import msg_to_image
from action_images_ros.ros.pose_conversions import stamped_to_pose
from action_images_ros.ros.qos import image_qos, latched_qos
from action_images_ros.ros.nodes.sim_node import create_node
from action_images_ros.ros.spin import executors_for, spin_until
from action_images_ros.ros.stamps import stamp_to_ns
from action_images_ros.ros.trajectory_conversion import trajectory_to_msg

pytestmark = pytest.mark.ros

DT_NS = 100_000_000  # control_dt 0.1 s
T0_NS = 1_000_000_000  # clock_start_s 1.0


class Controller:
    """A second DDS participant: records what sim_node publishes and sends sim/command."""

    def __init__(self, context, views):
        import rclpy

        self.node = rclpy.create_node("sim_controller", context=context)
        self.views = views
        self.images = defaultdict(list)  # stamp_ns -> [(view, msg)]
        self.infos = defaultdict(list)
        self.clock, self.poses, self.joints, self.grippers, self.status, self.instructions = [], [], [], [], [], []
        for v in views:
            self.node.create_subscription(Image, f"{v}/image_raw", lambda m, v=v: self.images[
                stamp_to_ns(m.header.stamp)].append((v, m)), image_qos())
            self.node.create_subscription(CameraInfo, f"{v}/camera_info", lambda m, v=v: self.infos[
                stamp_to_ns(m.header.stamp)].append((v, m)), image_qos())
        self.node.create_subscription(Clock, "/clock", lambda m: self.clock.append(stamp_to_ns(m.clock)), 10)
        self.node.create_subscription(JointState, "joint_states", self.joints.append, 10)
        self.node.create_subscription(JointState, "gripper_joint_states", self.grippers.append, 10)
        self.node.create_subscription(String, "sim/status", lambda m: self.status.append(json.loads(m.data)), 10)
        self.node.create_subscription(String, "instruction", lambda m: self.instructions.append(m.data),
                                      latched_qos())
        self.episodes = []
        self.node.create_subscription(Header, "episode", self.episodes.append, latched_qos())  # as the executor
        self.node.create_subscription(PoseStamped, "current_pose", self.poses.append, 10)
        self.command_pub = self.node.create_publisher(MultiDOFJointTrajectory, "sim/command", 10)
        self.episode_clients = {k: self.node.create_client(Trigger, f"episode/{k}") for k in ("start", "stop", "reset")}
        self.reset_client = self.episode_clients["start"]
        self.status_client = self.node.create_client(Trigger, "sim/task_status")

    @property
    def last_stamp(self):
        return stamp_to_ns(self.poses[-1].header.stamp) if self.poses else None

    def ack(self, stamp_ns, pose=None):
        """``sim/command`` stamped ``stamp_ns``: no points (keep the command) or one ``(8,)`` target."""
        poses = np.zeros((0, 8)) if pose is None else np.reshape(pose, (1, 8))
        n = len(poses)
        self.command_pub.publish(trajectory_to_msg(poses, np.ones(n), np.zeros(n), stamp_ns, "base_link",
                                                   "fr3_hand_tcp"))

    def complete(self, stamp_ns):
        n = len(self.views)
        return len(self.images.get(stamp_ns, [])) == n and len(self.infos.get(stamp_ns, [])) == n


def start(ros_context_factory, overrides):
    args = ["--ros-args", "--params-file", "config/sim.yaml"]
    for k, v in {"image_width": 32, "image_height": 32, "seed": 7, **overrides}.items():
        args += ["-p", f"{k}:={v}"]
    node = create_node(context=ros_context_factory(), cli_args=args)
    ctl = Controller(ros_context_factory(), tuple(node.cell.camera_names))
    return node, ctl, executors_for(node, ctl.node)


def stop(node, ctl, executors):
    for ex in executors:
        ex.shutdown()
    node.destroy_node()
    ctl.node.destroy_node()


def step_once(exs, ctl, pose=None, timeout_s=10.0):
    """Acknowledge the newest tick (optionally with a target) and wait for the next one."""
    t = ctl.last_stamp
    ctl.ack(t, pose)
    assert spin_until(exs, lambda: ctl.last_stamp > t, timeout_s), f"no tick after the ack of {t} ns"
    return ctl.last_stamp


def test_lockstep_advances_one_tick_per_ack_and_ignores_bad_commands(ros_context_factory):
    node, ctl, exs = start(ros_context_factory, {})
    try:
        assert spin_until(exs, lambda: ctl.poses and ctl.complete(T0_NS) and ctl.instructions, 15.0), "no tick 0"
        # no acknowledgement: simulated time stands still for > 1 s of wall time
        spin_until(exs, lambda: False, 1.2)
        assert {stamp_to_ns(p.header.stamp) for p in ctl.poses} == {T0_NS}
        assert set(ctl.clock) == {T0_NS} and node.ticks_published == 1
        assert ctl.instructions[0].startswith("reach the ")
        # each ack advances exactly one control_dt; a tick's messages share one stamp = /clock
        for k in (1, 2):
            assert step_once(exs, ctl) == T0_NS + k * DT_NS
            spin_until(exs, lambda: False, 0.3)
            assert ctl.last_stamp == T0_NS + k * DT_NS and node.ticks_published == k + 1
        for k in range(3):
            s = T0_NS + k * DT_NS
            assert spin_until(exs, lambda: ctl.complete(s), 5.0), f"views of tick {k} incomplete"
            assert s in ctl.clock
        assert ctl.clock[-1] == ctl.last_stamp
        assert [stamp_to_ns(j.header.stamp) for j in ctl.joints][-3:] == [T0_NS + k * DT_NS for k in range(3)]
        js = ctl.joints[-1]
        assert js.name == [f"fr3_joint{i}" for i in range(1, 8)] + ["fr3_finger_joint1", "fr3_finger_joint2"]
        assert js.position[7] == js.position[8] == pytest.approx(0.04, abs=2e-3)  # open gripper, metres
        assert ctl.grippers[-1].name == ["fr3_finger_joint1", "fr3_finger_joint2"]
        img_msg = dict(ctl.images[T0_NS])["front"]
        assert img_msg.encoding == "rgb8" and img_msg.header.frame_id == "front_optical_frame"
        assert msg_to_image(img_msg).shape == (32, 32, 3)
        assert ctl.poses[-1].header.frame_id == "base_link"
        assert ctl.status[-1]["step"] == 2 and ctl.status[-1]["time_s"] == pytest.approx(1.2)

        # (e) a NaN target and a malformed message are logged and ignored: the command stays,
        # the stamp still acknowledges the tick, the node keeps publishing
        held = node.cell.command
        bad = held.copy()
        bad[1] = np.nan
        step_once(exs, ctl, bad)
        np.testing.assert_array_equal(node.cell.command, held)
        malformed = trajectory_to_msg(held[None], np.ones(1), np.zeros(1), ctl.last_stamp, "base_link", "tcp")
        malformed.joint_names = ["tcp", "what"]
        t = ctl.last_stamp
        ctl.command_pub.publish(malformed)
        assert spin_until(exs, lambda: ctl.last_stamp > t, 10.0)
        np.testing.assert_array_equal(node.cell.command, held)
        np.testing.assert_allclose(stamped_to_pose(ctl.poses[-1])[0][:3], held[:3], atol=0.005)
    finally:
        stop(node, ctl, exs)


def test_lockstep_target_is_approached_and_reset_starts_the_next_episode(ros_context_factory):
    node, ctl, exs = start(ros_context_factory, {})
    try:
        assert spin_until(exs, lambda: ctl.poses and ctl.reset_client.service_is_ready()
                          and ctl.status_client.service_is_ready(), 15.0)
        start_pose, _ = stamped_to_pose(ctl.poses[-1])
        target = np.r_[start_pose[:3] + [0.05, 0.0, 0.0], start_pose[3:7], 1.0]
        dists = []
        for _ in range(10):  # the controller acks each tick with the same target
            step_once(exs, ctl, target)
            dists.append(np.linalg.norm(stamped_to_pose(ctl.poses[-1])[0][:3] - target[:3]))
        assert dists[-1] < 0.01 and dists[-1] < dists[0]
        assert ctl.last_stamp == T0_NS + 10 * DT_NS

        # reset: the next seed, the clock keeps going (one control_dt after the last tick)
        last = ctl.last_stamp
        fut = ctl.reset_client.call_async(Trigger.Request())
        assert spin_until(exs, fut.done, 20.0)
        reply = json.loads(fut.result().message)
        assert fut.result().success and reply["seed"] == 8 and reply["episode"] == 1 and reply["state"] == "running"
        assert reply["outcome"]["episode"] == 0 and reply["outcome"]["step"] == 10  # how the last one ended
        assert reply["task"] == "reach_target" and reply["instruction"].startswith("reach the ")
        assert round(reply["stamp_s"] * 1e9) == last + DT_NS
        assert spin_until(exs, lambda: ctl.last_stamp == last + DT_NS, 5.0)
        # the new episode was announced for its first tick (the executor resets there)
        assert [(stamp_to_ns(e.stamp), e.frame_id) for e in ctl.episodes[-1:]] == [(last + DT_NS, "1 seed 8")]
        assert step_once(exs, ctl) == last + 2 * DT_NS
        fut = ctl.status_client.call_async(Trigger.Request())
        assert spin_until(exs, fut.done, 10.0)
        st = json.loads(fut.result().message)
        assert (st["seed"], st["episode"], st["step"]) == (8, 1, 1)
        assert ctl.status[-1]["seed"] == 8
    finally:
        stop(node, ctl, exs)


def call(exs, ctl, transition):
    fut = ctl.episode_clients[transition].call_async(Trigger.Request())
    assert spin_until(exs, fut.done, 20.0), f"episode/{transition} not answered"
    return fut.result().success, json.loads(fut.result().message)


def test_episode_stop_freezes_the_world_reset_repeats_the_seed_and_old_commands_are_ignored(ros_context_factory):
    node, ctl, exs = start(ros_context_factory, {})
    try:
        assert spin_until(exs, lambda: ctl.poses and all(c.service_is_ready() for c in ctl.episode_clients.values()),
                          15.0)
        start_pose, _ = stamped_to_pose(ctl.poses[-1])
        far = np.r_[start_pose[:3] + [0.1, 0.0, 0.0], start_pose[3:7], 1.0]
        for _ in range(3):
            step_once(exs, ctl, far)
        # stop: announced, no tick while stopped even when acknowledged, commands ignored
        ok, reply = call(exs, ctl, "stop")
        assert ok and reply["state"] == "stopped" and reply["episode"] == 0 and reply["outcome"]["step"] == 3
        assert spin_until(exs, lambda: ctl.episodes and ctl.episodes[-1].frame_id == "0 stopped", 5.0)
        last, held = ctl.last_stamp, node.cell.command
        ctl.ack(last, np.r_[start_pose[:3], start_pose[3:7], 0.0])
        spin_until(exs, lambda: False, 0.8)
        assert ctl.last_stamp == last and node.ticks_published == 4
        np.testing.assert_array_equal(node.cell.command, held)
        ok, reply = call(exs, ctl, "stop")  # nothing running: answered, refused with the reason
        assert not ok and "not running" in reply["reason"]
        # reset: the same seed again, as a new episode from the next tick
        ok, reply = call(exs, ctl, "reset")
        assert ok and (reply["episode"], reply["seed"], reply["state"]) == (1, 7, "running")
        assert spin_until(exs, lambda: ctl.episodes[-1].frame_id == "1 seed 7", 5.0)
        new_start = stamp_to_ns(ctl.episodes[-1].stamp)
        assert new_start == last + DT_NS and ctl.last_stamp == new_start
        reset_pose = stamped_to_pose(ctl.poses[-1])[0]
        np.testing.assert_allclose(reset_pose[:3], start_pose[:3], atol=1e-6)  # same seed: same start
        # a command computed for the previous episode's tick arrives late: ignored (but it acknowledges nothing
        # new), so the arm does not head back to the old target
        ctl.ack(last, far)
        spin_until(exs, lambda: False, 0.3)
        np.testing.assert_allclose(node.cell.command[:3], reset_pose[:3], atol=1e-9)
        assert step_once(exs, ctl) == new_start + DT_NS
        assert np.linalg.norm(stamped_to_pose(ctl.poses[-1])[0][:3] - reset_pose[:3]) < 1e-3
        # a command stamped in 2036 (a wall clock in a sim-time graph) is neither applied nor acknowledged:
        # one such message used to end lockstep for good
        t = ctl.last_stamp
        ctl.ack(2_082_758_400 * 10**9, far)
        spin_until(exs, lambda: False, 0.6)
        assert ctl.last_stamp == t
        np.testing.assert_allclose(node.cell.command[:3], stamped_to_pose(ctl.poses[-1])[0][:3], atol=1e-3)
        assert step_once(exs, ctl) == t + DT_NS  # lockstep goes on
    finally:
        stop(node, ctl, exs)


def test_real_time_mode_and_camera_dropout(ros_context_factory):
    import time

    t_start = time.monotonic()
    node, ctl, exs = start(ros_context_factory, {"lockstep": False})
    try:
        assert spin_until(exs, lambda: len(ctl.poses) >= 2, 15.0), "real-time mode does not tick without acks"
        n0 = len(ctl.poses)
        spin_until(exs, lambda: False, 1.5)
        stamps = [stamp_to_ns(p.header.stamp) for p in ctl.poses]
        assert np.all(np.diff(stamps) == DT_NS)  # consecutive ticks, one control_dt apart
        # about real time: never more ticks than wall time since the node started allows (a window counted
        # from a later moment would also count ticks delivered late, in a burst, on a loaded machine)
        assert len(ctl.poses) - n0 >= 3 and len(ctl.poses) <= (time.monotonic() - t_start) / 0.1 + 3

        # enabled = false: no images, but the clock and the pose go on
        assert node.set_parameters([Parameter("enabled", value=False)])[0].successful
        off_ns = node.cell.time_ns  # judged by stamps: a tick published as it flipped may still deliver images
        n_pose, n_clock = len(ctl.poses), len(ctl.clock)
        assert spin_until(exs, lambda: ctl.last_stamp >= off_ns + 8 * DT_NS, 5.0), "the ticks stopped"
        assert max(ctl.images) <= off_ns  # no image of a later tick
        assert len(ctl.poses) > n_pose + 2 and len(ctl.clock) > n_clock + 2
        n_img = len(ctl.images)
        assert node.set_parameters([Parameter("enabled", value=True)])[0].successful
        assert spin_until(exs, lambda: len(ctl.images) > n_img + 2, 5.0)
        refused = node.set_parameters([Parameter("lockstep", value=True)])[0]
        assert not refused.successful and "read at start-up only; restart the node" in refused.reason
        assert not node.set_parameters([Parameter("enabled", value=3)])[0].successful
    finally:
        stop(node, ctl, exs)


def test_bad_parameters_are_clear_errors(ros_context):
    with pytest.raises(ValueError, match="unknown task 'fly'; valid tasks: reach_target"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "task:=fly"])
    with pytest.raises(ValueError, match="lockstep_timeout_s must be > 0"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "lockstep_timeout_s:=-1.0"])


def test_lockstep_offers_an_unacknowledged_tick_again_to_a_controller_that_comes_later(ros_context_factory):
    """A restarted executor never saw the tick it must acknowledge: the tick is offered again (same stamp)
    as soon as the controller side changes, and an acknowledgement from the newcomer steps the world."""
    node, ctl, exs = start(ros_context_factory, {"lockstep_reoffer_s": 30.0})  # only the graph change re-offers
    try:
        assert spin_until(exs, lambda: ctl.poses and ctl.complete(T0_NS), 15.0), "no tick 0"
        ctl.node.destroy_publisher(ctl.command_pub)  # the executor dies: its writer goes
        late = Controller(ros_context_factory(), tuple(node.cell.camera_names))  # a new executor starts
        exs = executors_for(node, ctl.node, late.node)
        assert spin_until(exs, lambda: late.poses, 10.0), "the tick was not offered again to the newcomer"
        assert {stamp_to_ns(p.header.stamp) for p in late.poses} == {T0_NS} and late.complete(T0_NS)
        assert node.ticks_published == 1  # the same tick, not a new one
        assert step_once(exs, late) == T0_NS + DT_NS  # the newcomer's acknowledgement steps the world
        late.node.destroy_node()
    finally:
        stop(node, ctl, exs)
