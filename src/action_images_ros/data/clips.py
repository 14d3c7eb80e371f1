"""Training clips from recorded episodes: a torch ``Dataset`` of multi-view RGB + action images.

A clip starts at row ``t`` of an episode and looks ``F = horizon`` frames ahead
with a stride of ``s = frame_stride`` rows: future rows ``t + s, t + 2s, ...,
t + F*s``, clamped to the last row (so near the end the final frame is held).
Every clip start ``t`` in ``0 .. T-2`` of every kept episode is one item.

Images are resized once per episode to ``image_size`` and kept in memory as
uint8 (an episode of 200 rows x 3 views at 64x64 is ~7 MB); action images are
drawn per item with :class:`~action_images_ros.codec.ActionImageCodec` for the
resized cameras (``Camera.scaled``), which costs well under a millisecond.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..codec import ActionImageCodec
from ..geometry import Camera
from .episode import (EpisodeInfo, load_episode, read_episode_info, read_episode_rows, read_episode_steps,
                      resolve_episode_paths)

logger = logging.getLogger(__name__)

ACTION_SOURCES = ("ee_pose", "action")


@dataclasses.dataclass
class ClipConfig:
    """What a training clip contains.

    Attributes:
        horizon: ``F``, number of future frames per clip (>= 1).
        frame_stride: rows between consecutive clip frames (>= 1); one row is
            one control step of the episode (``control_dt`` seconds).
        image_size: side of the square images (and action images) in pixels;
            frames are resized and cameras rescaled with ``Camera.scaled``.
        views: camera names or indices to use, in this order; ``None`` = all views.
        only_success: keep only episodes whose ``success`` flag is set.
        action_source: ``"ee_pose"``: future targets are the measured EE poses
            of the future frames; ``"action"``: the commanded targets that
            produced them (the command at row ``i - 1`` for future frame ``i``).
        gripper_from_command: take the gripper column of every pose in a clip
            (``state``, ``actions``, all action images) from the gripper
            *command* in force at that row (``action[max(i - 1, 0), 7]``), not
            from the measured finger opening, which reads ~0.6 while the fingers
            hold a cube and would teach a policy a half-open "close".
    """

    horizon: int = 4
    frame_stride: int = 2
    image_size: int = 64
    views: tuple[str | int, ...] | None = None
    only_success: bool = True
    action_source: str = "ee_pose"
    gripper_from_command: bool = True

    def __post_init__(self) -> None:
        for name, lo in (("horizon", 1), ("frame_stride", 1), ("image_size", 8)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
                raise ValueError(f"`{name}` must be an integer >= {lo}. Got {value!r}")
            setattr(self, name, int(value))
        if self.action_source not in ACTION_SOURCES:
            raise ValueError(f"`action_source` must be one of {list(ACTION_SOURCES)}. Got {self.action_source!r}")
        if self.views is not None:
            if isinstance(self.views, (str, int)):
                self.views = (self.views,)
            views = tuple(self.views)
            if not views:
                raise ValueError("`views` must be None (all views) or a non-empty list of names or indices")
            for v in views:
                if isinstance(v, bool) or not isinstance(v, (str, int, np.integer)):
                    raise ValueError(f"`views` entries must be camera names or indices. Got {v!r}")
                if isinstance(v, (int, np.integer)) and v < 0:
                    raise ValueError(f"`views` indices must be >= 0. Got {v}")
            if len(set(views)) != len(views):
                raise ValueError(f"`views` must not repeat a view. Got {list(views)}")
            self.views = views
        self.only_success = bool(self.only_success)
        self.gripper_from_command = bool(self.gripper_from_command)


def resolve_views(views: Sequence[str | int] | None, camera_names: Sequence[str]) -> list[int]:
    """Indices into ``camera_names`` for view names or indices (``None`` = all, in rig order)."""
    if views is None:
        return list(range(len(camera_names)))
    out = []
    for v in views:
        if isinstance(v, str):
            if v not in camera_names:
                raise ValueError(f"view {v!r} is not in the rig; cameras are {list(camera_names)}")
            out.append(list(camera_names).index(v))
        else:
            if not 0 <= int(v) < len(camera_names):
                raise ValueError(f"view index {v} out of range for {len(camera_names)} cameras {list(camera_names)}")
            out.append(int(v))
    return out


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize uint8 frames ``(..., H, W, 3)`` to ``(..., height, width, 3)`` (area filter when shrinking)."""
    lead, (H, W, C) = frames.shape[:-3], frames.shape[-3:]
    if (H, W) == (height, width):
        return frames
    interp = cv2.INTER_AREA if (width < W and height < H) else cv2.INTER_LINEAR
    flat = frames.reshape(-1, H, W, C)
    out = np.empty((flat.shape[0], height, width, C), dtype=frames.dtype)
    for i, frame in enumerate(flat):
        out[i] = cv2.resize(frame, (width, height), interpolation=interp)
    return out.reshape(lead + (height, width, C))


