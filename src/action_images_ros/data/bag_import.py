"""rosbag2 bags -> HDF5 training episodes (``FORMAT.md``), without ROS.

Reads bags of the recorder node (one episode each, a topic map in ``custom_data``) and of
``ros2 bag record`` (many episodes, topic names given by the caller). For every bag:

1. **Topics**: the kinds of ``ros/recording_topics.py`` (``image/<view>``, ``camera_info/<view>``,
   ``current_pose``, ``gripper_joint_states``, ``joint_states``, ``instruction``, ``episode`` and the
   command kinds) resolved as: ``ImportConfig.topics`` > the bag's ``action_images.topics`` >
   ``default_topics``. A required topic missing from the bag, or empty, is an error naming it.
2. **Episodes**: cut at the ``episode`` marks (``"<episode> seed <seed>"`` starts one at its stamp,
   ``"<episode> stopped"`` ends it there, inclusive); a bag without marks is one episode.
3. **Rows** at ``t0 + k * control_dt`` (``t0`` = the episode's start) up to the last time every
   stream has data: each view's frame nearest in stamp (the views' chosen stamps within
   ``max_view_skew_s``), the TCP pose interpolated (position linearly, rotation by slerp), gripper
   and joints linearly, the action = the latest command at or before the row (zero-order hold;
   before the first command: the measured pose). A stream that starts late, ends early or has a
   hole longer than ``max_gap_s`` inside the episode is an error naming the topic and the time.
4. **Cameras**: intrinsics from each view's CameraInfo (constant over the episode, undistorted,
   checked against the rig within ``intrinsics_tol_px``), extrinsics from the rig YAML.
5. **Label**: the bag's ``labels.json``, else ``custom_data.success``, else ``unlabelled``.

Every bag is checked and planned (stamps only) before any episode is written, so an error in any
bag writes nothing; each episode is then written atomically (``episode.write_episode``).
Images are decoded in a second pass, only the frames the rows use.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Iterable

import numpy as np

from ..control.episode_lifecycle import parse_mark
from ..geometry import Camera, finger_openness, load_rig, rig_frame_id
from .bags import BagError, BagReader, header_stamp_ns, image_layout, list_bags, read_labels
from .episode import Episode, episode_filename, write_episode

logger = logging.getLogger(__name__)

__all__ = ["BagImportError", "ImportConfig", "ImportResult", "import_bags", "plan_bag"]

CUSTOM_PREFIX = "action_images."
REQUIRED_KINDS = ("current_pose", "gripper_joint_states", "joint_states")
POSE_COMMAND_KINDS = ("command", "tcp_target", "executor_command")  # first one with messages is the action
ENCODINGS = {"rgb8": (3, (0, 1, 2)), "bgr8": (3, (2, 1, 0)), "rgba8": (4, (0, 1, 2)), "bgra8": (4, (2, 1, 0))}
GRIPPER_JOINT = "gripper_openness"  # trajectory_conversion's virtual joint
FR3_ARM_JOINTS = tuple(f"fr3_joint{i}" for i in range(1, 8))


class BagImportError(ValueError):
    """A bag that cannot become episodes: a missing topic, an unknown encoding, a gap, a rig mismatch."""

    def __init__(self, bag: str | Path, problem: str) -> None:
        self.bag = Path(bag)
        self.problem = problem
        super().__init__(f"{self.bag}: {problem}")


@dataclasses.dataclass
class ImportConfig:
    """Settings of :func:`import_bags`.

    Attributes:
        rig_path: camera rig YAML (extrinsics and view names; its ``frame_id`` must be the poses').
        control_dt: seconds between episode rows (the training data's rate; the simulated cell's 0.1).
        views: view names in episode order; ``None`` = the rig's.
        task: task name stored in the episodes; ``None`` = the bag's ``action_images.task``.
        topics: ``{kind: topic}`` overriding the bag's topic map (e.g. ``{"current_pose": "/pose"}``).
        default_topics: ``{kind: topic}`` for kinds neither given nor in the bag (``ros2 bag record`` bags).
        max_gap_s: longest hole allowed in any stream inside an episode, and how far a stream may
            start after the episode's start / end before its end.
        max_view_skew_s: most the views' chosen frame stamps may differ in one row (one frame at 30 Hz).
        intrinsics_tol_px: most a CameraInfo's K may differ from the rig's (scaled); ``None`` = no check.
        unlabelled: an episode without a success label: ``"failure"`` (stored as failed, with a
            warning) or ``"error"``.
        action_source: ``"commands"`` (the commanded targets) or ``"next_pose"`` (the next row's
            measured pose: demonstrations without commands, e.g. hand guiding).
        index_by: file index of each episode: ``"seed"`` (as ``action-images generate``) or ``"order"``
            (``first_index`` on, in bag and episode order).
        first_index: see ``index_by``.
        arm_joints: names of the 7 arm joints in ``joint_states``, in order.
        compression: HDF5 image compression (``episode.write_episode``).
    """

    rig_path: Path
    control_dt: float = 0.1
    views: tuple[str, ...] | None = None
    task: str | None = None
    topics: dict[str, str] = dataclasses.field(default_factory=dict)
    default_topics: dict[str, str] = dataclasses.field(default_factory=dict)
    max_gap_s: float = 0.25
    max_view_skew_s: float = 0.035
    intrinsics_tol_px: float | None = 0.5
    unlabelled: str = "failure"
    action_source: str = "commands"
    index_by: str = "seed"
    first_index: int = 0
    arm_joints: tuple[str, ...] = FR3_ARM_JOINTS
    compression: str = "gzip"

    def __post_init__(self) -> None:
        self.rig_path = Path(self.rig_path)
        if not self.rig_path.is_file():
            raise FileNotFoundError(f"camera rig file not found: {self.rig_path}")
        for name in ("control_dt", "max_gap_s", "max_view_skew_s"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"`{name}` must be > 0 seconds. Got {getattr(self, name)!r}")
        for name, allowed in (("unlabelled", ("failure", "error")), ("action_source", ("commands", "next_pose")),
                              ("index_by", ("seed", "order"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {list(allowed)}. Got {getattr(self, name)!r}")
        if len(self.arm_joints) != 7:
            raise ValueError(f"`arm_joints` must name 7 joints. Got {list(self.arm_joints)}")
        if self.first_index < 0:
            raise ValueError(f"`first_index` must be >= 0. Got {self.first_index}")
        if self.views is not None:
            self.views = tuple(self.views)


@dataclasses.dataclass
class ImportResult:
    """One written episode."""

    path: Path
    bag: Path
    episode: int | None
    seed: int
    success: bool
    num_steps: int


@dataclasses.dataclass
class _Segment:
    episode: int | None
    seed: int | None
    start_ns: int
    end_ns: int | None  # inclusive; None = until the data ends
    explicit_end: bool


@dataclasses.dataclass
class _Plan:
    bag: Path
    topics: dict[str, str]
    episode: int | None
    seed: int
    row_ns: np.ndarray  # (T,)
    frame_stamps: dict[str, np.ndarray]  # view -> (T,) stamp of the frame each row uses
    ee_pose: np.ndarray
    action: np.ndarray
    joints: np.ndarray
    gripper: np.ndarray
    cameras: list[Camera]
    task: str
    instruction: str
    success: bool
    frame_id: str
    index: int = -1


# --------------------------------------------------------------------------- public entry
def import_bags(bags: Iterable[str | Path], out_dir: str | Path, config: ImportConfig) -> list[ImportResult]:
    """Every episode of ``bags`` (bag directories or directories of bags) -> ``out_dir/episode_<index>.h5``.

    Raises:
        BagImportError: a bag that cannot be imported (nothing is written then).
        FileNotFoundError: a missing bag or rig.
        ValueError: an output file that exists already or two episodes with the same index.
    """
    out_dir = Path(out_dir)
    rig = load_rig(config.rig_path)
    frame_id = rig_frame_id(config.rig_path)
    paths = list_bags(bags)
    plans: list[_Plan] = []
    for bag in paths:
        plans.extend(plan_bag(bag, config, rig, frame_id))
    if not plans:
        raise ValueError(f"no episodes found in {[str(p) for p in paths]}")
    _assign_indices(plans, config, out_dir)
    results = []
    for plan in plans:
        ep = _build_episode(plan, config)
        path = write_episode(ep, out_dir / episode_filename(plan.index), compression=config.compression)
        logger.info("%s episode %s (seed %d) -> %s: %d rows, success=%s", plan.bag, plan.episode, plan.seed, path,
                    ep.num_steps, ep.success)
        results.append(ImportResult(path, plan.bag, plan.episode, plan.seed, ep.success, ep.num_steps))
    return results


def _assign_indices(plans: list[_Plan], config: ImportConfig, out_dir: Path) -> None:
    seen: dict[int, _Plan] = {}
    for k, plan in enumerate(plans):
        plan.index = plan.seed if config.index_by == "seed" else config.first_index + k
        if plan.index < 0:
            raise ValueError(f"{plan.bag}: episode {plan.episode} has no seed; use index_by 'order' (--index-by order)")
        if plan.index in seen:
            other = seen[plan.index]
            raise ValueError(f"episodes {other.episode} of {other.bag} and {plan.episode} of {plan.bag} both have "
                             f"index {plan.index} (same seed: a reset?); use index_by 'order' (--index-by order)")
        seen[plan.index] = plan
        target = out_dir / episode_filename(plan.index)
        if target.exists():
            raise ValueError(f"{target} exists already (from {plan.bag} episode {plan.episode}); choose another "
                             "--out directory or delete it")


# --------------------------------------------------------------------------- pass 1: plan
def plan_bag(bag: Path, config: ImportConfig, rig: list[Camera], frame_id: str) -> list[_Plan]:
    """Check one bag and plan its episodes (row times, the frame each row uses, poses, actions)."""
    bag = Path(bag)
    rig_by_name = {c.name: c for c in rig}
    views = list(config.views) if config.views is not None else [c.name for c in rig]
    unknown = [v for v in views if v not in rig_by_name]
    if unknown:
        raise ValueError(f"views {unknown} are not in the rig {config.rig_path} ({sorted(rig_by_name)})")
    try:
        reader = BagReader(bag)
        with reader:
            return _plan(reader, bag, config, views, rig_by_name, frame_id)
    except BagError as exc:
        raise BagImportError(bag, str(exc)) from exc


def _resolve_topics(reader: BagReader, bag: Path, config: ImportConfig, views: list[str]) -> dict[str, str]:
    topics = dict(config.default_topics)
    raw = reader.custom_data.get(CUSTOM_PREFIX + "topics")
    if raw:
        try:
            topics.update(json.loads(raw))
        except ValueError as exc:
            raise BagImportError(bag, f"custom_data {CUSTOM_PREFIX}topics is not JSON ({exc})") from exc
    topics.update(config.topics)
    needed = [f"image/{v}" for v in views] + [f"camera_info/{v}" for v in views] + list(REQUIRED_KINDS)
    for kind in needed:
        name = topics.get(kind)
        if name is None:
            raise BagImportError(bag, f"no topic for {kind!r}: the bag has no topic map (recorded with "
                                      f"`ros2 bag record`?); pass --topic {kind}=NAME; the bag has "
                                      f"{sorted(reader.topics)}")
        if name not in reader.topics:
            raise BagImportError(bag, f"missing topic {name} ({kind}); the bag has {sorted(reader.topics)}")
        if reader.counts.get(name, 0) == 0:
            raise BagImportError(bag, f"topic {name} ({kind}) has no messages")
    return topics


def _plan(reader: BagReader, bag: Path, config: ImportConfig, views: list[str], rig_by_name: dict[str, Camera],
          frame_id: str) -> list[_Plan]:
    topics = _resolve_topics(reader, bag, config, views)
    present = {k: t for k, t in topics.items() if t in reader.topics and reader.counts.get(t, 0) > 0}
    streams = _read_small(reader, bag, present, config, frame_id)
    frames = {v: _stamps(reader, bag, topics[f"image/{v}"]) for v in views}
    segments = _segments(streams.get("episode", []), bag)
    custom = reader.custom_data
    labels = read_labels(bag)
    plans = []
    for seg in segments:
        plan = _plan_segment(bag, seg, config, views, topics, streams, frames, rig_by_name, frame_id, custom, labels)
        if plan is not None:
            plans.append(plan)
    return plans


def _stamps(reader: BagReader, bag: Path, topic: str) -> np.ndarray:
    """The frames' stamps, sorted; every frame's encoding checked (from its first bytes, not decoded)."""
    stamps = []
    for _, _, d in reader.raw_messages([topic]):
        _, _, encoding = image_layout(d)
        if encoding not in ENCODINGS:
            raise BagImportError(bag, f"{topic}: unsupported image encoding {encoding!r}; supported: "
                                      f"{sorted(ENCODINGS)}")
        stamps.append(header_stamp_ns(d))
    return np.array(sorted(stamps), dtype=np.int64)


def _read_small(reader: BagReader, bag: Path, present: dict[str, str], config: ImportConfig, frame_id: str) -> dict:
    """Everything but the images, deserialized, as sorted numpy arrays / lists per kind."""
    kinds = {t: k for k, t in present.items() if not k.startswith("image/")}
    poses, grips, joints, instr, marks = [], [], [], [], []
    pose_cmds = {k: [] for k in POSE_COMMAND_KINDS}
    grip_cmds: dict[str, list] = {"command": [], "gripper_target": []}
    infos: dict[str, list] = {}
    for topic, log_ns, data in reader.raw_messages(list(kinds)):
        kind = kinds[topic]
        msg = reader.deserialize(topic, data)
        if kind == "current_pose":
            if msg.header.frame_id and msg.header.frame_id != frame_id:
                raise BagImportError(bag, f"{topic} is in frame {msg.header.frame_id!r} but the rig "
                                          f"{config.rig_path} is in {frame_id!r}")
            poses.append((_ns(msg.header.stamp), *_pose7(msg.pose)))
        elif kind == "gripper_joint_states":
            g = finger_openness(list(msg.name), list(msg.position))
            if g is None:
                raise BagImportError(bag, f"{topic} has no finger joint (names {list(msg.name)})")
            grips.append((_ns(msg.header.stamp), g))
        elif kind == "joint_states":
            pos = dict(zip(msg.name, msg.position))
            missing = [j for j in config.arm_joints if j not in pos]
            if missing:
                raise BagImportError(bag, f"{topic} lacks arm joints {missing} (has {list(msg.name)}); "
                                          "set arm_joints")
            joints.append((_ns(msg.header.stamp), *(pos[j] for j in config.arm_joints)))
        elif kind.startswith("camera_info/"):
            infos.setdefault(kind.split("/", 1)[1], []).append((_ns(msg.header.stamp), msg))
        elif kind == "instruction":
            instr.append((log_ns, str(msg.data)))
        elif kind == "episode":
            marks.append((_ns(msg.stamp), str(msg.frame_id)))
        elif kind == "command":
            if len(msg.points):
                pt = msg.points[0]
                t = _ns(msg.header.stamp)
                tr = pt.transforms[0]
                pose_cmds["command"].append((t, tr.translation.x, tr.translation.y, tr.translation.z,
                                             tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w))
                names = list(msg.joint_names)
                if GRIPPER_JOINT in names and names.index(GRIPPER_JOINT) < len(pt.transforms):
                    grip_cmds["command"].append((t, pt.transforms[names.index(GRIPPER_JOINT)].translation.x))
        elif kind in ("tcp_target", "executor_command"):
            pose_cmds[kind].append((_ns(msg.header.stamp), *_pose7(msg.pose)))
        elif kind == "gripper_target":
            grip_cmds["gripper_target"].append((log_ns, float(msg.data)))

    def arr(rows, width):
        a = np.array(sorted(rows, key=lambda r: r[0]), dtype=np.float64).reshape(-1, width)
        return a[:, 0].astype(np.int64), a[:, 1:]

    out = {"current_pose": arr(poses, 8), "gripper_joint_states": arr(grips, 2), "joint_states": arr(joints, 8),
           "camera_info": {v: sorted(m, key=lambda r: r[0]) for v, m in infos.items()},
           "instruction": sorted(instr, key=lambda r: r[0]), "episode": sorted(marks)}
    out["pose_commands"] = {k: arr(v, 8) for k, v in pose_cmds.items() if v}
    out["gripper_commands"] = {k: arr(v, 2) for k, v in grip_cmds.items() if v}
    return out


def _ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _pose7(pose) -> tuple[float, ...]:
    p, q = pose.position, pose.orientation
    return (p.x, p.y, p.z, q.x, q.y, q.z, q.w)


def _segments(marks: list[tuple[int, str]], bag: Path) -> list[_Segment]:
    """Episodes from the marks (sorted by stamp, duplicates dropped)."""
    segs: list[_Segment] = []
    last_key = None
    for stamp, text in marks:
        if (stamp, text) == last_key:
            continue
        last_key = (stamp, text)
        mark = parse_mark(text)
        open_seg = segs[-1] if segs and segs[-1].end_ns is None else None
        if not mark.running:
            if open_seg is not None:
                open_seg.end_ns, open_seg.explicit_end = stamp, True
            continue
        if open_seg is not None:  # the next start ends the running one (exclusive)
            open_seg.end_ns = stamp - 1  # not explicit: the data may end before (nothing to check)
        segs.append(_Segment(mark.episode, mark.seed, stamp, None, False))
    if not marks:
        logger.warning("%s has no episode marks: importing it as one episode", bag)
        segs.append(_Segment(None, None, -1, None, False))
    return segs


def _plan_segment(bag, seg: _Segment, config: ImportConfig, views, topics, streams, frames, rig_by_name, frame_id,
                  custom: dict, labels: dict) -> _Plan | None:
    gap_ns = int(round(config.max_gap_s * 1e9))
    dt_ns = int(round(config.control_dt * 1e9))
    lo = seg.start_ns
    hi = seg.end_ns if seg.end_ns is not None else np.iinfo(np.int64).max
    name = f"episode {seg.episode if seg.episode is not None else '?'}"
    required = {topics[f"image/{v}"]: frames[v] for v in views}
    for kind in REQUIRED_KINDS:
        required[topics[kind]] = streams[kind][0]
    inside = {}
    for topic, st in required.items():
        sel = st[(st >= lo) & (st <= hi)]
        if sel.size == 0:
            raise BagImportError(bag, f"{name}: no {topic} message inside the episode")
        inside[topic] = sel
    if lo < 0:  # no marks: the episode is where every stream has data
        lo = max(int(s[0]) for s in inside.values())
    last = min(int(s[-1]) for s in inside.values())
    if all(sel[0] > lo + gap_ns for sel in inside.values()):  # e.g. ros2 bag record started mid-episode
        logger.warning("%s: %s began %.3f s before the recording: skipped (its beginning is missing)", bag, name,
                       (min(int(s[0]) for s in inside.values()) - lo) * 1e-9)
        return None
    for topic, sel in inside.items():
        if sel[0] > lo + gap_ns:
            raise BagImportError(bag, f"{name}: {topic} starts {(sel[0] - lo) * 1e-9:.3f} s after the episode's start "
                                      f"(max_gap_s {config.max_gap_s:g}); the recording missed its beginning")
        if seg.explicit_end and sel[-1] < seg.end_ns - gap_ns:
            raise BagImportError(bag, f"{name}: {topic} ends {(seg.end_ns - sel[-1]) * 1e-9:.3f} s before the "
                                      f"episode's end (max_gap_s {config.max_gap_s:g})")
        holes = np.flatnonzero(np.diff(sel) > gap_ns)
        if holes.size:
            i = holes[0]
            raise BagImportError(bag, f"{name}: gap of {(sel[i + 1] - sel[i]) * 1e-9:.3f} s in {topic} after "
                                      f"t = {sel[i] * 1e-9:.3f} s (max_gap_s {config.max_gap_s:g})")
    if last < lo:
        raise BagImportError(bag, f"{name}: the streams never overlap")
    row_ns = lo + dt_ns * np.arange((last - lo) // dt_ns + 1, dtype=np.int64)
    # views: the nearest frame per row, the views within max_view_skew_s of each other
    frame_stamps = {}
    for v in views:
        sel = inside[topics[f"image/{v}"]]
        frame_stamps[v] = sel[_nearest(sel, row_ns)]
    chosen = np.stack([frame_stamps[v] for v in views])
    skew = chosen.max(axis=0) - chosen.min(axis=0)
    bad = np.flatnonzero(skew > config.max_view_skew_s * 1e9)
    if bad.size:
        k = bad[0]
        raise BagImportError(bag, f"{name}: at t = {row_ns[k] * 1e-9:.3f} s the views' nearest frames are "
                                  f"{skew[k] * 1e-9:.3f} s apart ({dict(zip(views, (chosen[:, k] * 1e-9).round(3)))}; "
                                  f"max_view_skew_s {config.max_view_skew_s:g})")
    pose = _interp_pose(*streams["current_pose"], row_ns)
    gripper = _interp(*streams["gripper_joint_states"], row_ns)[:, 0]
    joints = _interp(*streams["joint_states"], row_ns)
    ee_pose = np.concatenate([pose, gripper[:, None]], axis=1)
    action = _actions(bag, name, config, streams, ee_pose, row_ns)
    cameras = [_camera(bag, name, v, topics[f"camera_info/{v}"], streams["camera_info"].get(v, []), lo, hi,
                       rig_by_name[v], config) for v in views]
    sizes = {(c.width, c.height) for c in cameras}
    if len(sizes) != 1:
        raise BagImportError(bag, f"{name}: the views have different image sizes "
                                  f"{ {c.name: (c.width, c.height) for c in cameras} }; an episode needs one size")
    instruction = [text for t, text in streams["instruction"] if t <= (seg.end_ns if seg.end_ns is not None else hi)]
    task = config.task or custom.get(CUSTOM_PREFIX + "task", "")
    if not task:
        raise BagImportError(bag, "no task name (the bag's action_images.task is empty): pass --task NAME")
    seed = seg.seed if seg.seed is not None else _int_or(custom.get(CUSTOM_PREFIX + "seed"), -1)
    episode = seg.episode if seg.episode is not None else _int_or(custom.get(CUSTOM_PREFIX + "episode"), None)
    success = labels.get(episode) if episode is not None else None
    if success is None and custom.get(CUSTOM_PREFIX + "success") in ("true", "false"):
        success = custom[CUSTOM_PREFIX + "success"] == "true"
    if success is None:
        if config.unlabelled == "error":
            raise BagImportError(bag, f"{name} has no success label (labels.json or the recorder's ~/label service)")
        logger.warning("%s: %s has no success label: stored as a failure", bag, name)
        success = False
    return _Plan(bag=bag, topics=topics, episode=episode, seed=int(seed), row_ns=row_ns, frame_stamps=frame_stamps,
                 ee_pose=ee_pose, action=action, joints=joints, gripper=gripper, cameras=cameras, task=task,
                 instruction=instruction[-1] if instruction else "", success=bool(success), frame_id=frame_id)


def _int_or(text, default):
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def _nearest(stamps: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the stamp nearest each ``t`` (ties: the earlier)."""
    i = np.clip(np.searchsorted(stamps, t), 1, len(stamps) - 1) if len(stamps) > 1 else np.zeros(len(t), int)
    if len(stamps) == 1:
        return i
    prev = i - 1
    return np.where(np.abs(t - stamps[prev]) <= np.abs(stamps[i] - t), prev, i)


def _bracket(stamps: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i0, i1, w)``: ``t`` lies between samples ``i0`` and ``i1`` with weight ``w`` on ``i1`` (held at the ends)."""
    i1 = np.clip(np.searchsorted(stamps, t, side="left"), 0, len(stamps) - 1)
    exact = stamps[i1] == t
    i0 = np.where(exact, i1, np.clip(i1 - 1, 0, len(stamps) - 1))
    span = (stamps[i1] - stamps[i0]).astype(np.float64)
    w = np.where(span > 0, (t - stamps[i0]) / np.where(span > 0, span, 1.0), 0.0)
    return i0, i1, np.clip(w, 0.0, 1.0)


def _interp(stamps: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    i0, i1, w = _bracket(stamps, t)
    return values[i0] * (1.0 - w)[:, None] + values[i1] * w[:, None]


def _interp_pose(stamps: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Position linearly, quaternion by slerp (shortest arc); an exact stamp returns its sample unchanged."""
    i0, i1, w = _bracket(stamps, t)
    pos = values[i0, :3] * (1.0 - w)[:, None] + values[i1, :3] * w[:, None]
    q0, q1 = values[i0, 3:7], values[i1, 3:7]
    dot = np.sum(q0 * q1, axis=1)
    q1 = np.where((dot < 0)[:, None], -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    small = theta < 1e-9
    sin = np.where(small, 1.0, np.sin(theta))
    a = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / sin)
    b = np.where(small, w, np.sin(w * theta) / sin)
    q = a[:, None] * q0 + b[:, None] * q1
    q = np.where((w == 0)[:, None], q0, q / np.linalg.norm(q, axis=1, keepdims=True))
    return np.concatenate([pos, q], axis=1)


def _actions(bag, name, config: ImportConfig, streams, ee_pose: np.ndarray, row_ns: np.ndarray) -> np.ndarray:
    """The commanded target per row (zero-order hold; the measured pose before the first command)."""
    if config.action_source == "next_pose":
        return np.concatenate([ee_pose[1:], ee_pose[-1:]]).copy()
    kind = next((k for k in POSE_COMMAND_KINDS if k in streams["pose_commands"]), None)
    if kind is None:
        raise BagImportError(bag, f"{name}: no command message on any of {list(POSE_COMMAND_KINDS)} (sim/command, "
                                  "teleop tcp_target, executor_node/command); for demonstrations without commands "
                                  "use action_source 'next_pose' (--action-source next_pose)")
    action = ee_pose.copy()
    stamps, poses = streams["pose_commands"][kind]
    idx = np.searchsorted(stamps, row_ns, side="right") - 1
    has = idx >= 0
    action[has, :7] = poses[idx[has]]
    grip_kind = "command" if kind == "command" and "command" in streams["gripper_commands"] else "gripper_target"
    if grip_kind in streams["gripper_commands"]:
        gs, gv = streams["gripper_commands"][grip_kind]
        gi = np.searchsorted(gs, row_ns, side="right") - 1
        action[gi >= 0, 7] = gv[gi[gi >= 0], 0]
    return action


def _camera(bag, name, view, topic, infos, lo, hi, rig_cam: Camera, config: ImportConfig) -> Camera:
    """The view's camera: intrinsics from its CameraInfo (constant in the episode), extrinsics from the rig."""
    inside = [m for t, m in infos if lo <= t <= hi] or [m for _, m in infos]
    if not inside:
        raise BagImportError(bag, f"{name}: no {topic} message")
    first = inside[0]
    K = np.asarray(first.k, dtype=np.float64).reshape(3, 3)
    size = (int(first.width), int(first.height))
    for m in inside[1:]:
        if (int(m.width), int(m.height)) != size or not np.allclose(np.asarray(m.k).reshape(3, 3), K, atol=1e-9):
            raise BagImportError(bag, f"{name}: {topic} changed during the episode (K or size)")
    d = np.asarray(first.d, dtype=np.float64)
    if d.size and np.any(np.abs(d) > 1e-12):
        raise BagImportError(bag, f"{topic}: distortion {d.tolist()} ({first.distortion_model}); the action-image "
                                  "codec needs rectified images (all coefficients 0)")
    try:
        cam = Camera(K=K, T_world_cam=rig_cam.T_world_cam, width=size[0], height=size[1], name=view)
    except ValueError as exc:
        raise BagImportError(bag, f"{topic}: unusable CameraInfo ({exc})") from exc
    if config.intrinsics_tol_px is not None:
        expected = rig_cam.scaled(*size).K
        err = float(np.max(np.abs(expected - K)))
        if err > config.intrinsics_tol_px:
            raise BagImportError(bag, f"{topic}: K {K.round(2).tolist()} differs from the rig's camera {view!r} "
                                      f"{expected.round(2).tolist()} by {err:.2f} px (intrinsics_tol_px "
                                      f"{config.intrinsics_tol_px:g}): a wrong rig or swapped topics?")
    return cam


# --------------------------------------------------------------------------- pass 2: images
def _build_episode(plan: _Plan, config: ImportConfig) -> Episode:
    T, V = len(plan.row_ns), len(plan.cameras)
    W, H = plan.cameras[0].width, plan.cameras[0].height
    rgb = np.zeros((T, V, H, W, 3), dtype=np.uint8)
    filled = np.zeros((T, V), dtype=bool)
    with BagReader(plan.bag) as reader:
        for v, cam in enumerate(plan.cameras):
            topic = plan.topics[f"image/{cam.name}"]
            rows_of: dict[int, list[int]] = {}
            for row, stamp in enumerate(plan.frame_stamps[cam.name]):
                rows_of.setdefault(int(stamp), []).append(row)
            for _, _, data in reader.raw_messages([topic]):
                rows = rows_of.get(header_stamp_ns(data))
                if not rows or filled[rows[0], v]:  # unused, or a second frame with the same stamp
                    continue
                img = _decode(plan.bag, topic, reader.deserialize(topic, data), W, H)
                for r in rows:
                    rgb[r, v] = img
                    filled[r, v] = True
    if not filled.all():
        r, v = np.argwhere(~filled)[0]
        raise BagImportError(plan.bag, f"frame of {plan.cameras[v].name} for row {r} vanished between passes")
    return Episode(
        rgb=rgb, ee_pose=plan.ee_pose, action=plan.action, joint_positions=plan.joints, gripper=plan.gripper,
        time=(plan.row_ns - plan.row_ns[0]) * 1e-9, cameras=plan.cameras, task=plan.task,
        instruction=plan.instruction, seed=plan.seed, success=plan.success, control_dt=float(config.control_dt),
        terminal_observation=True, frame_id=plan.frame_id,
    )


def _decode(bag: Path, topic: str, msg, width: int, height: int) -> np.ndarray:
    """A typestore ``sensor_msgs/Image`` -> ``(H, W, 3)`` uint8 RGB (8-bit colour encodings; padded rows ok)."""
    if msg.encoding not in ENCODINGS:
        raise BagImportError(bag, f"{topic}: unsupported image encoding {msg.encoding!r}; supported: "
                                  f"{sorted(ENCODINGS)}")
    channels, order = ENCODINGS[msg.encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if (w, h) != (width, height):
        raise BagImportError(bag, f"{topic}: image is {w}x{h} but its CameraInfo says {width}x{height}")
    data = np.asarray(msg.data, dtype=np.uint8)
    if step < w * channels or data.size != step * h:
        raise BagImportError(bag, f"{topic}: {data.size} bytes do not fit {w}x{h} {msg.encoding} with step {step}")
    img = data.reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    return img[..., list(order)]
