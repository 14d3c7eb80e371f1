"""The default layout (Rerun blueprint): what a recording opens to.

Left: the cell in 3D (URDF, camera frustums with their live frames, decoded keyframes as axes
and a path coloured by confidence, measured and commanded TCP) above the time series (gripper
measured / commanded / predicted, decoder confidence, model latency). Right, one column per
camera: the predicted action images over the frame, the action images alone (the F keyframes
tiled), the generated frames, and the event log.
"""

from __future__ import annotations

from typing import Sequence

from . import paths
from ._rerun import rrb
from .log import ROS_TIME

__all__ = ["default_blueprint"]


def default_blueprint(views: Sequence[str], timeline: str = ROS_TIME, time_series: bool = True) -> "rrb.Blueprint":
    """The layout for cameras ``views`` (in rig order), opening on ``timeline`` at its latest time
    (following: a live view shows the newest prediction, a file its last)."""
    views = list(views)
    if not views:
        raise ValueError("the blueprint needs at least one camera view")
    scene = rrb.Spatial3DView(
        origin=paths.WORLD, name="cell: keyframes, TCP, cameras",
        contents=[f"{paths.WORLD}/**"] + [f"- {paths.overlay(v)}" for v in views],
        # the workspace (x 0.3..0.8 m, y +-0.25 m, z 0..0.45 m) seen from the front-right, above the table
        eye_controls=rrb.EyeControls3D(position=(2.1, -1.5, 1.3), look_target=(0.5, 0.0, 0.2), eye_up=(0, 0, 1)))
    left = [scene]
    if time_series:  # openness and confidence share 0..1; the model's latency (ms) gets its own tab
        left.append(rrb.Tabs(
            rrb.TimeSeriesView(origin=paths.SIGNALS, name="gripper, confidence",
                               contents=[f"{paths.SIGNALS}/gripper/**", f"{paths.SIGNALS}/confidence/**"]),
            rrb.TimeSeriesView(origin=paths.LATENCY, name="model latency (ms)")))
    columns = []
    for v in views:
        columns.append(rrb.Vertical(
            rrb.Spatial2DView(origin=paths.camera(v), contents=[paths.overlay(v)], name=f"{v}: action images on frame"),
            rrb.Spatial2DView(origin=paths.action_images(v), name=f"{v}: action images"),
            rrb.Spatial2DView(origin=paths.future_rgb(v), name=f"{v}: generated frames"),
        ))
    notes = rrb.Tabs(rrb.TextLogView(origin=paths.EVENTS, name="events"),
                     rrb.TextDocumentView(origin=paths.INSTRUCTION, name="instruction / outcome"))
    right = rrb.Vertical(rrb.Horizontal(*columns), notes, row_shares=[5, 1])
    return rrb.Blueprint(
        rrb.Horizontal(rrb.Vertical(*left, row_shares=[3, 1][:len(left)]), right, column_shares=[2, 3]),
        rrb.TimePanel(timeline=timeline, play_state="following", state="collapsed"),
        collapse_panels=True,
    )
