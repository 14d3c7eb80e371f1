"""rosbag2 bags without ROS: writing/reading, episode-cut recording, and import into HDF5 episodes.

Bags are built here message by message with the rosbags typestore, so every expected value
(poses, images, actions, counts) is known independently of the code under test.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from action_images_ros.data import list_episodes, load_episode
from action_images_ros.data.bag_import import BagImportError, ImportConfig, import_bags
from action_images_ros.data.bag_recording import EpisodeBagRecorder, RecordedTopic, RecorderConfig
from action_images_ros.data.bags import (BagError, BagReader, BagWriter, bag_qos, header_stamp_ns, list_bags,
                                         make_typestore, read_labels)
from action_images_ros.geometry import load_rig

REPO = Path(__file__).resolve().parents[1]
RIG = REPO / "config" / "cameras_sim.yaml"
VIEWS = [c.name for c in load_rig(RIG)]
TS = make_typestore()
T = TS.types
NS = 1_000_000_000
DT = 100_000_000
W = H = 16
ARM = [f"fr3_joint{i}" for i in range(1, 8)]
TOPICS = {**{f"image/{v}": f"/cameras/{v}/image_raw" for v in VIEWS},
          **{f"camera_info/{v}": f"/cameras/{v}/camera_info" for v in VIEWS},
          "current_pose": "/action_images/ee_pose", "gripper_joint_states": "/action_images/gripper_joint_states",
          "joint_states": "/joint_states", "instruction": "/action_images/instruction",
          "episode": "/action_images/episode", "command": "/sim/command"}
TYPES = {**{f"image/{v}": "sensor_msgs/msg/Image" for v in VIEWS},
         **{f"camera_info/{v}": "sensor_msgs/msg/CameraInfo" for v in VIEWS},
         "current_pose": "geometry_msgs/msg/PoseStamped", "gripper_joint_states": "sensor_msgs/msg/JointState",
         "joint_states": "sensor_msgs/msg/JointState", "instruction": "std_msgs/msg/String",
         "episode": "std_msgs/msg/Header", "command": "trajectory_msgs/msg/MultiDOFJointTrajectory"}


def header(ns, frame=""):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // NS, nanosec=ns % NS),
                                    frame_id=frame)


def image(ns, view_idx, k, encoding="rgb8"):
    rgb = np.full((H, W, 3), 0, np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = k, view_idx * 50, np.arange(W, dtype=np.uint8)[None] * 3
    data = rgb[..., ::-1] if encoding == "bgr8" else rgb
    return T["sensor_msgs/msg/Image"](header=header(ns, "cam"), height=H, width=W, encoding=encoding, is_bigendian=0,
                                      step=W * 3, data=np.ascontiguousarray(data).reshape(-1)), rgb


def info(ns, view, K=None):
    K = load_rig(RIG)[VIEWS.index(view)].scaled(W, H).K if K is None else K
    P = np.zeros((3, 4))
    P[:, :3] = K
    return T["sensor_msgs/msg/CameraInfo"](
        header=header(ns, f"{view}_optical_frame"), height=H, width=W, distortion_model="plumb_bob",
        d=np.zeros(5), k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def pose_msg(ns, p):
    G = T
    return G["geometry_msgs/msg/PoseStamped"](header=header(ns, "base_link"), pose=G["geometry_msgs/msg/Pose"](
        position=G["geometry_msgs/msg/Point"](x=p[0], y=p[1], z=p[2]),
        orientation=G["geometry_msgs/msg/Quaternion"](x=p[3], y=p[4], z=p[5], w=p[6])))


def joints_msg(ns, names, pos):
    return T["sensor_msgs/msg/JointState"](header=header(ns), name=list(names), position=np.asarray(pos, float),
                                           velocity=np.zeros(0), effort=np.zeros(0))


def command_msg(ns, target):
    G = T
    tr = [G["geometry_msgs/msg/Transform"](translation=G["geometry_msgs/msg/Vector3"](x=target[0], y=target[1],
                                                                                      z=target[2]),
                                           rotation=G["geometry_msgs/msg/Quaternion"](x=target[3], y=target[4],
                                                                                      z=target[5], w=target[6])),
          G["geometry_msgs/msg/Transform"](translation=G["geometry_msgs/msg/Vector3"](x=target[7], y=0.0, z=0.0),
                                           rotation=G["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))]
    pt = G["trajectory_msgs/msg/MultiDOFJointTrajectoryPoint"](
        transforms=tr, velocities=[], accelerations=[],
        time_from_start=G["builtin_interfaces/msg/Duration"](sec=0, nanosec=0))
    return G["trajectory_msgs/msg/MultiDOFJointTrajectory"](header=header(ns, "base_link"),
                                                           joint_names=["tcp", "gripper_openness"], points=[pt])


def true_pose(t_s):
    """A smooth TCP path: x linear in time, a slow rotation about z (quaternion scalar-last)."""
    a = 0.2 * t_s
    return np.array([0.4 + 0.05 * t_s, 0.0, 0.3, 0.0, 0.0, np.sin(a / 2), np.cos(a / 2)])


def make_bag(path, steps=6, t0=2 * NS, marks=((0, 7, "start"), (None, None, "stop")), drop=None, encoding="rgb8",
             topic_map=True, skip_kinds=(), pose_every=DT // 2, bad_K=None, task="reach_target"):
    """A bag like the recorder's: ``steps`` ticks of ``DT`` from ``t0``; poses twice as often (interpolated)."""
    topics = {TOPICS[k]: (TYPES[k], bag_qos(10, k in ("instruction", "episode")))
              for k in TOPICS if k not in skip_kinds}
    w = BagWriter(path, topics)
    truth = {"rgb": [], "pose": [], "t": []}
    end = t0 + (steps - 1) * DT

    def put(kind, ns, msg):
        if kind not in skip_kinds:
            w.write_message(TOPICS[kind], ns, msg)

    for ep, seed, what in marks:
        if what == "start":
            put("episode", t0, header(t0, f"{ep} seed {seed}"))
    put("instruction", t0, T["std_msgs/msg/String"](data="reach the blue target"))
    for k in range(steps):
        ns = t0 + k * DT
        row = []
        for vi, v in enumerate(VIEWS):
            msg, rgb = image(ns, vi, k, encoding)
            if drop is None or not (drop[0] == v and k in drop[1]):
                put(f"image/{v}", ns, msg)
            put(f"camera_info/{v}", ns, info(ns, v, bad_K if (bad_K is not None and vi == 0) else None))
            row.append(rgb)
        truth["rgb"].append(row)
        truth["t"].append(ns)
        put("joint_states", ns, joints_msg(ns, ARM + ["fr3_finger_joint1"], np.r_[np.arange(7) * 0.1 + k, 0.04]))
        put("gripper_joint_states", ns, joints_msg(ns, ["fr3_finger_joint1", "fr3_finger_joint2"],
                                                    [0.04 * (1 - k / steps)] * 2))
        put("command", ns, command_msg(ns, np.r_[true_pose((ns - t0) / NS + 1.0), 0.5]))
    for ns in range(t0 - pose_every, end + 2 * pose_every, pose_every):  # offset grid: interpolated at the rows
        put("current_pose", ns, pose_msg(ns, true_pose((ns - t0) / NS)))
    for ep, seed, what in marks:
        if what == "stop":
            put("episode", end, header(end, f"{0 if ep is None else ep} stopped"))
    if topic_map:
        w.set_custom_data("action_images.topics", json.dumps(TOPICS))
        w.set_custom_data("action_images.task", task)
    w.close()
    return truth


