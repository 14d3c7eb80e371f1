"""numpy <-> ``sensor_msgs/msg/Image`` (a small cv_bridge replacement; cv_bridge is not on PyPI).

Supported encodings (``sensor_msgs/image_encodings``):

* colour: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``rgb16``, ``bgr16``, ``rgba16``, ``bgra16``
* mono: ``mono8``, ``mono16``
* generic: ``{8U,8S,16U,16S,32S,32F,64F}C{1,2,3,4}`` (e.g. ``32FC1`` metric depth,
  ``16UC1`` depth in millimetres)

Arrays are ``(H, W)`` for one channel and ``(H, W, C)`` otherwise, C-contiguous,
native byte order. Messages written here are tightly packed (``step = W * C *
itemsize``) in the machine's byte order; messages read here may have padded rows
(``step`` larger than the packed row) and either byte order (``is_bigendian``).
The returned array never aliases the message buffer.
"""

from __future__ import annotations

import array
import re
import sys

import cv2
import numpy as np
from sensor_msgs.msg import Image

__all__ = ["ImageConversionError", "ENCODINGS", "encoding_info", "image_to_msg", "msg_to_image"]


class ImageConversionError(ValueError):
    """An image or message that cannot be converted (unknown encoding, wrong size or dtype)."""


_NAMED = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "rgb16": (np.uint16, 3), "bgr16": (np.uint16, 3), "rgba16": (np.uint16, 4), "bgra16": (np.uint16, 4),
    "mono8": (np.uint8, 1), "mono16": (np.uint16, 1),
}
_GENERIC = re.compile(r"^(8U|8S|16U|16S|32S|32F|64F)C([1-4])$")
_GENERIC_DTYPES = {"8U": np.uint8, "8S": np.int8, "16U": np.uint16, "16S": np.int16,
                   "32S": np.int32, "32F": np.float32, "64F": np.float64}

#: Every encoding name accepted (the generic ones as patterns).
ENCODINGS = tuple(_NAMED) + tuple(f"{d}C{c}" for d in _GENERIC_DTYPES for c in range(1, 5))

# Colour conversions offered by msg_to_image(desired_encoding=...): (source, target) -> cv2 code.
_COLOUR_CODES = {
    ("rgb8", "bgr8"): cv2.COLOR_RGB2BGR, ("bgr8", "rgb8"): cv2.COLOR_BGR2RGB,
    ("rgba8", "rgb8"): cv2.COLOR_RGBA2RGB, ("bgra8", "rgb8"): cv2.COLOR_BGRA2RGB,
    ("rgba8", "bgr8"): cv2.COLOR_RGBA2BGR, ("bgra8", "bgr8"): cv2.COLOR_BGRA2BGR,
    ("rgb8", "mono8"): cv2.COLOR_RGB2GRAY, ("bgr8", "mono8"): cv2.COLOR_BGR2GRAY,
    ("mono8", "rgb8"): cv2.COLOR_GRAY2RGB, ("mono8", "bgr8"): cv2.COLOR_GRAY2BGR,
    ("rgba8", "mono8"): cv2.COLOR_RGBA2GRAY, ("bgra8", "mono8"): cv2.COLOR_BGRA2GRAY,
}


def encoding_info(encoding: str) -> tuple[np.dtype, int]:
    """``(dtype, channels)`` of a ROS image encoding; raises ImageConversionError if unsupported."""
    if encoding in _NAMED:
        dtype, channels = _NAMED[encoding]
        return np.dtype(dtype), channels
    m = _GENERIC.match(encoding or "")
    if m:
        return np.dtype(_GENERIC_DTYPES[m.group(1)]), int(m.group(2))
    raise ImageConversionError(
        f"unsupported image encoding {encoding!r}; supported: {', '.join(_NAMED)} and "
        "{8U,8S,16U,16S,32S,32F,64F}C{1..4}"
    )


def _default_encoding(img: np.ndarray) -> str:
    channels = 1 if img.ndim == 2 else img.shape[2]
    if img.dtype == np.uint8 and channels == 3:
        return "rgb8"
    if img.dtype == np.uint8 and channels == 1:
        return "mono8"
    if img.dtype == np.uint8 and channels == 4:
        return "rgba8"
    for code, dt in _GENERIC_DTYPES.items():
        if img.dtype == dt:
            return f"{code}C{channels}"
    raise ImageConversionError(f"no ROS image encoding for dtype {img.dtype}; use uint8/16, int8/16/32 or float32/64")


