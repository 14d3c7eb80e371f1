"""Synchronised multi-view streaming over real DDS: 3 x 640x480 rgb8 at 30 Hz.

A publisher process (this script with ``--role publisher``) sends three
``sensor_msgs/Image`` topics with one shared stamp per set from a 30 Hz timer; this
process receives them with ``MultiViewSubscriber`` (reliable QoS, depth 2), converts
each set to numpy and records

* the synchronised set rate (target >= 29.5 Hz),
* stamp-to-receipt latency: system time when the set is complete and converted to
  numpy minus its header stamp (target p95 <= 20 ms),
* completeness: sets received / sets published.

Transport: Fast DDS shared memory with a 32 MB segment (``config/fastdds_shm.xml``),
localhost-only discovery and a random domain id, as in the tests.

    PYTHONPATH=src .venv/bin/python bench/bench_ros_sync.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _ros_env import set_ros_env

REPO = Path(__file__).resolve().parents[1]
VIEWS = ("front", "left_shoulder", "right_shoulder")


def qos():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def run_publisher(args) -> int:
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    from action_images_ros.ros.image_conversions import image_to_msg

    rclpy.init()
    node = rclpy.create_node("bench_camera_pub")
    pubs = [node.create_publisher(Image, f"{v}/image_raw", qos()) for v in VIEWS]
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, size=(args.height, args.width, 3), dtype=np.uint8) for _ in VIEWS]
    deadline = time.monotonic() + args.seconds
    count = [0]

    def tick() -> None:
        stamp = node.get_clock().now().to_msg()
        for v, (pub, frame) in enumerate(zip(pubs, frames)):
            frame[0, 0, 0] = count[0] % 256  # a changing pixel: each message is a new frame
            pub.publish(image_to_msg(frame, "rgb8", frame_id=f"{VIEWS[v]}_optical_frame", stamp=stamp))
        count[0] += 1

    while not any(p.get_subscription_count() for p in pubs) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.create_timer(1.0 / args.rate, tick)
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(f"published {count[0]}", flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def run_receiver(args) -> int:
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    from action_images_ros.ros.image_conversions import msg_to_image
    from action_images_ros.ros.stamps import stamp_to_ns
    from action_images_ros.ros.sync import MultiViewSubscriber

    rclpy.init()
    node = rclpy.create_node("bench_policy_sub")
    records = []  # (receipt_ns, stamp_ns, convert_s)

    def on_set(msgs) -> None:
        t0 = time.perf_counter()
        images = [msg_to_image(m) for m in msgs]
        convert = time.perf_counter() - t0
        assert all(im.shape == (args.height, args.width, 3) for im in images)
        records.append((time.time_ns(), stamp_to_ns(msgs[0].header.stamp), convert))

    sub = MultiViewSubscriber(node, [(f"{v}/image_raw", Image) for v in VIEWS], on_set, qos(),
                              queue_size=args.queue_size, slop_s=args.slop)
    pub_cmd = [sys.executable, __file__, "--role", "publisher", "--seconds", str(args.seconds + args.warmup + 3),
               "--rate", str(args.rate), "--width", str(args.width), "--height", str(args.height)]
    proc = subprocess.Popen(pub_cmd, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        t_end = time.monotonic() + args.seconds + args.warmup + 8
        while proc.poll() is None and time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.05)
        published_line = proc.communicate(timeout=10)[0].strip()
    finally:
        if proc.poll() is None:
            proc.kill()
    node.destroy_node()
    rclpy.shutdown()
    if len(records) < 10:
        print(f"only {len(records)} synchronised sets received; publisher said {published_line!r}")
        return 1

    rec = np.array([(r, s) for r, s, _ in records], dtype=np.int64)
    conv = np.array([c for _, _, c in records])
    # measurement window: after the warm-up, and only sets whose stamps are inside it
    t0 = rec[0, 1] + int(args.warmup * 1e9)
    win = (rec[:, 1] >= t0) & (rec[:, 1] < t0 + int(args.seconds * 1e9))
    r = rec[win]
    lat_ms = (r[:, 0] - r[:, 1]) / 1e6
    span_s = (r[-1, 1] - r[0, 1]) / 1e9
    rate = (len(r) - 1) / ((r[-1, 0] - r[0, 0]) / 1e9)
    expected = span_s * args.rate + 1
    print(f"3 x {args.width}x{args.height} rgb8 @ {args.rate:g} Hz, shm profile "
          f"{os.environ['FASTDDS_DEFAULT_PROFILES_FILE']}, reliable depth 2, slop {1000 * args.slop:g} ms")
    print(f"{published_line}; synchronised sets in the {args.seconds:g} s window: {len(r)} "
          f"(expected ~{expected:.0f}); sync dropped per view {sub.sync.dropped}")
    print(f"set rate: {rate:.2f} Hz (target >= 29.5)")
    print(f"stamp-to-receipt latency (set complete + converted): median {np.median(lat_ms):.2f} ms, "
          f"p95 {np.percentile(lat_ms, 95):.2f} ms, max {lat_ms.max():.2f} ms (target p95 <= 20)")
    print(f"msg_to_image for 3 views: median {1000 * np.median(conv):.2f} ms")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=["receiver", "publisher"], default="receiver")
    p.add_argument("--seconds", type=float, default=10.0, help="measurement window (s)")
    p.add_argument("--warmup", type=float, default=2.0, help="discarded start (s)")
    p.add_argument("--rate", type=float, default=30.0, help="publish rate (Hz)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--queue-size", type=int, default=5)
    p.add_argument("--slop", type=float, default=0.005, help="synchroniser slop (s)")
    args = p.parse_args()
    set_ros_env()
    sys.path.insert(0, str(REPO / "src"))
    return run_publisher(args) if args.role == "publisher" else run_receiver(args)


if __name__ == "__main__":
    sys.exit(main())