def cfg(**kw):
    return ImportConfig(rig_path=RIG, **kw)


def test_header_stamp_is_read_from_the_cdr_bytes_of_both_byte_orders():
    msg, _ = image(12 * NS + 345, 0, 0)
    assert header_stamp_ns(TS.serialize_cdr(msg, "sensor_msgs/msg/Image")) == 12 * NS + 345
    big = b"\x00\x00\x00\x00" + (7).to_bytes(4, "big") + (9).to_bytes(4, "big")
    assert header_stamp_ns(big) == 7 * NS + 9
    with pytest.raises(BagError, match="encapsulation"):
        header_stamp_ns(b"\x01\x07" + bytes(20))


def test_import_interpolates_poses_keeps_images_and_holds_commands(tmp_path):
    truth = make_bag(tmp_path / "bags" / "b0", steps=6)
    (res,) = import_bags([tmp_path / "bags"], tmp_path / "eps", cfg())
    ep = load_episode(res.path)
    assert res.path.name == "episode_000007.h5" and ep.seed == 7 and ep.task == "reach_target"
    assert ep.num_steps == 6 and ep.instruction == "reach the blue target" and ep.success is False  # unlabelled
    np.testing.assert_array_equal(ep.rgb, np.array(truth["rgb"]))
    expected = np.array([true_pose(k * 0.1) for k in range(6)])
    np.testing.assert_allclose(ep.ee_pose[:, :3], expected[:, :3], atol=1e-9)  # linear in time: exact
    np.testing.assert_allclose(np.abs(np.sum(ep.ee_pose[:, 3:7] * expected[:, 3:7], axis=1)), 1.0, atol=1e-9)
    np.testing.assert_allclose(ep.gripper, 1 - np.arange(6) / 6, atol=1e-12)
    np.testing.assert_allclose(ep.joint_positions[:, 0], np.arange(6), atol=1e-12)
    np.testing.assert_allclose(ep.action[:, :7], np.array([true_pose(k * 0.1 + 1.0) for k in range(6)]), atol=1e-12)
    np.testing.assert_allclose(ep.action[:, 7], 0.5)
    np.testing.assert_allclose(ep.time, np.arange(6) * 0.1, atol=1e-12)
    K = load_rig(RIG)[0].scaled(W, H).K
    np.testing.assert_allclose(ep.cameras[0].K, K)
    np.testing.assert_allclose(ep.cameras[1].T_world_cam, load_rig(RIG)[1].T_world_cam)


