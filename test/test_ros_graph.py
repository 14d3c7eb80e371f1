"""Node graph definition, its ROS arguments, the in-process runner and the launch files."""

import ast
import time
from pathlib import Path

import numpy as np
import pytest

from action_images_ros.ros.graph import VIEWS, GraphOptions, NodeSpec, build_graph, topic
from action_images_ros.config import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]


def by_name(nodes):
    return {n.name: n for n in nodes}


def test_options_validation_and_strings():
    assert GraphOptions.from_strings({"use_sim": "false", "executor": "servo", "rviz": "TRUE"}).rviz is True
    with pytest.raises(ValueError, match="executor must be 'sim'"):
        GraphOptions(use_sim=True, executor="moveit")
    with pytest.raises(ValueError, match="needs use_sim:=true"):
        GraphOptions(use_sim=False, executor="sim")
    with pytest.raises(ValueError, match="use_sim must be true or false"):
        GraphOptions(use_sim="yes")
    with pytest.raises(ValueError, match="unknown launch arguments \\['robot'\\]"):
        GraphOptions.from_strings({"robot": "fr3"})
    with pytest.raises(ValueError, match="executor must be one of"):
        GraphOptions(use_sim=False, executor="ur5")


def test_sim_and_real_graphs_wire_the_executor_differently():
    sim = by_name(build_graph(GraphOptions()))
    real = by_name(build_graph(GraphOptions(use_sim=False, executor="moveit", rviz=True)))
    assert list(sim) == ["sim_node", "policy_node", "executor_node"]  # decoded once, in the policy
    assert "camera_node" in real and "sim_node" not in real and "rviz2" in real
    assert "decoder_node" in by_name(build_graph(GraphOptions(decoder=True)))
    sim_remaps, real_remaps = dict(sim["executor_node"].remappings), dict(real["executor_node"].remappings)
    assert sim_remaps["current_pose"] == topic("current_pose") == "action_images/ee_pose"
    assert real_remaps["current_pose"] == "/franka_robot_state_broadcaster/current_pose"
    assert real_remaps["gripper_joint_states"] == "/franka_gripper/joint_states"
    assert dict(real["executor_node"].overrides) == {"backend": "moveit", "gripper": "franka", "model": DEFAULT_MODEL,
                                                      "base_frame": "fr3_link0", "tick_source": "timer",
                                                      "safety_config": "config/safety.yaml",
                                                      "moveit_config_package": "franka_fr3_moveit_config"}
    # one safety file for the executor's envelope and the policy's redraws (the cut rule they share)
    cell = by_name(build_graph(GraphOptions(safety="/lab/safety.yaml")))
    assert {dict(cell[n].overrides)["safety_config"] for n in ("policy_node", "executor_node")} == {"/lab/safety.yaml"}
    files = by_name(build_graph(GraphOptions(use_sim=False, executor="moveit", moveit_config="/a.yaml,/b.yaml")))
    assert dict(files["executor_node"].overrides)["moveit_config_files"] == "/a.yaml,/b.yaml"
    # the simulated graph runs on the simulator's clock, in lockstep unless asked otherwise
    assert dict(sim["executor_node"].overrides)["tick_source"] == "state"
    assert all(dict(sim[n].overrides)["use_sim_time"] is True for n in ("policy_node", "executor_node"))
    assert "use_sim_time" not in dict(sim["sim_node"].overrides)  # it is the clock
    assert "use_sim_time" not in dict(real["policy_node"].overrides)
    rt = by_name(build_graph(GraphOptions(lockstep=False, policy_delay_s=0.3)))
    assert dict(rt["executor_node"].overrides)["tick_source"] == "timer"
    assert dict(rt["sim_node"].overrides)["lockstep"] is False
    assert dict(rt["policy_node"].overrides)["injected_delay_s"] == 0.3
    # every camera topic the policy subscribes to is one the cell publishes
    cam_out = set(dict(sim["sim_node"].remappings).values())
    assert {t for t in dict(sim["policy_node"].remappings).values() if t.startswith("cameras/")} <= cam_out


