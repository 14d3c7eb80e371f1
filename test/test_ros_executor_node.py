"""executor_node over real DDS with the ``sim`` backend driving a fake arm (test-only stand-in for the sim).

The fake arm (``_ros_fakes.FakeArm``) follows every ``sim/command`` target at once and publishes
``current_pose`` and the finger ``JointState``; the test plays the policy (``trajectory`` chunks,
``chunk_request``) and the camera (``camera_heartbeat``) and watches what reaches the arm.
"""

import json
import threading
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from _ros_fakes import QOS, START, FakeArm, matched
from action_images_ros.ros.nodes.executor_node import create_node
from action_images_ros.ros.qos import latched_qos
from action_images_ros.ros.spin import executors_for, spin_until
from action_images_ros.ros.stamps import ns_to_stamp, stamp_to_ns
from action_images_ros.ros.trajectory_conversion import msg_to_trajectory, request_id_of, trajectory_to_msg

pytestmark = pytest.mark.ros
DT = 0.2  # keyframe period of the chunks sent here (s)
LEAD = 0.1  # models/tiny's execution lead_s: a command is the pose due one control period later
SETTLE_S = 0.5  # how long a command with no copy on ~/hold (and no newer hold) is left undecided


class Harness:
    def __init__(self, ros_context_factory, lockstep=False, **overrides):
        import rclpy

        ctx_exec, ctx_world = ros_context_factory(), ros_context_factory()
        args = ["--ros-args", "--params-file", "config/executor.yaml", "-p", "control_rate_hz:=20.0",
                "-p", f"tick_source:={'state' if lockstep else 'timer'}"]
        for k, v in overrides.items():
            args += ["-p", f"{k}:={v}"]
        self.executor_node = create_node(context=ctx_exec, cli_args=args)
        self.world = rclpy.create_node("fake_world", context=ctx_world)
        self.arm = FakeArm(self.world, rate_hz=0.0 if lockstep else 50.0)
        self.traj_pub = self.world.create_publisher(MultiDOFJointTrajectory, "trajectory", QOS)
        self.heartbeat_pub = self.world.create_publisher(CameraInfo, "camera_heartbeat", QOS)
        self.episode_pub = self.world.create_publisher(Header, "episode", latched_qos())
        self.camera_on = True
        self._cameras_stop, self._cameras = threading.Event(), None
        if not lockstep:  # a camera of its own thread, as a real one: a test thread that stops spinning for a
            # while (load, a long assertion) must not look like a camera dropout (the chunk would be dropped)
            self._cameras = threading.Thread(target=self._camera_loop, daemon=True)
            self._cameras.start()
        self.status, self.commands, self.requests, self.holds = [], [], [], []
        self.answered = set()
        self.world.create_subscription(String, "executor_node/status", lambda m: self.status.append(
            json.loads(m.data)), QOS)
        self._arrivals = []  # monotonic arrival of each command: how long its hold copy has been due
        self.world.create_subscription(PoseStamped, "executor_node/command", self._on_command, QOS)
        self.world.create_subscription(PoseStamped, "executor_node/hold", self.holds.append, QOS)
        self.request_arrivals = []  # ROS time (ns) each request came in
        self.world.create_subscription(MultiDOFJointTrajectory, "chunk_request", self._on_request, latched_qos())
        self.pause_client = self.world.create_client(SetBool, "executor_node/pause")
        self.reset_client = self.world.create_client(Trigger, "executor_node/reset")
        self.executors = executors_for(self.executor_node, self.world)
        # (timer ticks) a pose and a camera frame first: with no frame yet, a chunk is dropped as the cameras stale
        assert self.spin(lambda: matched(self.executor_node, self.world) and self.pause_client.service_is_ready()
                         and (lockstep or self.executor_node.measured_pose() is not None
                              and self.executor_node._frame_stamp_s is not None), 10.0), \
            "graph did not come up"

    def _on_request(self, msg):
        self.requests.append(msg_to_trajectory(msg))
        self.request_arrivals.append(self.now_ns())

    def _camera_loop(self):
        while not self._cameras_stop.wait(1 / 30):
            self.heartbeat()

    def heartbeat(self, stamp=None):
        if self.camera_on:
            msg = CameraInfo()
            msg.header.stamp = self.world.get_clock().now().to_msg() if stamp is None else stamp
            self.heartbeat_pub.publish(msg)

    def spin(self, predicate, timeout_s):
        return spin_until(self.executors, predicate, timeout_s)

    def now_ns(self):
        return self.world.get_clock().now().nanoseconds

    def _on_command(self, msg):
        self.commands.append(msg)
        self._arrivals.append(time.monotonic())

    def moves(self):
        """The commands on ~/command with no copy on ~/hold so far (holds are published on both)."""
        held = {self._key(m) for m in self.holds}
        return [m for m in self.commands if self._key(m) not in held]

    @staticmethod
    def _key(m):
        return stamp_to_ns(m.header.stamp), m.pose.position.x, m.pose.position.y, m.pose.position.z

    def _undecided(self, upto=None):
        """Commands that may still be holds: the two topics arrive in no set order, so a command whose copy has
        not come is a move only once a newer hold has come (one reliable writer delivers in order) or SETTLE_S
        after it arrived."""
        held = {self._key(m) for m in self.holds}
        newest_hold = max((stamp_to_ns(m.header.stamp) for m in self.holds), default=-1)
        now = time.monotonic()
        return [m for m, t in zip(self.commands[:upto], self._arrivals) if self._key(m) not in held
                and stamp_to_ns(m.header.stamp) > newest_hold and now - t <= SETTLE_S]

    def decided_moves(self):
        """:meth:`moves` known not to be holds yet: a command whose ~/hold copy may still come is left out."""
        undecided = {id(m) for m in self._undecided()}
        return [m for m in self.moves() if id(m) not in undecided]

    def settled_moves(self):
        """:meth:`moves` among the commands received so far, once none of them is undecided (to count them, or
        to say there were none)."""
        n = len(self.commands)
        assert self.spin(lambda: not self._undecided(n), 5.0), "a command's hold copy never came"
        held = {self._key(m) for m in self.holds}
        return [m for m in self.commands[:n] if self._key(m) not in held]

    def begin_episode(self, stamp_ns, frame_id="0 seed 1"):
        """Announce an episode and wait until the executor has reset for it. A tick offered before the
        announcement arrives (another topic) is run again by the reset, with a second request that replaces
        the first: the tests answer one request per tick, so they offer ticks only after this."""
        n, mark = len(self.status), f"new episode from {stamp_ns * 1e-9:.3f} s"
        self.episode_pub.publish(Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id))
        assert self.spin(lambda: any(s["event"] == "reset" and mark in s["reason"] for s in self.status[n:]), 3.0), \
            self.status[n:]

    def outstanding(self, wait_s=3.0):
        """The newest chunk request not answered yet by :meth:`send_chunk` (waits for one; None if none came)."""
        self.spin(lambda: self.requests and self.requests[-1].request_id not in self.answered, wait_s)
        if self.requests and self.requests[-1].request_id not in self.answered:
            return self.requests[-1]
        return None

    def send_chunk(self, keyframes, confidence=None, stamp_ns=None, start=None, names=None, request=True):
        """Keyframes due DT, 2 DT, ... after ``stamp_ns`` (default now), as the policy's answer to the outstanding
        chunk request (its id; predicted from the state it asked from) unless ``request`` is None (no id, a
        forger's) or a request id string; ``start`` (default: the state asked from, else the arm's pose)."""
        k = np.asarray(keyframes, dtype=np.float64)
        c = np.ones(len(k)) if confidence is None else np.asarray(confidence, dtype=np.float64)
        rid, state = "", None
        if request is True:
            req = self.outstanding()
            if req is not None:
                rid, state = req.request_id, req.poses[0]
                self.answered.add(rid)
        elif isinstance(request, str):
            rid = request
        s = (self.arm.pose if state is None else state) if start is None else np.asarray(start)
        msg = trajectory_to_msg(np.concatenate([s[None], k]), np.concatenate([[1.0], c]),
                                DT * np.arange(len(k) + 1), self.now_ns() if stamp_ns is None else stamp_ns,
                                "base_link", "fr3_hand_tcp", request_id=rid)
        if names is not None:
            msg.joint_names = names
        self.traj_pub.publish(msg)
        return msg

    def call(self, client, request):
        fut = client.call_async(request)
        assert self.spin(fut.done, 5.0)
        return fut.result()

    def close(self):
        self._cameras_stop.set()
        if self._cameras is not None:
            self._cameras.join(timeout=2.0)
        for ex in self.executors:
            ex.shutdown()
        self.executor_node.destroy_node()
        self.world.destroy_node()


