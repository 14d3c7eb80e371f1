"""executor_node over real DDS with the ``sim`` backend driving a fake arm (test-only stand-in for the sim).

The fake arm (``_ros_fakes.FakeArm``) follows every ``sim/tcp_target`` at once and publishes
``current_pose`` and the finger ``JointState``; the test plays the decoder (trajectory topics) and the camera
(``camera_heartbeat``) and watches what reaches the arm.
"""

import json

import numpy as np
import pytest
from geometry_msgs.msg import PoseArray, PoseStamped
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import SetBool

from _ros_fakes import QOS, START, FakeArm
from action_images_ros.ros.executor_node import create_node
from action_images_ros.ros.pose_conversions import trajectory_to_msgs
from action_images_ros.ros.spin import executors_for, spin_until
from action_images_ros.ros.stamps import stamp_to_ns

pytestmark = pytest.mark.ros


class Harness:
    def __init__(self, ros_context_factory, **overrides):
        import rclpy

        ctx_exec, ctx_world = ros_context_factory(), ros_context_factory()
        args = ["--ros-args", "--params-file", "config/executor.yaml", "-p", "control_rate_hz:=20.0"]
        for k, v in overrides.items():
            args += ["-p", f"{k}:={v}"]
        self.executor_node = create_node(context=ctx_exec, cli_args=args)
        self.world = rclpy.create_node("fake_world", context=ctx_world)
        self.arm = FakeArm(self.world)
        self.traj_pub = self.world.create_publisher(PoseArray, "trajectory", QOS)
        self.info_pub = self.world.create_publisher(Float32MultiArray, "trajectory_info", QOS)
        self.heartbeat_pub = self.world.create_publisher(CameraInfo, "camera_heartbeat", QOS)
        self.camera_on = True
        self.world.create_timer(1 / 30, self.heartbeat)
        self.status, self.commands = [], []
        self.world.create_subscription(String, "executor_node/status", lambda m: self.status.append(
            json.loads(m.data)), QOS)
        self.world.create_subscription(PoseStamped, "executor_node/command", self.commands.append, QOS)
        self.pause_client = self.world.create_client(SetBool, "executor_node/pause")
        self.executors = executors_for(self.executor_node, self.world)
        assert self.spin(lambda: self.traj_pub.get_subscription_count() and self.info_pub.get_subscription_count()
                         and self.pause_client.service_is_ready() and self.executor_node.measured_pose() is not None,
                         10.0), "graph did not come up"

    def heartbeat(self):
        if self.camera_on:
            msg = CameraInfo()
            msg.header.stamp = self.world.get_clock().now().to_msg()
            self.heartbeat_pub.publish(msg)

    def spin(self, predicate, timeout_s):
        return spin_until(self.executors, predicate, timeout_s)

    def now_ns(self):
        return self.world.get_clock().now().nanoseconds

    def send_trajectory(self, actions, confidence, stamp_ns=None):
        poses, info = trajectory_to_msgs(np.asarray(actions), np.asarray(confidence),
                                         self.now_ns() if stamp_ns is None else stamp_ns)
        self.traj_pub.publish(poses)
        self.info_pub.publish(info)

    def pause(self, on):
        fut = self.pause_client.call_async(SetBool.Request(data=on))
        assert self.spin(fut.done, 5.0)
        return fut.result()

    def close(self):
        for ex in self.executors:
            ex.shutdown()
        self.executor_node.destroy_node()
        self.world.destroy_node()


@pytest.fixture
def harness(ros_context_factory):
    h = Harness(ros_context_factory)
    yield h
    h.close()


def straight(n, dx=0.02, grip=1.0, start=START):
    t = np.tile(start, (n, 1))
    t[:, 0] = start[0] + dx * np.arange(1, n + 1)
    t[:, 7] = grip
    return t


def test_executes_first_steps_of_a_trajectory(harness):
    traj = straight(6)
    harness.send_trajectory(traj, np.full(6, 0.9))
    assert harness.spin(lambda: len(harness.arm.targets) >= 4, 5.0)
    harness.spin(lambda: False, 0.3)  # nothing beyond execute_steps x substeps = 4 commands
    xs = [round(t[0], 6) for t in harness.arm.targets]
    assert xs == [0.51, 0.52, 0.53, 0.54]  # 2 steps x 2 interpolated commands
    assert len(harness.commands) == 4
    np.testing.assert_allclose(harness.arm.pose[:7], traj[1, :7], atol=1e-9)
    assert harness.status[-1]["event"] == "idle" and "no plan" in harness.status[-1]["reason"]


