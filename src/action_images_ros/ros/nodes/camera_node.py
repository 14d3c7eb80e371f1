"""camera_node: synchronised multi-view frames (RealSense / replay) -> Image + CameraInfo per view.

Sources (parameter ``source``; the frame sources themselves are ROS-free, ``camera_sources``):
    ``realsense``: RealSense colour streams by serial (``realsense_serials``), intrinsics from
        the devices, extrinsics from the rig YAML (``rig``). Each set is stamped with its capture
        time (the devices' global / system time); with device-clock (``hardware_clock``)
        timestamps it falls back to the arrival time and warns once.
    ``replay``: an episode file (``replay_file``), row by row at its ``control_dt``, stamped on arrival.
The simulated cell is its own node, ``sim_node`` (it owns the arm and the clock).

Publishes (relative names, remapped by ``graph.py``), one shared ``header.stamp`` per set:
    ``<view>/image_raw`` (sensor_msgs/Image, rgb8, frame ``<view>_optical_frame``)
    ``<view>/camera_info`` (sensor_msgs/CameraInfo: K, P, R, plumb_bob zeros, image size)
    ``current_pose`` (geometry_msgs/PoseStamped, TCP in ``base_frame``; replay only)
    ``gripper_joint_states`` (sensor_msgs/JointState, the two finger joints, 0.04 m each = open; replay)
    ``instruction`` (std_msgs/String, transient local): the episode's language instruction, when it
        changes (replay; on the real cell the operator publishes it)
    ``/tf_static``: the rig's camera frames, only when tf2_ros is importable (a ROS install).
Parameters: see ``config/camera.yaml``. ``enabled`` (bool) can be changed at run time: false stops
publishing (the source keeps being read) — a camera dropout on purpose.

Frames are read, stamped and published by a worker thread.
"""

from __future__ import annotations

import threading
import time

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String

from ...cell_description import optical_frame_id
from ...geometry import load_rig
from ..camera_info import camera_to_info
from ..camera_sources import FrameSource, RealSenseSource, ReplaySource, find_realsense_devices
from ..image_conversions import image_to_msg
from ..node_support import publish_rig_tf, runtime_parameters
from ..pose_conversions import pose_to_stamped
from ..qos import image_qos, latched_qos, state_qos
from ..share import resolve_share_path
from ..stamps import ns_to_stamp

__all__ = ["CameraNode", "create_node", "main", "SOURCES"]

NODE_NAME = "camera_node"
SOURCES = ("realsense", "replay")
FINGER_JOINTS = ("fr3_finger_joint1", "fr3_finger_joint2")
FINGER_MAX_M = 0.04  # per finger; openness 1 = 0.08 m between the fingers


