"""What a prediction looks like in Rerun: numpy in, ``rr.log`` calls out (no ROS, no state of its own).

Every function takes the :class:`rerun.RecordingStream` to log to, so one process can write
several recordings (an eval folder: one per episode) and nothing is global. Entity paths
(one per camera and per signal) are in :mod:`.paths`; the default layout is :mod:`.blueprint`.

Conventions: poses ``[x y z qx qy qz qw g]`` in the robot base frame (metres, quaternion
scalar-last, g = gripper openness, 1 = open); cameras in the OpenCV convention
(``geometry.Camera``: x right, y down, z forward). Time is ROS time (simulated time in the
simulated cell) on the ``ros_time`` timeline (:func:`set_ros_time`), or time since reset on
``episode_time`` for recorded episodes.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..cell_description import rig_to_urdf
from ..geometry import Camera, quat_to_matrix
from . import paths
from ._rerun import rr

__all__ = [
    "ROS_TIME", "EPISODE_TIME", "STEP", "set_ros_time", "set_episode_time", "confidence_colours", "tile_frames",
    "log_cell", "log_camera", "log_camera_frame", "log_overlay", "log_prediction_images", "log_keyframes",
    "log_tcp", "log_gripper", "log_prediction_stats", "log_event", "log_instruction",
]

ROS_TIME = "ros_time"
EPISODE_TIME = "episode_time"
STEP = "step"
#: a stamp below this (ns) is a clock that started near zero (the simulated cell): shown as a duration
_EPOCH_LIKE_NS = 10**18
_AXIS_COLOURS = np.array([[230, 40, 40], [40, 210, 40], [50, 100, 255]], dtype=np.uint8)  # tool x, y, z


def set_ros_time(rec: "rr.RecordingStream", stamp_ns: int) -> None:
    """Put what follows at ROS time ``stamp_ns`` (a simulated clock near zero shows as a duration,
    a wall-clock ROS time as a date)."""
    stamp_ns = int(stamp_ns)
    if stamp_ns < _EPOCH_LIKE_NS:
        rec.set_time(ROS_TIME, duration=np.timedelta64(stamp_ns, "ns"))
    else:
        rec.set_time(ROS_TIME, timestamp=np.datetime64(stamp_ns, "ns"))


def set_episode_time(rec: "rr.RecordingStream", time_s: float, step: int) -> None:
    """Put what follows at ``time_s`` seconds since the episode's reset, control step ``step``."""
    rec.set_time(EPISODE_TIME, duration=float(time_s))
    rec.set_time(STEP, sequence=int(step))


def confidence_colours(confidence: np.ndarray) -> np.ndarray:
    """Decoder confidence ``(N,)`` in [0, 1] -> uint8 RGB ``(N, 3)``: red (0) -> yellow (0.5) -> green (1)."""
    c = np.clip(np.nan_to_num(np.asarray(confidence, dtype=np.float64).reshape(-1)), 0.0, 1.0)
    r = np.where(c < 0.5, 1.0, 2.0 * (1.0 - c))
    g = np.where(c < 0.5, 2.0 * c, 1.0)
    return (np.stack([r, g, np.full_like(c, 0.15)], axis=1) * 255.0 + 0.5).astype(np.uint8)