def test_bgr_is_converted_and_labels_come_from_the_sidecar(tmp_path):
    from action_images_ros.data.bags import write_label

    truth = make_bag(tmp_path / "b", steps=3, encoding="bgr8")
    write_label(tmp_path / "b", 0, True)
    (res,) = import_bags([tmp_path / "b"], tmp_path / "eps", cfg(unlabelled="error"))
    ep = load_episode(res.path)
    np.testing.assert_array_equal(ep.rgb, np.array(truth["rgb"]))
    assert ep.success is True


@pytest.mark.parametrize("case, match", [
    ("missing", r"missing topic /joint_states \(joint_states\)"),
    ("encoding", r"/cameras/front/image_raw: unsupported image encoding 'yuv422'"),
    ("gap", r"gap of 0\.400 s in /cameras/left_shoulder/image_raw"),
    ("intrinsics", r"/cameras/front/camera_info: K .* differs from the rig"),
    ("unlabelled", r"episode 0 has no success label"),
    ("no_commands", r"no command message"),
    ("no_map", r"no topic for 'image/front'.*--topic image/front=NAME"),
])
def test_bad_bags_name_the_problem_and_nothing_is_written(tmp_path, case, match):
    make_bag(tmp_path / "bags" / "a_good", steps=4)  # imported first, but must not be written
    kw = {"missing": dict(skip_kinds=("joint_states",)), "encoding": dict(encoding="yuv422"),
          "gap": dict(steps=10, drop=("left_shoulder", [3, 4, 5])), "intrinsics": dict(bad_K=np.diag([9.0, 9.0, 1.0])),
          "no_commands": dict(skip_kinds=("command",)), "no_map": dict(topic_map=False)}.get(case, {})
    make_bag(tmp_path / "bags" / "b_bad", **kw)
    config = cfg(unlabelled="error" if case == "unlabelled" else "failure", index_by="order")
    if case == "unlabelled":
        from action_images_ros.data.bags import write_label
        write_label(tmp_path / "bags" / "a_good", 0, True)
    with pytest.raises(BagImportError, match=match):
        import_bags([tmp_path / "bags"], tmp_path / "eps", config)
    assert not (tmp_path / "eps").exists() or not list((tmp_path / "eps").iterdir())


def test_ros2_bag_record_style_bag_with_two_episodes_and_default_topics(tmp_path):
    """One bag, no topic map, two episodes cut by the marks (the second by the next start)."""
    path = tmp_path / "rec"
    topics = {TOPICS[k]: (TYPES[k], bag_qos()) for k in TOPICS}
    w = BagWriter(path, topics)
    for e, (t0, seed) in enumerate(((2 * NS, 40), (5 * NS, 41))):
        w.write_message(TOPICS["episode"], t0, header(t0, f"{e} seed {seed}"))
        for k in range(5):
            ns = t0 + k * DT
            for vi, v in enumerate(VIEWS):
                w.write_message(TOPICS[f"image/{v}"], ns, image(ns, vi, k + 10 * e)[0])
                w.write_message(TOPICS[f"camera_info/{v}"], ns, info(ns, v))
            w.write_message(TOPICS["joint_states"], ns, joints_msg(ns, ARM, np.zeros(7)))
            w.write_message(TOPICS["gripper_joint_states"], ns, joints_msg(ns, ["fr3_finger_joint1"], [0.08]))
            w.write_message(TOPICS["current_pose"], ns, pose_msg(ns, true_pose(k)))
            w.write_message(TOPICS["command"], ns, command_msg(ns, np.r_[true_pose(k), 1.0]))
    w.close()
    res = import_bags([path], tmp_path / "eps", cfg(default_topics=TOPICS, task="pick_cube"))
    assert [(r.seed, r.num_steps) for r in res] == [(40, 5), (41, 5)]
    second = load_episode(res[1].path)
    assert second.task == "pick_cube" and int(second.rgb[0, 0, 0, 0, 0]) == 10  # its own frames
    with pytest.raises(ValueError, match="exists already"):  # never overwritten
        import_bags([path], tmp_path / "eps", cfg(default_topics=TOPICS, task="pick_cube"))


def _topics():
    return tuple(RecordedTopic(TOPICS[k], TYPES[k], k, latched=k in ("instruction", "episode"))
                 for k in ("image/front", "current_pose", "instruction", "episode"))