def test_every_node_input_is_some_node_output():
    g = by_name(build_graph(GraphOptions(decoder=True)))
    remap = {name: dict(spec.remappings) for name, spec in g.items()}
    views = ("front", "left_shoulder", "right_shoulder")
    for v in views:  # sim -> policy -> (decoder, for re-decoding)
        assert remap["sim_node"][f"{v}/image_raw"] == remap["policy_node"][f"{v}/image_raw"] == topic("image", v)
        assert remap["policy_node"][f"{v}/action_video"] == remap["decoder_node"][f"{v}/action_video"]
        assert remap["policy_node"][f"{v}/action_camera_info"] == remap["decoder_node"][f"{v}/action_camera_info"]
    for key in ("trajectory", "chunk_request"):  # policy <-> executor
        assert remap["policy_node"][key] == remap["executor_node"][key]
    assert remap["decoder_node"]["trajectory"] != remap["executor_node"]["trajectory"]  # never executed twice
    for key in ("current_pose", "gripper_joint_states"):  # sim arm state -> policy and executor
        assert remap["sim_node"][key] == remap["policy_node"][key] == remap["executor_node"][key]
    # the sim backend's commands reach the simulated arm; the executor's heartbeat is a camera stream
    assert remap["executor_node"]["sim/command"] == remap["sim_node"]["sim/command"]
    assert remap["executor_node"]["episode"] == remap["sim_node"]["episode"]
    assert remap["executor_node"]["camera_heartbeat"] == remap["sim_node"]["front/camera_info"]
    assert remap["policy_node"]["predict"] == "action_images/predict"
    assert dict(g["policy_node"].overrides)["views"] == list(views)