@pytest.fixture
def harness(ros_context_factory):
    h = Harness(ros_context_factory)
    yield h
    h.close()


def straight(n, dx=0.02, grip=1.0, start=START):
    t = np.tile(start, (n, 1))
    t[:, 0] = start[0] + dx * np.arange(1, n + 1)
    t[:, 7] = grip
    return t


def commanded_x(harness):
    return [(stamp_to_ns(c.header.stamp), c.pose.position.x) for c in harness.moves()]


def test_commands_follow_the_chunk_at_its_due_times_and_ask_for_the_next(harness):
    assert harness.spin(lambda: harness.requests, 3.0), "no chunk request while idle"
    t0 = harness.now_ns()
    harness.send_chunk(straight(4), stamp_ns=t0)  # x = 0.50 + 0.1 m/s * (t - t0) until t0 + 0.8 s
    assert harness.spin(lambda: len(harness.moves()) >= 8, 5.0)
    for stamp, x in commanded_x(harness):  # the pose due lead_s (0.1 s) after each command's stamp
        expected = 0.5 + 0.1 * min(max(stamp - t0, 0) * 1e-9 + LEAD, 0.8)
        assert x == pytest.approx(expected, abs=1e-6)
    # the next chunk is asked for when half of this one is left (request_fraction 0.5), from fresh frames: judged
    # by stamps, as it may have been asked for before the 8th command came in
    assert harness.spin(lambda: any(r.stamp_ns > t0 + 0.3e9 for r in harness.requests), 2.0)
    nxt = next(i for i, r in enumerate(harness.requests) if r.stamp_ns > t0 + 0.3e9)
    asked = harness.requests[nxt].stamp_ns
    assert harness.request_arrivals[nxt] - asked < 0.2e9
    # answered at once so far: the state to predict from is the measured pose
    np.testing.assert_allclose(harness.requests[nxt].poses[0], harness.executor_node.measured_pose(), atol=0.03)