class CameraNode(Node):
    """See the module docstring.

    Args:
        realsense_devices: ``rs.device`` objects to use instead of looking ``realsense_serials`` up
            (tests inject ``rs.software_device`` cameras this way).
        node_kwargs: as for ``rclpy.node.Node`` (``context``, ``cli_args``, ``parameter_overrides``).
    """

    def __init__(self, realsense_devices=None, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # 1. parameters
        p = {k: self.declare_parameter(k, v).value for k, v in {
            "source": "realsense",
            "rig": "config/cameras_sim.yaml",
            "base_frame": "base_link",
            "rate_hz": 0.0,
            "enabled": True,
            "replay_file": "",
            "replay_loop": True,
            "replay_wait_for_subscribers": True,
            "realsense_serials": [""],
            "realsense_names": [""],
            "width": 640,
            "height": 480,
            "fps": 30,
            "hardware_sync": False,
            "publish_tf": True,
        }.items()}
        if p["source"] == "sim":
            raise ValueError("camera source 'sim' is gone: the simulated cell is its own node now (sim_node, "
                             f"config/sim.yaml); valid camera sources: {', '.join(SOURCES)}")
        if p["source"] not in SOURCES:
            raise ValueError(f"unknown camera source {p['source']!r}; valid sources: {', '.join(SOURCES)}")
        if p["rate_hz"] < 0:
            raise ValueError(f"rate_hz must be >= 0 (0 = the source's own rate), got {p['rate_hz']}")
        self._base_frame = p["base_frame"]
        self._enabled = bool(p["enabled"])
        self.add_on_set_parameters_callback(runtime_parameters({"enabled": (bool, self._set_enabled)}))
        # 2. the frame source, created and used only by the worker thread (an OpenGL context,
        #    as the sim's renderer holds, belongs to the thread that made it)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._publishing = threading.Event()
        self._source_error: BaseException | None = None
        self.source: FrameSource | None = None
        self._worker = threading.Thread(target=self._run, args=(p, realsense_devices), name="camera_node_frames",
                                        daemon=True)
        self._worker.start()
        self._ready.wait()
        if self._source_error is not None:
            super().destroy_node()
            raise self._source_error
        self._period_s = 1.0 / p["rate_hz"] if p["rate_hz"] > 0 else self.source.period_s
        self._pace = p["source"] != "realsense"  # devices pace themselves
        cams = self.source.cameras
        # 3. publishers (per view image + info), the recorded arm state of a replay
        self._image_pubs = [self.create_publisher(Image, f"{c.name}/image_raw", image_qos()) for c in cams]
        self._info_pubs = [self.create_publisher(CameraInfo, f"{c.name}/camera_info", image_qos()) for c in cams]
        self._pose_pub = self._joint_pub = self._instruction_pub = None
        self._instruction: str | None = None
        self._warned_arrival_stamps = False
        if p["source"] == "replay":
            self._instruction_pub = self.create_publisher(String, "instruction", latched_qos())
            self._pose_pub = self.create_publisher(PoseStamped, "current_pose", state_qos())
            self._joint_pub = self.create_publisher(JointState, "gripper_joint_states", state_qos())
        if p["publish_tf"]:
            self._tf = publish_rig_tf(self, cams, self._base_frame, self.get_clock().now().to_msg())
        # 4. from here on the worker thread reads, stamps and publishes
        self.sets_published = 0
        self._wait_for_subscribers = p["source"] == "replay" and p["replay_wait_for_subscribers"]
        self._publishing.set()
        self.get_logger().info(
            f"source {p['source']!r}: {len(cams)} view(s) {[c.name for c in cams]} "
            f"{cams[0].width}x{cams[0].height} at {1.0 / self._period_s:.1f} Hz")

    # ------------------------------------------------------------------ set-up helpers
    def _make_source(self, p: dict, realsense_devices) -> FrameSource:
        if p["source"] == "replay":
            if not p["replay_file"]:
                raise ValueError("source 'replay' needs the parameter replay_file (an episode .h5)")
            return ReplaySource(resolve_share_path(p["replay_file"]), loop=p["replay_loop"])
        serials = [s for s in p["realsense_serials"] if s]
        names = [n for n in p["realsense_names"] if n]
        if realsense_devices is None:
            if not serials:
                raise ValueError("source 'realsense' needs realsense_serials (one serial number per view)")
            realsense_devices = find_realsense_devices(serials)
        rig = load_rig(resolve_share_path(p["rig"]))
        return RealSenseSource(realsense_devices, rig, names or None, width=p["width"], height=p["height"],
                               fps=p["fps"], hardware_sync=p["hardware_sync"])

    # ------------------------------------------------------------------ callbacks (tiny)
    def _set_enabled(self, value: bool) -> None:
        self._enabled = value
        self.get_logger().warning(f"publishing {'enabled' if value else 'disabled'}")

    # ------------------------------------------------------------------ worker
    def _run(self, params: dict, realsense_devices) -> None:
        try:
            self.source = self._make_source(params, realsense_devices)
        except BaseException as exc:  # handed to __init__, which raises it
            self._source_error = exc
            self._ready.set()
            return
        self._ready.set()
        self._publishing.wait()  # until __init__ has made the publishers
        try:
            self._loop()
        finally:
            self.source.close()

    def _loop(self) -> None:
        if self._wait_for_subscribers:  # a replay is short: do not lose its start to discovery
            pubs = self._image_pubs + self._info_pubs + [self._pose_pub]
            while not self._stop.is_set() and min(pub.get_subscription_count() for pub in pubs) == 0:
                self._stop.wait(0.05)
            self._stop.wait(0.5)  # discovery is asymmetric: let the subscribers match this side too
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                fs = self.source.read(timeout_s=1.0)
            except Exception as exc:  # a failing device must not kill the node silently
                if not self.context.ok():
                    return
                self.get_logger().error(f"reading frames failed: {exc!r}", throttle_duration_sec=2.0)
                self._stop.wait(0.5)
                continue
            if fs is None:
                if isinstance(self.source, ReplaySource):
                    self.get_logger().info("replay finished (replay_loop is false)")
                    return
                self.get_logger().warning("no frames from the cameras within 1 s", throttle_duration_sec=5.0)
                continue
            if self._enabled:
                try:
                    self._publish(fs)
                except Exception as exc:  # rclpy errors once the context is shut down (SIGINT)
                    if not self.context.ok():
                        return
                    self.get_logger().error(f"publishing frames failed: {exc!r}", throttle_duration_sec=2.0)
            if self._pace:
                next_t += self._period_s
                delay = next_t - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_t = time.monotonic()  # running late: do not try to catch up

    def _stamp(self, fs):
        """The set's capture time where the source knows it on the host clock, else its arrival time."""
        if fs.stamp_s is not None:
            return ns_to_stamp(round(fs.stamp_s * 1e9))
        if fs.time_domain is not None and not self._warned_arrival_stamps:
            self._warned_arrival_stamps = True
            self.get_logger().warning(
                f"camera frames carry {fs.time_domain} timestamps (the device's own clock): stamping with the "
                "arrival time instead of the capture time. Enable global time on the colour sensors "
                "(rs.option.global_time_enabled = 1; this node sets it at start where the sensor supports it, "
                "so this firmware or sensor does not) for capture-time stamps")
        return self.get_clock().now().to_msg()

    def _publish(self, fs) -> None:
        stamp = self._stamp(fs)
        for cam, img, img_pub, info_pub in zip(self.source.cameras, fs.images, self._image_pubs, self._info_pubs):
            img_pub.publish(image_to_msg(img, "rgb8", frame_id=optical_frame_id(cam.name), stamp=stamp))
            info_pub.publish(camera_to_info(cam, stamp=stamp))
        if fs.ee_pose is not None and self._pose_pub is not None:
            self._pose_pub.publish(pose_to_stamped(fs.ee_pose, self._base_frame, stamp))
            js = JointState(name=list(FINGER_JOINTS), position=[FINGER_MAX_M * float(fs.ee_pose[7])] * 2)
            js.header.stamp = stamp
            self._joint_pub.publish(js)
        text = fs.info.get("instruction")
        if self._instruction_pub is not None and text and text != self._instruction:
            self._instruction = text
            self._instruction_pub.publish(String(data=text))
        self.sets_published += 1

    def destroy_node(self) -> None:
        self._stop.set()
        self._publishing.set()
        if self._worker.is_alive():
            self._worker.join(timeout=5.0)
        super().destroy_node()


def create_node(**kwargs) -> CameraNode:
    """A ``CameraNode`` (``context=``, ``cli_args=``, ``parameter_overrides=``, ``realsense_devices=``)."""
    return CameraNode(**kwargs)


def main(args=None) -> None:
    from ..spin import run_node

    run_node(create_node, args)


if __name__ == "__main__":
    main()
