"""The node graph, defined once: which nodes run, with which parameter files and remappings.

Read by ``launch/policy.launch.py`` / ``launch/sim.launch.py`` (``ros2 launch`` on a real
ROS 2 install) and by the in-process runner (``ros/runner.py``, ``action-images run``) where
``launch`` is not available. Both turn each :class:`NodeSpec` into the same ROS arguments
(``--params-file``, ``-p``, ``-r``), so the two ways of starting the stack cannot drift.

Topics and services (the graph runs in the root namespace):

==========================================  =================================================
``/clock``                                  rosgraph_msgs/Clock (sim_node: simulated time)
``cameras/<view>/image_raw``                sensor_msgs/Image rgb8 (sim_node / camera_node)
``cameras/<view>/camera_info``              sensor_msgs/CameraInfo, same stamp per set
``action_images/<view>/action_video``       predicted action images, 32FC3, F frames stacked
                                            vertically ((F*S) x S); stamp = camera frames'
``action_images/<view>/action_camera_info`` CameraInfo of one S x S action image (same stamp)
``action_images/<view>/image``              the F action images combined, rgb8 (RViz)
``action_images/<view>/overlay``            action images over the camera frame, rgb8 (RViz)
``action_images/<view>/future_video``       predicted RGB frames, rgb8, stacked like the video
``action_images/prediction``                std_msgs/String JSON summary of each prediction
``action_images/predict``                   std_srvs/Trigger: one prediction now (JSON answer)
``action_images/trajectory``                trajectory_msgs/MultiDOFJointTrajectory: the decoded,
                                            timed chunk (policy_node; ``trajectory_conversion``)
``action_images/chunk_request``             std_msgs/Header: the executor asks for the next chunk
``action_images/markers``                   visualization_msgs/MarkerArray (gripper axes)
``action_images/decoded_trajectory``        decoder_node's re-decoding (``decoder:=true``)
``action_images/ee_pose``                   measured TCP pose, PoseStamped (sim: sim_node)
``action_images/gripper_joint_states``      finger joints, JointState (sim: sim_node)
``sim/command``                             the sim executor backend's command per tick
                                            (MultiDOFJointTrajectory; the lockstep acknowledgement)
``sim/tcp_target``, ``sim/gripper_target``  other command sources (a teleop device)
``sim/status``, ``sim/task_status``         simulated episode (JSON String; Trigger)
``episode/start``, ``/stop``, ``/reset``    std_srvs/Trigger: the episode lifecycle (sim_node, or
                                            episode_node on a real cell; ``ros/episode.py``)
``executor_node/command``, ``/status``      what the executor sent / why it did not
``executor_node/pause``, ``/reset``         std_srvs/SetBool e-stop; std_srvs/Trigger new trial
``action_images/episode``                   std_msgs/Header: an episode starts (or stops) at its stamp
``action_images/cell_description``          URDF of the cell (rviz:=true: robot_state_publisher)
==========================================  =================================================

``viz:=rerun`` adds viz_node, which only subscribes (to the topics above) and shows the graph live
in Rerun: in the viewer at ``viz_url`` (localhost), or in the file ``viz_rrd``.

Only this module and the launch files know these names; nodes use short relative
names remapped here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..config import DEFAULT_MODEL
from .franka import FRANKA_BASE_FRAME, FRANKA_CURRENT_POSE, FRANKA_GRIPPER_JOINTS
from .share import PACKAGE, resolve_share_path, share_dir

__all__ = ["NodeSpec", "GraphOptions", "LAUNCH_ARGUMENTS", "build_graph", "VIEWS", "topic", "rig_views", "rig_path"]

#: camera views of the cell, in rig order (config/cameras_sim.yaml)
VIEWS = ("front", "left_shoulder", "right_shoulder")
EXECUTORS = ("sim", "servo", "moveit")
VIZ = ("none", "rerun")
#: environment variables that bound a process's CPU threads (read by OpenMP, OpenBLAS, MKL; OpenCV via spin.run_node)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")



def topic(kind: str, view: str | None = None) -> str:
    """Graph topic names (see the module docstring), e.g. ``topic("image", "front")``."""
    names = {
        "image": "cameras/{v}/image_raw", "camera_info": "cameras/{v}/camera_info",
        "action_video": "action_images/{v}/action_video",
        "action_camera_info": "action_images/{v}/action_camera_info",
        "action_image": "action_images/{v}/image", "overlay": "action_images/{v}/overlay",
        "future_video": "action_images/{v}/future_video",
        "prediction": "action_images/prediction", "predict": "action_images/predict",
        "trajectory": "action_images/trajectory", "chunk_request": "action_images/chunk_request",
        "decoded_trajectory": "action_images/decoded_trajectory",
        "decoded_markers": "action_images/decoded_markers",
        "markers": "action_images/markers", "current_pose": "action_images/ee_pose",
        "gripper_joint_states": "action_images/gripper_joint_states",
        "sim_tcp_target": "sim/tcp_target", "sim_gripper_target": "sim/gripper_target",
        "sim_command": "sim/command", "sim_task_status": "sim/task_status", "joint_states": "joint_states",
        "sim_status": "sim/status",
        "episode_start": "episode/start", "episode_stop": "episode/stop", "episode_reset": "episode/reset",
        "executor_reset": "executor_node/reset", "executor_status": "executor_node/status",
        "executor_command": "executor_node/command", "executor_pause": "executor_node/pause",
        "cell_description": "action_images/cell_description",
        "instruction": "action_images/instruction", "episode": "action_images/episode",
    }
    if kind not in names:
        raise ValueError(f"unknown topic kind {kind!r}; known: {sorted(names)}")
    if "{v}" in names[kind] and not view:
        raise ValueError(f"topic {kind!r} needs a view name")
    return names[kind].format(v=view)


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    Attributes:
        executable: console script; for this package also the module ``action_images_ros.ros.nodes.<executable>``.
        name: node name.
        package: ROS package of the executable.
        parameters: parameter files relative to the package share dir (``config/...``), in order.
        overrides: inline parameters applied after the files.
        remappings: ``(from, to)`` topic/service remappings.
        arguments: extra command-line arguments (e.g. RViz's ``-d``).
        namespace: node namespace.
        env: extra environment variables of the node's process (the CPU thread limits).
    """

    executable: str
    name: str
    package: str = PACKAGE
    parameters: tuple[str, ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()
    namespace: str = ""
    env: tuple[tuple[str, str], ...] = ()

    def parameter_files(self, share: Path | None = None) -> list[Path]:
        """Absolute parameter file paths (missing files raise FileNotFoundError)."""
        share = share_dir() if share is None else share
        paths = [share / p for p in self.parameters]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"parameter file of node {self.name!r} not found: {p}")
        return paths

    def ros_arguments(self, share: Path | None = None) -> list[str]:
        """``--ros-args ...`` for ``rclpy`` (``cli_args=``): node name, namespace, files, overrides, remaps."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        for path in self.parameter_files(share):
            args += ["--params-file", str(path)]
        for key, value in self.overrides:
            args += ["-p", f"{key}:={_yaml_value(value)}"]
        for src, dst in self.remappings:
            args += ["-r", f"{src}:={dst}"]
        return args


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


@dataclasses.dataclass
class GraphOptions:
    """Launch arguments (same names in ``ros2 launch`` and ``action-images run``).

    Attributes:
        use_sim: the simulated cell (sim_node owns the arm and the clock) instead of RealSense + FR3.
        executor: ``sim``, ``servo`` or ``moveit`` (``use_sim`` requires ``sim``).
        model: policy checkpoint folder (relative to the share dir or absolute).
        rviz: also start RViz with ``config/action_images.rviz``.
        task: simulated task (``use_sim`` only).
        mode: policy mode, ``closed_loop`` (the executor asks for chunks) or ``on_demand``
            (``/action_images/predict`` only).
        device: torch device of the policy (``cpu``, ``cuda``).
        rig: camera rig YAML (extrinsics, base frame).
        instruction: what the policy is asked to do (models that follow instructions), e.g.
            ``"pick up the red cube"``; empty = from the ``action_images/instruction`` topic
            (which the simulated cell publishes for its task).
        lockstep: simulated cell only: simulated time advances only when the executor has finished
            the tick (and the policy answered), so the loop behaves alike on any machine; false =
            real time (the world moves on while the policy thinks).
        policy_delay_s: hold every policy answer back until ROS time ``stamp + delay`` (latency tests).
        seed: seed of the first episode (then +1 per ``episode/start``); the simulated cell's reset seed.
        decoder: also run decoder_node (re-decodes the published action videos; label mode).
        moveit_config: ``executor:=moveit`` only: comma-separated ROS 2 parameter files with the robot's
            MoveIt configuration for MoveItPy (URDF, SRDF, kinematics, planning pipelines); empty = the
            FR3's, built as franka_fr3_moveit_config's moveit.launch.py builds it (xacro of
            franka_description, that package's kinematics.yaml; ``backends/moveit_config.py``) plus the
            pipeline, request and controller parameters we ship; missing pieces are named at start.
        cpu_threads: OpenMP / BLAS / OpenCV threads of each node process (``OMP_NUM_THREADS`` ...); the
            nodes share the cell's CPU, and N processes each spinning on every core made a 0.2 s policy
            call take 16 s. 0 = no limit. The policy's torch threads are its ``torch_threads`` parameter
            (its 0, "torch's default", then means ``cpu_threads``). Applied to processes (``ros2 launch``,
            ``SubprocessGraph``); an in-process graph shares this process's threads.
        viz: ``rerun`` also runs viz_node (``ros/nodes/viz_node.py``): the graph live in Rerun; ``none`` = no view.
        viz_rrd: with ``viz:=rerun``, write the view to this ``.rrd`` file instead of streaming it.
        viz_url: with ``viz:=rerun`` and no ``viz_rrd``, the Rerun viewer to stream to (start ``rerun`` first).
        safety: the cell's safety file (``config/safety.yaml``), given to executor_node (its envelope and the
            ``min_confidence`` it cuts chunks at) and policy_node (which draws again under that confidence).
    """

    use_sim: bool = True
    executor: str = "sim"
    model: str = DEFAULT_MODEL
    rviz: bool = False
    task: str = "reach_target"
    mode: str = "closed_loop"
    device: str = "cpu"
    rig: str = "config/cameras_sim.yaml"
    instruction: str = ""
    lockstep: bool = True
    policy_delay_s: float = 0.0
    seed: int = 100000
    decoder: bool = False
    moveit_config: str = ""
    cpu_threads: int = 1
    viz: str = "none"
    viz_rrd: str = ""
    viz_url: str = "rerun+http://127.0.0.1:9876/proxy"
    safety: str = "config/safety.yaml"

    def __post_init__(self) -> None:
        for name in ("use_sim", "rviz", "lockstep", "decoder"):
            value = getattr(self, name)
            if isinstance(value, str):
                if value.lower() not in ("true", "false"):
                    raise ValueError(f"{name} must be true or false, got {value!r}")
                setattr(self, name, value.lower() == "true")
        try:
            self.policy_delay_s = float(self.policy_delay_s)
            self.seed = int(self.seed)
            self.cpu_threads = int(self.cpu_threads)
        except ValueError:
            raise ValueError(f"policy_delay_s must be a number, seed and cpu_threads integers, got "
                             f"{self.policy_delay_s!r}, {self.seed!r} and {self.cpu_threads!r}") from None
        if self.cpu_threads < 0:
            raise ValueError(f"cpu_threads must be >= 0 (0 = no limit), got {self.cpu_threads}")
        if not 0.0 <= self.policy_delay_s <= 10.0:
            raise ValueError(f"policy_delay_s must be in [0, 10] s, got {self.policy_delay_s}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {self.executor!r}")
        if self.use_sim and self.executor != "sim":
            raise ValueError(f"use_sim:=true drives the simulated arm: executor must be 'sim', got {self.executor!r}")
        if not self.use_sim and self.executor == "sim":
            raise ValueError("executor 'sim' needs use_sim:=true; on the real FR3 use executor:=moveit or servo")
        if self.mode not in ("closed_loop", "on_demand"):
            raise ValueError(f"mode must be closed_loop or on_demand, got {self.mode!r}")
        if self.viz not in VIZ:
            raise ValueError(f"viz must be one of {list(VIZ)}, got {self.viz!r}")
        if self.viz_rrd and not self.viz_rrd.endswith(".rrd"):
            raise ValueError(f"viz_rrd must be an .rrd file, got {self.viz_rrd!r}")

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> "GraphOptions":
        """From launch-argument strings (unknown names raise ValueError)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - fields
        if unknown:
            raise ValueError(f"unknown launch arguments {sorted(unknown)}; valid: {sorted(fields)}")
        return cls(**values)