def test_a_late_chunk_is_executed_from_now_not_dropped(harness):
    harness.outstanding()  # the request first: a wait for it must not eat the chunk's time
    t0 = harness.now_ns() - int(0.5e9)  # predicted from frames 0.5 s old: two keyframes already past
    # 8 s of keyframes: its first tick lands inside it however slow a loaded machine is to deliver and tick
    dx = 0.002
    sent = harness.send_chunk(straight(40, dx=dx), stamp_ns=t0)
    # the first command that is surely not a hold (an idle hold published just before may lack its copy yet)
    assert harness.spin(lambda: harness.decided_moves(), 10.0), (  # what the executor did, should it fail
        request_id_of(sent), len(harness.commands), len(harness.holds), [r.request_id for r in harness.requests],
        harness.status[-4:], harness.executor_node.chunks.stats.as_dict())
    first = harness.decided_moves()[0]
    stamp, x = stamp_to_ns(first.header.stamp), first.pose.position.x
    assert x == pytest.approx(0.5 + dx / DT * ((stamp - t0) * 1e-9 + LEAD), abs=1e-6)  # due now + lead
    assert x > 0.5 + 2 * dx  # the keyframes already past are skipped
    assert not any(s["event"] == "dropped" for s in harness.status)


class PathBackend:
    """Test-only stand-in for a backend that executes a chunk as one trajectory (MoveIt's ``send_chunk``), over
    the sim backend: records the paths and the per-tick sends, takes the first ``take`` poses of a path."""

    runs_paths = True

    def __init__(self, inner, take):
        self.inner, self.take, self.paths, self.sent, self.holds = inner, take, [], [], 0

    def send_chunk(self, poses, times_s, stamp):
        self.paths.append((np.array(poses), np.array(times_s)))
        return min(self.take, len(poses))

    def send(self, pose, stamp):
        self.sent.append(stamp_to_ns(stamp))
        self.inner.send(pose, stamp)

    def hold(self, pose):
        self.holds += 1
        self.inner.hold(pose)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_backend_that_runs_paths_gets_the_chunk_once_and_no_per_tick_goals_meanwhile(harness):
    backend = PathBackend(harness.executor_node.backend, take=3)
    harness.executor_node.backend = backend
    t0 = harness.now_ns()
    harness.send_chunk(straight(4), stamp_ns=t0)  # keyframes at t0 + 0.2, 0.4, 0.6, 0.8 s
    assert harness.spin(lambda: backend.paths and backend.sent and backend.sent[-1] > t0 + 0.9e9, 5.0)
    assert len(backend.paths) == 1
    poses, times = backend.paths[0]
    arrival = times[0]  # the pose commanded on arrival, then every keyframe still ahead at its due time
    ahead = [t0 * 1e-9 + DT * k for k in range(1, 5) if t0 * 1e-9 + DT * k > arrival + 1e-9]
    assert t0 * 1e-9 < arrival < t0 * 1e-9 + DT and times[1:] == pytest.approx(ahead, abs=1e-6)
    np.testing.assert_allclose(poses[:, 0], 0.5 + 0.1 * (times - t0 * 1e-9), atol=1e-6)  # on the chunk's line
    # the backend runs poses 0..2 itself: no tick up to the third pose's time sends a goal of its own (it
    # would supersede the trajectory); the ticks after it do. ~/command still shows every tick.
    end_ns = times[2] * 1e9
    assert not [t for t in backend.sent if arrival * 1e9 <= t <= end_ns - 1e3]
    assert [t for t in backend.sent if t > end_ns]
    assert [c for c, _ in commanded_x(harness) if arrival * 1e9 <= c <= end_ns]
    # a path carries the gripper state in force (0 or 1) and ends before a gripper change, which goes through
    # the per-tick envelope and its debounce
    assert set(poses[:, 7]) == {1.0}
    t1 = harness.now_ns()
    closing = straight(4, dx=0.005, start=harness.arm.pose)
    closing[:, 7] = [0.93, 0.91, 0.2, 0.1]  # decoded openness is continuous
    harness.send_chunk(closing, stamp_ns=t1)
    assert harness.spin(lambda: len(backend.paths) == 2, 3.0)
    poses2, times2 = backend.paths[1]
    assert set(poses2[:, 7]) == {1.0} and times2[-1] < t1 * 1e-9 + 2 * DT + 1e-6  # up to keyframe 2, not 3
    # a chunk whose first step is refused (a jump far off) drops the current one: the path is stopped
    holds = backend.holds
    harness.send_chunk(straight(2, dx=0.5, start=harness.arm.pose))
    assert harness.spin(lambda: backend.holds > holds, 3.0) and harness.executor_node._backend_path is None
    # a reset stops a running path too
    harness.send_chunk(straight(4, start=harness.arm.pose))
    assert harness.spin(lambda: harness.executor_node._backend_path is not None, 3.0)
    holds = backend.holds
    assert harness.call(harness.reset_client, Trigger.Request()).success
    assert backend.holds > holds and harness.executor_node._backend_path is None


