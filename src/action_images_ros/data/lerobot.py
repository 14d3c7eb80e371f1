"""Episodes <-> LeRobotDataset v3 (``meta/info.json`` + parquet + one mp4 stream per view). No ROS, no torch.

The layout written is the one ``lerobot`` / ``lerobot-dataset`` 0.4 read
(``CODEBASE_VERSION = "v3.0"`` in ``datasets/lerobot_dataset.py``; paths and
defaults from ``datasets/utils.py``)::

    meta/info.json                          codebase_version, fps, features, paths, totals, splits,
                                            + "action_images_ros": camera rig, frame_id, control_dt
    meta/tasks.parquet                      pandas frame: index = task string, column task_index
    meta/stats.json                         min/max/mean/std/count/q01..q99 per feature
    meta/episodes/chunk-000/file-000.parquet  one row per episode: length, tasks, dataset_from/to_index,
                                            data/{chunk,file}_index, videos/<key>/{chunk_index,
                                            file_index, from_timestamp, to_timestamp}, stats/<key>/<stat>,
                                            + action_images_ros/{task, seed, success, terminal_observation}
    data/chunk-000/file-000.parquet         one row per frame (below)
    videos/observation.images.<view>/chunk-000/file-000.mp4   episodes one after the other

Per-frame features (row ``t`` of an episode = row ``t`` of our ``Episode``):

==============================  =========  =====  ==========================================
key                             dtype      shape  source
==============================  =========  =====  ==========================================
``observation.images.<view>``   video      H,W,3  ``rgb[:, v]`` (lossy: the video codec)
``observation.state``           float64    8      ``ee_pose`` [x y z qx qy qz qw gripper]
``action``                      float64    8      ``action`` (same convention)
``observation.joint_positions`` float64    7      ``joint_positions`` (radians)
``observation.gripper``         float64    1      ``gripper`` (openness in [0, 1])
``observation.time``            float64    1      ``time`` (seconds since reset, exact)
``timestamp``                   float32    1      ``frame_index / fps`` (LeRobot's clock)
``frame_index`` / ``episode_index`` / ``index`` / ``task_index``  int64  LeRobot bookkeeping
==============================  =========  =====  ==========================================

LeRobot's ``task`` is the natural-language instruction (our ``instruction``);
our task name (``pick_cube``) travels in the episode row. Poses stay float64,
so the round trip is exact; images come back within the codec's error
(``bench/bench_lerobot.py`` measures it). Depth is not exported.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import secrets
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..geometry import Camera
from .episode import Episode, episode_filename, load_episode, resolve_episode_paths, write_episode

logger = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE_PATTERN + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE_PATTERN + ".mp4"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE_PATTERN + ".parquet"
IMAGE_KEY_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
JOINTS_KEY = "observation.joint_positions"
GRIPPER_KEY = "observation.gripper"
TIME_KEY = "observation.time"
META_KEY = "action_images_ros"  # our block in info.json and our column prefix in the episode rows
POSE_NAMES = ["x", "y", "z", "qx", "qy", "qz", "qw", "gripper"]
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)  # LeRobot's DEFAULT_QUANTILES -> q01 q10 q50 q90 q99
VCODECS = {"libx264": "h264", "libsvtav1": "av1", "libx265": "hevc"}  # encoder -> codec name in info.json


class LeRobotFormatError(ValueError):
    """A directory is not a LeRobotDataset v3 this module can read, or lacks what an episode needs."""

    def __init__(self, root: str | Path, problem: str) -> None:
        self.root = Path(root)
        self.problem = problem
        super().__init__(f"{self.root}: {problem}")


@dataclasses.dataclass
class LeRobotExportConfig:
    """How episodes are written as a LeRobotDataset v3.

    Attributes:
        vcodec: ffmpeg encoder of the per-view videos: ``"libx264"`` (default: fast on a CPU,
            decoded everywhere), ``"libsvtav1"`` (LeRobot's own default, smaller, slower) or ``"libx265"``.
        crf: constant rate factor (lower = closer to the original; LeRobot uses 30 for AV1).
        pix_fmt: ``"yuv420p"`` (LeRobot's default, most compatible) or ``"yuv444p"`` (no chroma
            subsampling: smaller colour error, not every player decodes it).
        gop: keyframe interval in frames (LeRobot uses 2 for fast random access).
        robot_type: ``robot_type`` in info.json.
        chunks_size: files per ``chunk-XXX`` folder (LeRobot default 1000).
        data_files_size_in_mb: a new data parquet file is started past this size (LeRobot default 100).
        video_files_size_in_mb: a new mp4 per view is started past this size (LeRobot default 200).
        encoder_threads: ffmpeg threads per video (0 = ffmpeg decides).
    """

    vcodec: str = "libx264"
    crf: int = 18
    pix_fmt: str = "yuv420p"
    gop: int = 2
    robot_type: str = "franka"
    chunks_size: int = 1000
    data_files_size_in_mb: float = 100
    video_files_size_in_mb: float = 200
    encoder_threads: int = 0

    def __post_init__(self) -> None:
        if self.vcodec not in VCODECS:
            raise ValueError(f"vcodec must be one of {sorted(VCODECS)}, got {self.vcodec!r}")
        if self.pix_fmt not in ("yuv420p", "yuv444p"):
            raise ValueError(f"pix_fmt must be 'yuv420p' or 'yuv444p', got {self.pix_fmt!r}")
        if not 0 <= int(self.crf) <= 63:
            raise ValueError(f"crf must be in 0..63, got {self.crf}")
        for name in ("gop", "chunks_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("data_files_size_in_mb", "video_files_size_in_mb"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if int(self.encoder_threads) < 0:
            raise ValueError(f"encoder_threads must be >= 0, got {self.encoder_threads}")


def image_key(view: str) -> str:
    """``observation.images.<view>``: LeRobot's feature key of a camera."""
    return IMAGE_KEY_PREFIX + view


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        raise ImportError("LeRobot export/import needs pyarrow: pip install 'pyarrow>=21'") from exc
    return pa, pq


def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """LeRobot's ``update_chunk_file_indices``: the next file, wrapping into a new chunk folder."""
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def fps_of(control_dt: float) -> int:
    """The integer frame rate LeRobot needs for ``control_dt`` seconds per row; ``ValueError`` if not integer."""
    fps = 1.0 / float(control_dt)
    if abs(fps - round(fps)) > 1e-6 * fps:
        raise ValueError(f"LeRobot datasets need an integer fps; control_dt {control_dt} s gives {fps} Hz")
    return int(round(fps))


# --------------------------------------------------------------------------- stats
def feature_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-feature statistics of ``values`` ``(N, D)``: min, max, mean, std, count, q01..q99.

    Quantiles are exact (``np.quantile``); LeRobot's own are histogram estimates.
    """
    x = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
    for q, v in zip(QUANTILES, np.quantile(x, QUANTILES, axis=0)):
        out[f"q{int(round(q * 100)):02d}"] = v
    return out


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics of uint8 frames ``(N, H, W, 3)`` scaled to [0, 1], each of shape ``(3, 1, 1)``."""
    x = np.asarray(frames).reshape(-1, 3).astype(np.float32) / 255.0
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0, dtype=np.float64), "std": x.std(0, dtype=np.float64)}
    qs = np.quantile(x[:: max(1, len(x) // 200_000)], QUANTILES, axis=0)  # subsample, as LeRobot does
    for q, v in zip(QUANTILES, qs):
        out[f"q{int(round(q * 100)):02d}"] = v
    out = {k: np.asarray(v, dtype=np.float64).reshape(3, 1, 1) for k, v in out.items()}
    out["count"] = np.array([len(frames)])
    return out


def _merge_stats(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine per-episode stats: exact min/max/mean/std/count; quantiles count-weighted (as LeRobot's aggregate)."""
    n = np.array([float(p["count"][0]) for p in parts])
    w = n / n.sum()
    mean = sum(wi * p["mean"] for wi, p in zip(w, parts))
    var = sum(wi * (p["std"] ** 2 + (p["mean"] - mean) ** 2) for wi, p in zip(w, parts))
    out = {"min": np.min([p["min"] for p in parts], axis=0), "max": np.max([p["max"] for p in parts], axis=0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(n.sum())])}
    for key in parts[0]:
        if key.startswith("q"):
            out[key] = sum(wi * p[key] for wi, p in zip(w, parts))
    return out


# --------------------------------------------------------------------------- video
class _VideoWriter:
    """One mp4 stream of RGB frames via imageio-ffmpeg; frame k has pts k / fps."""

    def __init__(self, path: Path, width: int, height: int, fps: int, cfg: LeRobotExportConfig) -> None:
        import imageio_ffmpeg

        if cfg.pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise ValueError(f"yuv420p video needs even image sizes, got {width}x{height}; use pix_fmt yuv444p")
        path.parent.mkdir(parents=True, exist_ok=True)
        params = ["-crf", str(int(cfg.crf)), "-g", str(int(cfg.gop))]
        if cfg.vcodec in ("libx264", "libx265"):
            params += ["-bf", "0"]  # no frame reordering: segments join with frame k at pts k / fps
        if cfg.encoder_threads:
            params += ["-threads", str(int(cfg.encoder_threads))]
        if cfg.vcodec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr otherwise
            if cfg.encoder_threads:
                params += ["-svtav1-params", f"lp={int(cfg.encoder_threads)}"]
        self.path = path
        self.frames = 0
        self._gen = imageio_ffmpeg.write_frames(
            str(path), (int(width), int(height)), fps=fps, codec=cfg.vcodec, pix_fmt_in="rgb24",
            pix_fmt_out=cfg.pix_fmt, quality=None, bitrate=None, macro_block_size=1,
            ffmpeg_log_level="error", output_params=params,
        )
        self._gen.send(None)

    def write(self, frames: np.ndarray) -> None:
        for f in frames:
            self._gen.send(np.ascontiguousarray(f, dtype=np.uint8).tobytes())
            self.frames += 1

    def size_mb(self) -> float:
        return self.path.stat().st_size / 2**20 if self.path.exists() else 0.0

    def close(self) -> None:
        self._gen.close()


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video as uint8 ``(N, H, W, 3)`` RGB (imageio-ffmpeg)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(gen)
    w, h = meta["size"]
    frames = [np.frombuffer(b, dtype=np.uint8).reshape(h, w, 3) for b in gen]
    return np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8)


class _VideoCursor:
    """Reads one video forward, so consecutive episodes stored in one file decode it once, an episode at a time."""

    def __init__(self, path: Path) -> None:
        import imageio_ffmpeg

        self.path = path
        self.pos = 0  # index of the next frame the decoder yields
        self._gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        self.width, self.height = next(self._gen)["size"]

    def read(self, start: int, count: int) -> np.ndarray:
        """Frames ``start .. start+count-1`` as uint8 ``(n, H, W, 3)`` (fewer where the video ends); start >= pos."""
        if start < self.pos:
            raise ValueError(f"{self.path}: cannot seek back to frame {start} (at {self.pos})")
        out = []
        for raw in self._gen:
            index = self.pos
            self.pos += 1
            if index >= start:
                out.append(np.frombuffer(raw, dtype=np.uint8).reshape(self.height, self.width, 3))
                if len(out) == count:
                    break
        return np.stack(out) if out else np.zeros((0, self.height, self.width, 3), np.uint8)

    def close(self) -> None:
        self._gen.close()


# --------------------------------------------------------------------------- export
@dataclasses.dataclass
class ExportResult:
    root: Path
    num_episodes: int
    num_frames: int
    seconds: float


def _camera_meta(cam: Camera) -> dict:
    d = cam.to_dict()  # name, width, height, K, position, quaternion_xyzw (geometry.load_rig format)
    d["T_world_cam"] = [[float(v) for v in row] for row in cam.T_world_cam]  # exact, not via a quaternion
    return d


def _features(ep: Episode, fps: int, cfg: LeRobotExportConfig) -> dict:
    H, W = ep.rgb.shape[2:4]
    feats: dict[str, dict] = {}
    for name in ep.camera_names:
        feats[image_key(name)] = {
            "dtype": "video", "shape": [int(H), int(W), 3], "names": ["height", "width", "channels"],
            "info": {"video.height": int(H), "video.width": int(W), "video.codec": VCODECS[cfg.vcodec],
                     "video.pix_fmt": cfg.pix_fmt, "video.is_depth_map": False, "video.fps": fps,
                     "video.channels": 3, "has_audio": False},
        }
    feats[STATE_KEY] = {"dtype": "float64", "shape": [8], "names": list(POSE_NAMES)}
    feats[ACTION_KEY] = {"dtype": "float64", "shape": [8], "names": list(POSE_NAMES)}
    feats[JOINTS_KEY] = {"dtype": "float64", "shape": [7], "names": [f"joint{i + 1}" for i in range(7)]}
    feats[GRIPPER_KEY] = {"dtype": "float64", "shape": [1], "names": None}
    feats[TIME_KEY] = {"dtype": "float64", "shape": [1], "names": None}
    # LeRobot's DEFAULT_FEATURES
    feats["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for k in ("frame_index", "episode_index", "index", "task_index"):
        feats[k] = {"dtype": "int64", "shape": [1], "names": None}
    return feats


def _frame_table(ep: Episode, ep_index: int, start: int, task_index: int, fps: int):
    pa, _ = _pyarrow()
    T = ep.num_steps

    def vec(a: np.ndarray, d: int):
        a = np.ascontiguousarray(a, dtype=np.float64).reshape(T, d)
        return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), d)

    frame_index = np.arange(T, dtype=np.int64)
    return pa.table({
        STATE_KEY: vec(ep.ee_pose, 8),
        ACTION_KEY: vec(ep.action, 8),
        JOINTS_KEY: vec(ep.joint_positions, 7),
        GRIPPER_KEY: pa.array(np.asarray(ep.gripper, np.float64)),
        TIME_KEY: pa.array(np.asarray(ep.time, np.float64)),
        "timestamp": pa.array((frame_index / fps).astype(np.float32)),
        "frame_index": pa.array(frame_index),
        "episode_index": pa.array(np.full(T, ep_index, np.int64)),
        "index": pa.array(np.arange(start, start + T, dtype=np.int64)),
        "task_index": pa.array(np.full(T, task_index, np.int64)),
    })


def _tasks_table(tasks: list[str]):
    """``meta/tasks.parquet`` as pandas writes it (LeRobot reads it with ``pd.read_parquet``; index = task)."""
    pa, _ = _pyarrow()
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    table = pa.table({"task_index": pa.array(np.arange(len(tasks), dtype=np.int64)),
                      "__index_level_0__": pa.array(tasks, pa.string())})
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _same_rig(a: list[Camera], b: list[Camera]) -> bool:
    return len(a) == len(b) and all(
        x.name == y.name and (x.width, x.height) == (y.width, y.height)
        and np.allclose(x.K, y.K, atol=1e-9) and np.allclose(x.T_world_cam, y.T_world_cam, atol=1e-9)
        for x, y in zip(a, b))


def export_lerobot(
    episodes: str | Path | Iterable[str | Path],
    out_dir: str | Path,
    config: LeRobotExportConfig | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write our episode files as one LeRobotDataset v3 in ``out_dir``.

    All episodes must share the camera rig (names, image size, K, extrinsics),
    ``control_dt`` (an integer fps) and ``frame_id``. The dataset is built in a
    hidden sibling folder and renamed into place when complete, so a failed
    export leaves nothing half written.

    Args:
        episodes: ``episode_*.h5`` files and/or directories of them (in that order; episode
            ``i`` of the dataset is the ``i``-th file).
        out_dir: the dataset root to create; must not exist unless ``overwrite``.
        config: codec and file-size settings (:class:`LeRobotExportConfig`).
        overwrite: replace an existing ``out_dir``.

    Raises:
        FileExistsError: ``out_dir`` exists and ``overwrite`` is false.
        ValueError: episodes that cannot share one dataset (rig, rate, frame), naming the file.
    """
    cfg = config or LeRobotExportConfig()
    paths = resolve_episode_paths(episodes)
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists (pass overwrite to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    t0 = time.perf_counter()
    try:
        n_frames = _export_into(paths, tmp, cfg)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out_dir, len(paths), n_frames, time.perf_counter() - t0)


def _finish_videos(root: Path, segments: dict[str, list[Path]], loc: tuple[int, int]) -> None:
    """Join each view's episode segments into ``videos/<key>/chunk-C/file-F.mp4`` (stream copy, no re-encoding)."""
    import subprocess

    import imageio_ffmpeg

    for name, parts in segments.items():
        out = root / VIDEO_PATH.format(video_key=image_key(name), chunk_index=loc[0], file_index=loc[1])
        out.parent.mkdir(parents=True, exist_ok=True)
        if len(parts) == 1:
            os.replace(parts[0], out)
            continue
        listing = parts[0].with_suffix(".txt")
        quoted = (str(p.resolve()).replace("'", "'\\''") for p in parts)  # the concat demuxer's quoting
        listing.write_text("".join(f"file '{q}'\n" for q in quoted))
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
               "-i", str(listing), "-c", "copy", "-movflags", "+faststart", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg could not join the videos of {image_key(name)}: {proc.stderr.strip()[-500:]}")
        for p in parts:
            p.unlink()
        listing.unlink()


def _export_into(paths: list[Path], root: Path, cfg: LeRobotExportConfig) -> int:
    pa, pq = _pyarrow()
    first: Episode | None = None
    fps = 0
    tasks: list[str] = []
    rows: list[dict] = []
    ep_stats: list[dict[str, dict[str, np.ndarray]]] = []
    segments: dict[str, list[Path]] = {}  # view -> per-episode mp4s of the video file being filled
    segments_mb = 0.0  # their size (largest view)
    seg_dir = root / ".segments"
    data_writer = None
    data_loc = video_loc = (0, 0)
    video_frames_in_file = 0
    frame_start = 0
    try:
        for ep_index, path in enumerate(paths):
            ep = load_episode(path, load_depth=False)
            if first is None:
                first, fps = ep, fps_of(ep.control_dt)
            elif not _same_rig(first.cameras, ep.cameras):
                raise ValueError(f"{path}: camera rig differs from {first.path} (one dataset holds one rig)")
            elif abs(ep.control_dt - first.control_dt) > 1e-12 or ep.frame_id != first.frame_id:
                raise ValueError(f"{path}: control_dt/frame_id ({ep.control_dt}, {ep.frame_id}) differ from "
                                 f"{first.path} ({first.control_dt}, {first.frame_id})")
            T = ep.num_steps
            if ep.instruction not in tasks:
                tasks.append(ep.instruction)
            task_index = tasks.index(ep.instruction)

            # 1. frames -> data parquet (a new file once the current one is past the size limit)
            table = _frame_table(ep, ep_index, frame_start, task_index, fps)
            if data_writer is not None and (root / DATA_PATH.format(chunk_index=data_loc[0],
                                            file_index=data_loc[1])).stat().st_size / 2**20 \
                    >= cfg.data_files_size_in_mb:
                data_writer.close()
                data_writer, data_loc = None, _next_file(*data_loc, cfg.chunks_size)
            if data_writer is None:
                p = root / DATA_PATH.format(chunk_index=data_loc[0], file_index=data_loc[1])
                p.parent.mkdir(parents=True, exist_ok=True)
                data_writer = pq.ParquetWriter(p, table.schema, compression="snappy")
            data_writer.write_table(table)

            # 2. images -> one mp4 per view; all views roll over to a new file together
            #    Each episode is encoded on its own, then appended by stream copy (as LeRobot does), so a
            #    file's size is known exactly before an episode is added to it.
            H, W = ep.rgb.shape[2:4]
            new: dict[str, _VideoWriter] = {}
            try:  # one ffmpeg per view, fed frame by frame so they encode side by side
                for v, name in enumerate(ep.camera_names):
                    new[name] = _VideoWriter(seg_dir / f"{ep_index:06d}_{v}.mp4", W, H, fps, cfg)
                for t in range(T):
                    for v, name in enumerate(ep.camera_names):
                        new[name].write(ep.rgb[t:t + 1, v])
            finally:
                for w in new.values():
                    w.close()
            ep_mb = max(w.size_mb() for w in new.values())
            if segments and segments_mb + ep_mb >= cfg.video_files_size_in_mb:
                _finish_videos(root, segments, video_loc)
                segments, segments_mb = {}, 0.0
                video_loc = _next_file(*video_loc, cfg.chunks_size)
                video_frames_in_file = 0
            for name, w in new.items():
                segments.setdefault(name, []).append(w.path)
            segments_mb += ep_mb

            # 3. the episode's row in meta/episodes
            stats = {
                STATE_KEY: feature_stats(ep.ee_pose), ACTION_KEY: feature_stats(ep.action),
                JOINTS_KEY: feature_stats(ep.joint_positions), GRIPPER_KEY: feature_stats(ep.gripper),
                TIME_KEY: feature_stats(ep.time),
                "timestamp": feature_stats(np.arange(T) / fps), "frame_index": feature_stats(np.arange(T)),
                "episode_index": feature_stats(np.full(T, ep_index)),
                "index": feature_stats(np.arange(frame_start, frame_start + T)),
                "task_index": feature_stats(np.full(T, task_index)),
                **{image_key(n): image_stats(ep.rgb[:, v]) for v, n in enumerate(ep.camera_names)},
            }
            ep_stats.append(stats)
            row = {
                "episode_index": ep_index, "tasks": [ep.instruction], "length": T,
                "data/chunk_index": data_loc[0], "data/file_index": data_loc[1],
                "dataset_from_index": frame_start, "dataset_to_index": frame_start + T,
            }
            for name in ep.camera_names:
                key = image_key(name)
                row.update({f"videos/{key}/chunk_index": video_loc[0], f"videos/{key}/file_index": video_loc[1],
                            f"videos/{key}/from_timestamp": video_frames_in_file / fps,
                            f"videos/{key}/to_timestamp": (video_frames_in_file + T) / fps})
            row.update({f"{META_KEY}/task": ep.task, f"{META_KEY}/seed": int(ep.seed),
                        f"{META_KEY}/success": bool(ep.success),
                        f"{META_KEY}/terminal_observation": bool(ep.terminal_observation),
                        f"{META_KEY}/source": path.name})
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = 0
            for key, st in stats.items():
                for s, v in st.items():
                    row[f"stats/{key}/{s}"] = v.tolist()
            rows.append(row)
            video_frames_in_file += T
            frame_start += T
    finally:
        if data_writer is not None:
            data_writer.close()
    assert first is not None  # resolve_episode_paths never returns an empty list
    _finish_videos(root, segments, video_loc)
    shutil.rmtree(seg_dir, ignore_errors=True)

    # 4. metadata: episodes, tasks, stats, info
    ep_path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), ep_path, compression="snappy")
    pq.write_table(_tasks_table(tasks), root / TASKS_PATH)
    stats = {k: {s: v.tolist() for s, v in _merge_stats([e[k] for e in ep_stats]).items()} for k in ep_stats[0]}
    (root / STATS_PATH).write_text(json.dumps(stats, indent=4))
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": cfg.robot_type,
        "total_episodes": len(paths),
        "total_frames": frame_start,
        "total_tasks": len(tasks),
        "chunks_size": cfg.chunks_size,
        "data_files_size_in_mb": cfg.data_files_size_in_mb,
        "video_files_size_in_mb": cfg.video_files_size_in_mb,
        "fps": fps,
        "splits": {"train": f"0:{len(paths)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": _features(first, fps, cfg),
        META_KEY: {
            "format_version": 1,
            "frame_id": first.frame_id,
            "control_dt": float(first.control_dt),
            "pose_convention": "[x y z qx qy qz qw gripper]: metres in frame_id, quaternion scalar-last, "
                               "gripper openness in [0, 1] (1 = open)",
            "cameras": [_camera_meta(c) for c in first.cameras],
        },
    }
    (root / INFO_PATH).write_text(json.dumps(info, indent=4))
    return frame_start


# --------------------------------------------------------------------------- import
def read_info(root: str | Path) -> dict:
    """``meta/info.json`` of a v3 dataset; :class:`LeRobotFormatError` if missing or of another version."""
    root = Path(root)
    p = root / INFO_PATH
    if not p.is_file():
        raise LeRobotFormatError(root, f"no {INFO_PATH}: not a LeRobotDataset")
    try:
        info = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise LeRobotFormatError(root, f"{INFO_PATH} is not valid JSON ({exc})") from exc
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise LeRobotFormatError(root, f"codebase_version {version!r}: this reader supports v3.x (convert older "
                                       "datasets with lerobot's convert_dataset_v21_to_v30)")
    return info


def _read_parquet_dir(root: Path, sub: str):
    _, pq = _pyarrow()
    import pyarrow as pa

    files = sorted((root / sub).glob("*/*.parquet"))
    if not files:
        raise LeRobotFormatError(root, f"no parquet files under {sub}/")
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def _read_tasks(root: Path) -> dict[int, str]:
    _, pq = _pyarrow()
    p = root / TASKS_PATH
    if not p.is_file():
        raise LeRobotFormatError(root, f"no {TASKS_PATH}")
    t = pq.read_table(p).to_pydict()
    name_col = next((c for c in ("__index_level_0__", "task") if c in t), None)
    if name_col is None or "task_index" not in t:
        raise LeRobotFormatError(root, f"{TASKS_PATH} needs a task_index column and the task strings as its "
                                       f"index, got columns {sorted(t)}")
    return {int(i): str(s) for i, s in zip(t["task_index"], t[name_col])}


def iter_lerobot_episodes(root: str | Path, rig: list[Camera] | None = None) -> Iterator[Episode]:
    """Read a LeRobotDataset v3 episode by episode as our :class:`Episode` objects.

    ``observation.state`` and ``action`` must be 8-D poses ``[x y z qx qy qz qw g]``.
    The camera rig comes from our block in info.json, or from ``rig`` (needed
    for datasets written by other tools; its camera names must match the
    ``observation.images.<view>`` keys). Joint positions, gripper and time are
    taken from their columns when present; otherwise gripper = state[7],
    time = timestamp and joint positions are zeros (logged).
    """
    root = Path(root)
    info = read_info(root)
    feats = info.get("features", {})
    ours = info.get(META_KEY, {})
    fps = int(info["fps"])
    for key in (STATE_KEY, ACTION_KEY):
        shape = list(feats.get(key, {}).get("shape", []))
        if shape != [8]:
            raise LeRobotFormatError(root, f"feature {key!r} must be an 8-D pose [x y z qx qy qz qw gripper], "
                                           f"got shape {shape or 'missing'}")
    views = [k[len(IMAGE_KEY_PREFIX):] for k, f in feats.items()
             if k.startswith(IMAGE_KEY_PREFIX) and f.get("dtype") == "video"]
    if not views:
        raise LeRobotFormatError(root, "no video features observation.images.<view> (image-only datasets are "
                                       "not supported)")
    if rig is not None:
        cams = {c.name: c for c in rig}
    elif ours.get("cameras"):
        cams = {}
        for d in ours["cameras"]:
            cam = Camera.from_dict(d)
            if "T_world_cam" in d:
                cam = dataclasses.replace(cam, T_world_cam=np.asarray(d["T_world_cam"], dtype=np.float64))
            cams[cam.name] = cam
    else:
        raise LeRobotFormatError(root, "no camera rig in meta/info.json; pass one (a rig YAML, geometry.load_rig)")
    missing = [v for v in views if v not in cams]
    if missing:
        raise LeRobotFormatError(root, f"the rig has no camera for views {missing} (it has {sorted(cams)})")
    cameras = [cams[v] for v in views]
    tasks = _read_tasks(root)
    episodes = _read_parquet_dir(root, EPISODES_DIR).to_pylist()
    data = _read_parquet_dir(root, "data")
    cols = set(data.column_names)
    ep_col = data.column("episode_index").to_numpy()
    control_dt = float(ours.get("control_dt", 1.0 / fps))
    if JOINTS_KEY not in cols:
        logger.warning("%s: no %s column; joint positions are imported as zeros", root, JOINTS_KEY)
    cursors: dict[Path, _VideoCursor] = {}  # open videos that the current episode reads
    try:
        for row in sorted(episodes, key=lambda r: r["episode_index"]):
            e = int(row["episode_index"])
            sel = np.flatnonzero(ep_col == e)
            T = int(row["length"])
            if len(sel) != T:
                raise LeRobotFormatError(root, f"episode {e}: {len(sel)} data rows but length {T}")
            frames = data.take(sel).sort_by("frame_index")

            def col(key, d=None):
                a = frames.column(key).combine_chunks()
                return np.asarray(a.flatten().to_numpy(zero_copy_only=False), np.float64).reshape(T, d) if d \
                    else np.asarray(a.to_numpy(zero_copy_only=False), np.float64)

            state = col(STATE_KEY, 8)
            rgb = np.zeros((T, len(views), cameras[0].height, cameras[0].width, 3), np.uint8)
            for v, name in enumerate(views):
                key = image_key(name)
                path = _video_path(root, info, row, key)
                start = int(round(float(row[f"videos/{key}/from_timestamp"]) * fps))
                if path not in cursors or cursors[path].pos > start:
                    if not path.is_file():
                        raise LeRobotFormatError(root, f"episode {e}: video {path.relative_to(root)} is missing")
                    if path in cursors:
                        cursors[path].close()
                    cursors[path] = _VideoCursor(path)
                clip = cursors[path].read(start, T)
                if len(clip) != T:
                    raise LeRobotFormatError(root, f"episode {e}: {path.relative_to(root)} has {len(clip)} frames from "
                                                   f"t={row[f'videos/{key}/from_timestamp']} s, expected {T}")
                if clip.shape[1:3] != (cameras[v].height, cameras[v].width):
                    raise LeRobotFormatError(root, f"view {name}: video frames are {clip.shape[2]}x{clip.shape[1]}, "
                                                   f"camera is {cameras[v].width}x{cameras[v].height}")
                rgb[:, v] = clip
            task_idx = int(frames.column("task_index")[0].as_py())
            instruction = tasks.get(task_idx, row.get("tasks", [""])[0] if row.get("tasks") else "")
            yield Episode(
                rgb=rgb, ee_pose=state, action=col(ACTION_KEY, 8),
                joint_positions=col(JOINTS_KEY, 7) if JOINTS_KEY in cols else np.zeros((T, 7)),
                gripper=col(GRIPPER_KEY) if GRIPPER_KEY in cols else state[:, 7].copy(),
                time=col(TIME_KEY) if TIME_KEY in cols else col("timestamp"),
                cameras=cameras,
                task=str(row.get(f"{META_KEY}/task") or info.get("robot_type") or "lerobot"),
                instruction=instruction,
                seed=int(row[f"{META_KEY}/seed"]) if row.get(f"{META_KEY}/seed") is not None else e,
                success=bool(row.get(f"{META_KEY}/success", False)),
                control_dt=control_dt,
                terminal_observation=bool(row.get(f"{META_KEY}/terminal_observation", False)),
                frame_id=str(ours.get("frame_id", "base_link")),
            )
            # close the videos this episode did not read: episodes are stored in order
            used = set(_episode_video_paths(root, info, row, views))
            for p in [p for p in cursors if p not in used]:
                cursors.pop(p).close()
    finally:
        for c in cursors.values():
            c.close()


def _episode_video_paths(root: Path, info: dict, row: dict, views: list[str]) -> list[Path]:
    """The mp4 file of each view that episode ``row`` (a meta/episodes row) points into."""
    return [_video_path(root, info, row, image_key(n)) for n in views]


def _video_path(root: Path, info: dict, row: dict, key: str) -> Path:
    return root / info["video_path"].format(video_key=key, chunk_index=int(row[f"videos/{key}/chunk_index"]),
                                            file_index=int(row[f"videos/{key}/file_index"]))


@dataclasses.dataclass
class ImportResult:
    paths: list[Path]
    num_frames: int
    seconds: float


def import_lerobot(root: str | Path, out_dir: str | Path, rig: list[Camera] | None = None,
                   compression: str = "gzip") -> ImportResult:
    """Write every episode of the LeRobotDataset v3 at ``root`` as ``out_dir/episode_<seed>.h5``.

    Each file is written atomically (:func:`~.episode.write_episode`); names
    follow the episode's seed (our exports keep it; others use the episode index).
    Raises ``FileExistsError`` before writing anything if a target file exists.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    written: list[Path] = []
    frames = 0
    seen: set[str] = set()
    for ep in iter_lerobot_episodes(root, rig=rig):
        path = out_dir / episode_filename(ep.seed)
        if path.name in seen:
            raise LeRobotFormatError(root, f"two episodes map to {path.name} (same seed {ep.seed})")
        if path.exists():
            raise FileExistsError(f"{path} already exists; import into an empty directory")
        seen.add(path.name)
        written.append(write_episode(ep, path, compression=compression))
        frames += ep.num_steps
    return ImportResult(written, frames, time.perf_counter() - t0)

