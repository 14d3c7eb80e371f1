"""One recorded episode on disk: an HDF5 file per episode (format version 1).

Layout of ``episode_XXXXXX.h5`` (``XXXXXX`` = the episode's seed, zero padded;
the full description with units is in ``data/FORMAT.md``)::

    /                       attrs: format="action_images_ros.episode", format_version=1,
                                   task, instruction, seed, success, control_dt,
                                   num_steps, terminal_observation, frame_id, created
    /rgb                    uint8   (T, V, H, W, 3)  chunked per step, compressed
    /depth     (optional)   float32 (T, V, H, W)     metres along the optical axis
    /ee_pose                float64 (T, 8)   [x y z qx qy qz qw g], metres, frame_id
    /action                 float64 (T, 8)   commanded target at each step
    /joint_positions        float64 (T, 7)   radians
    /gripper                float64 (T,)     measured openness in [0, 1], 1 = open
    /time                   float64 (T,)     seconds since reset
    /cameras/K              float64 (V, 3, 3)
    /cameras/T_world_cam    float64 (V, 4, 4) camera -> frame_id (OpenCV convention)
    /cameras/width, height  int64   (V,)
    /cameras/name           str     (V,)

Row ``t`` holds the observation *before* the action of step ``t`` and that
action. With ``terminal_observation`` true the last row is the observation
after the final action; its ``action`` repeats the final command.

Writing is atomic: a file is written under a hidden temporary name in the
target directory and renamed into place only when complete, so a reader never
takes a half-written episode for a whole one. :func:`list_episodes` ignores
temporary files. Anything unreadable, incomplete or of another format version
raises :class:`EpisodeFormatError` naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import h5py
import numpy as np

from ..geometry import ACTION_DIM, Camera

logger = logging.getLogger(__name__)

FORMAT_NAME = "action_images_ros.episode"
FORMAT_VERSION = 1
NUM_JOINTS = 7
EPISODE_GLOB = "episode_*.h5"
_EPISODE_RE = re.compile(r"^episode_(\d+)\.h5$")
COMPRESSIONS = ("gzip", "lzf", "none")

#: Per-step datasets: name -> (dtype, trailing shape) (rgb/depth are checked separately).
_STEP_ARRAYS = {
    "ee_pose": (np.float64, (ACTION_DIM,)),
    "action": (np.float64, (ACTION_DIM,)),
    "joint_positions": (np.float64, (NUM_JOINTS,)),
    "gripper": (np.float64, ()),
    "time": (np.float64, ()),
}
_REQUIRED_ATTRS = ("task", "instruction", "seed", "success", "control_dt", "num_steps")


class EpisodeFormatError(ValueError):
    """An episode file is unreadable, incomplete, inconsistent or of an unsupported format version."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclasses.dataclass
class EpisodeInfo:
    """Episode metadata, readable without loading any images (see :func:`read_episode_info`).

    Attributes:
        task: task name, e.g. ``"pick_cube"``.
        instruction: the language instruction.
        seed: seed the initial state was drawn from.
        success: whether the task's success check passed at the end.
        control_dt: seconds between rows.
        num_steps: ``T``, number of rows.
        cameras: the ``V`` cameras of the rig, at the stored image size.
        has_depth: whether a ``depth`` array is stored.
        terminal_observation: whether the last row is the post-final-action observation.
        frame_id: frame of poses and camera extrinsics (``"base_link"``).
        path: the file it was read from (``None`` for an in-memory episode).
    """

    task: str
    instruction: str
    seed: int
    success: bool
    control_dt: float
    num_steps: int
    cameras: list[Camera]
    has_depth: bool = False
    terminal_observation: bool = True
    frame_id: str = "base_link"
    path: Path | None = None

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]


