"""Approximate-time multi-view synchroniser: core rules and the rclpy adapter over DDS."""

import numpy as np
import pytest

from action_images_ros.ros.sync import ApproximateTimeSync

MS = 1_000_000  # ns


def feed(sync, events):
    out = []
    for view, stamp_ms, payload in events:
        out += sync.add(view, int(stamp_ms * MS), payload)
    return out


def test_exact_stamps_any_arrival_order():
    sync = ApproximateTimeSync(3, queue_size=5, slop_s=0.0)
    sets = feed(sync, [(2, 100, "c0"), (0, 100, "a0"), (1, 133, "b1"), (1, 100, "b0"),
                       (0, 133, "a1"), (2, 133, "c1")])
    assert [s.payloads for s in sets] == [("a0", "b0", "c0"), ("a1", "b1", "c1")]
    assert sets[0].stamp_ns == 100 * MS and sets[0].spread_ns == 0
    assert sync.dropped == [0, 0, 0]


def test_interleaved_views_emit_as_soon_as_complete():
    sync = ApproximateTimeSync(3, slop_s=0.0)
    assert feed(sync, [(0, 100, "a0"), (0, 133, "a1"), (1, 100, "b0"), (1, 133, "b1")]) == []
    assert [s.payloads for s in feed(sync, [(2, 100, "c0")])] == [("a0", "b0", "c0")]
    assert [s.payloads for s in feed(sync, [(2, 133, "c1")])] == [("a1", "b1", "c1")]


def test_out_of_order_within_a_view():
    sync = ApproximateTimeSync(2, queue_size=5, slop_s=0.005)
    sets = feed(sync, [(0, 166, "a2"), (0, 100, "a0"), (0, 133, "a1"), (1, 101, "b0"), (1, 134, "b1")])
    assert [s.payloads for s in sets] == [("a0", "b0"), ("a1", "b1")]
    # a message older than what was already emitted for its view is late: dropped
    assert feed(sync, [(1, 120, "late")]) == [] and sync.dropped[1] == 1


def test_slop_edges_are_inclusive_and_exact():
    sync = ApproximateTimeSync(2, slop_s=0.010)
    assert len(sync.add(0, 1_000 * MS, "a")) == 0
    assert len(sync.add(1, 1_010 * MS, "b")) == 1  # spread exactly 10 ms: matched
    sync = ApproximateTimeSync(2, slop_s=0.010)
    sync.add(0, 1_000 * MS, "a")
    assert sync.add(1, 1_010 * MS + 1, "b") == []  # 1 ns beyond the slop
    assert sync.queued(0) == 1 and sync.queued(1) == 1
    assert sync.add(0, 1_012 * MS, "a2")[0].payloads == ("a2", "b")  # a newer set drops the unmatched "a"
    assert sync.dropped == [1, 0] and sync.queued(0) == 0


def test_picks_nearest_and_drops_unmatchable():
    sync = ApproximateTimeSync(3, slop_s=0.008)
    sets = feed(sync, [(0, 90, "a-old"), (0, 100, "a0"), (0, 104, "a1"), (1, 105, "b0"), (2, 103, "c0")])
    assert len(sets) == 1 and sets[0].payloads == ("a1", "b0", "c0")
    assert sets[0].spread_ns == 2 * MS
    assert sync.dropped[0] == 2  # a-old (older than t - slop) and a0 (older than the pick)


def test_missing_view_never_emits_and_queues_stay_bounded():
    sync = ApproximateTimeSync(3, queue_size=4, slop_s=0.01)
    sets = feed(sync, [(v, 33 * i, f"{v}{i}") for i in range(20) for v in (0, 1)])
    assert sets == [] and sync.queued(0) == 4 and sync.queued(1) == 4 and sync.dropped[:2] == [16, 16]
    # the missing view comes back: matching resumes with the newest queued messages
    sets = feed(sync, [(2, 33 * 19, "c")])
    assert len(sets) == 1 and sets[0].payloads == ("019", "119", "c")


def test_dropped_frame_in_one_view_skips_that_set():
    sync = ApproximateTimeSync(2, slop_s=0.005)
    events = [(0, t, f"a{t}") for t in (0, 33, 66, 99)] + [(1, t, f"b{t}") for t in (0, 66, 99)]
    events.sort(key=lambda e: e[1])
    sets = feed(sync, events)
    assert [s.payloads for s in sets] == [("a0", "b0"), ("a66", "b66"), ("a99", "b99")]


def test_duplicate_stamp_keeps_newest_payload():
    sync = ApproximateTimeSync(2, slop_s=0.0)
    feed(sync, [(0, 10, "first"), (0, 10, "second")])
    assert sync.add(1, 10 * MS, "b")[0].payloads == ("second", "b")