def image_to_msg(image: np.ndarray, encoding: str | None = None, frame_id: str = "", stamp=None) -> Image:
    """Pack an array into a new ``sensor_msgs/Image``.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array; its dtype and channel count must match ``encoding``.
        encoding: ROS encoding; None picks one from the array (uint8 x3 -> ``rgb8``, uint8 x1 ->
            ``mono8``, float32 x1 -> ``32FC1``, uint16 x1 -> ``16UC1``, ...). The pixel data is
            never converted: an RGB array is sent as ``rgb8``, not re-ordered.
        frame_id: ``header.frame_id`` (e.g. the camera's optical frame).
        stamp: ``builtin_interfaces/Time`` for ``header.stamp`` (None leaves it zero).

    Raises:
        ImageConversionError: unsupported encoding, or dtype / shape not matching it.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageConversionError(f"image must have shape (H, W) or (H, W, C) with H, W > 0; got {img.shape}")
    encoding = encoding or _default_encoding(img)
    dtype, channels = encoding_info(encoding)
    got_channels = 1 if img.ndim == 2 else img.shape[2]
    if got_channels != channels:
        raise ImageConversionError(f"encoding {encoding!r} needs {channels} channel(s); image has shape {img.shape}")
    if img.dtype.newbyteorder("=") != dtype.newbyteorder("="):
        raise ImageConversionError(f"encoding {encoding!r} needs dtype {dtype}; image has dtype {img.dtype}")
    img = np.ascontiguousarray(img, dtype=dtype.newbyteorder("="))
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.step = int(img.shape[1] * channels * dtype.itemsize)
    buf = array.array("B")
    buf.frombytes(img.reshape(-1).view(np.uint8))  # one copy; array.array skips the setter's per-item checks
    msg.data = buf
    return msg


def msg_to_image(msg: Image, desired_encoding: str = "passthrough") -> np.ndarray:
    """Unpack a ``sensor_msgs/Image`` into a new array.

    Args:
        msg: the message; padded rows (``step`` > packed row) and big-endian data are handled.
        desired_encoding: ``"passthrough"`` keeps the message's encoding; otherwise one of the
            8-bit colour conversions among ``rgb8``, ``bgr8``, ``rgba8`` -> 3-channel, ``mono8``
            (or the message's own encoding, which is a no-op).

    Returns:
        ``(H, W)`` or ``(H, W, C)`` array in native byte order (owns its memory).

    Raises:
        ImageConversionError: unsupported encoding or conversion, or ``step`` / ``data`` sizes
            inconsistent with ``height``, ``width`` and the encoding.
    """
    dtype, channels = encoding_info(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * channels * dtype.itemsize
    if h <= 0 or w <= 0:
        raise ImageConversionError(f"image message has an empty size {w}x{h}")
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than one row of {w} px x {channels} ch x {dtype.itemsize} B = {row_bytes} B"
        )
    data = msg.data
    nbytes = len(data) * (data.itemsize if isinstance(data, array.array) else 1)
    if nbytes != step * h:
        raise ImageConversionError(
            f"data has {nbytes} bytes but height {h} x step {step} = {h * step} ({msg.encoding}, {w}x{h})"
        )
    order = ">" if msg.is_bigendian else "<"
    raw = np.frombuffer(data, dtype=np.uint8).reshape(h, step)[:, :row_bytes]
    img = raw.view(dtype.newbyteorder(order) if dtype.itemsize > 1 else dtype)
    img = img.reshape((h, w) if channels == 1 else (h, w, channels))
    img = np.array(img, dtype=dtype.newbyteorder("="), copy=True, order="C")
    if desired_encoding in ("passthrough", msg.encoding):
        return img
    code = _COLOUR_CODES.get((msg.encoding, desired_encoding))
    if code is None:
        raise ImageConversionError(
            f"cannot convert {msg.encoding!r} to {desired_encoding!r}; available from {msg.encoding!r}: "
            f"{sorted(t for s, t in _COLOUR_CODES if s == msg.encoding) or 'passthrough only'}"
        )
    return cv2.cvtColor(img, code)
