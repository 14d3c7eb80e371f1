"""The viewer library, command and node without a browser: what lands in the .rrd, read back with rerun's own
reader (``rerun.chunk.RrdReader``) and checked against independent arithmetic (scipy rotations, numpy
tiling by hand, the codec's projection), plus ``rerun rrd verify`` on what the command writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from _data_synthetic import synthetic_episode
from action_images_ros.data.episode import write_episode
from action_images_ros.viz import log as vlog
from action_images_ros.viz import paths
from action_images_ros.viz._rerun import rr
from action_images_ros.viz.recording import close_recording, open_recording

REPO = Path(__file__).resolve().parents[1]
RERUN = str(Path(sys.executable).with_name("rerun"))


def columns(rrd: Path, entity: str, column: str) -> list:
    """Every value of ``column`` (e.g. ``Arrows3D:vectors``) logged to ``entity``, in file order."""
    out = []
    for chunk in rr.chunk.RrdReader(rrd).stream():
        if chunk.entity_path != "/" + entity:
            continue
        batch = chunk.to_record_batch()
        if column in batch.schema.names:
            out.extend(batch.column(column).to_pylist())
    return out


def image(rrd: Path, entity: str, row: int = 0) -> np.ndarray:
    """The ``row``-th image logged to ``entity`` as ``(H, W, C)`` uint8."""
    fmt = columns(rrd, entity, "Image:format")[row][0]
    buf = np.asarray(columns(rrd, entity, "Image:buffer")[row][0], dtype=np.uint8)
    return buf.reshape(fmt["height"], fmt["width"], -1)


def verify(rrd: Path) -> None:
    done = subprocess.run([RERUN, "rrd", "verify", str(rrd)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_tile_frames_puts_frame_k_in_row_major_cell():
    frames = np.arange(5)[:, None, None, None] * np.ones((5, 4, 6, 1), dtype=np.int64)  # frame k filled with k
    tiled = vlog.tile_frames(frames)  # ceil(sqrt(5)) = 3 columns, 2 rows
    assert tiled.shape == (8, 18, 1)
    for k in range(5):
        r, c = divmod(k, 3)
        assert np.all(tiled[4 * r:4 * r + 4, 6 * c:6 * c + 6] == k)
    assert np.all(tiled[4:, 12:] == 0)  # the empty sixth cell


def test_confidence_colours_run_red_yellow_green():
    c = vlog.confidence_colours(np.array([0.0, 0.5, 1.0, np.nan]))
    assert c[0, 0] == 255 and c[0, 1] == 0  # red
    assert c[1, 0] == 255 and c[1, 1] == 255  # yellow
    assert c[2, 0] == 0 and c[2, 1] == 255  # green
    assert np.array_equal(c[3], c[0])  # NaN = no confidence


def test_keyframes_in_the_rrd_are_the_tool_axes_and_a_path_coloured_by_confidence(tmp_path):
    rng = np.random.default_rng(0)
    quats = Rotation.random(4, random_state=1).as_quat()
    keyframes = np.concatenate([rng.uniform(0.2, 0.6, (4, 3)), quats, np.ones((4, 1))], axis=1)
    conf = np.array([1.0, 0.8, 0.3, 0.0])
    start = np.array([0.4, 0.0, 0.3, 0, 0, 0, 1, 1.0])
    rrd = tmp_path / "k.rrd"
    rec = open_recording("keyframes", ["front"], save=rrd)
    vlog.set_ros_time(rec, 1_500_000_000)
    vlog.log_keyframes(rec, keyframes, conf, start_pose=start, axis_length=0.05)
    close_recording(rec)
    verify(rrd)
    vectors = np.asarray(columns(rrd, paths.KEYFRAME_AXES, "Arrows3D:vectors")[0])
    origins = np.asarray(columns(rrd, paths.KEYFRAME_AXES, "Arrows3D:origins")[0])
    R = Rotation.from_quat(quats).as_matrix()
    for k in range(4):
        for axis in range(3):  # x, y, z of keyframe k
            assert np.allclose(vectors[3 * k + axis], 0.05 * R[k][:, axis], atol=1e-6)
            assert np.allclose(origins[3 * k + axis], keyframes[k, :3], atol=1e-6)
    strips = columns(rrd, paths.KEYFRAME_PATH, "LineStrips3D:strips")[0]
    assert len(strips) == 4  # start -> k1 -> k2 -> k3 -> k4
    assert np.allclose(strips[0][0], start[:3]) and np.allclose(strips[-1][1], keyframes[-1, :3])
    colours = np.asarray(columns(rrd, paths.KEYFRAME_PATH, "LineStrips3D:colors")[0], dtype=np.uint32)
    red, green = (colours >> 24) & 0xFF, (colours >> 16) & 0xFF  # RGBA packed
    assert green[0] == 255 and red[0] == 0 and red[-1] == 255 and green[-1] == 0  # confident green, doubtful red


def test_view_of_an_episode_writes_a_verified_rrd_with_every_step(tmp_path):
    from action_images_ros.cli import main

    ep = synthetic_episode(steps=8, size=64)
    write_episode(ep, tmp_path / "data" / "episode_000007.h5")
    out = tmp_path / "ep.rrd"
    assert main(["view", str(tmp_path / "data" / "episode_000007.h5"), "--save", str(out)]) == 0
    verify(out)
    names = [c.name for c in ep.cameras]
    for v in names:
        assert len(columns(out, paths.camera_image(v), "Image:buffer")) == 8
        assert len(columns(out, paths.overlay(v), "Image:buffer")) == 8
        assert len(columns(out, paths.action_images(v), "Image:buffer")) == 8
    measured = np.asarray(columns(out, paths.tcp("measured"), "Transform3D:translation")).reshape(-1, 3)
    assert np.allclose(measured, ep.ee_pose[:, :3], atol=1e-6)
    gripper = np.asarray(columns(out, paths.gripper("commanded"), "Scalars:scalars")).reshape(-1)
    assert np.allclose(gripper, ep.action[:, 7])
    # the training target drawn at step 0: frame k of the action images is the command 2 (k + 1) steps on,
    # its red blob where that position projects into the view (the codec's Gaussian, sigma 0.05 * 64 = 3.2 px)
    cam = ep.cameras[0]
    tiled = image(out, paths.action_images(names[0]))
    for k in range(4):
        r, c = divmod(k, 2)
        tile = tiled[64 * r:64 * (r + 1), 64 * c:64 * (c + 1), 0].astype(float)
        uv, _, _ = cam.project(ep.action[min(2 * (k + 1), 7), :3])
        if cam.in_image(uv, margin=4):
            peak = np.array(np.unravel_index(np.argmax(tile), tile.shape))[::-1]
            assert np.linalg.norm(peak - uv) <= 1.0, (k, peak, uv)


def test_eval_folder_is_viewed_failed_episodes_first_with_their_mode(tmp_path):
    from action_images_ros.cli import main
    from action_images_ros.viz.sources import eval_episodes

    folder = tmp_path / "eval"
    folder.mkdir()
    per = [{"seed": 100000, "success": True, "failure": None, "facts": None, "steps": 20},
           {"seed": 100001, "success": False, "failure": "missed_grasp", "facts": {"gripper_closed": True}},
           {"seed": 100002, "success": False, "failure": "timeout", "facts": {"ticks": 90}}]
    (folder / "results.json").write_text(json.dumps({"task": "pick_cube", "model": "models/tiny", "rig": None,
                                                     "per_episode": per}))
    strip = np.zeros((2, 16, 48, 3), dtype=np.uint8)  # 2 predictions x 3 views of 16 px side by side
    strip[:, :, 16:32, 1] = 200  # the middle view green
    strip[1, :, :16, 0] = 120  # (GIF writers merge identical frames)
    imageio.mimsave(folder / "failed_seed100001.gif", list(strip), duration=0.4)
    summary, episodes = eval_episodes(folder)
    assert [e.seed for e in episodes] == [100001, 100002, 100000]
    assert episodes[0].video is not None and episodes[1].video is None
    out = tmp_path / "view"
    assert main(["view", str(folder), "--save", str(out)]) == 0
    files = sorted(out.glob("*.rrd"))
    assert [f.name.split("_", 1)[1] for f in files] == ["pick_cube_seed_100001_FAILED_missed_grasp.rrd",
                                                       "pick_cube_seed_100002_FAILED_timeout.rrd",
                                                       "pick_cube_seed_100000_success.rrd"]
    for f in files:
        verify(f)
    text = columns(files[0], paths.INSTRUCTION, "TextDocument:text")[0][0]
    assert "FAILED: missed_grasp" in text and "gripper_closed" in text
    assert len(columns(files[0], paths.overlay("left_shoulder"), "Image:buffer")) == 2
    assert image(files[0], paths.overlay("left_shoulder"))[..., 1].mean() > 150  # the green view
    assert image(files[0], paths.overlay("front"))[..., 1].mean() < 50


@pytest.mark.slow
def test_view_of_a_lerobot_export(tmp_path):
    from action_images_ros.cli import main
    from action_images_ros.data.lerobot import LeRobotExportConfig, export_lerobot

    ep = synthetic_episode(steps=6, size=64)
    write_episode(ep, tmp_path / "data" / "episode_000007.h5")
    export_lerobot([tmp_path / "data" / "episode_000007.h5"], tmp_path / "lerobot", LeRobotExportConfig())
    out = tmp_path / "lr.rrd"
    assert main(["view", str(tmp_path / "lerobot"), "--save", str(out)]) == 0
    verify(out)
    measured = np.asarray(columns(out, paths.tcp("measured"), "Transform3D:translation")).reshape(-1, 3)
    assert np.allclose(measured, ep.ee_pose[:, :3], atol=1e-5)  # poses round-trip exactly through LeRobot


def test_nodes_and_commands_that_do_not_visualise_do_not_import_rerun():
    code = ("import sys\n"
            "import action_images_ros.cli, action_images_ros.ros.graph, action_images_ros.ros.session\n"
            "from action_images_ros.ros.nodes import sim_node, policy_node, executor_node, decoder_node, "
            "recorder_node, camera_node\n"
            "from action_images_ros.commands import run_graph, eval_policy\n"
            "assert 'rerun' not in sys.modules, 'rerun imported'\n"
            "from action_images_ros.ros.nodes import viz_node\n"
            "assert 'rerun' not in sys.modules, 'viz_node imports rerun only when it starts'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_viz_option_adds_a_listening_viz_node_on_the_graphs_topics():
    from action_images_ros.ros.graph import GraphOptions, build_graph, topic

    assert "viz_node" not in {n.name for n in build_graph(GraphOptions())}
    nodes = {n.name: n for n in build_graph(GraphOptions(viz="rerun", viz_rrd="out/live.rrd"))}
    viz, policy = dict(nodes["viz_node"].remappings), dict(nodes["policy_node"].remappings)
    for v in ("front", "left_shoulder", "right_shoulder"):
        for kind in ("overlay", "action_video", "future_video"):
            assert viz[f"{v}/{kind}"] == policy[f"{v}/{kind}"] == topic(kind, v)
        assert viz[f"{v}/image_raw"] == topic("image", v)
    assert viz["trajectory"] == policy["trajectory"] and viz["command"] == topic("executor_command")
    assert dict(nodes["viz_node"].overrides)["rrd"] == "out/live.rrd"
    with pytest.raises(ValueError, match="viz must be one of"):
        GraphOptions(viz="rviz3")
    with pytest.raises(ValueError, match="rrd"):
        GraphOptions(viz="rerun", viz_rrd="live.mp4")


@pytest.mark.ros
def test_viz_node_logs_what_the_graph_publishes(ros_context, tmp_path):
    from geometry_msgs.msg import PoseStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from action_images_ros.geometry import load_rig
    from action_images_ros.ros.action_video import stack_frames
    from action_images_ros.ros.camera_info import camera_to_info
    from action_images_ros.ros.image_conversions import image_to_msg
    from action_images_ros.ros.nodes.viz_node import create_node
    from action_images_ros.ros.pose_conversions import pose_to_stamped
    from action_images_ros.ros.qos import image_qos, state_qos
    from action_images_ros.ros.stamps import ns_to_stamp
    from action_images_ros.ros.trajectory_conversion import trajectory_to_msg

    rrd = tmp_path / "live.rrd"
    node = create_node(context=ros_context, cli_args=["--ros-args", "-p", f"rrd:={rrd}", "-p",
                                                      "image_period_s:=0.0"])
    pub_node = Node("fake_graph", context=ros_context)
    views = node.views
    pubs = {(k, v): pub_node.create_publisher(t, f"{v}/{k}", image_qos()) for v in views
            for k, t in (("image_raw", Image), ("camera_info", CameraInfo), ("action_video", Image))}
    traj_pub = pub_node.create_publisher(MultiDOFJointTrajectory, "trajectory", state_qos(10))
    pose_pub = pub_node.create_publisher(PoseStamped, "current_pose", state_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(pub_node)
    rig = {c.name: c.scaled(32, 32) for c in load_rig(REPO / "config" / "cameras_sim.yaml")}
    rng = np.random.default_rng(3)
    action = rng.uniform(0, 1, (len(views), 4, 16, 16, 3)).astype(np.float32)
    stamp = ns_to_stamp(2_000_000_000)
    try:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and pubs[("action_video", views[-1])].get_subscription_count() == 0:
            ex.spin_once(timeout_sec=0.05)
        for i, v in enumerate(views):
            pubs[("image_raw", v)].publish(image_to_msg(np.full((32, 32, 3), 10 * i, np.uint8), "rgb8", stamp=stamp))
            pubs[("camera_info", v)].publish(camera_to_info(rig[v], stamp=stamp))
            pubs[("action_video", v)].publish(image_to_msg(stack_frames(action[i]), "32FC3", stamp=stamp))
        poses = np.array([[0.4, 0, 0.3, 0, 0, 0, 1, 1], [0.45, 0, 0.3, 0, 0, 0, 1, 1], [0.5, 0, 0.3, 0, 0, 0, 1, 0]])
        traj_pub.publish(trajectory_to_msg(poses, [1.0, 0.9, 0.5], [0.0, 0.2, 0.4], 2_000_000_000, "base_link",
                                           "fr3_hand_tcp"))
        pose_pub.publish(pose_to_stamped(poses[0], "base_link", stamp))
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not (node.logged["action_video"] == len(views)
                                                   and node.logged["trajectory"] == 1 and node.logged["image"] == 3):
            ex.spin_once(timeout_sec=0.05)
        assert node.logged["action_video"] == len(views) and node.logged["trajectory"] == 1, dict(node.logged)
    finally:
        ex.shutdown()
        pub_node.destroy_node()
        node.destroy_node()
    verify(rrd)
    tiled = image(rrd, paths.action_images(views[1]))
    expected = np.zeros((32, 32, 3), np.uint8)  # 4 frames of 16 px in a 2 x 2 grid, by hand
    for k, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        expected[16 * r:16 * r + 16, 16 * c:16 * c + 16] = (action[1, k] * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(tiled, expected)
    points = np.asarray(columns(rrd, paths.KEYFRAME_POINTS, "Points3D:positions")[0])
    assert np.allclose(points, poses[1:, :3])  # the keyframes, not the state they started from
    K = np.asarray(columns(rrd, paths.camera(views[0]), "Pinhole:image_from_camera")[-1][0]).reshape(3, 3)  # the CameraInfo's, after the rig's
    assert np.allclose(K.T if not np.allclose(K[2], [0, 0, 1]) else K, rig[views[0]].K)


def test_view_of_a_recorder_bag_reads_it_through_the_importer(tmp_path):
    from test_data_bags import make_bag, true_pose

    from action_images_ros.cli import main

    truth = make_bag(tmp_path / "bags" / "b0", steps=6)  # a bag as recorder_node writes it (test_data_bags)
    out = tmp_path / "bag.rrd"
    assert main(["view", str(tmp_path / "bags"), "--save", str(out)]) == 0
    verify(out)
    measured = np.asarray(columns(out, paths.tcp("measured"), "Transform3D:translation")).reshape(-1, 3)
    assert np.allclose(measured, [true_pose(k * 0.1)[:3] for k in range(6)], atol=1e-6)
    assert np.array_equal(image(out, paths.camera_image("left_shoulder"), 3), np.asarray(truth["rgb"][3][1]))
