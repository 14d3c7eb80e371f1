"""Timed pose trajectories <-> ``trajectory_msgs/MultiDOFJointTrajectory`` (one message, nothing to pair).

Layout (the policy's decoded chunk, the sim backend's command, the monitor's view of both):

* ``header.stamp``: capture time of the camera frames the trajectory was predicted from
  (for a command: the control tick it belongs to); ``header.frame_id``: the robot base frame.
* ``joint_names = [<tcp link>, "gripper_openness", "decoder_confidence"]``, and on chunk requests and
  their answers a fourth ``"request/<id>"`` (see below).
* ``points[i].time_from_start``: when step ``i`` is due, relative to ``header.stamp``; so
  every step has an absolute due time ``stamp + time_from_start``.
* ``points[i].transforms``: ``[0]`` the TCP pose in the base frame; ``[1]`` and ``[2]`` are
  1-DoF virtual joints whose ``translation.x`` carries the gripper openness in [0, 1]
  (1 = open) and the decoder confidence in [0, 1] (identity rotation, other fields 0); with a fourth
  joint, ``[3]`` is the identity (that joint carries its value in its name).

**Request ids** (a chunk is an answer). executor_node's ``chunk_request`` names a fresh random id as the
fourth joint, ``"request/<id>"`` (:data:`REQUEST_JOINT_PREFIX`; ``id``: 1-64 characters of
``[0-9A-Za-z_-]``, the executor uses 16 hex digits from ``secrets``), and its point 0 is the state the
chunk is to be predicted from. policy_node echoes the joint unchanged in its answer: the trajectory
(point 0 = that state, at ``time_from_start`` 0) or the empty refusal. The executor executes only the
answer to its outstanding request (``ChunkExecutor.add_chunk``). Why a joint *name*: the id must ride
in the message the executor already reads, also when it has no points (a refusal), and
``header.frame_id`` is the base frame; ``header.stamp`` stays the frames' capture time. A message
without the fourth joint (a sim command, a recorded chunk, an older policy) has ``request_id == ""``.
The id keeps stale, replayed, previous-episode and blindly forged chunks out; it is no secret from a
participant that reads ``chunk_request`` (see ``docs/command_path.md``: that needs DDS security).

Why this layout: MultiDOFJointTrajectory is the standard stamped, timed, multi-step pose
trajectory (MoveIt's and ros2_controllers' own multi-DoF type), so stamp, per-step pose and
``time_from_start`` need no invention; the two scalars per step ride as named virtual joints
in the same message instead of a parallel message that would have to be paired by stamp
(the old PoseArray + Float32MultiArray pair hid its stamp in a dimension label). A consumer
that knows only poses reads ``transforms[0]`` and ignores the rest.

An empty ``points`` list is meaningful: from the policy it means "I was asked and refused"
(the reason is on ``action_images/prediction``); from the sim backend "no new command this
tick" (the lockstep acknowledgement).
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Transform
from trajectory_msgs.msg import MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint

from .stamps import ns_to_stamp, stamp_to_ns

__all__ = ["MAX_POINTS", "TrajectoryMessageError", "GRIPPER_JOINT", "CONFIDENCE_JOINT", "REQUEST_JOINT_PREFIX",
           "TimedTrajectory", "trajectory_to_msg", "msg_to_trajectory", "chunk_to_msg", "msg_to_chunk",
           "new_request_id", "request_id_of"]

#: points accepted in one message (a chunk has tens; a request one)
MAX_POINTS = 256
GRIPPER_JOINT = "gripper_openness"
CONFIDENCE_JOINT = "decoder_confidence"
REQUEST_JOINT_PREFIX = "request/"
_ID_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")


def new_request_id() -> str:
    """A fresh request id: 16 hex digits (64 random bits, ``secrets``)."""
    import secrets

    return secrets.token_hex(8)


def _check_id(request_id: str) -> str:
    rid = str(request_id)
    if not 1 <= len(rid) <= 64 or not set(rid) <= _ID_CHARS:
        raise TrajectoryMessageError(f"request id must be 1-64 characters of [0-9A-Za-z_-], got {rid[:80]!r}")
    return rid


def request_id_of(msg: MultiDOFJointTrajectory) -> str:
    """The request id a message carries (its fourth joint name), "" without one; never raises."""
    names = list(msg.joint_names)
    if len(names) == 4 and names[3].startswith(REQUEST_JOINT_PREFIX):
        return names[3][len(REQUEST_JOINT_PREFIX):][:64]
    return ""


class TrajectoryMessageError(ValueError):
    """A trajectory message that does not follow the layout (the message says what is wrong)."""


class TimedTrajectory:
    """A decoded trajectory with its stamp, as numpy.

    Attributes:
        stamp_ns: capture stamp of the frames (ns, ROS time).
        frame_id: frame of the poses (the robot base).
        tcp_link: the link the poses are of.
        time_from_start_s: ``(H,)`` seconds after the stamp each step is due.
        poses: ``(H, 8)`` ``[x y z qx qy qz qw gripper]``.
        confidence: ``(H,)`` decoder confidence.
        request_id: the chunk request the message is or answers ("" without one).
    """

    def __init__(self, stamp_ns: int, frame_id: str, tcp_link: str, time_from_start_s: np.ndarray,
                 poses: np.ndarray, confidence: np.ndarray, request_id: str = "") -> None:
        self.stamp_ns = int(stamp_ns)
        self.frame_id = frame_id
        self.tcp_link = tcp_link
        self.time_from_start_s = np.asarray(time_from_start_s, dtype=np.float64).reshape(-1)
        self.poses = np.asarray(poses, dtype=np.float64).reshape(-1, 8)
        self.confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
        self.request_id = request_id

    @property
    def stamp_s(self) -> float:
        return self.stamp_ns * 1e-9

    def __len__(self) -> int:
        return len(self.poses)


def _scalar(value: float) -> Transform:
    t = Transform()
    t.translation.x = float(value)
    t.rotation.w = 1.0
    return t


def _duration(seconds: float) -> Duration:
    ns = int(round(float(seconds) * 1e9))
    if ns < 0:
        raise ValueError(f"time_from_start must be >= 0, got {seconds} s")
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def trajectory_to_msg(poses: np.ndarray, confidence: np.ndarray, time_from_start_s: np.ndarray, stamp_ns: int,
                      frame_id: str, tcp_link: str, request_id: str = "") -> MultiDOFJointTrajectory:
    """``poses (H, 8)``, ``confidence (H,)``, ``time_from_start_s (H,)`` -> one message (H may be 0).

    ``request_id`` (non-empty): the chunk request this message is or answers (the fourth joint).

    Non-finite poses are sent as they are: the executor refuses them with a logged reason.
    """
    p = np.asarray(poses, dtype=np.float64).reshape(-1, 8) if np.size(poses) else np.zeros((0, 8))
    c = np.asarray(confidence, dtype=np.float64).reshape(-1)
    t = np.asarray(time_from_start_s, dtype=np.float64).reshape(-1)
    if not (len(c) == len(t) == len(p)):
        raise ValueError(f"poses ({len(p)}), confidence ({len(c)}) and time_from_start ({len(t)}) "
                         "must have one entry per step")
    msg = MultiDOFJointTrajectory()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.joint_names = [tcp_link, GRIPPER_JOINT, CONFIDENCE_JOINT]
    if request_id:
        msg.joint_names.append(REQUEST_JOINT_PREFIX + _check_id(request_id))
    for pose, conf, tfs in zip(p, c, t):
        tcp = Transform()
        tcp.translation.x, tcp.translation.y, tcp.translation.z = (float(v) for v in pose[:3])
        tcp.rotation.x, tcp.rotation.y, tcp.rotation.z, tcp.rotation.w = (float(v) for v in pose[3:7])
        point = MultiDOFJointTrajectoryPoint()
        point.transforms = [tcp, _scalar(pose[7]), _scalar(conf)] + ([_scalar(0.0)] if request_id else [])
        point.time_from_start = _duration(tfs)
        msg.points.append(point)
    return msg


def msg_to_trajectory(msg: MultiDOFJointTrajectory, expected_frame: str | None = None,
                      max_points: int = MAX_POINTS) -> TimedTrajectory:
    """One message -> :class:`TimedTrajectory` (possibly with 0 steps).

    Raises:
        TrajectoryMessageError: more than ``max_points`` points (checked before any point is
            converted: a 10,000-point message blocked the executor's thread for 0.3 s), wrong joint names, a point with the wrong
            number of transforms, times that do not increase, or a frame other than ``expected_frame``.
    """
    if len(msg.points) > max_points:
        raise TrajectoryMessageError(f"trajectory has {len(msg.points)} points, more than max_points {max_points} "
                                     "(a chunk has tens); ignored")
    names = list(msg.joint_names)
    if len(names) not in (3, 4) or names[1:3] != [GRIPPER_JOINT, CONFIDENCE_JOINT] \
            or (len(names) == 4 and not names[3].startswith(REQUEST_JOINT_PREFIX)):
        raise TrajectoryMessageError(f"trajectory joint_names must be [<tcp link>, {GRIPPER_JOINT!r}, "
                                     f"{CONFIDENCE_JOINT!r}] (+ '{REQUEST_JOINT_PREFIX}<id>'), got {names[:5]}")
    request_id = _check_id(names[3][len(REQUEST_JOINT_PREFIX):]) if len(names) == 4 else ""
    if expected_frame is not None and msg.header.frame_id != expected_frame:
        raise TrajectoryMessageError(f"trajectory in frame {msg.header.frame_id!r}, expected {expected_frame!r}")
    H = len(msg.points)
    poses = np.zeros((H, 8))
    conf = np.zeros(H)
    tfs = np.zeros(H)
    for i, point in enumerate(msg.points):
        if len(point.transforms) != len(names):
            raise TrajectoryMessageError(f"trajectory point {i} has {len(point.transforms)} transforms, expected "
                                         f"{len(names)} (one per joint: tcp, gripper_openness, decoder_confidence"
                                         f"{', request' if len(names) == 4 else ''})")
        tcp, grip, c = point.transforms[:3]
        poses[i] = [tcp.translation.x, tcp.translation.y, tcp.translation.z,
                    tcp.rotation.x, tcp.rotation.y, tcp.rotation.z, tcp.rotation.w, grip.translation.x]
        conf[i] = c.translation.x
        tfs[i] = point.time_from_start.sec + point.time_from_start.nanosec * 1e-9
    if H > 1 and np.any(np.diff(tfs) <= 0):
        raise TrajectoryMessageError(f"trajectory time_from_start must increase, got {np.round(tfs, 3).tolist()}")
    return TimedTrajectory(stamp_to_ns(msg.header.stamp), msg.header.frame_id, names[0], tfs, poses, conf,
                           request_id)


def chunk_to_msg(chunk, stamp_ns: int, frame_id: str, tcp_link: str, request_id: str = "") -> MultiDOFJointTrajectory:
    """A ``control.chunk_execution.Chunk`` -> one message; its ``start_pose`` (the measured pose the
    prediction started from) becomes point 0 at ``time_from_start`` 0, confidence 1.

    ``stamp_ns`` is the chunk's stamp in exact nanoseconds (``chunk.stamp_s`` is a float, exact to
    ~0.2 µs at today's epoch: ``time_from_start`` is rounded to the microsecond).
    """
    tfs = np.round(np.asarray(chunk.times_s, dtype=np.float64) - float(chunk.stamp_s), 6)
    poses, conf = np.asarray(chunk.poses), np.asarray(chunk.confidence)
    if chunk.start_pose is not None:
        poses = np.concatenate([np.asarray(chunk.start_pose, dtype=np.float64)[None], poses])
        conf = np.concatenate([[1.0], conf])
        tfs = np.concatenate([[0.0], tfs])
    return trajectory_to_msg(poses, conf, tfs, stamp_ns, frame_id, tcp_link, request_id)


def msg_to_chunk(msg: MultiDOFJointTrajectory, expected_frame: str | None = None, max_points: int = MAX_POINTS):
    """One message with >= 1 step after ``time_from_start`` 0 -> ``(Chunk, stamp_ns)`` (its request id:
    :func:`request_id_of`).

    Raises:
        TrajectoryMessageError: layout errors (see :func:`msg_to_trajectory`) or no step to execute.
    """
    from ..control.chunk_execution import Chunk

    traj = msg_to_trajectory(msg, expected_frame, max_points)
    tfs, poses, conf = traj.time_from_start_s, traj.poses, traj.confidence
    start = None
    if len(tfs) and tfs[0] == 0.0:
        start, tfs, poses, conf = poses[0], tfs[1:], poses[1:], conf[1:]
    if len(tfs) == 0:
        raise TrajectoryMessageError("trajectory has no step after time_from_start 0 (an empty answer means the "
                                     "policy refused)")
    try:
        chunk = Chunk(stamp_s=traj.stamp_s, times_s=traj.stamp_s + tfs, poses=poses, confidence=conf,
                      start_pose=start)
    except ValueError as exc:
        raise TrajectoryMessageError(str(exc)) from None
    return chunk, traj.stamp_ns