def test_unsafe_chunks_never_reach_the_arm(harness):
    cases = {
        "nan": (np.where(np.arange(8) == 0, np.nan, straight(1)[0])[None].repeat(3, 0), np.ones(3)),
        "outside": (straight(3, dx=0.2) * [1, 1, 0, 1, 1, 1, 1, 1] + [0, 0, -0.05, 0, 0, 0, 0, 0], np.ones(3)),
        "low confidence": (straight(3), np.full(3, 0.05)),
        "far jump": (straight(3, dx=0.33), np.ones(3)),
    }
    for name, (traj, conf) in cases.items():
        n_status = len(harness.status)
        harness.send_chunk(traj, conf)
        assert harness.spin(lambda: any(e["event"] in ("dropped", "refused") for e in harness.status[n_status:]),
                            3.0), (name, harness.status[n_status:])
    for target in harness.arm.targets:  # only hold commands at the measured pose were sent
        np.testing.assert_allclose(target[:7], START[:7], atol=1e-9)
    assert harness.settled_moves() == []
    reasons = " | ".join(s["reason"] for s in harness.status)
    assert "outside the workspace box" in reasons and "refuse_translation_m" in reasons
    # the node is still alive: a good chunk executes
    harness.send_chunk(straight(2), np.ones(2))
    assert harness.spin(lambda: len(harness.moves()) >= 4, 5.0)


def test_after_the_arm_is_moved_far_the_next_chunk_from_there_executes(harness):
    """Regression: the old executor checked new plans against its stale last command forever."""
    harness.send_chunk(straight(4))
    assert harness.spin(lambda: len(harness.moves()) >= 3, 3.0)
    moved = START.copy()
    moved[:3] = [0.45, 0.3, 0.2]  # a reset moved the arm 0.4 m
    # not trusted until the next samples confirm it; then a request from where the arm now is. The arm stays
    # there meanwhile (the fake arm would otherwise follow the commands still in flight back to the old track)
    assert harness.spin(lambda: setattr(harness.arm, "pose", moved.copy()) or np.allclose(
        harness.requests[-1].poses[0][:3], moved[:3]), 3.0)
    n = len(harness.moves())
    harness.send_chunk(straight(3, start=moved))
    assert harness.spin(lambda: len(harness.moves()) >= n + 4, 3.0), harness.status[-3:]
    last = harness.moves()[-1].pose.position
    assert abs(last.y - 0.3) < 1e-6 and 0.45 < last.x < 0.52


def test_pause_service_is_an_e_stop(harness):
    assert harness.call(harness.pause_client, SetBool.Request(data=True)).success
    harness.send_chunk(straight(4))
    harness.spin(lambda: False, 0.5)
    assert harness.settled_moves() == []
    assert any(s["event"] == "paused" for s in harness.status)
    assert harness.call(harness.pause_client, SetBool.Request(data=False)).success
    harness.send_chunk(straight(4))
    assert harness.spin(lambda: len(harness.moves()) >= 4, 5.0)