def test_rviz_graph_publishes_the_cell_and_the_rviz_config_uses_graph_topics():
    import yaml

    from action_images_ros.cell_description import rig_to_urdf
    from action_images_ros.geometry import load_rig

    g = by_name(build_graph(GraphOptions(rviz=True)))
    cell = g["cell_state_publisher"]
    assert cell.package == "robot_state_publisher"
    assert dict(cell.overrides)["robot_description"] == rig_to_urdf(load_rig(REPO / "config/cameras_sim.yaml"))
    assert dict(cell.overrides)["robot_description"] == (REPO / "urdf/cell.urdf").read_text()
    assert dict(g["sim_node"].overrides)["publish_tf"] is False  # the cell publisher owns the TF then
    assert dict(by_name(build_graph(GraphOptions()))["sim_node"].overrides)["publish_tf"] is True
    rviz = yaml.safe_load((REPO / "config/action_images.rviz").read_text())
    manager = rviz["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "base_link"
    used = {d[key]["Value"] for d in manager["Displays"] for key in ("Topic", "Description Topic") if key in d}
    graph_topics = {"/" + topic(k, v) for k in ("image", "overlay", "future_video") for v in VIEWS} | {
        "/" + topic(k) for k in ("markers", "current_pose", "cell_description")}
    assert used - {"/robot_description"} <= graph_topics
    assert {"/" + topic("overlay", v) for v in VIEWS} | {"/" + topic("markers")} <= used
    classes = {d["Class"] for d in manager["Displays"]}
    assert {"rviz_default_plugins/TF", "rviz_default_plugins/RobotModel", "rviz_default_plugins/MarkerArray",
            "rviz_default_plugins/Image"} <= classes


@pytest.mark.ros
def test_node_parameter_files_load_into_the_nodes(ros_context):
    """Each node's YAML file is the one its spec names, and its values reach the node (not the defaults)."""
    import yaml

    for spec in build_graph(GraphOptions(decoder=True)) + build_graph(GraphOptions(use_sim=False,
                                                                                  executor="servo")):
        (path,) = spec.parameter_files(REPO)
        data = yaml.safe_load(path.read_text())
        assert list(data) == [f"/**/{spec.name}"], path
    from action_images_ros.ros.nodes.decoder_node import create_node

    node = create_node(context=ros_context, cli_args=["--ros-args", "--params-file", str(REPO / "config/decoder.yaml"),
                                                      "-p", "marker_axis_length:=0.12"])
    try:
        assert node.get_parameter("queue_size").value == 3
        assert node.get_parameter("marker_axis_length").value == 0.12  # overrides come after the file
        assert node.views == list(VIEWS)
    finally:
        node.destroy_node()


def test_ros_arguments():
    spec = NodeSpec(executable="executor_node", name="exec2", namespace="cell", parameters=("config/executor.yaml",),
                    overrides=(("backend", "sim"), ("control_rate_hz", 5.0), ("flag", True)),
                    remappings=(("trajectory", "action_images/trajectory"),))
    args = spec.ros_arguments(REPO)
    assert args[:3] == ["--ros-args", "-r", "__node:=exec2"]
    assert ["-r", "__ns:=/cell"] == args[3:5]
    assert args[5:7] == ["--params-file", str(REPO / "config/executor.yaml")]
    assert "backend:=sim" in args and "control_rate_hz:=5.0" in args and "flag:=true" in args
    assert "trajectory:=action_images/trajectory" in args
    with pytest.raises(FileNotFoundError, match="parameter file of node 'x' not found"):
        NodeSpec(executable="executor_node", name="x", parameters=("config/nope.yaml",)).ros_arguments(REPO)


@pytest.mark.ros
def test_in_process_runner_starts_the_executor_with_the_graph_wiring(ros_context_factory):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import CameraInfo
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from _ros_fakes import QOS, START, FakeArm, matched
    from action_images_ros.ros.runner import InProcessGraph
    from action_images_ros.ros.qos import latched_qos
    from action_images_ros.ros.trajectory_conversion import msg_to_trajectory, trajectory_to_msg

    specs = [s for s in build_graph(GraphOptions(lockstep=False)) if s.name == "executor_node"]
    specs = [NodeSpec(**{**s.__dict__, "overrides": tuple((k, v) for k, v in s.overrides if k != "use_sim_time")})
             for s in specs]  # no /clock in this test
    graph = InProcessGraph(specs, context=ros_context_factory(), share=REPO)
    node = graph.nodes["executor_node"]
    assert node.get_parameter("backend").value == "sim"
    assert node.get_parameter("control_rate_hz").value == 10.0  # from config/executor.yaml
    subs = {s.topic_name for s in node.subscriptions}
    assert {"/action_images/trajectory", "/action_images/ee_pose", "/cameras/front/camera_info"} <= subs

    ctx = ros_context_factory()
    world = rclpy.create_node("world", context=ctx)
    arm = FakeArm(world, pose_topic=topic("current_pose"), joints_topic=topic("gripper_joint_states"))
    traj_pub = world.create_publisher(MultiDOFJointTrajectory, topic("trajectory"), QOS)
    cam_pub = world.create_publisher(CameraInfo, topic("camera_info", "front"), QOS)
    requests = []  # the executor's chunk requests: a chunk runs only as the answer to one (its id)
    world.create_subscription(MultiDOFJointTrajectory, topic("chunk_request"),
                              lambda m: requests.append(msg_to_trajectory(m)), latched_qos())

    def heartbeat():
        msg = CameraInfo()
        msg.header.stamp = world.get_clock().now().to_msg()
        cam_pub.publish(msg)

    world.create_timer(1 / 30, heartbeat)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(world)

    def spin(pred, timeout_s):  # the graph's nodes spin in their own threads
        deadline = time.monotonic() + timeout_s
        while not pred():
            if time.monotonic() > deadline:
                return False
            ex.spin_once(timeout_sec=0.005)
        return True

    try:
        # a camera frame too: a chunk taken before the first frame is dropped (the cameras are stale)
        assert spin(lambda: matched(node, world) and node.measured_pose() is not None
                    and node._frame_stamp_s is not None and requests, 10.0)
        keyframes = np.tile(START, (4, 1))
        keyframes[1:, 0] += [0.02, 0.04, 0.06]
        stamp = world.get_clock().now().nanoseconds
        traj_pub.publish(trajectory_to_msg(keyframes, np.ones(4), [0.0, 0.2, 0.4, 0.6], stamp, "base_link",
                                           "fr3_hand_tcp", request_id=requests[-1].request_id))
        assert spin(lambda: arm.targets and arm.targets[-1][0] > START[0] + 0.03, 5.0)
    finally:
        ex.shutdown()
        world.destroy_node()
        graph.shutdown()


def test_launch_files_use_the_graph():
    for name, use_sim in (("policy.launch.py", "false"), ("sim.launch.py", "true")):
        tree = ast.parse((REPO / "launch" / name).read_text())
        imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert any(n.module == "action_images_ros.ros.launch_support" for n in imports), name
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "_describe"]
        assert len(calls) == 1 and {k.arg: k.value.value for k in calls[0].keywords}["use_sim"] == use_sim


def test_launch_support_without_launch_installed_says_what_to_do():
    from action_images_ros.ros.launch_support import generate_launch_description

    try:  # (a bare `import launch` would find the repository's launch/ folder as a namespace package)
        from launch import LaunchDescription  # noqa: F401
        import launch_ros  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="action-images run"):
            generate_launch_description()
    else:  # a real ROS 2 install: the description builds
        assert generate_launch_description(use_sim="true") is not None
