"""Test-only stand-ins for parts of the graph that are not under test (never used by library code)."""

import collections

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import MultiDOFJointTrajectory

from action_images_ros.ros.pose_conversions import pose_to_stamped
from action_images_ros.ros.stamps import stamp_to_ns
from action_images_ros.ros.trajectory_conversion import msg_to_trajectory

DOWN = [1.0, 0.0, 0.0, 0.0]
START = np.array([0.5, 0.0, 0.3, *DOWN, 1.0])
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def matched(a, b):
    """Every topic between nodes ``a`` and ``b`` is matched on both sides: the writer knows the reader and the
    reader the writer. A writer that knows its reader is not enough: DDS discovery is asymmetric, and a
    reader that has not matched the writer yet drops what the writer sent before (a test's first message lost)."""
    for x, y in ((a, b), (b, a)):
        subs = {s.topic_name: s for s in y.subscriptions}
        writers = collections.Counter(pub.topic_name for pub in x.publishers)  # a topic may have two (a test's own)
        for pub in x.publishers:
            sub = subs.get(pub.topic_name)
            if sub is not None and (pub.get_subscription_count() < 1
                                    or sub.get_publisher_count() < writers[pub.topic_name]):
                return False
    return True


class FakeArm:
    """Follows ``sim/command`` targets instantly; publishes the measured pose and finger joints at 50 Hz
    (``rate_hz=0``: never by itself, call :meth:`publish`). ``silent``: publishes nothing (a silent state
    stream; targets are still followed); ``frame`` / ``pose_pub``: how the pose is published."""

    def __init__(self, node, pose_topic="current_pose", joints_topic="gripper_joint_states", rate_hz=50.0):
        self.pose = START.copy()
        self.silent = False
        self.frame = "base_link"
        self.targets = []  # every (8,) target received
        self.acks = []  # stamps (ns) of every sim/command, with or without a target
        self.pose_pub = node.create_publisher(PoseStamped, pose_topic, QOS)
        self.joint_pub = node.create_publisher(JointState, joints_topic, QOS)
        node.create_subscription(MultiDOFJointTrajectory, "sim/command", self.on_command, QOS)
        if rate_hz > 0:
            node.create_timer(1.0 / rate_hz, self.publish)
        self.node = node

    def on_command(self, msg):
        traj = msg_to_trajectory(msg, expected_frame="base_link")
        self.acks.append(stamp_to_ns(msg.header.stamp))
        if len(traj):
            self.pose = traj.poses[0].copy()
            self.targets.append(self.pose.copy())

    def publish(self, stamp=None):
        if self.silent:
            return
        stamp = self.node.get_clock().now().to_msg() if stamp is None else stamp
        js = JointState(name=["fr3_finger_joint1", "fr3_finger_joint2"], position=[0.04 * self.pose[7]] * 2)
        self.joint_pub.publish(js)
        self.pose_pub.publish(pose_to_stamped(self.pose, self.frame, stamp))  # last: a lockstep executor ticks on it
