"""Files of one prediction: future videos per view, action-image overlays, a contact sheet of
recorded vs generated frames, and the decoded trajectory as JSON + CSV.

Used by ``action-images predict``. Frames are shown at the model's resolution,
enlarged by an integer factor (nearest neighbour, so pixels stay visible).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .clip_prediction import ClipTruth, ModeResult
from ..codec import overlay_action_images
from ..data.preview import write_video

POSE_COLUMNS = ("x", "y", "z", "qx", "qy", "qz", "qw", "gripper")
CAPTION_PX = 14  #: caption strip height at scale 1 of the text (grows with the font)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] -> uint8 (rounded); uint8 passes through."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)


def enlarge(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of ``(..., H, W, 3)`` by an integer ``scale``."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2) if scale > 1 else frames


def captioned(img: np.ndarray, text: str, height: int = 16) -> np.ndarray:
    """``img (H, W, 3)`` uint8 with a black caption strip of ``height`` px above it."""
    strip = np.zeros((height, img.shape[1], 3), dtype=np.uint8)
    scale = 0.4 * height / 16
    width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    scale *= min(1.0, (img.shape[1] - 4) / max(width, 1))
    cv2.putText(strip, text, (2, height - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([strip, img], axis=0)


def sequences(truth: ClipTruth, result: ModeResult) -> dict[str, np.ndarray]:
    """The uint8 sequences ``(V, 1 + F, S, S, 3)`` (current frame first) shown in the outputs.

    Keys: ``recorded``, ``generated`` (the given frames in ``label`` mode), ``recorded_actions``
    (recorded frames + action images of the recorded poses) and, where the mode has action
    images, ``predicted_actions`` (their action images over the frames of ``generated``).
    """
    now = truth.cond_rgb[:, None]
    out = {
        "recorded": np.concatenate([now, to_uint8(truth.future_rgb)], axis=1),
        "generated": np.concatenate([now, to_uint8(result.future_rgb)], axis=1),
    }
    now_act = truth.cond_action[:, None]
    out["recorded_actions"] = overlay_action_images(
        out["recorded"], np.concatenate([now_act, truth.future_action], axis=1))
    if result.future_action is not None:
        out["predicted_actions"] = overlay_action_images(
            out["generated"], np.concatenate([now_act, result.future_action], axis=1))
    return out


def contact_sheet(truth: ClipTruth, seqs: dict[str, np.ndarray], scale: int = 3) -> np.ndarray:
    """One uint8 image: per view, rows recorded / generated / overlays; columns now, +1 .. +F.

    Every tile is captioned with its view, row kind and episode row.
    """
    labels = {"recorded": "recorded", "generated": "generated", "recorded_actions": "recorded+true actions",
              "predicted_actions": "generated+predicted actions"}
    rows_idx = [truth.step] + [int(r) for r in truth.rows]
    lines = []
    for v, name in enumerate(truth.view_names):
        for key, label in labels.items():
            if key not in seqs:
                continue
            tiles = []
            for j, row in enumerate(rows_idx):
                when = "now" if j == 0 else f"+{j}"
                tile = enlarge(seqs[key][v, j], scale)
                tiles.append(captioned(tile, f"{name} {label} {when} (row {row})", height=8 + 4 * scale))
                tiles.append(np.full((tiles[-1].shape[0], 2, 3), 255, dtype=np.uint8))  # white gutter
            lines.append(np.concatenate(tiles[:-1], axis=1))
        lines.append(np.full((4, lines[-1].shape[1], 3), 255, dtype=np.uint8))  # white gap between views
    return np.concatenate(lines[:-1], axis=0)


def write_view_videos(out_dir: Path, truth: ClipTruth, seqs: dict[str, np.ndarray], fps: float, scale: int,
                      suffix: str = ".gif") -> list[Path]:
    """Per view: ``generated_<view><suffix>`` and, where present, ``overlay_<view><suffix>``.

    Frames: the current frame, then the ``F`` generated ones, each enlarged and captioned.
    """
    written = []
    rows_idx = [truth.step] + [int(r) for r in truth.rows]
    for key, stem in (("generated", "generated"), ("predicted_actions", "overlay")):
        if key not in seqs:
            continue
        for v, name in enumerate(truth.view_names):
            frames = np.stack([
                captioned(enlarge(seqs[key][v, j], scale),
                          f"{name} {'now' if j == 0 else f'+{j}'} (row {row})", height=8 + 4 * scale)
                for j, row in enumerate(rows_idx)
            ])
            written.append(write_video(frames, out_dir / f"{stem}_{name}{suffix}", fps))
    return written


def trajectory_rows(truth: ClipTruth, result: ModeResult, errors: dict[str, np.ndarray] | None,
                    control_dt: float) -> list[dict[str, Any]]:
    """One dict per future keyframe: decoded pose, confidence, recorded pose and errors."""
    rows = []
    for k, row in enumerate(truth.rows):
        entry: dict[str, Any] = {"k": k + 1, "row": int(row), "time_s": float((row - truth.step) * control_dt)}
        entry.update({c: float(x) for c, x in zip(POSE_COLUMNS, result.actions[k])})
        if result.confidence is not None:
            entry["confidence"] = float(result.confidence[k])
        entry.update({f"true_{c}": float(x) for c, x in zip(POSE_COLUMNS, truth.actions[k])})
        if errors is not None:
            entry["position_error_mm"] = float(errors["position_mm"][k])
            entry["rotation_error_deg"] = float(errors["rotation_deg"][k])
            entry["gripper_correct"] = bool(errors["gripper_correct"][k])
        rows.append(entry)
    return rows


def write_trajectory(out_dir: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[Path]:
    """``trajectory.json`` (``meta`` + ``keyframes``) and ``trajectory.csv`` (one line per keyframe)."""
    js = out_dir / "trajectory.json"
    js.write_text(json.dumps({**meta, "keyframes": rows}, indent=2))
    cs = out_dir / "trajectory.csv"
    with cs.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return [js, cs]


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"could not write {path}")
    return path
