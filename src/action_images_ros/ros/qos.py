"""QoS profiles of the graph's topics (an explicit choice per kind of stream)."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

__all__ = ["image_qos", "latched_qos", "pose_qos", "service_qos", "state_qos"]


def image_qos() -> QoSProfile:
    """Camera images and their CameraInfo, action videos: reliable (best effort loses fragments of
    large images, DESIGN §3), volatile, only the newest 2 kept (a slow reader gets fresh frames)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def state_qos(depth: int = 5) -> QoSProfile:
    """Small state / command / result messages: reliable, volatile, the newest ``depth`` kept."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def pose_qos(depth: int = 5) -> QoSProfile:
    """A measured-state stream read for its newest sample (``current_pose``): best effort, volatile, the newest
    ``depth`` kept. A best-effort reader matches reliable *and* best-effort writers (a reliable reader gets
    nothing from a best-effort writer): franka_ros2 (>= v3.3) publishes
    ``franka_robot_state_broadcaster/current_pose`` best effort at 1 kHz, sim_node reliable."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos(depth: int = 1) -> QoSProfile:
    """Rarely changing facts (the task instruction): reliable, transient local, the newest one kept,
    so a node started later still receives it. A reader of a topic with several writers takes a
    deeper ``depth``, so one writer's message cannot displace another's before it is read."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def service_qos() -> QoSProfile:
    """Services: reliable, volatile, 100 requests kept (rclpy's default keeps 10, so a burst of calls to a
    busy node lost the rest unanswered; an e-stop caller must always learn whether it took effect)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)