def test_unsafe_trajectories_never_reach_the_arm(harness):
    cases = {
        "nan": (np.where(np.arange(8) == 0, np.nan, straight(1)[0])[None].repeat(3, 0), np.ones(3)),
        "outside": (straight(3, dx=0.2) * [1, 1, 0, 1, 1, 1, 1, 1] + [0, 0, -0.05, 0, 0, 0, 0, 0], np.ones(3)),
        "low confidence": (straight(3), np.full(3, 0.05)),
        "far jump": (straight(3, dx=0.33), np.ones(3)),
    }
    for name, (traj, conf) in cases.items():
        n_status = len(harness.status)
        harness.send_trajectory(traj, conf)
        assert harness.spin(lambda: any(e["event"] in ("dropped", "refused") for e in harness.status[n_status:]),
                            3.0), (name, harness.status[n_status:])
    for target in harness.arm.targets:  # only hold commands at the measured pose were sent
        np.testing.assert_allclose(target[:7], START[:7], atol=1e-9)
    assert harness.commands == []
    reasons = " | ".join(s["reason"] for s in harness.status)
    assert "outside the workspace box" in reasons and "refuse_translation_m" in reasons
    assert "uncertain or not finite" in reasons
    # the node is still alive: a good trajectory executes
    harness.send_trajectory(straight(2), np.ones(2))
    assert harness.spin(lambda: len(harness.commands) >= 4, 5.0)


def test_pause_service_is_an_e_stop(harness):
    assert harness.pause(True).success
    harness.send_trajectory(straight(4), np.ones(4))
    harness.spin(lambda: False, 0.5)
    assert harness.commands == []
    assert any(s["event"] == "paused" for s in harness.status)
    assert any(s["event"] == "dropped" and "paused" in s["reason"] for s in harness.status)
    assert harness.pause(False).success
    harness.send_trajectory(straight(4), np.ones(4))
    assert harness.spin(lambda: len(harness.commands) >= 4, 5.0)


def test_camera_dropout_holds_within_200ms_and_resumes(harness):
    harness.send_trajectory(straight(6, dx=0.01), np.ones(6))
    assert harness.spin(lambda: len(harness.commands) >= 1, 3.0)
    harness.camera_on = False
    t_off = harness.now_ns()
    assert harness.spin(lambda: any("stale" in s["reason"] for s in harness.status), 2.0)
    n_cmd = len(harness.commands)
    assert harness.spin(lambda: False, 0.4) is False and len(harness.commands) == n_cmd  # held
    # commands issued after the dropout stop within max_frame_gap_s (0.2 s) + one tick (0.05 s)
    late = [stamp_to_ns(c.header.stamp) - t_off for c in harness.commands]
    assert max(late) < 0.25e9
    harness.camera_on = True
    harness.spin(lambda: False, 0.1)
    harness.send_trajectory(straight(2, dx=0.01, start=harness.arm.pose), np.ones(2))
    assert harness.spin(lambda: len(harness.commands) > n_cmd, 3.0)


def test_stale_and_malformed_trajectories_are_dropped(harness):
    harness.send_trajectory(straight(3), np.ones(3), stamp_ns=harness.now_ns() - int(2e9))
    assert harness.spin(lambda: any("ms old" in s["reason"] for s in harness.status), 3.0)
    poses, info = trajectory_to_msgs(straight(3), np.ones(3), harness.now_ns())
    info.data = info.data[:-2]  # sizes disagree
    harness.traj_pub.publish(poses)
    harness.info_pub.publish(info)
    assert harness.spin(lambda: any("must be (T=3, 2)" in s["reason"] for s in harness.status), 3.0)
    assert harness.commands == []


def test_unknown_backend_is_a_clear_error(ros_context):
    with pytest.raises(ValueError, match="unknown executor backend 'ur5'; valid backends: sim, servo, moveit"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "backend:=ur5"])


def test_moveit_backend_without_moveit_py_says_so(ros_context):
    from action_images_ros.ros.executor_backends import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="needs moveit_py"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "backend:=moveit"])