def tile_frames(frames: np.ndarray, columns: int | None = None) -> np.ndarray:
    """``(F, S, S, C)`` -> one image of the F frames in a grid, row-major (frame ``k`` at row ``k // cols``,
    column ``k % cols``; ``columns`` None = ``ceil(sqrt(F))``); empty cells are 0."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must have shape (F, H, W, C), got {frames.shape}")
    F, H, W, C = frames.shape
    cols = int(columns) if columns else int(math.ceil(math.sqrt(F)))
    rows = int(math.ceil(F / cols))
    out = np.zeros((rows * H, cols * W, C), dtype=frames.dtype)
    for k in range(F):
        r, c = divmod(k, cols)
        out[r * H:(r + 1) * H, c * W:(c + 1) * W] = frames[k]
    return out


def _to_uint8(images: np.ndarray) -> np.ndarray:
    a = np.asarray(images)
    if a.dtype == np.uint8:
        return a
    return (np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- the cell
def log_cell(rec: "rr.RecordingStream", cameras: Sequence[Camera], base_frame: str = "base_link",
             urdf: str | None = None) -> None:
    """The static cell: z-up world (= ``base_frame``), the cell's URDF (table + camera frames, from
    ``cell_description.rig_to_urdf`` unless ``urdf`` text is given) and every camera's pose and pinhole."""
    rec.log(paths.WORLD, rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    text = urdf if urdf is not None else rig_to_urdf(cameras, base_frame=base_frame)
    rec.log_file_from_contents("cell.urdf", text.encode(), entity_path_prefix=paths.CELL, static=True)
    # The URDF importer places its links in named frames rooted at ``base_frame``; the rest of the view
    # lives in the entity tree under ``world``: the base frame is ``world``.
    rec.log(paths.CELL, rr.Transform3D(parent_frame=f"tf#/{paths.WORLD}", child_frame=base_frame), static=True)
    for cam in cameras:
        log_camera(rec, cam, static=True)


def log_camera(rec: "rr.RecordingStream", cam: Camera, static: bool = False) -> None:
    """Camera ``cam.name``: its pose in the cell (``T_world_cam``) and its pinhole (K, resolution, OpenCV axes)."""
    path = paths.camera(cam.name)
    rec.log(path, rr.Transform3D(translation=cam.T_world_cam[:3, 3], mat3x3=cam.T_world_cam[:3, :3]), static=static)
    rec.log(path, rr.Pinhole(image_from_camera=cam.K, resolution=[cam.width, cam.height],
                             camera_xyz=rr.ViewCoordinates.RDF, image_plane_distance=0.12), static=static)


def log_camera_frame(rec: "rr.RecordingStream", view: str, image: np.ndarray, jpeg_quality: int | None = None) -> None:
    """The camera frame ``(H, W, 3)`` uint8 RGB of ``view`` (JPEG-compressed with ``jpeg_quality``)."""
    img = rr.Image(np.ascontiguousarray(image), color_model="RGB")
    rec.log(paths.camera_image(view), img.compress(jpeg_quality=jpeg_quality) if jpeg_quality else img)


def log_overlay(rec: "rr.RecordingStream", view: str, overlay: np.ndarray) -> None:
    """The predicted action images drawn over the camera frame ``(H, W, 3)`` uint8 (camera resolution,
    ``ros.action_video.overlay_on_frame`` / ``codec.overlay_action_images``)."""
    rec.log(paths.overlay(view), rr.Image(np.ascontiguousarray(overlay), color_model="RGB"))


def log_prediction_images(rec: "rr.RecordingStream", view: str, action_images: np.ndarray | None = None,
                          future_rgb: np.ndarray | None = None) -> None:
    """One view's generated keyframes, tiled (:func:`tile_frames`): the action images ``(F, S, S, 3)``
    (float in [0, 1] or uint8) and the generated RGB frames ``(F, S, S, 3)``, at model resolution."""
    if action_images is not None:
        rec.log(paths.action_images(view), rr.Image(tile_frames(_to_uint8(action_images)), color_model="RGB"))
    if future_rgb is not None:
        rec.log(paths.future_rgb(view), rr.Image(tile_frames(_to_uint8(future_rgb)), color_model="RGB"))


def log_keyframes(rec: "rr.RecordingStream", keyframes: np.ndarray, confidence: np.ndarray,
                  start_pose: np.ndarray | None = None, axis_length: float = 0.05) -> None:
    """Decoded keyframes ``(F, 8)`` in 3D: tool axes per keyframe (x red, y green, z blue), the
    positions coloured by ``confidence (F,)``, and the path from ``start_pose (8,)`` (the state the
    prediction started from) through them, each segment coloured by the confidence of its end."""
    a = np.asarray(keyframes, dtype=np.float64).reshape(-1, 8)
    c = np.asarray(confidence, dtype=np.float64).reshape(-1)
    if len(c) != len(a):
        raise ValueError(f"confidence must have one value per keyframe ({len(a)}), got {len(c)}")
    ok = np.all(np.isfinite(a), axis=1) & (np.linalg.norm(a[:, 3:7], axis=1) > 1e-6)
    a, c = a[ok], c[ok]
    colours = confidence_colours(c)
    if len(a) == 0:
        for p in (paths.KEYFRAME_AXES, paths.KEYFRAME_POINTS, paths.KEYFRAME_PATH):
            rec.log(p, rr.Clear(recursive=False))
        return
    R = quat_to_matrix(a[:, 3:7] / np.linalg.norm(a[:, 3:7], axis=1, keepdims=True))  # (F, 3, 3)
    origins = np.repeat(a[:, :3], 3, axis=0)
    vectors = axis_length * np.transpose(R, (0, 2, 1)).reshape(-1, 3)  # columns x, y, z per keyframe
    rec.log(paths.KEYFRAME_AXES, rr.Arrows3D(origins=origins, vectors=vectors,
                                             colors=np.tile(_AXIS_COLOURS, (len(a), 1)), radii=0.002))
    rec.log(paths.KEYFRAME_POINTS, rr.Points3D(a[:, :3], colors=colours, radii=0.008,
                                               labels=[f"k{k + 1} c={ci:.2f}" for k, ci in enumerate(c)]))
    pts = a[:, :3]
    if start_pose is not None and np.all(np.isfinite(start_pose)):
        pts = np.concatenate([np.asarray(start_pose, dtype=np.float64)[None, :3], pts])
        seg_colours = colours
    else:
        seg_colours = colours[1:]
    rec.log(paths.KEYFRAME_PATH, rr.LineStrips3D([pts[i:i + 2] for i in range(len(pts) - 1)],
                                                 colors=seg_colours, radii=0.003))


def log_tcp(rec: "rr.RecordingStream", which: str, pose: np.ndarray, axis_length: float | None = None) -> None:
    """The TCP pose ``(7,)`` or ``(8,)`` as axes: ``which`` is ``"measured"`` or ``"commanded"``; with an
    8th value (the gripper) it is logged as that signal too."""
    p = np.asarray(pose, dtype=np.float64).reshape(-1)
    if p.shape[0] not in (7, 8) or not np.all(np.isfinite(p[:7])) or np.linalg.norm(p[3:7]) < 1e-6:
        raise ValueError(f"pose must be 7 or 8 finite values [x y z qx qy qz qw (g)], got {p.tolist()}")
    path = paths.tcp(which)
    rec.log(path, rr.Transform3D(translation=p[:3], quaternion=rr.Quaternion(xyzw=p[3:7] / np.linalg.norm(p[3:7]))))
    rec.log(path, rr.TransformAxes3D(axis_length if axis_length else (0.1 if which == "measured" else 0.06)))
    if p.shape[0] == 8:
        log_gripper(rec, which, float(p[7]))


def log_gripper(rec: "rr.RecordingStream", which: str, openness: float) -> None:
    """Gripper openness (1 = open) as a time series: ``measured``, ``commanded`` or ``predicted``."""
    rec.log(paths.gripper(which), rr.Scalars(float(openness)))


def log_prediction_stats(rec: "rr.RecordingStream", keyframes: np.ndarray, confidence: np.ndarray,
                         latency_s: float | None = None) -> None:
    """Per prediction: decoder confidence (first and lowest keyframe), the first keyframe's gripper,
    and the model call's latency (ms) when known."""
    c = np.asarray(confidence, dtype=np.float64).reshape(-1)
    a = np.asarray(keyframes, dtype=np.float64).reshape(-1, 8)
    if len(c):
        rec.log(paths.confidence("first"), rr.Scalars(float(c[0])))
        rec.log(paths.confidence("min"), rr.Scalars(float(np.min(c))))
    if len(a):
        log_gripper(rec, "predicted", float(a[0, 7]))
    if latency_s is not None:
        rec.log(paths.LATENCY, rr.Scalars(1000.0 * float(latency_s)))


def log_event(rec: "rr.RecordingStream", text: str, level: str = "INFO") -> None:
    """One line in the event log (episodes, refusals, failures)."""
    rec.log(paths.EVENTS, rr.TextLog(text, level=level))


def log_instruction(rec: "rr.RecordingStream", text: str, static: bool = False) -> None:
    """What the policy is asked to do."""
    rec.log(paths.INSTRUCTION, rr.TextDocument(text), static=static)
