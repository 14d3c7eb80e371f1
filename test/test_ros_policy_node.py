"""policy_node over real DDS with a tiny random pipeline: the predict service, its outputs, bad input."""

import json
import time

import numpy as np
import pytest
import torch
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from _ros_fakes import matched
from action_images_ros.geometry import load_rig
from action_images_ros.ros.camera_info import camera_to_info
from action_images_ros.ros.qos import image_qos
from action_images_ros.ros.image_conversions import image_to_msg, msg_to_image
from action_images_ros.ros.nodes.policy_node import create_node
from action_images_ros.ros.pose_conversions import pose_to_stamped
from action_images_ros.ros.spin import executors_for, spin_until
from action_images_ros.ros.stamps import ns_to_stamp, stamp_to_ns

pytestmark = pytest.mark.ros

S, F, W, H = 32, 2, 64, 48
RIG = load_rig("config/cameras_sim.yaml")
VIEWS = [c.name for c in RIG]
START = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from action_images_ros.model.config import ModelConfig
    from action_images_ros.model.factory import build_pipeline

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny"
    build_pipeline(ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16))).save_pretrained(path)
    return path


class FakeCameras:
    """Plays camera_node: 3 views + CameraInfo with one stamp per set, and the arm pose."""

    def __init__(self, context):
        import rclpy

        self.node = rclpy.create_node("fake_cameras", context=context)
        self.img_pubs = {v: self.node.create_publisher(Image, f"{v}/image_raw", image_qos()) for v in VIEWS}
        self.info_pubs = {v: self.node.create_publisher(CameraInfo, f"{v}/camera_info", image_qos()) for v in VIEWS}
        self.pose_pub = self.node.create_publisher(PoseStamped, "current_pose", 10)
        self.rng = np.random.default_rng(0)
        self.out = {}  # topic -> [msgs]
        for v in VIEWS:
            for kind, typ in (("action_video", Image), ("action_camera_info", CameraInfo), ("action_image", Image),
                              ("overlay", Image), ("future_video", Image)):
                self.node.create_subscription(typ, f"{v}/{kind}", lambda m, k=f"{v}/{kind}": self.out.setdefault(
                    k, []).append(m), 10)
        self.node.create_subscription(String, "prediction", lambda m: self.out.setdefault("prediction", []).append(
            json.loads(m.data)), 10)
        self.client = self.node.create_client(Trigger, "predict")

    def publish(self, stamp_ns=None, skip=(), encoding=None, image_size=None):
        stamp = ns_to_stamp(self.node.get_clock().now().nanoseconds if stamp_ns is None else stamp_ns)
        for cam in RIG:
            if cam.name in skip:
                continue
            h, w = image_size or (H, W)
            img = self.rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            msg = (image_to_msg(img[..., 0].astype(np.uint16), "16UC1", stamp=stamp) if encoding == "16UC1"
                   else image_to_msg(img, "rgb8", stamp=stamp))
            self.img_pubs[cam.name].publish(msg)
            self.info_pubs[cam.name].publish(camera_to_info(cam.scaled(W, H), stamp=stamp))
        self.pose_pub.publish(pose_to_stamped(START, "base_link", self.node.get_clock().now().to_msg()))
        return stamp_to_ns(stamp)


def start(ros_context_factory, model, **params):
    args = ["--ros-args", "--params-file", "config/policy.yaml", "-p", f"model:={model}", "-p", "mode:=on_demand",
            "-p", "torch_threads:=1", "-p", "num_inference_steps:=2"]
    for k, v in params.items():
        args += ["-p", f"{k}:={v}"]
    node = create_node(context=ros_context_factory(), cli_args=args)
    cams = FakeCameras(ros_context_factory())
    exs = executors_for(node, cams.node)
    assert spin_until(exs, lambda: cams.client.service_is_ready() and matched(node, cams.node), 10.0), \
        "discovery"
    return node, cams, exs


def stop(node, cams, exs):
    for ex in exs:
        ex.shutdown()
    node.destroy_node()
    cams.node.destroy_node()


def fresh_frames(node, cams, exs, timeout_s=10.0):
    """Publish a frame set and the arm pose and wait until the policy holds both (judged by their stamps, not a
    wall-clock window). current_pose is best effort, so a set whose pose was not taken is published again."""
    deadline = time.monotonic() + timeout_s
    while True:
        stamp = cams.publish()
        if spin_until(exs, lambda: node._latest is not None and node._latest[0] >= stamp
                      and node._pose_stamp_ns is not None and node._pose_stamp_ns >= stamp, 1.0):
            return stamp
        assert time.monotonic() < deadline, "the policy did not take a frame set and a pose"


def call(cams, exs, timeout_s=60.0):
    fut = cams.client.call_async(Trigger.Request())
    assert spin_until(exs, fut.done, timeout_s), "the predict service did not answer"
    return fut.result()


