"""One function per source: an HDF5 episode, an ``eval --out`` folder, a rosbag2 bag, a LeRobot export.

Each turns what is on disk into the calls of :mod:`.log` on a recording the caller opened
(``recording.py`` chooses file / viewer). The readers are the package's own
(``data.episode``, ``data.bag_import``, ``data.lerobot``, the eval's ``results.json``); nothing
here parses a format a second time.

A recorded episode holds no prediction, so its view shows what the policy is trained to
produce instead: at every step the next ``horizon`` commanded poses (``frame_stride`` steps
apart, as the model's keyframes are) drawn as action images by the codec, alone and over the
frame, and as keyframes in 3D (confidence 1: they are recorded, not decoded).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..codec import ActionImageCodec, overlay_action_images
from ..data.episode import Episode
from . import log as vlog
from . import paths
from ._rerun import rr

__all__ = ["EpisodeViewConfig", "log_episode", "EvalEpisode", "eval_episodes", "log_eval_episode",
           "bag_episodes", "lerobot_episodes"]


@dataclasses.dataclass
class EpisodeViewConfig:
    """How a recorded episode is shown.

    Attributes:
        horizon: future commanded poses drawn per step as action images (the model's keyframes: 4).
        frame_stride: control steps between them (the shipped models' ``clip.frame_stride``: 2).
        every: log every ``every``-th step (1 = all).
        jpeg_quality: compress camera frames (None = raw; an episode at 128 px is small).
    """

    horizon: int = 4
    frame_stride: int = 2
    every: int = 1
    jpeg_quality: int | None = None

    def __post_init__(self) -> None:
        for name in ("horizon", "frame_stride", "every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.jpeg_quality is not None and not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100] or None, got {self.jpeg_quality}")


def log_episode(rec: "rr.RecordingStream", ep: Episode, config: EpisodeViewConfig | None = None) -> None:
    """An HDF5 / imported / LeRobot episode on the ``episode_time`` and ``step`` timelines: per view the
    frame and the training target's action images (alone and over the frame), the measured and
    commanded TCP and gripper, the target keyframes in 3D; the instruction and outcome as text."""
    cfg = config or EpisodeViewConfig()
    ep.validate()
    vlog.log_cell(rec, ep.cameras, base_frame=ep.frame_id)
    vlog.log_instruction(rec, ep.instruction, static=True)
    T, V, H, W, _ = ep.rgb.shape
    codec = ActionImageCodec(H, W)
    offsets = cfg.frame_stride * np.arange(1, cfg.horizon + 1)
    for t in range(0, T, cfg.every):
        vlog.set_episode_time(rec, float(ep.time[t]), t)
        if t == 0:
            vlog.log_event(rec, f"episode seed {ep.seed}, task {ep.task}: {'success' if ep.success else 'FAILED'}; "
                                f"{T} steps of {ep.control_dt:g} s; instruction {ep.instruction!r}")
        future = ep.action[np.minimum(t + offsets, T - 1)]
        images = codec.encode(future, ep.cameras)  # (V, F, H, W, 3): what the model is trained to draw
        for v, cam in enumerate(ep.cameras):
            vlog.log_camera_frame(rec, cam.name, ep.rgb[t, v], cfg.jpeg_quality)
            vlog.log_overlay(rec, cam.name, overlay_action_images(ep.rgb[t, v], images[v].max(axis=0),
                                                                  open_background=codec.open_background))
            vlog.log_prediction_images(rec, cam.name, action_images=images[v])
        vlog.log_keyframes(rec, future, np.ones(len(future)), start_pose=ep.ee_pose[t])
        vlog.log_tcp(rec, "measured", np.concatenate([ep.ee_pose[t, :7], [ep.gripper[t]]]))
        vlog.log_tcp(rec, "commanded", ep.action[t])


# ------------------------------------------------------------------------------------------- eval --out
@dataclasses.dataclass
class EvalEpisode:
    """One episode of an ``action-images eval --out`` folder (its ``results.json`` entry).

    Attributes:
        seed: the reset seed.
        success: whether the task succeeded.
        failure: the failure mode (``eval.failure_modes``), None on success.
        facts: the numbers behind the mode (``EpisodeTrace.facts``).
        record: the whole ``per_episode`` entry.
        video: the failure video eval wrote (``failed_seed<seed>.gif``: per prediction the overlays of
            every view side by side), or None.
    """

    seed: int
    success: bool
    failure: str | None
    facts: dict
    record: dict
    video: Path | None


def eval_episodes(folder: str | Path) -> tuple[dict, list[EvalEpisode]]:
    """``(summary, episodes)`` of an eval folder, failed episodes first (then by seed)."""
    folder = Path(folder)
    results = folder / "results.json"
    if not results.is_file():
        raise FileNotFoundError(f"{folder} holds no results.json (write one with `action-images eval --out {folder}`)")
    summary = json.loads(results.read_text())
    per = summary.get("per_episode")
    if not isinstance(per, list):
        raise ValueError(f"{results} has no per_episode list (an eval of an older version?)")
    out = []
    for e in per:
        seed = int(e["seed"])
        video = folder / f"failed_seed{seed}.gif"
        out.append(EvalEpisode(seed=seed, success=bool(e.get("success")), failure=e.get("failure"),
                               facts=e.get("facts") or {}, record=e, video=video if video.is_file() else None))
    out.sort(key=lambda e: (e.success, e.seed))
    return summary, out


def log_eval_episode(rec: "rr.RecordingStream", summary: dict, episode: EvalEpisode, views: Sequence[str]) -> None:
    """One eval episode: its outcome, failure mode and facts as text, and (failed episodes) the overlays
    of every prediction from the failure video, per view, on the ``prediction`` timeline."""
    verdict = "success" if episode.success else f"FAILED: {episode.failure or 'unknown'}"
    lines = [f"# seed {episode.seed}: {verdict}", "",
             f"task {summary.get('task')}, model {summary.get('model')}, path {summary.get('path', '')}", ""]
    lines += [f"- **{k}**: {v}" for k, v in sorted(episode.record.items()) if k not in ("facts", "seed")]
    lines += ["", "facts behind the mode:", ""] + [f"- **{k}**: {v}" for k, v in sorted(episode.facts.items())]
    rec.log(paths.INSTRUCTION, rr.TextDocument("\n".join(lines), media_type=rr.MediaType.MARKDOWN), static=True)
    rec.set_time("prediction", sequence=0)
    vlog.log_event(rec, f"seed {episode.seed}: {verdict}", level="INFO" if episode.success else "WARN")
    if episode.video is None:
        return
    import imageio.v2 as imageio

    frames = imageio.mimread(episode.video, memtest=False)
    for i, strip in enumerate(frames):
        strip = np.asarray(strip)[..., :3]
        V = len(views)
        if strip.shape[1] % V:
            raise ValueError(f"{episode.video}: a frame {strip.shape[1]} px wide cannot hold {V} views side by side")
        w = strip.shape[1] // V
        rec.set_time("prediction", sequence=i)
        for v, name in enumerate(views):
            vlog.log_overlay(rec, name, np.ascontiguousarray(strip[:, v * w:(v + 1) * w]))


# ---------------------------------------------------------------------------------------- bags, LeRobot
def bag_episodes(bags: Sequence[str | Path], import_config) -> Iterator[Episode]:
    """The episodes of rosbag2 bags (recorder_node's, or ``ros2 bag record``'s), read by the importer
    (``data.bag_import.import_bags`` with ``import_config``: the same resampling, checks and errors as
    ``action-images import-bag``) into a temporary folder."""
    from ..data.bag_import import import_bags
    from ..data.episode import load_episode

    with tempfile.TemporaryDirectory(prefix="viz_bag_") as tmp:
        config = dataclasses.replace(import_config, compression="lzf")
        for result in import_bags(bags, tmp, config):
            yield load_episode(result.path, load_depth=False)


def lerobot_episodes(root: str | Path, rig=None) -> Iterator[Episode]:
    """The episodes of a LeRobotDataset v3 (ours from ``export-lerobot``, or another with ``rig``)."""
    from ..data.lerobot import iter_lerobot_episodes

    yield from iter_lerobot_episodes(root, rig=rig)
