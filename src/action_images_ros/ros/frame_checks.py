"""Border checks of camera messages, before they are queued or converted (a reason, or None if fine).

A message that fails is dropped where it arrives, so an oversized image is freed at once and a
NaN focal length never reaches the geometry (``camera_info.info_to_camera`` checks the rest).
"""

from __future__ import annotations

import math

from sensor_msgs.msg import CameraInfo, Image

from .image_conversions import ImageConversionError, encoding_info

__all__ = ["frame_problem", "MAX_IMAGE_PIXELS"]

#: largest image accepted (pixels): 1920 x 1080 colour is the largest D4xx stream; twice that is headroom
MAX_IMAGE_PIXELS = 2 * 1920 * 1080


def frame_problem(msg, max_pixels: int = MAX_IMAGE_PIXELS) -> str | None:
    """Why an ``Image`` / ``CameraInfo`` cannot be used (size, data length, non-finite intrinsics), or None."""
    w, h = int(msg.width), int(msg.height)
    if w <= 0 or h <= 0:
        return f"empty size {w}x{h}"
    if w * h > max_pixels:
        return f"{w}x{h} = {w * h} pixels, more than {max_pixels} (max_image_pixels)"
    if isinstance(msg, Image):
        try:
            encoding_info(msg.encoding)
        except ImageConversionError as exc:
            return str(exc)
        if len(msg.data) != int(msg.step) * h:
            return f"data has {len(msg.data)} bytes, expected step {msg.step} x height {h}"
    elif isinstance(msg, CameraInfo):
        values = list(msg.k) + list(msg.d) + list(msg.p)
        if not all(math.isfinite(v) for v in values):
            return "non-finite (NaN/inf) values in K, D or P"
        if not (msg.k[0] > 0 and msg.k[4] > 0):
            return f"focal lengths must be positive, got fx {msg.k[0]} fy {msg.k[4]}"
    return None