#: (name, default as string, description) of every launch argument
LAUNCH_ARGUMENTS = tuple(
    (f.name, str(f.default).lower() if isinstance(f.default, bool) else str(f.default), doc)
    for f, doc in zip(dataclasses.fields(GraphOptions), (
        "simulated cell (true) or RealSense cameras + FR3 (false)",
        "executor backend: sim | servo | moveit",
        "policy checkpoint folder",
        "start RViz with config/action_images.rviz",
        "simulated task (use_sim only)",
        "policy mode: closed_loop | on_demand",
        "torch device of the policy",
        "camera rig YAML (extrinsics in the robot base frame)",
        "instruction for the policy; empty = from the action_images/instruction topic",
        "simulated cell: advance simulated time only when the controller is ready (false = real time)",
        "hold each policy answer back until stamp + this many seconds of ROS time (latency tests)",
        "seed of the first episode (then +1 per episode/start)",
        "also run decoder_node (re-decodes the action videos)",
        "executor:=moveit: MoveIt parameter files for MoveItPy (comma-separated)",
        "OpenMP/BLAS/OpenCV threads per node process (the policy's torch threads: its torch_threads)",
        "live view: rerun (viz_node streams the graph to Rerun) | none",
        "viz:=rerun: write the view to this .rrd file instead of streaming it",
        "viz:=rerun: the Rerun viewer to stream to (localhost by default)",
        "the cell's safety file: the executor's envelope; its min_confidence is also where the policy draws again",
    ), strict=True)
)