def test_random_streams_match_the_brute_force_definition():
    rng = np.random.default_rng(0)
    sync = ApproximateTimeSync(3, queue_size=10, slop_s=0.004)
    events = []
    for k in range(200):
        for v in range(3):
            if rng.random() < 0.9:
                events.append((v, int((33.3 * k + rng.uniform(-3, 3)) * MS), (v, k)))
    rng.shuffle(events[: len(events) // 2])  # some out-of-order arrivals too
    sets = []
    for e in events:
        sets += sync.add(*e)
    assert len(sets) > 100
    stamps = [s.stamp_ns for s in sets]
    assert stamps == sorted(stamps)
    for s in sets:
        assert s.spread_ns <= 4 * MS
        assert len({k for (_, k) in s.payloads}) == 1  # never mixes two frame times 33 ms apart


@pytest.mark.parametrize("kw", [dict(num_views=0), dict(num_views=2, queue_size=0), dict(num_views=2, slop_s=-1)])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        ApproximateTimeSync(**kw)
    with pytest.raises(ValueError, match="view must be in 0..1"):
        ApproximateTimeSync(2).add(2, 0, None)


@pytest.mark.ros
def test_multiview_subscriber_over_dds(ros_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from action_images_ros.ros.image_conversions import image_to_msg, msg_to_image
    from action_images_ros.ros.spin import spin_until
    from action_images_ros.ros.stamps import ns_to_stamp, stamp_to_ns
    from action_images_ros.ros.sync import MultiViewSubscriber

    node = rclpy.create_node("test_sync", context=ros_context)
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    views = ["front", "left"]
    pubs = [node.create_publisher(Image, f"{v}/image_raw", qos) for v in views]
    info_pub = node.create_publisher(CameraInfo, "front/camera_info", qos)
    got = []
    sub = MultiViewSubscriber(node, [(f"{v}/image_raw", Image) for v in views] + [("front/camera_info", CameraInfo)],
                              got.append, qos, queue_size=5, slop_s=0.002)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    assert spin_until(ex, lambda: all(p.get_subscription_count() for p in pubs + [info_pub]), 10.0)
    for k in range(3):
        stamp = ns_to_stamp(1_000_000_000 + k * 33_000_000)
        for i, p in enumerate(pubs):
            if k == 1 and i == 1:
                continue  # the left camera drops frame 1
            p.publish(image_to_msg(np.full((4, 6, 3), 10 * k + i, np.uint8), stamp=stamp))
        info = CameraInfo()
        info.header.stamp = stamp
        info_pub.publish(info)
    assert spin_until(ex, lambda: len(got) >= 2, 10.0)
    spin_until(ex, lambda: False, 0.2)  # nothing else arrives
    assert len(got) == 2
    assert [stamp_to_ns(m.header.stamp) for m in got[1]] == [1_066_000_000] * 3
    assert [int(msg_to_image(m)[0, 0, 0]) for m in got[1][:2]] == [20, 21]
    assert sub.sync.emitted == 2
    ex.shutdown()
    node.destroy_node()


def test_future_stamps_are_refused_at_the_border_and_a_clock_jump_back_restarts_the_sync(ros_context):
    """One message stamped 2036 must not make every real message "late" (it blinded the graph for good)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from action_images_ros.ros.frame_checks import frame_problem
    from action_images_ros.ros.image_conversions import image_to_msg
    from action_images_ros.ros.spin import spin_until
    from action_images_ros.ros.stamps import ns_to_stamp, stamp_to_ns
    from action_images_ros.ros.sync import MultiViewSubscriber

    node = rclpy.create_node("test_sync_future", context=ros_context)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [node.create_publisher(Image, f"{v}/image_raw", qos) for v in ("a", "b")]
    now = {"ns": 100_000_000_000}
    got = []
    sub = MultiViewSubscriber(node, [("a/image_raw", Image), ("b/image_raw", Image)], got.append, qos,
                              now_ns=lambda: now["ns"], future_tolerance_s=1.0, validate=frame_problem)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    assert spin_until(ex, lambda: all(p.get_subscription_count() for p in pubs), 10.0)

    def publish_set(stamp_ns, encoding="rgb8"):
        for p in pubs:
            msg = image_to_msg(np.zeros((2, 2, 3), np.uint8), "rgb8", stamp=ns_to_stamp(stamp_ns))
            msg.encoding = encoding
            p.publish(msg)

    publish_set(2_082_758_400 * 10**9)  # 2036
    publish_set(now["ns"] + 500_000_000, encoding="what")  # unknown encoding: refused too
    spin_until(ex, lambda: sum(sub.refused) >= 4, 5.0)
    assert sub.refused == [2, 2] and got == []
    publish_set(now["ns"])  # real frames still get through
    assert spin_until(ex, lambda: len(got) == 1, 5.0)
    # the clock jumps back 50 s (a restarted simulation): frames of the new time are synchronised again
    now["ns"] -= 50_000_000_000
    publish_set(now["ns"])
    assert spin_until(ex, lambda: len(got) == 2, 5.0)
    assert stamp_to_ns(got[-1][0].header.stamp) == now["ns"]
    ex.shutdown()
    node.destroy_node()
