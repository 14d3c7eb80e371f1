"""RViz markers of a decoded trajectory: gripper axes per step, the path, the gripper state."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from ..geometry import quat_to_matrix

__all__ = ["trajectory_markers"]

_AXIS_COLOURS = ((1.0, 0.1, 0.1), (0.1, 0.9, 0.1), (0.2, 0.4, 1.0))  # tool x, y, z = red, green, blue


def _point(p) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def trajectory_markers(actions: np.ndarray, confidence: np.ndarray, frame_id: str, stamp,
                       axis_length: float = 0.05) -> MarkerArray:
    """A ``MarkerArray`` for a trajectory ``(T, 8)`` with confidence ``(T,)``.

    Contents: a DELETEALL (clears the previous trajectory); per step three arrows along the tool
    x / y / z axes (red / green / blue, ``axis_length`` m, opacity 0.25 + 0.75 * confidence;
    namespace ``axes``); a line strip through the positions (``path``); per step a sphere,
    green when the gripper is open and orange when closed (``gripper``). Steps with non-finite
    values are left out.
    """
    a = np.asarray(actions, dtype=np.float64)
    c = np.clip(np.nan_to_num(np.asarray(confidence, dtype=np.float64)), 0.0, 1.0)
    out = MarkerArray()
    clear = Marker(action=Marker.DELETEALL)
    clear.header.frame_id, clear.header.stamp = frame_id, stamp
    out.markers.append(clear)
    ok = [t for t in range(len(a)) if np.all(np.isfinite(a[t])) and np.linalg.norm(a[t, 3:7]) > 1e-6]

    def marker(ns: str, mid: int, mtype: int) -> Marker:
        m = Marker(ns=ns, id=mid, type=mtype, action=Marker.ADD)
        m.header.frame_id, m.header.stamp = frame_id, stamp
        m.pose.orientation.w = 1.0
        return m

    for t in ok:
        R = quat_to_matrix(a[t, 3:7] / np.linalg.norm(a[t, 3:7]))
        alpha = float(0.25 + 0.75 * c[t])
        for k, rgb in enumerate(_AXIS_COLOURS):
            m = marker("axes", 3 * t + k, Marker.ARROW)
            m.points = [_point(a[t, :3]), _point(a[t, :3] + axis_length * R[:, k])]
            m.scale.x, m.scale.y, m.scale.z = 0.004, 0.008, 0.01  # shaft, head diameters, head length
            m.color = ColorRGBA(r=rgb[0], g=rgb[1], b=rgb[2], a=alpha)
            out.markers.append(m)
        s = marker("gripper", t, Marker.SPHERE)
        s.pose.position = _point(a[t, :3])
        s.scale.x = s.scale.y = s.scale.z = 0.015
        s.color = (ColorRGBA(r=0.2, g=0.9, b=0.3, a=alpha) if a[t, 7] > 0.5
                   else ColorRGBA(r=1.0, g=0.5, b=0.0, a=alpha))
        out.markers.append(s)
    if len(ok) >= 2:
        line = marker("path", 0, Marker.LINE_STRIP)
        line.points = [_point(a[t, :3]) for t in ok]
        line.scale.x = 0.003
        line.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=0.8)
        out.markers.append(line)
    return out