@dataclasses.dataclass
class Episode:
    """A whole episode in memory. ``T`` rows (steps), ``V`` views, ``H x W`` images.

    Attributes:
        rgb: uint8 ``(T, V, H, W, 3)``.
        ee_pose: ``(T, 8)`` measured end-effector pose ``[x y z qx qy qz qw g]``
            (metres, ``frame_id``; g = gripper openness, 1 = open).
        action: ``(T, 8)`` commanded target pose + gripper at each row.
        joint_positions: ``(T, 7)`` arm joint angles in radians.
        gripper: ``(T,)`` measured gripper openness in [0, 1].
        time: ``(T,)`` seconds since reset.
        cameras: ``V`` cameras whose width/height equal ``W``/``H``.
        task, instruction, seed, success, control_dt: see :class:`EpisodeInfo`.
        depth: optional float32 ``(T, V, H, W)`` depth in metres (z along the optical axis).
        terminal_observation: the last row is the observation after the final action.
        frame_id: frame of ``ee_pose``, ``action`` and the camera extrinsics.
        path: the file it was read from, if any.
    """

    rgb: np.ndarray
    ee_pose: np.ndarray
    action: np.ndarray
    joint_positions: np.ndarray
    gripper: np.ndarray
    time: np.ndarray
    cameras: list[Camera]
    task: str
    instruction: str
    seed: int
    success: bool
    control_dt: float
    depth: np.ndarray | None = None
    terminal_observation: bool = True
    frame_id: str = "base_link"
    path: Path | None = None

    @property
    def num_steps(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def num_views(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]

    @property
    def info(self) -> EpisodeInfo:
        return EpisodeInfo(
            task=self.task, instruction=self.instruction, seed=self.seed, success=self.success,
            control_dt=self.control_dt, num_steps=self.num_steps, cameras=list(self.cameras),
            has_depth=self.depth is not None, terminal_observation=self.terminal_observation,
            frame_id=self.frame_id, path=self.path,
        )

    def validate(self) -> None:
        """Check shapes, dtypes and cross-field consistency; raise ``ValueError`` naming the problem."""
        rgb = np.asarray(self.rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 5 or rgb.shape[-1] != 3:
            raise ValueError(f"rgb must be uint8 (T, V, H, W, 3), got {rgb.dtype} {rgb.shape}")
        T, V, H, W, _ = rgb.shape
        if T < 1:
            raise ValueError("an episode needs at least one step")
        for name, (_, trailing) in _STEP_ARRAYS.items():
            arr = np.asarray(getattr(self, name))
            if arr.shape != (T,) + trailing:
                raise ValueError(f"{name} must have shape {(T,) + trailing} to match rgb, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or infinite values")
        if len(self.cameras) != V:
            raise ValueError(f"rgb has {V} views but {len(self.cameras)} cameras were given")
        for cam in self.cameras:
            if not isinstance(cam, Camera):
                raise ValueError(f"cameras must be geometry.Camera objects, got {type(cam).__name__}")
            if (cam.width, cam.height) != (W, H):
                raise ValueError(f"camera {cam.name!r} is {cam.width}x{cam.height} but images are {W}x{H}")
        names = self.camera_names
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        if self.depth is not None and np.asarray(self.depth).shape != (T, V, H, W):
            raise ValueError(f"depth must have shape {(T, V, H, W)}, got {np.asarray(self.depth).shape}")
        if not (np.isfinite(self.control_dt) and self.control_dt > 0):
            raise ValueError(f"control_dt must be a positive number of seconds, got {self.control_dt}")
        if not self.task:
            raise ValueError("task name must not be empty")


# --------------------------------------------------------------------------- names
def episode_filename(index: int) -> str:
    """``episode_000042.h5`` for index 42 (the generator uses the episode's seed as index)."""
    if index < 0:
        raise ValueError(f"episode index must be >= 0, got {index}")
    return f"episode_{index:06d}.h5"


def episode_index_from_path(path: str | Path) -> int | None:
    """The number in an ``episode_XXXXXX.h5`` file name, or ``None`` for another name."""
    m = _EPISODE_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def list_episodes(directory: str | Path) -> list[Path]:
    """Complete episode files ``episode_*.h5`` in ``directory``, sorted by episode index.

    Temporary files of writes in progress (hidden ``.episode_*.tmp``) are ignored.
    Raises ``FileNotFoundError`` if the directory does not exist.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"episode directory not found: {d}")
    paths = [p for p in d.iterdir() if p.is_file() and episode_index_from_path(p) is not None]
    return sorted(paths, key=lambda p: (episode_index_from_path(p), p.name))


def resolve_episode_paths(paths_or_dirs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand files and directories (see :func:`list_episodes`) into a list of episode files.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` if nothing is found.
    """
    if isinstance(paths_or_dirs, (str, Path)):
        paths_or_dirs = [paths_or_dirs]
    out: list[Path] = []
    for p in map(Path, paths_or_dirs):
        if p.is_dir():
            out.extend(list_episodes(p))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such episode file or directory: {p}")
    if not out:
        raise ValueError(f"no episode files ({EPISODE_GLOB}) found in {[str(Path(p)) for p in paths_or_dirs]}")
    return out


# --------------------------------------------------------------------------- write
def write_episode(
    episode: Episode,
    path: str | Path,
    compression: str = "gzip",
    compression_level: int = 4,
) -> Path:
    """Write ``episode`` atomically to ``path`` (an ``episode_XXXXXX.h5`` name is recommended).

    The file is written as a hidden temporary file next to ``path``, flushed to
    disk and renamed into place; on any error the temporary file is removed.

    Args:
        episode: a valid :class:`Episode` (checked with :meth:`Episode.validate`).
        path: destination file; its directory is created if needed.
        compression: ``"gzip"`` (portable, default), ``"lzf"`` (faster, h5py only) or ``"none"``.
        compression_level: gzip level 1-9.

    Returns:
        The destination path.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {list(COMPRESSIONS)}, got {compression!r}")
    if compression == "gzip" and not 1 <= int(compression_level) <= 9:
        raise ValueError(f"gzip compression_level must be in 1..9, got {compression_level}")
    episode.validate()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, unique, created exclusively ("w-"), with the usual umask permissions.
    tmp = path.parent / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with h5py.File(tmp, "w-") as f:
            _write_contents(f, episode, compression, int(compression_level))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_contents(f: h5py.File, ep: Episode, compression: str, level: int) -> None:
    T, V, H, W, _ = ep.rgb.shape
    comp = {} if compression == "none" else {"compression": compression}
    if compression == "gzip":
        comp["compression_opts"] = level
    f.create_dataset("rgb", data=np.asarray(ep.rgb, dtype=np.uint8), chunks=(1, V, H, W, 3), **comp)
    if ep.depth is not None:
        f.create_dataset("depth", data=np.asarray(ep.depth, dtype=np.float32), chunks=(1, V, H, W),
                         shuffle=compression != "none", **comp)
    for name, (dtype, _) in _STEP_ARRAYS.items():
        f.create_dataset(name, data=np.asarray(getattr(ep, name), dtype=dtype))
    cams = f.create_group("cameras")
    cams.create_dataset("K", data=np.stack([c.K for c in ep.cameras]))
    cams.create_dataset("T_world_cam", data=np.stack([c.T_world_cam for c in ep.cameras]))
    cams.create_dataset("width", data=np.array([c.width for c in ep.cameras], dtype=np.int64))
    cams.create_dataset("height", data=np.array([c.height for c in ep.cameras], dtype=np.int64))
    cams.create_dataset("name", data=np.array(ep.camera_names, dtype=object), dtype=h5py.string_dtype())
    attrs = f.attrs
    attrs["format"] = FORMAT_NAME
    attrs["format_version"] = FORMAT_VERSION
    attrs["task"] = ep.task
    attrs["instruction"] = ep.instruction
    attrs["seed"] = int(ep.seed)
    attrs["success"] = bool(ep.success)
    attrs["control_dt"] = float(ep.control_dt)
    attrs["num_steps"] = int(T)
    attrs["terminal_observation"] = bool(ep.terminal_observation)
    attrs["frame_id"] = ep.frame_id
    attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")


# --------------------------------------------------------------------------- read
def read_episode_info(path: str | Path) -> EpisodeInfo:
    """Read an episode's metadata and camera rig without loading images.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        EpisodeFormatError: the file is not a complete episode of this format version.
    """
    path = Path(path)
    with _open(path) as f:
        return _read_info(f, path)


def load_episode(path: str | Path, load_depth: bool = True) -> Episode:
    """Load a whole episode into memory.

    Args:
        path: an ``episode_XXXXXX.h5`` file.
        load_depth: read the optional depth array (``Episode.depth`` is ``None`` otherwise).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        EpisodeFormatError: the file is unreadable, incomplete, inconsistent or of another version.
    """
    path = Path(path)
    with _open(path) as f:
        info = _read_info(f, path)
        try:
            arrays = {name: f[name][()] for name in ("rgb", *_STEP_ARRAYS)}
            depth = f["depth"][()] if (load_depth and info.has_depth) else None
        except (OSError, RuntimeError, KeyError) as exc:  # truncated chunks, bad filters
            raise EpisodeFormatError(path, f"cannot read episode data ({exc})") from exc
    ep = Episode(
        cameras=info.cameras, task=info.task, instruction=info.instruction, seed=info.seed,
        success=info.success, control_dt=info.control_dt, depth=depth,
        terminal_observation=info.terminal_observation, frame_id=info.frame_id, path=path, **arrays,
    )
    try:
        ep.validate()
    except ValueError as exc:
        raise EpisodeFormatError(path, f"inconsistent episode: {exc}") from exc
    return ep


def read_episode_rows(path: str | Path, rows: Sequence[int], views: Sequence[int]) -> tuple[np.ndarray, dict]:
    """Read only some frames of an episode: what a training clip needs, without loading the episode.

    Args:
        path: an ``episode_XXXXXX.h5`` file.
        rows: step indices, any order, repeats allowed.
        views: camera indices, in the order wanted.

    Returns:
        ``(rgb, steps)``: uint8 ``(len(rows), len(views), H, W, 3)`` and the whole episode's
        ``ee_pose`` and ``action`` ``(T, 8)`` (small).

    Raises:
        FileNotFoundError, EpisodeFormatError: as :func:`load_episode`.
    """
    path = Path(path)
    rows = np.asarray(rows, dtype=np.int64)
    unique, inverse = np.unique(rows, return_inverse=True)
    with _open(path) as f:
        try:
            # One read per row (one chunk each): h5py's list indexing took 1.86 s for 5 rows, this 3 ms.
            rgb = np.stack([f["rgb"][int(r)] for r in unique])[:, list(views)]
            steps = {name: f[name][()] for name in ("ee_pose", "action")}
        except (OSError, RuntimeError, KeyError, IndexError, TypeError) as exc:
            raise EpisodeFormatError(path, f"cannot read rows {rows.tolist()} ({exc})") from exc
    return rgb[inverse], steps


def read_episode_steps(path: str | Path) -> dict[str, np.ndarray]:
    """The per-step ``ee_pose`` and ``action`` ``(T, 8)`` of an episode, without its images.

    Raises:
        FileNotFoundError, EpisodeFormatError: as :func:`load_episode`.
    """
    path = Path(path)
    with _open(path) as f:
        try:
            return {name: f[name][()] for name in ("ee_pose", "action")}
        except (OSError, RuntimeError, KeyError, TypeError) as exc:
            raise EpisodeFormatError(path, f"cannot read ee_pose / action ({exc})") from exc


@contextlib.contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    """Open an episode file read-only, mapping HDF5 open errors to :class:`EpisodeFormatError`."""
    if not path.exists():
        raise FileNotFoundError(f"episode file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise EpisodeFormatError(path, f"not a readable HDF5 file (truncated or corrupted?): {exc}") from exc
    with f:
        yield f


def _read_info(f: h5py.File, path: Path) -> EpisodeInfo:
    try:
        attrs = dict(f.attrs)
    except (OSError, RuntimeError) as exc:
        raise EpisodeFormatError(path, f"cannot read file attributes ({exc})") from exc
    if attrs.get("format") != FORMAT_NAME:
        raise EpisodeFormatError(path, f"not an episode file (format attribute {attrs.get('format')!r}, "
                                       f"expected {FORMAT_NAME!r})")
    version = attrs.get("format_version")
    version = version.item() if isinstance(version, np.generic) else version
    if version != FORMAT_VERSION:
        raise EpisodeFormatError(path, f"unsupported format_version {version!r}; this reader supports "
                                       f"version {FORMAT_VERSION}")
    missing = [a for a in _REQUIRED_ATTRS if a not in attrs]
    if missing:
        raise EpisodeFormatError(path, f"missing attributes {missing}")
    missing = [d for d in ("rgb", *_STEP_ARRAYS, "cameras/K", "cameras/T_world_cam", "cameras/width",
                           "cameras/height", "cameras/name") if d not in f]
    if missing:
        raise EpisodeFormatError(path, f"missing datasets {missing}")
    try:
        g = f["cameras"]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in g["name"][()]]
        cameras = [
            Camera(K=K, T_world_cam=T, width=int(w), height=int(h), name=n)
            for K, T, w, h, n in zip(g["K"][()], g["T_world_cam"][()], g["width"][()], g["height"][()], names)
        ]
        rgb_shape = f["rgb"].shape
        step_shapes = {name: f[name].shape for name in _STEP_ARRAYS}
        depth_shape = f["depth"].shape if "depth" in f else None
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise EpisodeFormatError(path, f"cannot read the camera rig ({exc})") from exc
    T = int(attrs["num_steps"])
    if len(rgb_shape) != 5 or rgb_shape[0] != T or rgb_shape[1] != len(cameras) or rgb_shape[4] != 3:
        raise EpisodeFormatError(path, f"rgb has shape {rgb_shape}, expected ({T}, {len(cameras)}, H, W, 3)")
    for name, (_, trailing) in _STEP_ARRAYS.items():
        if step_shapes[name] != (T,) + trailing:
            raise EpisodeFormatError(path, f"{name} has shape {step_shapes[name]}, expected {(T,) + trailing}")
    if depth_shape is not None and depth_shape != rgb_shape[:4]:
        raise EpisodeFormatError(path, f"depth has shape {depth_shape}, expected {rgb_shape[:4]}")
    return EpisodeInfo(
        task=str(attrs["task"]), instruction=str(attrs["instruction"]), seed=int(attrs["seed"]),
        success=bool(attrs["success"]), control_dt=float(attrs["control_dt"]), num_steps=T, cameras=cameras,
        has_depth=depth_shape is not None, terminal_observation=bool(attrs.get("terminal_observation", True)),
        frame_id=str(attrs.get("frame_id", "base_link")), path=path,
    )
