"""recorder_node: the topics of a training episode -> one rosbag2 (MCAP) bag per episode.

The cell's ``episode`` marks (``ros/episode.py``; sim_node or episode_node serve
``episode/start|stop|reset``) cut the recording: a bag per episode under ``out_dir``, named
``episode_<episode>_seed_<seed>``, closed shortly after its episode ends. The routing, the
bounds and the bag layout are ``data/bag_recording.py``; the bag format is ``data/bags.py``.
Messages are recorded as the DDS bytes received (``raw`` subscriptions: nothing deserialized or
re-encoded, so a bag holds exactly what was published).

Subscribes (absolute graph names, ``ros/graph.py``; remap with ``-r`` for another cell):
    ``/cameras/<view>/image_raw`` (sensor_msgs/Image), ``/cameras/<view>/camera_info`` (CameraInfo)
        for every view of ``views`` (empty = the views of ``rig``)
    ``/action_images/ee_pose`` (geometry_msgs/PoseStamped, TCP in the base frame) and
        ``/action_images/gripper_joint_states`` (sensor_msgs/JointState); with ``use_sim: false``
        franka_ros2's ``/franka_robot_state_broadcaster/current_pose`` and ``/franka_gripper/joint_states``
    ``/joint_states`` (sensor_msgs/JointState: the arm joints for the episode's ``joint_positions``)
    ``/action_images/instruction`` (std_msgs/String, transient local)
    ``/action_images/episode`` (std_msgs/Header, transient local): the episode marks, recorded too
    commands: ``/sim/command`` (trajectory_msgs/MultiDOFJointTrajectory: the executor's sim backend),
        ``/executor_node/command`` (PoseStamped), teleop ``/sim/tcp_target`` (PoseStamped) and
        ``/sim/gripper_target`` (std_msgs/Float32)
Services:
    ``~/label`` (std_srvs/SetBool): the success label (``data``) of the episode started last, running
        or finished (its bag's ``labels.json``); answered with JSON ``{episode, seed, success, bag}``.
    ``~/status`` (std_srvs/Trigger): JSON per-topic counts (received, written, outside_episode, late,
        dropped_*) and the bags closed so far.
Parameters: ``out_dir`` (bags directory), ``views``, ``rig``, ``use_sim``, ``task`` (stored with
each bag), ``settle_s``, ``close_delay_s``, ``max_bag_mb``, ``max_queue_mb``
(``data/bag_recording.RecorderConfig``).
An episode already running when the recorder starts (its start mark predates the node) is not
recorded: its beginning is missing.

The same recording on a real cell with ``ros2 bag record`` (the importer reads such bags too;
one bag then holds many episodes, cut at the recorded ``episode`` marks; labels go in the bag's
``labels.json`` by hand: ``{"success": {"<episode>": true}}``)::

    ros2 bag record -s mcap -o demo_bag \\
      /cameras/front/image_raw /cameras/front/camera_info \\
      /cameras/left_shoulder/image_raw /cameras/left_shoulder/camera_info \\
      /cameras/right_shoulder/image_raw /cameras/right_shoulder/camera_info \\
      /franka_robot_state_broadcaster/current_pose /franka_gripper/joint_states /joint_states \\
      /action_images/instruction /action_images/episode \\
      /executor_node/command /sim/command /sim/tcp_target /sim/gripper_target

(views as in the rig YAML; the teleop topics are those of your device; add
``--max-bag-duration 600`` to split a long session).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float32, Header, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from ...data.bag_recording import EpisodeBagRecorder, RecordedTopic, RecorderConfig
from ..episode import parse_episode
from ..graph import rig_views
from ..qos import image_qos, latched_qos, service_qos, state_qos
from ..recording_topics import recorded_topics
from ..stamps import stamp_to_ns

__all__ = ["RecorderNode", "create_node", "main"]

NODE_NAME = "recorder_node"
IMAGE_DEPTH = 30  # a recorder busy for a second at 30 Hz loses nothing (the publishers keep 2)
STATE_DEPTH = 100
LATCHED_DEPTH = 10


_CLASSES = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CameraInfo": CameraInfo,
            "sensor_msgs/msg/JointState": JointState, "geometry_msgs/msg/PoseStamped": PoseStamped,
            "std_msgs/msg/String": String, "std_msgs/msg/Header": Header, "std_msgs/msg/Float32": Float32,
            "trajectory_msgs/msg/MultiDOFJointTrajectory": MultiDOFJointTrajectory}


class RecorderNode(Node):
    """See the module docstring. ``node_kwargs`` as for ``rclpy.node.Node``."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # 1. parameters
        p = {k: self.declare_parameter(k, v).value for k, v in {
            "out_dir": "bags", "views": [""], "rig": "config/cameras_sim.yaml", "use_sim": True, "task": "",
            "settle_s": 0.5, "close_delay_s": 3.0, "max_bag_mb": 8192.0, "max_queue_mb": 2048.0,
        }.items()}
        self._started_wall_ns = time.time_ns()  # marks published before this are history (transient local)
        try:
            views = [v for v in p["views"] if v] or list(rig_views(p["rig"]))
            subs = [(name, _CLASSES[msgtype], kind, latched, msgtype)
                    for name, msgtype, kind, latched in recorded_topics(views, bool(p["use_sim"]))]
            topics = []
            for name, cls, kind, latched, msgtype in subs:
                resolved = self.resolve_topic_name(name)  # remappings applied: the bag stores the real name
                depth = LATCHED_DEPTH if latched else (IMAGE_DEPTH if cls in (Image, CameraInfo) else STATE_DEPTH)
                topics.append(RecordedTopic(resolved, msgtype, kind, depth, latched))
            config = RecorderConfig(
                out_dir=Path(p["out_dir"]), topics=tuple(topics), task=str(p["task"]), settle_s=float(p["settle_s"]),
                close_delay_s=float(p["close_delay_s"]), max_bag_mb=float(p["max_bag_mb"]),
                max_queue_mb=float(p["max_queue_mb"]))
        except (ValueError, FileNotFoundError):
            super().destroy_node()
            raise
        # 2. the recorder (a worker thread writes; callbacks only hand bytes over)
        self.recorder = EpisodeBagRecorder(config)
        # 3. subscriptions and services
        self._subs = []
        for (name, cls, kind, latched, _), rec in zip(subs, topics):
            if kind == "episode":
                cb = self._on_episode
                qos = latched_qos(LATCHED_DEPTH)
            else:
                cb = self._make_raw_cb(rec.topic, stamped=cls not in (String, Float32))
                qos = latched_qos(LATCHED_DEPTH) if latched else (
                    _deep(image_qos(), IMAGE_DEPTH) if cls in (Image, CameraInfo) else state_qos(STATE_DEPTH))
            self._subs.append(self.create_subscription(cls, name, cb, qos, raw=kind != "episode"))
        self._episode_topic = next(t.topic for t in topics if t.kind == "episode")
        self.create_service(SetBool, "~/label", self._on_label, qos_profile=service_qos())
        self.create_service(Trigger, "~/status", self._on_status, qos_profile=service_qos())
        self.get_logger().info(f"recording {len(topics)} topics ({len(views)} views {views}) into "
                               f"{Path(p['out_dir']).resolve()}, one bag per episode")

    # ------------------------------------------------------------------ callbacks (tiny)
    def _make_raw_cb(self, name: str, stamped: bool):
        submit = self.recorder.submit
        if stamped:  # the stamp is read from the bytes by the recorder
            return lambda data: submit(name, data)
        return lambda data: submit(name, data, self.get_clock().now().nanoseconds)

    def _on_episode(self, msg: Header, info) -> None:
        mark = parse_episode(msg)
        history = int(info.get("source_timestamp", 0) or 0) < self._started_wall_ns
        self.recorder.mark(mark.episode, mark.seed, mark.running, stamp_to_ns(msg.stamp),
                           before_start=history and mark.running)
        self.recorder.submit(self._episode_topic, serialize_message(msg))

    def _on_label(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        try:
            reply = self.recorder.label(bool(request.data))
        except (ValueError, OSError) as exc:
            response.success, response.message = False, json.dumps({"ok": False, "reason": str(exc)})
            self.get_logger().warning(f"label refused: {exc}")
            return response
        response.success, response.message = True, json.dumps({"ok": True, **reply})
        self.get_logger().info(f"label: {response.message}")
        return response

    def _on_status(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success = True
        response.message = json.dumps({"counts": self.recorder.counts(),
                                       "bags": [str(b) for b in self.recorder.closed_bags]})
        return response

    def destroy_node(self) -> None:
        self.recorder.close()  # the open bag is finished: an episode still running ends here
        super().destroy_node()


def _deep(qos, depth: int):
    qos.depth = depth
    return qos


def create_node(**kwargs) -> RecorderNode:
    """A ``RecorderNode`` (``context=``, ``cli_args=``, ``parameter_overrides=``)."""
    return RecorderNode(**kwargs)


def main(args=None) -> None:
    from ..spin import run_node

    run_node(create_node, args)


if __name__ == "__main__":
    main()
