"""Pieces several nodes share: the rig's static TF, and parameter callbacks that say what may change."""

from __future__ import annotations

from typing import Callable

from geometry_msgs.msg import TransformStamped
from rcl_interfaces.msg import SetParametersResult

from ..cell_description import optical_frame_id
from ..geometry import matrix_to_quat

__all__ = ["publish_rig_tf", "runtime_parameters", "KeyedThrottle"]


class KeyedThrottle:
    """Log throttling per kind of problem (rclpy throttles per call site: one bad message of a kind then
    hid a different bad message for the whole period). ``throttle(key)`` is True when ``key`` may log now."""

    def __init__(self, period_s: float = 2.0) -> None:
        self.period_s = float(period_s)
        self._last: dict = {}

    def __call__(self, key) -> bool:
        import time

        now = time.monotonic()
        if now - self._last.get(key, -1e18) < self.period_s:
            return False
        self._last[key] = now
        return True

    def reset(self) -> None:
        """Every kind may log again (a new episode: its first refusal is news, whatever came before)."""
        self._last.clear()


def publish_rig_tf(node, cameras, base_frame: str, stamp):
    """Publish ``base_frame -> <view>_optical_frame`` for every camera on ``/tf_static`` (where tf2_ros
    is importable: a ROS install); returns the broadcaster (keep it alive) or None."""
    try:
        from tf2_ros.static_transform_broadcaster import StaticTransformBroadcaster
    except ImportError:
        node.get_logger().info("tf2_ros is not importable here: the rig's static TF is not published "
                               "(the extrinsics are in the rig YAML; a ROS install publishes them)")
        return None
    transforms = []
    for cam in cameras:
        t = TransformStamped()
        t.header.stamp = stamp
        t.header.frame_id = base_frame
        t.child_frame_id = optical_frame_id(cam.name)
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
            float(v) for v in cam.T_world_cam[:3, 3])
        (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
         t.transform.rotation.w) = (float(v) for v in matrix_to_quat(cam.T_world_cam[:3, :3]))
        transforms.append(t)
    broadcaster = StaticTransformBroadcaster(node)
    broadcaster.sendTransform(transforms)
    return broadcaster


def runtime_parameters(changeable: dict[str, tuple[type, Callable]]):
    """A ``add_on_set_parameters_callback`` callback: the parameters in ``changeable`` (name ->
    (type, apply(value))) may change at run time, all others are refused with the reason
    "read at start-up only" (``use_sim_time`` is rclpy's own and always allowed). A set of several
    parameters is checked whole before anything is applied."""

    def callback(params) -> SetParametersResult:
        for prm in params:
            if prm.name in changeable:
                kind = changeable[prm.name][0]
                if not isinstance(prm.value, kind):
                    return SetParametersResult(successful=False, reason=f"{prm.name} must be a {kind.__name__}")
            elif prm.name != "use_sim_time":
                return SetParametersResult(successful=False,
                                           reason=f"{prm.name} is read at start-up only; restart the node")
        for prm in params:
            if prm.name in changeable:
                changeable[prm.name][1](prm.value)
        return SetParametersResult(successful=True)

    return callback
