"""Test-only stand-ins for parts of the graph that are not under test (never used by library code)."""

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32

from action_images_ros.ros.pose_conversions import pose_to_stamped, stamped_to_pose

DOWN = [1.0, 0.0, 0.0, 0.0]
START = np.array([0.5, 0.0, 0.3, *DOWN, 1.0])
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class FakeArm:
    """Follows targets instantly; publishes the measured pose and finger joints at 50 Hz."""

    def __init__(self, node, pose_topic="current_pose", joints_topic="gripper_joint_states"):
        self.pose = START.copy()
        self.targets = []  # every (8,) target received (gripper = value at that time)
        self.pose_pub = node.create_publisher(PoseStamped, pose_topic, QOS)
        self.joint_pub = node.create_publisher(JointState, joints_topic, QOS)
        node.create_subscription(PoseStamped, "sim/tcp_target", self.on_target, QOS)
        node.create_subscription(Float32, "sim/gripper_target", self.on_gripper, QOS)
        node.create_timer(0.02, self.publish)
        self.node = node

    def on_target(self, msg):
        pose, _ = stamped_to_pose(msg, gripper=self.pose[7])
        assert msg.header.frame_id == "base_link"
        self.pose = pose
        self.targets.append(pose)

    def on_gripper(self, msg):
        self.pose[7] = msg.data

    def publish(self):
        self.pose_pub.publish(pose_to_stamped(self.pose, "base_link", self.node.get_clock().now().to_msg()))
        js = JointState(name=["fr3_finger_joint1", "fr3_finger_joint2"], position=[0.04 * self.pose[7]] * 2)
        self.joint_pub.publish(js)