def test_camera_dropout_holds_within_200ms_and_resumes(harness):
    harness.send_chunk([harness.arm.pose + [0.01 * k, 0, 0, 0, 0, 0, 0, 0] for k in range(1, 7)])
    assert harness.spin(lambda: len(harness.moves()) >= 1, 3.0)
    harness.camera_on = False
    t_off = harness.now_ns()
    assert harness.spin(lambda: any("stale" in s["reason"] for s in harness.status), 2.0)
    harness.spin(lambda: False, 0.4)
    # judged by stamps: commands sent before the hold may still arrive after the "stale" status (another topic)
    moves = harness.settled_moves()
    late = [stamp_to_ns(c.header.stamp) - t_off for c in moves]
    assert max(late) < 0.25e9  # max_frame_gap_s (0.2 s) + one tick (0.05 s)
    holds = [stamp_to_ns(h.header.stamp) for h in harness.holds if stamp_to_ns(h.header.stamp) > t_off]
    assert len(holds) >= 4 and max(late) + t_off < min(holds)  # held every tick since, nothing moved after
    n_cmd = len(moves)
    harness.camera_on = True
    harness.spin(lambda: False, 0.1)
    harness.send_chunk(straight(2, dx=0.01, start=harness.arm.pose))
    assert harness.spin(lambda: len(harness.moves()) > n_cmd, 3.0)


def test_a_future_stamped_heartbeat_does_not_disable_the_dropout_hold(harness):
    harness.heartbeat(stamp=ns_to_stamp(harness.now_ns() + int(3e17)))  # ~2036: a broken clock upstream
    harness.send_chunk([harness.arm.pose + [0.01 * k, 0, 0, 0, 0, 0, 0, 0] for k in range(1, 7)])
    assert harness.spin(lambda: len(harness.moves()) >= 1, 3.0)
    harness.camera_on = False
    assert harness.spin(lambda: any("stale" in s["reason"] for s in harness.status), 2.0)


def test_old_future_and_malformed_chunks_are_dropped(harness):
    harness.send_chunk(straight(3), stamp_ns=harness.now_ns() - int(8e9))  # older than max_plan_age_s (5 s)
    harness.send_chunk(straight(3), stamp_ns=harness.now_ns() + int(100e9))  # from the future
    harness.send_chunk(straight(3), names=["fr3_hand_tcp", "gripper", "confidence"])
    assert harness.spin(lambda: sum(s["event"] == "dropped" for s in harness.status) >= 3, 3.0), harness.status
    reasons = " | ".join(s["reason"] for s in harness.status if s["event"] == "dropped")
    assert "joint_names" in reasons and "future" in reasons
    assert harness.settled_moves() == []


def test_reset_ignores_chunks_predicted_before_it(harness, capfd):
    err = []

    def refusals_logged() -> int:
        err.append(capfd.readouterr().err)
        return "".join(err).count("(not an answer)")

    before = harness.outstanding()  # the request of the episode that is about to end
    harness.send_chunk(straight(3), request="0123456789abcdef", start=before.poses[0])  # a forged one first
    assert harness.spin(lambda: refusals_logged() >= 1, 3.0)
    stamp = harness.now_ns()
    answer = harness.call(harness.reset_client, Trigger.Request())
    assert answer.success and json.loads(answer.message)["reset_s"] * 1e9 > stamp
    # the previous episode's answer, even stamped now (in the new episode): not an answer to anything open,
    # logged as a late answer to one of ours although a refusal was logged under a second ago
    harness.send_chunk(straight(3), request=before.request_id, start=before.poses[0])
    assert harness.spin(lambda: any("not an answer" in s["reason"] for s in harness.status), 3.0)
    assert harness.spin(lambda: refusals_logged() >= 2, 3.0), "".join(err)
    assert "answers an earlier request of this executor" in "".join(err)
    # an answer to this episode's request, but predicted from frames before the reset
    assert harness.spin(lambda: harness.requests[-1].request_id != before.request_id, 3.0)
    harness.send_chunk(straight(3), stamp_ns=stamp)
    assert harness.spin(lambda: any("before the last reset" in s["reason"] for s in harness.status), 3.0)
    assert harness.settled_moves() == []


