"""Entity paths of the view: one per camera and per signal (the blueprint and the tests use these names).

::

    world                               z-up, the robot base frame
    world/cell/...                      the cell's URDF (table, camera bodies)
    world/cameras/<view>                camera pose (Transform3D) + pinhole
    world/cameras/<view>/image          the camera frame
    world/cameras/<view>/overlay        predicted action images over the frame (camera resolution)
    world/prediction/{axes,points,path} decoded keyframes: tool axes, positions and path by confidence
    world/tcp/{measured,commanded}      TCP axes
    views/<view>/action_images          the F predicted action images, tiled (model resolution)
    views/<view>/future_rgb             the F generated frames, tiled
    signals/gripper/{measured,commanded,predicted}, signals/confidence/{first,min}, signals/latency_ms
    events                              text log (episodes, refusals, failure modes)
    instruction                         what the policy is asked to do
"""

from __future__ import annotations

__all__ = ["WORLD", "CELL", "KEYFRAME_AXES", "KEYFRAME_POINTS", "KEYFRAME_PATH", "LATENCY", "EVENTS", "INSTRUCTION",
           "SIGNALS", "camera", "camera_image", "overlay", "action_images", "future_rgb", "tcp", "gripper",
           "confidence"]

WORLD = "world"
CELL = "world/cell"
KEYFRAME_AXES = "world/prediction/axes"
KEYFRAME_POINTS = "world/prediction/points"
KEYFRAME_PATH = "world/prediction/path"
SIGNALS = "signals"
LATENCY = "signals/latency_ms"
EVENTS = "events"
INSTRUCTION = "instruction"


def camera(view: str) -> str:
    return f"world/cameras/{view}"


def camera_image(view: str) -> str:
    return f"world/cameras/{view}/image"


def overlay(view: str) -> str:
    return f"world/cameras/{view}/overlay"


def action_images(view: str) -> str:
    return f"views/{view}/action_images"


def future_rgb(view: str) -> str:
    return f"views/{view}/future_rgb"


def tcp(which: str) -> str:
    if which not in ("measured", "commanded"):
        raise ValueError(f"tcp must be 'measured' or 'commanded', got {which!r}")
    return f"world/tcp/{which}"


def gripper(which: str) -> str:
    if which not in ("measured", "commanded", "predicted"):
        raise ValueError(f"gripper must be 'measured', 'commanded' or 'predicted', got {which!r}")
    return f"signals/gripper/{which}"


def confidence(which: str) -> str:
    if which not in ("first", "min"):
        raise ValueError(f"confidence must be 'first' or 'min', got {which!r}")
    return f"signals/confidence/{which}"