def _per_view(views: tuple[str, ...], *kinds: str) -> tuple[tuple[str, str], ...]:
    """Remappings ``<view>/<kind suffix>`` -> graph topic for every view and kind."""
    suffix = {"image": "image_raw", "camera_info": "camera_info", "action_video": "action_video",
              "action_camera_info": "action_camera_info", "action_image": "action_image", "overlay": "overlay",
              "future_video": "future_video"}
    return tuple((f"{v}/{suffix[k]}", topic(k, v)) for k in kinds for v in views)


def rig_path(rig: str) -> Path:
    """The rig YAML of the ``rig`` option (resolved as the nodes resolve it: ``share.resolve_share_path``)."""
    return resolve_share_path(rig)


def rig_views(rig: str) -> tuple[str, ...]:
    """View names of a rig YAML, in rig order."""
    from ..geometry import load_rig

    return tuple(c.name for c in load_rig(rig_path(rig)))


def build_graph(options: GraphOptions, views: tuple[str, ...] | None = None) -> list[NodeSpec]:
    """The nodes for ``options``: the cell (sim_node, or camera_node with RealSense), policy, executor
    (+ decoder_node with ``decoder``, the cell's TF publisher and RViz with ``rviz``).

    Nodes use short relative names (``<view>/image_raw``, ``current_pose``, ``trajectory`` ...);
    the remappings here connect them. ``views``: the view names in rig order (None = read from
    the ``rig`` option's YAML). In the simulated cell every node but sim_node runs on its clock
    (``use_sim_time``).
    """
    o = options
    views = rig_views(o.rig) if views is None else tuple(views)
    cams = _per_view(views, "image", "camera_info")
    arm_state = ((topic("current_pose"), topic("gripper_joint_states")) if o.use_sim
                 else (FRANKA_CURRENT_POSE, FRANKA_GRIPPER_JOINTS))
    arm_remaps = (("current_pose", arm_state[0]), ("gripper_joint_states", arm_state[1]))
    base_frame = "base_link" if o.use_sim else FRANKA_BASE_FRAME
    sim_time = (("use_sim_time", True),) if o.use_sim else ()
    if o.use_sim:
        cell = NodeSpec(
            executable="sim_node", name="sim_node", parameters=("config/sim.yaml",),
            overrides=(("task", o.task), ("rig", o.rig), ("lockstep", o.lockstep), ("seed", o.seed),
                       ("base_frame", base_frame), ("publish_tf", not o.rviz)),
            remappings=cams + arm_remaps + tuple((f"sim/{k}", topic(f"sim_{k}"))
                                                 for k in ("command", "status", "task_status"))
            + tuple((f"episode/{k}", topic(f"episode_{k}")) for k in ("start", "stop", "reset")) + (
                ("tcp_target", topic("sim_tcp_target")), ("gripper_target", topic("sim_gripper_target")),
                ("instruction", topic("instruction")), ("episode", topic("episode")),
                ("joint_states", topic("joint_states"))),
        )
    else:
        cell = NodeSpec(
            executable="camera_node", name="camera_node", parameters=("config/camera.yaml",),
            overrides=(("source", "realsense"), ("rig", o.rig), ("base_frame", base_frame),
                       ("publish_tf", not o.rviz)),
            remappings=cams + (("instruction", topic("instruction")),),
        )
    policy = NodeSpec(
        executable="policy_node", name="policy_node", parameters=("config/policy.yaml",),
        overrides=(("model", o.model), ("device", o.device), ("mode", o.mode), ("rig", o.rig),
                   ("views", list(views)), ("base_frame", base_frame), ("injected_delay_s", o.policy_delay_s),
                   ("safety_config", o.safety))
        + ((("instruction", o.instruction),) if o.instruction else ()) + sim_time,
        remappings=cams + _per_view(views, "action_video", "action_camera_info", "action_image", "overlay",
                                    "future_video") + arm_remaps + (
            ("prediction", topic("prediction")), ("predict", topic("predict")),
            ("trajectory", topic("trajectory")), ("chunk_request", topic("chunk_request")),
            ("markers", topic("markers")), ("instruction", topic("instruction")), ("episode", topic("episode"))),
    )
    executor = NodeSpec(
        executable="executor_node", name="executor_node", parameters=("config/executor.yaml",),
        overrides=(("backend", o.executor), ("model", o.model), ("base_frame", base_frame),
                   ("safety_config", o.safety),
                   ("tick_source", "state" if o.use_sim and o.lockstep else "timer"))
        + (() if o.use_sim else (("gripper", "franka"),)) + sim_time
        + ((("moveit_config_files", o.moveit_config),) if o.executor == "moveit" and o.moveit_config else ())
        + ((("moveit_config_package", "franka_fr3_moveit_config"),)
           if o.executor == "moveit" and not o.moveit_config else ()),
        remappings=(("trajectory", topic("trajectory")), ("chunk_request", topic("chunk_request")))
        + arm_remaps + (("camera_heartbeat", topic("camera_info", views[0])),
                        ("sim/command", topic("sim_command")), ("episode", topic("episode"))),
    )
    nodes = [cell, policy, executor]
    if not o.use_sim:  # the operator's episode interface (in the simulated cell sim_node serves it)
        nodes.append(NodeSpec(
            executable="episode_node", name="episode_node", parameters=("config/episode.yaml",),
            overrides=(("seed", o.seed),),
            remappings=(("episode", topic("episode")),)
            + tuple((f"episode/{k}", topic(f"episode_{k}")) for k in ("start", "stop", "reset"))))
    if o.decoder:
        nodes.append(NodeSpec(
            executable="decoder_node", name="decoder_node", parameters=("config/decoder.yaml",),
            overrides=(("rig", o.rig), ("views", list(views)), ("model", o.model), ("base_frame", base_frame))
            + sim_time,
            remappings=_per_view(views, "action_video", "action_camera_info") + (
                ("trajectory", topic("decoded_trajectory")), ("markers", topic("decoded_markers"))),
        ))
    if o.viz == "rerun":  # only listens: the graph's topics, in a process of its own under ros2 launch
        nodes.append(NodeSpec(
            executable="viz_node", name="viz_node",
            overrides=(("rig", o.rig), ("views", list(views)), ("base_frame", base_frame), ("rrd", o.viz_rrd),
                       ("url", o.viz_url)) + sim_time,
            remappings=cams + _per_view(views, "overlay", "action_video", "future_video") + arm_remaps + (
                ("trajectory", topic("trajectory")), ("prediction", topic("prediction")),
                ("command", topic("executor_command")), ("sim_command", topic("sim_command")),
                ("instruction", topic("instruction")), ("episode", topic("episode")))))
    threads = tuple((k, str(o.cpu_threads)) for k in THREAD_VARIABLES) if o.cpu_threads else ()
    nodes = [dataclasses.replace(n, env=threads) for n in nodes]
    if o.rviz:
        from ..cell_description import rig_to_urdf
        from ..geometry import load_rig

        nodes.append(NodeSpec(  # table + camera frames of the rig in use, for TF and RViz's RobotModel
            executable="robot_state_publisher", name="cell_state_publisher", package="robot_state_publisher",
            overrides=(("robot_description", rig_to_urdf(load_rig(rig_path(o.rig)))),) + sim_time,
            remappings=(("robot_description", "/" + topic("cell_description")),)))
        nodes.append(NodeSpec(executable="rviz2", name="rviz2", package="rviz2",
                              arguments=("-d", str(share_dir() / "config" / "action_images.rviz")),
                              overrides=sim_time))
    return nodes