def test_a_stopped_episode_holds_until_the_next_starts(harness):
    assert harness.spin(lambda: harness.requests, 3.0)
    harness.send_chunk(straight(8))
    assert harness.spin(lambda: len(harness.moves()) >= 3, 3.0)
    stop_ns = harness.now_ns()
    harness.episode_pub.publish(Header(stamp=ns_to_stamp(stop_ns), frame_id="0 stopped"))
    assert harness.spin(lambda: any(s["event"] == "stopped" for s in harness.status), 3.0)
    stopped_seen_ns, n_req = harness.now_ns(), len(harness.requests)
    harness.send_chunk(straight(4))  # a chunk while stopped (predicted before the stop) does not move the arm
    harness.spin(lambda: False, 0.8)
    # by stamps: a command sent before the stop may arrive after its status (another topic), none is sent after
    assert [stamp_to_ns(c.header.stamp) for c in harness.settled_moves()
            if stamp_to_ns(c.header.stamp) > stopped_seen_ns] == []
    assert len(harness.requests) == n_req
    n_cmd = len(harness.settled_moves())
    ends = [s for s in harness.status if s["event"] == "episode_end"]
    assert ends and ends[-1]["stats"]["commands"] >= 3  # the stopped episode's statistics, reported once
    harness.episode_pub.publish(Header(stamp=ns_to_stamp(harness.now_ns()), frame_id="1 seed 5"))
    assert harness.spin(lambda: len(harness.requests) > n_req, 3.0), "no request after the next episode started"
    assert len([s for s in harness.status if s["event"] == "episode_end"]) == len(ends)
    harness.send_chunk(straight(4))
    assert harness.spin(lambda: len(harness.moves()) > n_cmd, 3.0)


def test_lockstep_acknowledges_each_tick_after_the_requested_chunk(ros_context_factory):
    h = Harness(ros_context_factory, lockstep=True)
    try:
        t0 = 5_000_000_000
        h.begin_episode(t0)
        h.heartbeat(ns_to_stamp(t0))
        h.arm.publish(ns_to_stamp(t0))
        assert h.spin(lambda: h.requests and h.requests[-1].stamp_ns == t0, 3.0), "no request for tick 0"
        np.testing.assert_allclose(h.requests[-1].poses[0], START)  # nothing executing: the measured pose
        h.spin(lambda: False, 0.5)
        assert h.arm.acks == []  # the simulated world waits for the policy
        h.send_chunk(straight(4), stamp_ns=t0)
        assert h.spin(lambda: h.arm.acks, 3.0) and h.arm.acks[-1] == t0
        for k in range(1, 4):  # every tick is acknowledged with the pose due lead_s after it
            t = t0 + int(k * 0.1e9)
            h.heartbeat(ns_to_stamp(t))
            h.arm.publish(ns_to_stamp(t))
            assert h.spin(lambda: h.arm.acks[-1] == t, 3.0), f"tick {k} not acknowledged"
            assert h.arm.targets[-1][0] == pytest.approx(0.5 + 0.1 * (k * 0.1 + LEAD), abs=1e-6)
        # an e-stop in lockstep holds the world: no acknowledgement until resumed, then the tick runs
        assert h.call(h.pause_client, SetBool.Request(data=True)).success
        t = t0 + int(0.4e9)
        h.heartbeat(ns_to_stamp(t))
        h.arm.publish(ns_to_stamp(t))
        h.spin(lambda: False, 0.4)
        assert h.arm.acks[-1] < t
        assert h.call(h.pause_client, SetBool.Request(data=False)).success  # the tick runs: it asks for a chunk
        assert h.spin(lambda: h.requests[-1].stamp_ns == t, 3.0)
        h.send_chunk(straight(4, start=h.arm.pose), stamp_ns=t, start=h.arm.pose)
        assert h.spin(lambda: h.arm.acks[-1] == t, 3.0)
    finally:
        h.close()


def test_unknown_backend_is_a_clear_error(ros_context):
    with pytest.raises(ValueError, match="unknown executor backend 'ur5'; valid backends: sim, servo, moveit"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "backend:=ur5"])


