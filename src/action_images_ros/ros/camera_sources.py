"""Multi-view frame sources for camera_node (no ROS): an episode replay, RealSense.

Every source yields :class:`FrameSet` objects, one image per view taken at (about) the
same time, and knows its calibrated :class:`~action_images_ros.geometry.Camera` per view
(intrinsics of the delivered images, extrinsics camera -> robot base frame). camera_node
stamps each set once and publishes it; the sources never touch ROS.

* :class:`ReplaySource` plays back an episode file (``data.load_episode``), one row per read.
* :class:`RealSenseSource` streams the colour sensor (rgb8) of several RealSense cameras
  (pyrealsense2 devices, found by serial with :func:`find_realsense_devices`); intrinsics come
  from the device, extrinsics from the rig YAML. Works with ``rs.software_device`` too, which
  is how it is tested without hardware. Each set carries its capture time on the host clock
  (``FrameSet.stamp_s``) when the devices report global or system time.

The simulated cell is not a frame source: it owns the arm and the clock, so it is its own node
(``ros/nodes/sim_node.py`` around ``sim.cell.SimulatedCell``).
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from ..geometry import Camera

__all__ = ["FrameSet", "FrameSource", "ReplaySource", "RealSenseSource", "RealSenseUnavailable",
           "find_realsense_devices", "camera_from_intrinsics"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class FrameSet:
    """One synchronised multi-view capture.

    Attributes:
        images: per view an ``(H, W, 3)`` uint8 RGB image, in the source's view order.
        ee_pose: ``(8,)`` measured TCP pose ``[x y z qx qy qz qw gripper]`` (base frame) when the
            source knows it (replay), else None.
        source_time_s: the source's own clock for this set (episode time, device timestamp), for logs.
        stamp_s: capture time on the host clock (seconds since the Unix epoch, the clock ROS time
            uses without sim time) when the source knows it, else None (camera_node then stamps
            with the arrival time). RealSense: the newest view's frame timestamp, when every view
            reports ``global_time`` or ``system_time``.
        time_domain: where ``source_time_s`` comes from (RealSense: ``global_time``,
            ``system_time`` or ``hardware_clock``; None for other sources).
        info: source-specific extras (replay: ``row``; RealSense: ``device_spread_ms``).
    """

    images: list[np.ndarray]
    ee_pose: np.ndarray | None = None
    source_time_s: float | None = None
    stamp_s: float | None = None
    time_domain: str | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


class FrameSource(abc.ABC):
    """A multi-view camera. ``read()`` blocks until the next set (or returns None when there is none)."""

    @property
    @abc.abstractmethod
    def cameras(self) -> list[Camera]:
        """Calibrated view per image (size = delivered image size; T_world_cam in the base frame)."""

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]

    @property
    @abc.abstractmethod
    def period_s(self) -> float:
        """Nominal seconds between sets (camera_node paces a replay with it)."""

    @abc.abstractmethod
    def read(self, timeout_s: float = 1.0) -> FrameSet | None:
        """The next set; None on timeout (RealSense) or at the end (replay without loop)."""

    def close(self) -> None:
        """Release devices / renderers (idempotent)."""


# ---------------------------------------------------------------------------- replay
class ReplaySource(FrameSource):
    """Plays an episode file row by row (views, measured pose) at its ``control_dt``.

    Args:
        path: an episode ``.h5`` (``data.load_episode``).
        loop: start again after the last row (else ``read`` returns None at the end).
    """

    def __init__(self, path: str | Path, loop: bool = True) -> None:
        from ..data.episode import load_episode

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"episode file not found: {path}")
        self.episode = load_episode(path, load_depth=False)
        self.loop = bool(loop)
        self._row = 0

    @property
    def cameras(self) -> list[Camera]:
        return list(self.episode.cameras)

    @property
    def period_s(self) -> float:
        return float(self.episode.control_dt)

    def read(self, timeout_s: float = 1.0) -> FrameSet | None:
        ep = self.episode
        if self._row >= ep.num_steps:
            if not self.loop:
                return None
            self._row = 0
        row = self._row
        self._row += 1
        return FrameSet(images=list(ep.rgb[row]), ee_pose=ep.ee_pose[row].astype(np.float64),
                        source_time_s=float(ep.time[row]),
                        info={"row": row, "rows": ep.num_steps, "instruction": ep.instruction})


# ---------------------------------------------------------------------------- realsense
class RealSenseUnavailable(RuntimeError):
    """pyrealsense2 missing, or a requested camera / stream not found (the message says which)."""


def _rs():
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise RealSenseUnavailable(
            "camera source 'realsense' needs pyrealsense2 (pip install pyrealsense2; Debian libusb-1.0-0)") from exc
    return rs


def find_realsense_devices(serials: Sequence[str], context=None) -> list:
    """The connected RealSense devices with these serial numbers, in the same order.

    Raises:
        RealSenseUnavailable: a serial is not connected (the message lists the connected ones).
    """
    rs = _rs()
    ctx = context if context is not None else rs.context()
    found = {d.get_info(rs.camera_info.serial_number): d for d in ctx.query_devices()}
    missing = [s for s in serials if s not in found]
    if missing:
        raise RealSenseUnavailable(f"RealSense camera(s) {missing} not connected; connected: "
                                   f"{sorted(found) or 'none'} (check USB 3 cables and udev rules)")
    return [found[s] for s in serials]


def camera_from_intrinsics(intr, T_world_cam: np.ndarray, name: str) -> tuple[Camera, tuple | None]:
    """``geometry.Camera`` from ``rs.intrinsics`` plus extrinsics, and an undistortion map if needed.

    Returns:
        ``(camera, maps)``: ``maps`` is None when the stream is undistorted (all coefficients 0);
        for ``brown_conrady`` (OpenCV's model) it is the ``cv2.remap`` pair that rectifies the
        image to ``camera.K`` (the codec needs ideal pinholes).

    Raises:
        RealSenseUnavailable: non-zero coefficients of a model other than brown_conrady.
    """
    rs = _rs()
    K = np.array([[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]])
    cam = Camera(K=K, T_world_cam=np.asarray(T_world_cam, dtype=np.float64), width=int(intr.width),
                 height=int(intr.height), name=name)
    coeffs = np.asarray(list(intr.coeffs), dtype=np.float64)
    if not np.any(np.abs(coeffs) > 1e-9):
        return cam, None
    if intr.model != rs.distortion.brown_conrady:
        raise RealSenseUnavailable(f"camera {name!r}: distortion model {intr.model} with coefficients "
                                   f"{coeffs.tolist()} cannot be rectified here (only brown_conrady)")
    maps = cv2.initUndistortRectifyMap(K, coeffs, None, K, (cam.width, cam.height), cv2.CV_16SC2)
    return cam, maps


class RealSenseSource(FrameSource):
    """Colour streams of several RealSense cameras, read as one set per frame period.

    Args:
        devices: ``rs.device`` objects, one per view (``find_realsense_devices`` or software devices).
        rig: calibrated cameras of the cell; view ``i`` takes the extrinsics of ``rig`` camera ``names[i]``.
        names: view names (default: the rig's names in order, one per device).
        width, height, fps: colour stream to open (rgb8).
        hardware_sync: set ``inter_cam_sync_mode`` (first camera master = 1, others slave = 2) where
            the sensor supports it; otherwise the views are matched by arrival only.

    Capture times: ``rs.option.global_time_enabled`` is switched on where the sensor supports it,
    so frame timestamps are on the host clock (``global_time``) and become ``FrameSet.stamp_s``.
    With ``hardware_clock`` timestamps (the device's own clock) ``stamp_s`` is None.
    """

    def __init__(self, devices: Sequence, rig: Sequence[Camera], names: Sequence[str] | None = None,
                 width: int = 640, height: int = 480, fps: int = 30, hardware_sync: bool = False) -> None:
        rs = _rs()
        if not devices:
            raise RealSenseUnavailable("no RealSense devices given")
        by_name = {c.name: c for c in rig}
        names = list(names) if names else [c.name for c in rig][: len(devices)]
        if len(names) != len(devices):
            raise ValueError(f"{len(devices)} RealSense devices but {len(names)} view names {names}")
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"view(s) {unknown} are not in the rig {sorted(by_name)}")
        self._rs = rs
        self._fps = int(fps)
        self._sensors, self._queues, self._cameras, self._maps = [], [], [], []
        try:
            for i, (dev, name) in enumerate(zip(devices, names)):
                sensor, profile = self._colour_profile(rs, dev, name, width, height, fps)
                if hardware_sync:
                    self._set_sync(rs, sensor, name, 1 if i == 0 else 2)
                self._enable_global_time(rs, sensor, name)
                cam, maps = camera_from_intrinsics(profile.get_intrinsics(), by_name[name].T_world_cam, name)
                queue = rs.frame_queue(2)  # keep only the newest frames; read() drains to the latest
                sensor.open(profile)
                sensor.start(queue)
                self._sensors.append(sensor)
                self._queues.append(queue)
                self._cameras.append(cam)
                self._maps.append(maps)
        except Exception:
            self.close()
            raise
        self._last_numbers: list[int | None] = [None] * len(self._queues)

    @staticmethod
    def _colour_profile(rs, dev, name, width, height, fps):
        available = []
        for sensor in dev.query_sensors():
            for prof in sensor.get_stream_profiles():
                if prof.stream_type() != rs.stream.color or not prof.is_video_stream_profile():
                    continue
                vp = prof.as_video_stream_profile()
                available.append(f"{vp.width()}x{vp.height()}@{vp.fps()} {vp.format()}")
                if (vp.width(), vp.height(), vp.fps(), vp.format()) == (width, height, fps, rs.format.rgb8):
                    return sensor, vp
        serial = dev.get_info(rs.camera_info.serial_number) if dev.supports(rs.camera_info.serial_number) else "?"
        raise RealSenseUnavailable(f"camera {name!r} (serial {serial}) has no rgb8 colour stream "
                                   f"{width}x{height}@{fps}; available: {available or 'no colour stream'}")

    @staticmethod
    def _set_sync(rs, sensor, name, mode):
        if sensor.supports(rs.option.inter_cam_sync_mode):
            sensor.set_option(rs.option.inter_cam_sync_mode, mode)
        else:
            logger.warning("camera %r does not support hardware sync (inter_cam_sync_mode); matching by arrival",
                           name)

    @staticmethod
    def _enable_global_time(rs, sensor, name):
        if not sensor.supports(rs.option.global_time_enabled):
            return
        try:
            sensor.set_option(rs.option.global_time_enabled, 1.0)
        except RuntimeError as exc:  # read-only on some firmware
            logger.warning("camera %r: could not enable global time (%s); frames may carry device-clock "
                           "timestamps", name, exc)

    @property
    def cameras(self) -> list[Camera]:
        return list(self._cameras)

    @property
    def period_s(self) -> float:
        return 1.0 / self._fps

    def read(self, timeout_s: float = 1.0) -> FrameSet | None:
        """The newest frame of every camera, each newer than the one of the previous set."""
        deadline = time.monotonic() + timeout_s
        images, stamps, domains = [], [], []
        for i, queue in enumerate(self._queues):
            frame = None
            while True:  # drain to the newest frame, waiting for one newer than the last set's
                f = queue.poll_for_frame()
                if f:
                    if self._last_numbers[i] is None or f.get_frame_number() != self._last_numbers[i]:
                        frame = f
                    continue
                if frame is not None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                ok, f = queue.try_wait_for_frame(int(max(1, remaining * 1000)))
                if ok:
                    frame = f
                    continue
                return None
            vf = frame.as_video_frame()
            img = np.array(np.asanyarray(vf.get_data()), dtype=np.uint8, copy=True)
            if self._maps[i] is not None:
                img = cv2.remap(img, *self._maps[i], interpolation=cv2.INTER_LINEAR)
            self._last_numbers[i] = vf.get_frame_number()
            images.append(img)
            stamps.append(vf.get_timestamp())  # ms
            domains.append(vf.get_frame_timestamp_domain())
        host = (self._rs.timestamp_domain.global_time, self._rs.timestamp_domain.system_time)
        other = [d for d in domains if d not in host]  # one view on the device clock spoils the set's stamp
        newest_s = max(stamps) * 1e-3
        return FrameSet(images=images, source_time_s=newest_s, stamp_s=None if other else newest_s,
                        time_domain=(other or domains)[0].name, info={"device_spread_ms": max(stamps) - min(stamps)})

    def close(self) -> None:
        for sensor in getattr(self, "_sensors", []):
            try:
                sensor.stop()
                sensor.close()
            except RuntimeError as exc:  # already stopped / device unplugged
                logger.debug("closing a RealSense sensor: %s", exc)
        self._sensors = []
