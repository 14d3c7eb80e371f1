"""Preview frames of a recorded episode: all views side by side with action-image overlays.

Used by ``action-images show-episode`` so a person can check that the action
blobs (red = EE position, green = tool x point, blue = approach-axis point)
sit on the gripper in every view.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..codec import ActionImageCodec, overlay_action_images
from .clips import resolve_views
from .episode import Episode

CAPTION_PX = 18  # caption strip height at scale 1 (scaled with the frame)
VIDEO_SUFFIXES = (".mp4", ".gif")


def overlay_frames(
    episode: Episode,
    source: str = "ee_pose",
    views: Sequence[str | int] | None = None,
    every: int = 1,
    scale: int = 2,
    chunk: int = 32,
) -> np.ndarray:
    """Compose preview frames.

    Args:
        episode: a loaded episode.
        source: ``"ee_pose"`` (measured pose, should sit on the gripper) or
            ``"action"`` (the commanded target of that row).
        views: camera names or indices (``None`` = all).
        every: use every n-th row.
        scale: integer upscaling of each view for visibility.
        chunk: rows encoded at once (bounds memory).

    Returns:
        uint8 ``(T', (H + caption) * scale, V * W * scale, 3)``, views left to right.
    """
    if source not in ("ee_pose", "action"):
        raise ValueError(f"source must be 'ee_pose' or 'action', got {source!r}")
    if every < 1 or scale < 1 or chunk < 1:
        raise ValueError(f"every, scale and chunk must be >= 1, got {every}, {scale}, {chunk}")
    idx = resolve_views(views, episode.camera_names)
    cams = [episode.cameras[v] for v in idx]
    rows = np.arange(0, episode.num_steps, every)
    T, V, H, W, _ = episode.rgb.shape
    codec = ActionImageCodec(H, W)
    poses = getattr(episode, source)
    cap = CAPTION_PX * scale
    out = np.zeros((len(rows), H * scale + cap, len(idx) * W * scale, 3), dtype=np.uint8)
    for start in range(0, len(rows), chunk):
        sel = rows[start:start + chunk]
        act = codec.encode(poses[sel], cams)  # (V', n, H, W, 3)
        rgb = np.ascontiguousarray(episode.rgb[sel][:, idx].transpose(1, 0, 2, 3, 4))
        over = overlay_action_images(rgb, act)
        for j, t in enumerate(sel):
            frame = out[start + j]
            for k in range(len(idx)):
                view = cv2.resize(over[k, j], (W * scale, H * scale), interpolation=cv2.INTER_NEAREST)
                frame[cap:, k * W * scale:(k + 1) * W * scale] = view
                _text(frame, cams[k].name, (k * W * scale + 3, cap + 12 * scale // 2 + 4), 0.35 * scale)
            g = poses[t, 7]
            caption = (f"{episode.task} seed {episode.seed} | step {t}/{T - 1} | {source} g={g:.2f} | "
                       f"{'success' if episode.success else 'FAILED'}")
            _text(frame, caption, (3, cap - 5 * scale // 2 - 1), 0.35 * scale, max_width=frame.shape[1] - 6)
    return out


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, max_width: int | None = None) -> None:
    if max_width is not None:  # shrink the font until the text fits
        width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
        scale *= min(1.0, max_width / max(width, 1))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def write_video(frames: np.ndarray, path: str | Path, fps: float) -> Path:
    """Write uint8 frames ``(T, H, W, 3)`` to an ``.mp4`` (H.264 via imageio-ffmpeg) or ``.gif``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"output must end in one of {list(VIDEO_SUFFIXES)}, got {path.name!r}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        imageio.mimsave(path, list(frames), duration=1000.0 / fps, loop=0)
        return path
    # H.264 wants sizes divisible by 16 (macro blocks): pad with black instead of letting ffmpeg rescale.
    T, H, W, _ = frames.shape
    padded = np.zeros((T, -(-H // 16) * 16, -(-W // 16) * 16, 3), dtype=np.uint8)
    padded[:, :H, :W] = frames
    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                            pixelformat="yuv420p", macro_block_size=16, quality=7) as writer:
        for frame in padded:
            writer.append_data(frame)
    return path