def test_execution_overrides_are_checked(ros_context):
    with pytest.raises(ValueError, match="min_confidence is the cell's safety setting"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", 'execution_overrides:="min_confidence: 0.5"'])
    with pytest.raises(ValueError, match="blend_seconds"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", 'execution_overrides:="blend_seconds: 0.5"'])


def test_moveit_backend_without_moveit_py_says_so(ros_context):
    from action_images_ros.ros.executor_backends import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="moveit_py"):
        create_node(context=ros_context, cli_args=["--ros-args", "-p", "backend:=moveit"])


# --------------------------------------------------------------------------- the command path (issue 18)
def _pose_msg(pose, frame="base_link", stamp=None):
    from action_images_ros.ros.pose_conversions import pose_to_stamped

    return pose_to_stamped(pose, frame, stamp)


def test_bad_current_poses_are_ignored_and_logged_never_used(harness, capfd):
    """NaN, zero quaternion, wrong frame, future: each ignored with a log line; the pose the executor uses stays
    the arm's (judged by the log line and what the executor holds as measured, not by a wall-clock window)."""
    bad = harness.world.create_publisher(PoseStamped, "current_pose", QOS)
    assert harness.spin(lambda: matched(harness.executor_node, harness.world), 5.0)
    harness.arm.silent = True  # each bad message is the newest at a tick (decimation checks only the newest)
    cases = {
        "not finite or has a zero quaternion": _pose_msg(np.r_[np.nan, START[1:]]),
        "zero quaternion": _pose_msg(np.r_[START[:3], 0.0, 0.0, 0.0, 0.0, 1.0]),
        "in frame 'world'": _pose_msg(START + [0.1, 0, 0, 0, 0, 0, 0, 0], frame="world"),
        "in the future": _pose_msg(START + [0.1, 0, 0, 0, 0, 0, 0, 0],
                                   stamp=ns_to_stamp(harness.now_ns() + int(100e9))),
    }
    for what, msg in cases.items():
        if msg.header.stamp.sec == 0:
            msg.header.stamp = harness.world.get_clock().now().to_msg()
        harness.executor_node._throttle = type(harness.executor_node._throttle)(0.0)  # one line per message here
        seen = []
        bad.publish(msg)

        def logged():
            seen.append(capfd.readouterr().err)
            return what in "".join(seen)
        assert harness.spin(logged, 5.0), (what, "".join(seen))
        np.testing.assert_allclose(harness.executor_node.measured_pose()[:7], START[:7])  # never taken
    # regression: one log helper used at two severities killed the node (rclpy fixes a call site's severity)
    harness.executor_node._warn("test_error", "an error line", error=True)
    harness.executor_node._warn("test_warning", "a warning line")
    harness.arm.silent = False  # the node still runs: a chunk executes
    harness.send_chunk(straight(2))
    assert harness.spin(lambda: len(harness.moves()) >= 2, 5.0)


def test_a_best_effort_pose_in_frame_base_is_received(ros_context_factory):
    """franka_ros2 >= v3.3: franka_robot_state_broadcaster/current_pose, best effort, frame 'base' (= fr3_link0)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    h = Harness(ros_context_factory)
    try:
        h.arm.pose_pub = h.world.create_publisher(PoseStamped, "current_pose",
                                                  QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        h.arm.frame = "base"  # the arm now publishes as franka_ros2 does (its reliable writer falls silent)
        # matched both ways: the reader learns of a new writer only by discovery (over 5 s once in CI when only
        # the writer's side was waited for: the pose never arrived, nothing logged)
        assert h.spin(lambda: matched(h.executor_node, h.world), 30.0), "the executor never matched"
        where = START + [0.02, 0.01, 0, 0, 0, 0, 0, 0]
        h.arm.pose = where.copy()
        assert h.spin(lambda: np.allclose(h.executor_node.measured_pose()[:3], where[:3]), 5.0), \
            (h.executor_node.measured_pose(), h.status[-3:])
    finally:
        h.close()


def test_a_silent_pose_stream_is_logged_and_holds_where_commanded(ros_context_factory, capfd):
    h = Harness(ros_context_factory)
    try:
        h.send_chunk(straight(6, dx=0.03))  # 0.15 m/s: the arm is commanded ahead of its last measured pose
        assert h.spin(lambda: len(h.moves()) >= 4, 5.0)
        h.arm.silent = True  # the pose stream goes silent (the arm still follows targets)
        silent_from = h.now_ns()
        assert h.spin(lambda: h.holds and stamp_to_ns(h.holds[-1].header.stamp) > silent_from, 3.0), "no hold"
        last_move = h.moves()[-1]
        hold = h.holds[-1]
        measured = h.executor_node.measured_pose()
        np.testing.assert_allclose([hold.pose.position.x, hold.pose.position.y, hold.pose.position.z],
                                   [last_move.pose.position.x, last_move.pose.position.y, last_move.pose.position.z],
                                   atol=1e-9)  # where it was commanded
        assert last_move.pose.position.x - measured[0] > 0.01  # ...which is not the stale measured pose
        assert stamp_to_ns(hold.header.stamp) > stamp_to_ns(last_move.header.stamp)
        assert "no current_pose within max_state_age_s" in capfd.readouterr().err
        assert any(s["event"] == "hold" and "max_state_age_s" in s["reason"] for s in h.status)
    finally:
        h.close()


def test_a_glitched_pose_does_not_move_the_arm_more_than_a_step_from_where_it_was_commanded(ros_context_factory):
    """One current_pose 0.15 m (then 0.09 m) off the arm, in lockstep: the tick holds (no new target), the next
    ticks continue the chunk; every target the arm receives is within one envelope step of the previous one."""
    h = Harness(ros_context_factory, lockstep=True)
    try:
        t = 5_000_000_000
        h.begin_episode(t)
        h.heartbeat(ns_to_stamp(t))
        h.arm.publish(ns_to_stamp(t))
        assert h.spin(lambda: h.requests and h.requests[-1].stamp_ns == t, 3.0)
        h.send_chunk(straight(8, dx=0.02), stamp_ns=t)
        assert h.spin(lambda: h.arm.acks and h.arm.acks[-1] == t, 3.0)
        for k, glitch in enumerate((0.0, 0.0, 0.15, 0.0, 0.0, 0.09, 0.0, 0.0)):
            t += int(0.1e9)
            h.heartbeat(ns_to_stamp(t))
            real = h.arm.pose.copy()
            if glitch:
                h.arm.pose = real + [0, glitch, 0, 0, 0, 0, 0, 0]  # the state message lies for one tick
            n, n_req = len(h.arm.acks), len(h.requests)
            h.arm.publish(ns_to_stamp(t))
            if h.spin(lambda: len(h.requests) > n_req, 0.5):  # asked for the next chunk: answer as the policy
                h.send_chunk(straight(8, dx=0.02, start=real), stamp_ns=t)
            assert h.spin(lambda: len(h.arm.acks) > n and h.arm.acks[-1] == t, 3.0), f"tick {k} not acknowledged"
            if glitch:
                assert h.arm.pose[1] == pytest.approx(glitch)  # no new target that tick
                h.arm.pose = real
        targets = np.stack(h.arm.targets)
        assert np.all(np.abs(targets[:, 1]) < 1e-9)  # never towards the glitch
        steps = np.linalg.norm(np.diff(targets[:, :3], axis=0), axis=1)
        assert steps.max() <= 0.05 + 1e-9 and targets[-1, 0] > START[0] + 0.05  # and the chunk went on
        assert any("jumped 0.150 m" in s["reason"] for s in h.status)
    finally:
        h.close()


def test_a_forged_trajectory_stream_never_moves_the_arm(harness, capfd):
    """Trajectories stamped within 1 s of now towards an in-box pose 0.25 m away, with no id, a made-up id, or a
    replay of a real answer: nothing executed, logged (throttled) naming stamp and id; the real answer executes."""
    req = harness.outstanding()
    assert req is not None
    target = START + [0.0, 0.25, 0, 0, 0, 0, 0, 0]
    forged = [target + [0, 0.0, 0, 0, 0, 0, 0, 0]] * 3
    for i, rid in enumerate([None, "0123456789abcdef", None, "deadbeefdeadbeef"] * 5):
        harness.send_chunk(forged, request=rid, start=harness.arm.pose,
                           stamp_ns=harness.now_ns() - int(0.9e9 * (i % 2)))
        harness.spin(lambda: False, 0.02)
    assert harness.spin(lambda: "not an answer" in capfd.readouterr().err or any(
        "not an answer" in s["reason"] for s in harness.status), 3.0)
    assert harness.settled_moves() == [] and all(abs(t[1]) < 1e-9 for t in harness.arm.targets)
    assert harness.executor_node.chunks.waiting  # the real request is still open
    real = harness.send_chunk(straight(3))  # the policy's answer
    assert harness.spin(lambda: len(harness.moves()) >= 3, 5.0)
    harness.traj_pub.publish(real)  # replayed later: answers nothing
    harness.spin(lambda: False, 0.3)
    assert all(abs(m.pose.position.y) < 1e-9 for m in harness.settled_moves())
    refused = [s for s in harness.status if s["event"] == "dropped" and "not an answer" in s["reason"]]
    assert refused and any("0123456789abcdef" in s["reason"] or "'none'" in s["reason"] for s in refused)
    assert harness.executor_node.chunks.stats.not_answers >= 20  # every one (the status topic keeps only 5)


def test_lockstep_a_tick_offered_again_is_only_acknowledged_again(ros_context_factory):
    h = Harness(ros_context_factory, lockstep=True)
    try:
        t0 = 5_000_000_000
        h.begin_episode(t0)
        h.heartbeat(ns_to_stamp(t0))
        h.arm.publish(ns_to_stamp(t0))
        assert h.spin(lambda: h.requests and h.requests[-1].stamp_ns == t0, 3.0)
        h.send_chunk(straight(4), stamp_ns=t0)
        assert h.spin(lambda: h.arm.acks and h.arm.acks[-1] == t0 and h.commands, 3.0)
        n_targets, n_acks, n_cmd = len(h.arm.targets), len(h.arm.acks), len(h.commands)
        h.arm.publish(ns_to_stamp(t0))  # the simulator offers tick 0 again (its acknowledgement was lost)
        assert h.spin(lambda: len(h.arm.acks) > n_acks, 3.0)
        assert h.arm.acks[-1] == t0 and len(h.arm.targets) == n_targets and len(h.commands) == n_cmd
    finally:
        h.close()