def test_recorder_cuts_at_marks_routes_early_messages_and_labels_after_close(tmp_path):
    clock = {"t": 0.0}
    rec = EpisodeBagRecorder(RecorderConfig(out_dir=tmp_path, topics=_topics(), task="t", settle_s=0.05,
                                            close_delay_s=0.2), clock=lambda: clock["t"])
    ser = TS.serialize_cdr
    img = lambda ns: ser(image(ns, 0, 0)[0], "sensor_msgs/msg/Image")  # noqa: E731
    try:
        rec.submit(TOPICS["image/front"], img(1 * NS))  # before any episode: not recorded
        rec.submit(TOPICS["image/front"], img(2 * NS))  # episode 0's first frame, before its mark
        rec.mark(0, 5, True, 2 * NS)
        rec.submit(TOPICS["instruction"], ser(T["std_msgs/msg/String"](data="go"), "std_msgs/msg/String"), 0)
        for k in range(1, 4):
            rec.submit(TOPICS["image/front"], img(2 * NS + k * DT))
        clock["t"] = 0.1
        rec.mark(0, None, False, 2 * NS + 3 * DT)  # stop at the last frame (inclusive)
        rec.submit(TOPICS["image/front"], img(2 * NS + 4 * DT))  # after the stop: not recorded
        clock["t"] = 0.15
        rec.mark(1, 6, True, 3 * NS)
        rec.submit(TOPICS["image/front"], img(3 * NS))
        clock["t"] = 1.0
        assert rec.flush(5.0)
        assert len(rec.closed_bags) == 1 and rec.closed_bags[0].name == "episode_000000_seed_5"
        assert rec.label(True)["episode"] == 1  # the episode started last (still open)
        clock["t"] = 2.0
        rec.mark(1, None, False, 3 * NS)
        clock["t"] = 3.0
        assert rec.flush(5.0)
    finally:
        rec.close()
    counts = rec.counts()[TOPICS["image/front"]]
    assert counts == {"received": 7, "written": 5, "outside_episode": 2}
    with BagReader(rec.closed_bags[0]) as b:
        stamps = [header_stamp_ns(d) for _, _, d in b.raw_messages([TOPICS["image/front"]])]
        assert stamps == [2 * NS + k * DT for k in range(4)]
        assert b.counts[TOPICS["instruction"]] == 1 and b.custom_data["action_images.seed"] == "5"
        assert json.loads(b.custom_data["action_images.topics"])["current_pose"] == TOPICS["current_pose"]
    assert read_labels(rec.closed_bags[1]) == {1: True} and read_labels(rec.closed_bags[0]) == {}
    with BagReader(rec.closed_bags[1]) as b:  # the instruction, published once, carried into the next bag
        (msg,) = [(t, b.deserialize(tp, d).data) for tp, t, d in b.raw_messages([TOPICS["instruction"]])]
        assert msg == (3 * NS - 1, "go")
    assert rec.counts()[TOPICS["instruction"]] == {"received": 1, "written": 1, "carried": 1}


def test_an_interrupted_bag_stays_out_of_the_finished_ones(tmp_path):
    make_bag(tmp_path / "done", steps=2)
    w = BagWriter(tmp_path / "crashed", {TOPICS["image/front"]: (TYPES["image/front"], bag_qos())})
    w.write_message(TOPICS["image/front"], NS, image(NS, 0, 0)[0])  # never closed: the recorder "crashed"
    assert list_bags([tmp_path]) == [tmp_path / "done"]
    assert not (tmp_path / "crashed").exists() and (tmp_path / ".incomplete" / "crashed").is_dir()
    with pytest.raises(BagError, match="not a finished rosbag2 bag"):
        with BagReader(tmp_path / ".incomplete" / "crashed"):
            pass
    w.abort()
    assert len(list_episodes(tmp_path)) == 0


def test_a_bag_is_closed_at_max_bag_mb_and_the_rest_of_its_episode_dropped(tmp_path):
    rec = EpisodeBagRecorder(RecorderConfig(out_dir=tmp_path, topics=_topics(), settle_s=0.01, close_delay_s=0.02,
                                            max_bag_mb=0.002))  # 2 kB: three 16x16 rgb8 frames (~0.8 kB each)
    try:
        rec.mark(0, 1, True, NS)
        for k in range(6):
            rec.submit(TOPICS["image/front"], TS.serialize_cdr(image(NS + k * DT, 0, k)[0], "sensor_msgs/msg/Image"))
        assert rec.flush(5.0)
    finally:
        rec.close()
    assert rec.counts()[TOPICS["image/front"]] == {"received": 6, "written": 3, "dropped_truncated": 3}
    with BagReader(rec.closed_bags[0]) as b:
        assert b.custom_data["action_images.truncated"] == "true" and b.counts[TOPICS["image/front"]] == 3