@dataclasses.dataclass
class _CachedEpisode:
    rgb: np.ndarray  # uint8 (T, V, S, S, 3), resized, selected views
    poses: np.ndarray  # (T, 8) measured EE poses (gripper column per config)
    action: np.ndarray  # (T, 8) commanded targets
    cameras: list[Camera]  # resized, selected views
    K: torch.Tensor  # (V, 3, 3)
    T_world_cam: torch.Tensor  # (V, 4, 4)


class ActionClipDataset(Dataset):
    """Clips of ``F`` future frames from recorded episodes, with their action images.

    Args:
        paths_or_dirs: episode files and/or directories of ``episode_*.h5`` files.
        config: a :class:`ClipConfig`.
        in_memory: keep every episode, resized, in memory once read (fast; ~7 MB per 200-step
            episode of 3 views at 64x64). ``False`` streams: each clip reads only its own frames from
            the file, so memory stays bounded whatever the number of episodes (use DataLoader workers
            to hide the reads).

    Each item is a dict (``V`` views, ``F`` = horizon, ``S`` = image_size)::

        cond_rgb       float32 (V, 3, S, S)     current frame per view, in [0, 1]
        cond_action    float32 (V, 3, S, S)     action image of the current EE pose
        future_rgb     float32 (V, F, 3, S, S)  frames t+s, ..., t+F*s (clamped), in [0, 1]
        future_action  float32 (V, F, 3, S, S)  action images of ``actions``
        actions        float32 (F, 8)           future poses [x y z qx qy qz qw g] (see action_source;
                                                g per gripper_from_command)
        state          float32 (8,)             current EE pose (g per gripper_from_command)
        K              float32 (V, 3, 3)        intrinsics of the resized cameras
        T_world_cam    float32 (V, 4, 4)        camera -> robot base
        episode_index  int64 ()                 index into ``dataset.episodes``
        step           int64 ()                 row t of the episode

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: no usable episode, unknown views, or episodes with different view sets.
        EpisodeFormatError: an episode file is unreadable (at construction for
            the header, at first access for the images).
    """

    def __init__(self, paths_or_dirs: str | Path | Iterable[str | Path], config: ClipConfig | None = None,
                 in_memory: bool = True) -> None:
        self.config = config or ClipConfig()
        self.in_memory = bool(in_memory)
        paths = resolve_episode_paths(paths_or_dirs)
        infos = [read_episode_info(p) for p in paths]
        kept = [i for i in infos if i.success or not self.config.only_success]
        if not kept:
            raise ValueError(f"none of the {len(infos)} episodes is usable: only_success=True and no episode "
                             "succeeded (set only_success=False to train on failed ones)")
        if len(kept) < len(infos):
            logger.info("using %d of %d episodes (only successful ones)", len(kept), len(infos))
        self.episodes: list[EpisodeInfo] = kept
        self._view_idx = [resolve_views(self.config.views, e.camera_names) for e in kept]
        names0 = [kept[0].camera_names[v] for v in self._view_idx[0]]
        for e, idx in zip(kept, self._view_idx):
            names = [e.camera_names[v] for v in idx]
            if names != names0:
                raise ValueError(f"{e.path}: selected views {names} differ from {names0} of {kept[0].path}; "
                                 "pass `views` naming the cameras all episodes share")
        self.view_names: list[str] = names0
        starts = [np.arange(max(e.num_steps - 1, 1)) for e in kept]
        self._index = np.concatenate(
            [np.stack([np.full(len(s), i), s], axis=1) for i, s in enumerate(starts)]
        ).astype(np.int64)
        size = self.config.image_size
        self.codec = ActionImageCodec(size, size)
        self._cache: dict[int, _CachedEpisode] = {}

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return int(self._index.shape[0])

    @property
    def num_views(self) -> int:
        return len(self.view_names)

    def clip_tasks(self) -> np.ndarray:
        """The task name of every clip, in clip order (for task-balanced sampling)."""
        names = np.array([e.task for e in self.episodes])
        return names[self._index[:, 0]]

    def clip_gripper_events(self) -> np.ndarray:
        """Whether each clip's future keyframes open or close the gripper (their g differs from the current
        one by more than 0.5), in clip order; reads only the episodes' poses and actions."""
        events = []
        for e, info in enumerate(self.episodes):
            steps = read_episode_steps(info.path)
            g = self._poses(steps["ee_pose"], steps["action"])[:, 7]
            starts = self._index[self._index[:, 0] == e, 1]
            rows = np.stack([self.future_rows(int(t), info.num_steps) for t in starts]) if len(starts) else \
                np.zeros((0, self.config.horizon), dtype=np.int64)
            events.append(np.any(np.abs(g[rows] - g[starts, None]) > 0.5, axis=1))
        return np.concatenate(events)

    def episode_of(self, index: int) -> tuple[int, int]:
        """``(episode_index, step)`` of clip ``index``."""
        e, t = self._index[index]
        return int(e), int(t)

    # ------------------------------------------------------------------ cache
    def preload(self) -> None:
        """Load and resize every episode now (e.g. before forking DataLoader workers); in-memory only."""
        if not self.in_memory:
            raise ValueError("preload() loads every episode into memory: the dataset streams (in_memory=False)")
        for e in range(len(self.episodes)):
            self._episode(e)

    def cameras(self, episode_index: int) -> list[Camera]:
        """The resized cameras (selected views) of an episode."""
        size = self.config.image_size
        return [self.episodes[episode_index].cameras[v].scaled(size, size) for v in self._view_idx[episode_index]]

    def _poses(self, ee_pose: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Measured EE poses ``(T, 8)``, the gripper column from the command in force when configured."""
        poses = ee_pose.astype(np.float64)
        if self.config.gripper_from_command:
            poses[:, 7] = action[np.maximum(np.arange(len(poses)) - 1, 0), 7]
        return poses

    def _episode(self, e: int) -> _CachedEpisode:
        cached = self._cache.get(e)
        if cached is not None:
            return cached
        info = self.episodes[e]
        size = self.config.image_size
        views = self._view_idx[e]
        ep = load_episode(info.path, load_depth=False)
        rgb = resize_frames(np.ascontiguousarray(ep.rgb[:, views]), size, size)
        cams = self.cameras(e)
        cached = _CachedEpisode(
            rgb=rgb,
            poses=self._poses(ep.ee_pose, ep.action),
            action=ep.action.astype(np.float64),
            cameras=cams,
            K=torch.from_numpy(np.stack([c.K for c in cams]).astype(np.float32)),
            T_world_cam=torch.from_numpy(np.stack([c.T_world_cam for c in cams]).astype(np.float32)),
        )
        self._cache[e] = cached
        return cached

    # ------------------------------------------------------------------ items
    def future_rows(self, step: int, num_steps: int) -> np.ndarray:
        """Rows ``t + s*k`` for ``k = 1..F``, clamped to ``num_steps - 1``."""
        cfg = self.config
        return np.minimum(step + cfg.frame_stride * np.arange(1, cfg.horizon + 1), num_steps - 1)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"clip index {index} out of range for {len(self)} clips")
        e, t = (int(i) for i in self._index[index])
        rows = self.future_rows(t, self.episodes[e].num_steps)
        clip_rows = np.concatenate([[t], rows])
        if self.in_memory:
            c = self._episode(e)
            frames, poses, action, cams, K, T = c.rgb[clip_rows], c.poses, c.action, c.cameras, c.K, c.T_world_cam
        else:
            size = self.config.image_size
            rgb, steps = read_episode_rows(self.episodes[e].path, clip_rows, self._view_idx[e])
            frames = resize_frames(rgb, size, size)
            poses, action, cams = self._poses(steps["ee_pose"], steps["action"]), steps["action"], self.cameras(e)
            K = torch.from_numpy(np.stack([c.K for c in cams]).astype(np.float32))
            T = torch.from_numpy(np.stack([c.T_world_cam for c in cams]).astype(np.float32))
        state = poses[t]
        future = poses[rows] if self.config.action_source == "ee_pose" else action[rows - 1]
        # numpy for the layout changes: on small arrays it is ~10x faster than torch ops here.
        act_img = self.codec.encode(np.concatenate([state[None], future]), cams)  # (V, F+1, S, S, 3)
        act_img = np.ascontiguousarray(act_img.transpose(0, 1, 4, 2, 3))  # (V, F+1, 3, S, S)
        # frames: (F+1, V, S, S, 3) uint8
        frames = np.multiply(frames.transpose(1, 0, 4, 2, 3), np.float32(1.0 / 255.0), dtype=np.float32)
        return {
            "cond_rgb": torch.from_numpy(frames[:, 0].copy()),
            "cond_action": torch.from_numpy(act_img[:, 0].copy()),
            "future_rgb": torch.from_numpy(frames[:, 1:].copy()),
            "future_action": torch.from_numpy(act_img[:, 1:].copy()),
            "actions": torch.from_numpy(future.astype(np.float32)),
            "state": torch.from_numpy(state.astype(np.float32)),
            "K": K,
            "T_world_cam": T,
            "instruction": self.episodes[int(e)].instruction,
            "episode_index": torch.tensor(int(e), dtype=torch.int64),
            "step": torch.tensor(int(t), dtype=torch.int64),
        }
