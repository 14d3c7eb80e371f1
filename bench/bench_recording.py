"""Recording throughput over real DDS: 3 x 640x480 rgb8 at 30 Hz for 60 s into per-episode bags, then import.

This process publishes what a camera cell does, with one stamp per 30 Hz tick: each view's
``sensor_msgs/Image`` (rgb8) and ``CameraInfo``, the TCP pose, the gripper and arm joint states
and a ``sim/command``, with the QoS of the graph (``ros/qos.py``: images reliable, depth 2), and
an ``episode`` mark every ``--episode-s`` seconds (so the 60 s are cut into bags). recorder_node
runs as its own process (``python -m action_images_ros.ros.nodes.recorder_node``), as on a cell.
After the last stop mark the recorder is stopped with SIGINT (it closes its bags), the bags are
read back (rosbags) and their messages counted per topic against what was published; then
``import_bags`` turns them into HDF5 episodes (gzip) and the speed is printed in episodes/s.

Transport: Fast DDS shared memory with a 32 MB segment (``config/fastdds_shm.xml``),
localhost-only discovery and a random domain id, as in the tests.

    PYTHONPATH=src .venv/bin/python bench/bench_recording.py [--seconds 60] [--episode-s 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _ros_env import set_ros_env

REPO = Path(__file__).resolve().parents[1]
VIEWS = ("front", "left_shoulder", "right_shoulder")


def ros_env() -> None:
    set_ros_env()
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def frames(width: int, height: int, n: int):
    """``n`` distinct frames per view: a gradient with a moving square (compresses like a camera image)."""
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width]
    out = []
    for v in range(len(VIEWS)):
        per = []
        for k in range(n):
            img = np.stack([(xx + 7 * k) % 256, (yy + 40 * v) % 256, (xx + yy) // 5 % 256], -1).astype(np.uint8)
            x0 = (20 * k) % (width - 60)
            img[100:160, x0:x0 + 60] = (255, 255 - 30 * v, 0)
            per.append(img)
        out.append(per)
    return out


def publish(args, out_dir: Path) -> Counter:
    """Publish for ``args.seconds`` at ``args.rate`` Hz while recorder_node records; returns published counts."""
    import numpy as np
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from std_msgs.msg import Header, String
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from action_images_ros.geometry import load_rig
    from action_images_ros.ros.camera_info import camera_to_info
    from action_images_ros.ros.episode import episode_header
    from action_images_ros.ros.graph import topic
    from action_images_ros.ros.image_conversions import image_to_msg
    from action_images_ros.ros.pose_conversions import pose_to_stamped
    from action_images_ros.ros.qos import image_qos, latched_qos, state_qos
    from action_images_ros.ros.stamps import ns_to_stamp
    from action_images_ros.ros.trajectory_conversion import trajectory_to_msg

    rclpy.init()
    node = rclpy.create_node("bench_cell")
    cams = [c.scaled(args.width, args.height) for c in load_rig(REPO / "config" / "cameras_sim.yaml")]
    pubs = {}

    def pub(name, cls, qos):
        pubs[name] = node.create_publisher(cls, name, qos)

    for v in VIEWS:
        pub("/" + topic("image", v), Image, image_qos())
        pub("/" + topic("camera_info", v), CameraInfo, image_qos())
    for kind, cls in (("current_pose", PoseStamped), ("gripper_joint_states", JointState),
                      ("joint_states", JointState), ("sim_command", MultiDOFJointTrajectory)):
        pub("/" + topic(kind), cls, state_qos())
    pub("/" + topic("episode"), Header, latched_qos())
    pub("/" + topic("instruction"), String, latched_qos())
    counts: Counter = Counter()

    def send(name, msg):
        pubs[name].publish(msg)
        counts[name] += 1

    recorder = subprocess.Popen(
        [sys.executable, "-m", "action_images_ros.ros.nodes.recorder_node", "--ros-args", "-p", f"out_dir:={out_dir}",
         "-p", "task:=bench", "-p", f"views:=[{','.join(VIEWS)}]", "-p", "close_delay_s:=3.0"],
        env={**os.environ, "PYTHONPATH": str(REPO / "src")}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        deadline = time.monotonic() + 60.0
        while not all(p.get_subscription_count() > 0 for p in pubs.values()):
            if time.monotonic() > deadline or recorder.poll() is not None:
                raise RuntimeError("recorder_node did not subscribe to every topic within 60 s")
            time.sleep(0.1)
        time.sleep(1.0)  # discovery is asymmetric: let the recorder match this side too
        imgs = frames(args.width, args.height, 30)
        ticks = int(round(args.seconds * args.rate))
        per_episode = int(round(args.episode_s * args.rate))
        period = 1.0 / args.rate
        send("/" + topic("instruction"), String(data="reach the blue target"))
        t_next = time.monotonic()
        late = 0
        stamp_ns = prev_ns = 0
        for k in range(ticks):
            stamp_ns = node.get_clock().now().nanoseconds
            stamp = ns_to_stamp(stamp_ns)
            if k % per_episode == 0:
                e = k // per_episode
                if e:
                    send("/" + topic("episode"), episode_header(prev_ns, e - 1, 1000 + e - 1, running=False))
                send("/" + topic("episode"), episode_header(stamp_ns, e, 1000 + e))
            for v, (view, cam) in enumerate(zip(VIEWS, cams)):
                send("/" + topic("image", view), image_to_msg(imgs[v][k % 30], "rgb8", f"{view}_optical_frame", stamp))
                send("/" + topic("camera_info", view), camera_to_info(cam, stamp=stamp))
            pose = np.array([0.5 + 0.001 * (k % per_episode), 0.0, 0.3, 1.0, 0.0, 0.0, 0.0])
            send("/" + topic("current_pose"), pose_to_stamped(pose, "base_link", stamp))
            fingers = JointState(name=["fr3_finger_joint1", "fr3_finger_joint2"], position=[0.04, 0.04])
            fingers.header.stamp = stamp
            send("/" + topic("gripper_joint_states"), fingers)
            arm = JointState(name=[f"fr3_joint{i}" for i in range(1, 8)], position=[0.1 * i for i in range(7)])
            arm.header.stamp = stamp
            send("/" + topic("joint_states"), arm)
            send("/" + topic("sim_command"), trajectory_to_msg(np.r_[pose, 1.0][None], np.ones(1), np.zeros(1),
                                                                stamp_ns, "base_link", "tcp"))
            prev_ns = stamp_ns
            t_next += period
            sleep = t_next - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
            else:
                late += 1
        send("/" + topic("episode"), episode_header(stamp_ns, (ticks - 1) // per_episode,
                                                    1000 + (ticks - 1) // per_episode, running=False))
        print(f"published {ticks} ticks in {args.seconds:g} s ({late} ticks late)")
        time.sleep(5.0)  # the recorder closes the last bag close_delay_s after the stop mark
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            log, _ = recorder.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()
            log, _ = recorder.communicate()
        node.destroy_node()
        rclpy.shutdown()
    errors = [line for line in log.splitlines() if "ERROR" in line or "WARN" in line]
    if errors:
        print("recorder warnings/errors:\n  " + "\n  ".join(errors[:20]))
    return counts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--episode-s", type=float, default=10.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--out", type=Path, default=None, help="keep the bags and episodes here (default: a temp dir)")
    args = p.parse_args()
    ros_env()
    sys.path.insert(0, str(REPO / "src"))
    from action_images_ros.data.bag_import import ImportConfig, import_bags
    from action_images_ros.data.bags import BagReader, list_bags

    with tempfile.TemporaryDirectory(prefix="bench_recording_") as tmp:
        root = args.out or Path(tmp)
        bags_dir, eps_dir = root / "bags", root / "episodes"
        published = publish(args, bags_dir)
        recorded: Counter = Counter()
        bags = list_bags([bags_dir])
        bag_bytes = 0
        for bag in bags:
            with BagReader(bag) as b:
                for t, _, _ in b.raw_messages(b.topics):
                    recorded[t] += 1
            bag_bytes += sum(f.stat().st_size for f in bag.iterdir())
        print(f"{len(bags)} bags, {bag_bytes / 1e9:.2f} GB")
        print(f"{'topic':45s} {'published':>10s} {'recorded':>10s}")
        lost = 0
        instruction = "/action_images/instruction"
        for t in sorted(published):
            print(f"{t:45s} {published[t]:10d} {recorded[t]:10d}")
            if t != instruction:  # published once, carried into every bag as latched state
                lost += published[t] - recorded[t]
        print(f"({instruction}: published once, in {recorded[instruction]} of {len(bags)} bags: carried into each)")
        print(f"lost messages: {lost}")
        t0 = time.monotonic()
        results = import_bags([bags_dir], eps_dir, ImportConfig(rig_path=REPO / "config" / "cameras_sim.yaml",
                                                                index_by="order"))
        wall = time.monotonic() - t0
        rows = sum(r.num_steps for r in results)
        print(f"import: {len(results)} episodes ({rows} rows of 3 x {args.width}x{args.height}) in {wall:.1f} s = "
              f"{len(results) / wall:.3f} episodes/s ({rows / wall:.1f} rows/s)")
        print(json.dumps({"published": dict(published), "recorded": dict(recorded), "lost": lost,
                          "import_episodes_per_s": len(results) / wall, "import_rows_per_s": rows / wall}))
        return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