def call_until(cams, exs, taken, timeout_s=10.0):
    """Call the predict service until ``taken(answer message)`` (the frames just sent were taken) or
    ``timeout_s``; returns the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        res = call(cams, exs)
        if taken(res.message) or time.monotonic() > deadline:
            return res
        spin_until(exs, lambda: False, 0.1)


def test_predict_service_publishes_action_video_overlays_and_summary(ros_context_factory, tiny_model):
    node, cams, exs = start(ros_context_factory, tiny_model)
    try:
        assert spin_until(exs, lambda: node._pipeline is not None, 60.0), "model did not load"
        stamp = fresh_frames(node, cams, exs)
        res = call(cams, exs)
        assert res.success, res.message
        summary = json.loads(res.message)
        assert summary["stamp_ns"] == stamp and summary["views"] == VIEWS
        assert np.shape(summary["poses"]) == (F, 7) and len(summary["confidence"]) == len(summary["gripper"]) == F
        assert summary["latency_s"] > 0 and summary["num_inference_steps"] == 2
        assert spin_until(exs, lambda: all(f"{v}/future_video" in cams.out for v in VIEWS) and "prediction" in cams.out,
                          5.0)
        for v, cam in zip(VIEWS, RIG):
            video, info = cams.out[f"{v}/action_video"][-1], cams.out[f"{v}/action_camera_info"][-1]
            assert video.encoding == "32FC3" and (video.height, video.width) == (F * S, S)
            frames = msg_to_image(video)
            assert frames.min() >= 0.0 and frames.max() <= 1.0
            assert (info.width, info.height) == (S, S)
            np.testing.assert_allclose(np.reshape(info.k, (3, 3)), cam.scaled(S, S).K, atol=1e-9)
            assert info.header.frame_id == video.header.frame_id == f"{v}_optical_frame"
            assert msg_to_image(cams.out[f"{v}/overlay"][-1]).shape == (H, W, 3)  # camera resolution
            assert msg_to_image(cams.out[f"{v}/action_image"][-1]).shape == (S, S, 3)
            assert msg_to_image(cams.out[f"{v}/future_video"][-1]).shape == (F * S, S, 3)
            for kind in ("action_video", "action_camera_info", "overlay", "future_video"):
                assert stamp_to_ns(cams.out[f"{v}/{kind}"][-1].header.stamp) == stamp
        assert cams.out["prediction"][-1]["stamp_ns"] == stamp
    finally:
        stop(node, cams, exs)


def test_bad_input_is_refused_with_a_reason_and_the_node_keeps_running(ros_context_factory, tiny_model):
    node, cams, exs = start(ros_context_factory, tiny_model, max_frame_age_s=1.0)
    try:
        assert spin_until(exs, lambda: node._pipeline is not None, 60.0), "model did not load"
        res = call(cams, exs)  # nothing received yet
        assert not res.success and "no synchronised set of views yet" in res.message
        cams.publish(skip=("right_shoulder",))  # a missing view: no set completes
        res = call_until(cams, exs, lambda m: "front" not in m)
        assert not res.success and "right_shoulder" in res.message and "front" not in res.message
        cams.publish(encoding="16UC1")  # wrong encoding (a depth image on the colour topic)
        res = call_until(cams, exs, lambda m: "bad frames" in m)
        assert not res.success and "bad frames" in res.message and "16UC1" in res.message
        cams.publish(image_size=(H - 8, W))  # image and camera_info disagree
        res = call_until(cams, exs, lambda m: "camera_info" in m)
        assert not res.success and "camera_info" in res.message and f"{W}x{H - 8}" in res.message
        cams.publish()  # then the cameras stop: the latest set goes stale (max_frame_age_s 1.0)
        spin_until(exs, lambda: False, 1.3)
        res = call(cams, exs)
        assert not res.success and "stale" in res.message
        assert all(not p["ok"] for p in cams.out.get("prediction", []))  # each was a refusal with its reason
        fresh_frames(node, cams, exs)
        res = call(cams, exs)
        assert res.success, res.message  # still alive
    finally:
        stop(node, cams, exs)


def test_missing_model_is_reported_and_the_node_keeps_running(ros_context_factory, tmp_path):
    node, cams, exs = start(ros_context_factory, tmp_path / "no_such_model")
    try:
        cams.publish()
        spin_until(exs, lambda: False, 0.3)
        res = call(cams, exs)
        assert not res.success and "cannot load the model" in res.message and "no_such_model" in res.message
        res = call(cams, exs)  # asked again: same clear answer
        assert not res.success and "model folder not found" in res.message
    finally:
        stop(node, cams, exs)


def test_bad_parameters_are_clear_errors(ros_context):
    with pytest.raises(ValueError, match="mode must be one of"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "mode:=sometimes"])
    with pytest.raises(ValueError, match=r"views \['top'\] are not in the rig"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "views:=[front, top]"])


def test_instruction_from_the_topic_or_parameter(ros_context_factory, tmp_path):
    """A model that follows instructions: refused (with the reason) until one arrives on the latched
    topic; a parameter set at run time replaces it; an unreadable one is refused, the node keeps going."""
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    from action_images_ros.model.config import ModelConfig
    from action_images_ros.model.factory import build_pipeline
    from action_images_ros.ros.qos import latched_qos

    torch.manual_seed(0)
    path = tmp_path / "tiny_instr"
    build_pipeline(ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), use_instruction=True,
                               instruction_vocab=("blue", "reach", "red", "target"))).save_pretrained(path)
    node, cams, exs = start(ros_context_factory, path)
    try:
        assert spin_until(exs, lambda: node._pipeline is not None, 60.0), "model did not load"
        fresh_frames(node, cams, exs)
        res = call(cams, exs)
        assert not res.success and "instruction" in res.message
        pub = cams.node.create_publisher(String, "instruction", latched_qos())
        pub.publish(String(data="reach the red target"))
        assert spin_until(exs, lambda: node._instruction == "reach the red target", 5.0)
        fresh_frames(node, cams, exs)
        assert call(cams, exs).success
        client = cams.node.create_client(SetParameters, "policy_node/set_parameters")
        assert spin_until(exs, client.service_is_ready, 10.0)
        fut = client.call_async(SetParameters.Request(parameters=[ParameterMsg(name="instruction", value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value="grasp a crimson cube"))]))
        assert spin_until(exs, fut.done, 10.0)
        fresh_frames(node, cams, exs)
        res = call(cams, exs)
        assert not res.success and "none of the words" in res.message
    finally:
        stop(node, cams, exs)


def test_answers_chunk_requests_with_a_timed_trajectory_or_a_refusal(ros_context_factory, tiny_model):
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from action_images_ros.ros.qos import latched_qos
    from action_images_ros.ros.trajectory_conversion import msg_to_trajectory, trajectory_to_msg

    # request_wait_s: the frames of the first request follow it; a loaded machine may deliver them late
    node, cams, exs = start(ros_context_factory, tiny_model, mode="closed_loop", request_wait_s=2.0)
    got = []
    cams.node.create_subscription(MultiDOFJointTrajectory, "trajectory", lambda m: got.append(msg_to_trajectory(m)),
                                  10)
    request = cams.node.create_publisher(MultiDOFJointTrajectory, "chunk_request", latched_qos())

    def ask(stamp_ns, state=None, request_id=""):
        poses = np.zeros((0, 8)) if state is None else np.asarray(state)[None]
        request.publish(trajectory_to_msg(poses, np.ones(len(poses)), np.zeros(len(poses)), stamp_ns, "base_link",
                                          "fr3_hand_tcp", request_id=request_id))
    try:
        assert spin_until(exs, lambda: matched(node, cams.node) and node._pipeline is not None, 20.0)
        stamp = cams.now_ns() if hasattr(cams, "now_ns") else cams.node.get_clock().now().nanoseconds
        ask(stamp)  # asked before the frames of that time exist
        spin_until(exs, lambda: False, 0.1)
        cams.publish(stamp_ns=stamp)
        assert spin_until(exs, lambda: got, 30.0), "no answer to the chunk request"
        traj = got[-1]
        assert traj.stamp_ns == stamp and traj.frame_id == "base_link"  # stamped with the frames' capture time
        # point 0 = the measured pose it was predicted from, then F keyframes 0.2 s apart (legacy model folder:
        # frame_stride 2 x 0.1 s)
        np.testing.assert_allclose(traj.time_from_start_s, 0.2 * np.arange(F + 1), atol=1e-9)
        np.testing.assert_allclose(traj.poses[0, :7], START, atol=1e-9)
        assert traj.confidence.shape == (F + 1,) and np.all(np.isfinite(traj.poses[1:]))
        # a request with a state (where the arm will be when a late answer comes) is predicted from it
        moved = np.array([0.52, 0.03, 0.28, 1.0, 0.0, 0.0, 0.0, 1.0])
        stamp2 = cams.node.get_clock().now().nanoseconds
        cams.publish(stamp_ns=stamp2)
        ask(stamp2, moved, request_id="r2")
        assert spin_until(exs, lambda: got[-1].stamp_ns == stamp2, 30.0)
        np.testing.assert_allclose(got[-1].poses[0], moved, atol=1e-9)
        assert got[-1].request_id == "r2"  # the request's id is echoed: the executor executes only its answer
        n_pred = node.predictions
        ask(stamp2, moved, request_id="r2")  # asked again (a retry): the same answer, no new sample
        assert spin_until(exs, lambda: len(got) >= 3 and got[-1].stamp_ns == stamp2, 10.0)
        ask(stamp2, moved, request_id="r3")  # the same tick and state under a new id (a restarted executor)
        assert spin_until(exs, lambda: len(got) >= 4 and got[-1].request_id == "r3", 10.0)
        assert node.predictions == n_pred and np.array_equal(got[-1].poses, got[-3].poses)  # same answer, relabelled
        served = node.predictions + node.refusals
        ask(stamp2, moved + [0.01, 0, 0, 0, 0, 0, 0, 0], request_id="r4")  # the same tick from another state
        assert spin_until(exs, lambda: got[-1].request_id == "r4", 30.0)
        assert node.predictions + node.refusals == served + 1  # served anew (its frames may be stale by now)
        assert len(got[-1]) == 0 or got[-1].poses[0, 0] == pytest.approx(0.53)
        # no frames as new as asked for: an empty trajectory answers (a refusal)
        n = len(got)
        old = stamp2 + 1
        ask(old, request_id="r5")
        assert spin_until(exs, lambda: len(got) > n, 10.0)
        assert len(got[-1]) == 0 and got[-1].stamp_ns == old and got[-1].request_id == "r5"
        assert spin_until(exs, lambda: any(not p.get("ok", True) for p in cams.out.get("prediction", [])), 5.0)
        refusal = [p for p in cams.out["prediction"] if not p.get("ok", True)][-1]
        assert "as new as the request" in refusal["reason"] and refusal["stamp_ns"] == old, refusal
    finally:
        stop(node, cams, exs)


def test_after_a_pause_of_this_process_queued_messages_are_not_from_the_future(ros_context_factory, tiny_model):
    """Its /clock lags after a pause (a long GIL hold, a stopped process): a request stamped a little ahead of
    the last /clock it read is not "from the future"; a clock upstream that is really wrong still is."""
    from rosgraph_msgs.msg import Clock

    node, cams, exs = start(ros_context_factory, tiny_model, use_sim_time=True)
    try:
        clock = cams.node.create_publisher(Clock, "/clock", 10)
        t0 = 50 * 10**9
        assert spin_until(exs, lambda: clock.publish(Clock(clock=ns_to_stamp(t0))) or
                          node.get_clock().now().nanoseconds == t0, 5.0)
        assert node._clock_now_ns() == t0  # read while the clock ran (as every frame and pose does)
        paused_from = time.monotonic()
        time.sleep(1.5)  # this process "paused": no /clock read meanwhile
        assert node.get_clock().now().nanoseconds == t0
        ahead = t0 + int(1e9 * (1.0 + 0.5 * (time.monotonic() - paused_from)))  # beyond the last /clock + 1 s
        assert not node._future(ahead, "chunk request")
        assert node._future(t0 + int(60e9), "chunk request")  # 2036-like: still refused
    finally:
        stop(node, cams, exs)


def test_current_pose_frame_is_checked_like_the_executor_does(ros_context_factory, tiny_model):
    """A pose in another frame is refused (logged); the base frame and its aliases ('base' of franka_ros2,
    published best effort) are taken."""
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from action_images_ros.ros.pose_conversions import pose_to_stamped

    node, cams, exs = start(ros_context_factory, tiny_model)
    try:
        franka = cams.node.create_publisher(PoseStamped, "current_pose",
                                            QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        assert spin_until(exs, lambda: matched(node, cams.node), 30.0)  # both ways: the reader learns of it by discovery
        here = np.array([0.41, 0.02, 0.33, 1.0, 0.0, 0.0, 0.0])

        sent = {}  # frame -> stamps (ns) sent in it

        def send(frame, pose):
            msg = pose_to_stamped(pose, frame, cams.node.get_clock().now().to_msg())
            sent.setdefault(frame, set()).add(stamp_to_ns(msg.header.stamp))
            franka.publish(msg)
        assert spin_until(exs, lambda: send("base", here) or (node._pose is not None and np.allclose(node._pose, here)),
                          5.0), "a best-effort pose in frame 'base' was not taken"
        wrong = here + [0.1, 0, 0, 0, 0, 0, 0]
        for _ in range(5):
            send("world", wrong)
            spin_until(exs, lambda: False, 0.05)
        # never taken: the pose held is one sent in 'base' (one of those still in flight may land after the first)
        assert np.allclose(node._pose, here) and node._pose_stamp_ns in sent["base"], \
            (node._pose_stamp_ns in sent["world"])
        assert spin_until(exs, lambda: send("fr3_link0", wrong) or np.allclose(node._pose, wrong), 5.0)
    finally:
        stop(node, cams, exs)
