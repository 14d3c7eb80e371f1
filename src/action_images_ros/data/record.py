"""Record scripted-expert episodes from the simulation and write them to disk.

One episode (``sim.rollout.run_expert_episode``): ``env.reset(seed)``, then
until the expert says it is done (or ``max_steps`` actions) act and step. Row
``t`` stores the observation *before* action ``t`` and that action; a final row
stores the observation after the last action (its action row repeats the last
command). The task's success check at the end is recorded; failed episodes are
kept with ``success = False``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterator

import numpy as np

from ..geometry import jittered_rig
from .episode import Episode, EpisodeFormatError, episode_filename, read_episode_info, write_episode

logger = logging.getLogger(__name__)
# The random stream of the per-episode rigs (camera jitter), apart from the evaluation conditions' seeds
# (eval/conditions.py: 1, 2, 4), so a training rig and a test rig of the same episode seed differ.
JITTER_STREAM = 17


@dataclasses.dataclass
class GenerateConfig:
    """Settings of :func:`generate_episodes`.

    Attributes:
        task: a task name from ``action_images_ros.sim.TASK_NAMES``.
        num_episodes: how many episodes (seeds ``seed .. seed + num_episodes - 1``).
        out_dir: directory for ``episode_<seed>.h5`` files.
        image_size: rendered image side in pixels.
        seed: first seed.
        max_steps: cap on expert actions per episode (``None`` = the task's own
            budget); a capped episode is kept with whatever the success check says.
        rig_path: camera rig YAML (``None`` = the simulation's default rig).
        camera_jitter_m, camera_jitter_deg: each episode renders from its own rig: every camera moved by
            up to ``camera_jitter_m`` and turned by up to ``camera_jitter_deg`` (uniform amounts, random
            directions; ``geometry.jittered_rig``), drawn from ``(JITTER_STREAM, episode seed)``. The episode
            stores the rig it was rendered from. 0 and 0 (default): the rig as given.
        depth: also store depth images.
        compression: HDF5 compression of images (``"gzip"``, ``"lzf"``, ``"none"``).
    """

    task: str
    num_episodes: int
    out_dir: Path
    image_size: int = 128
    seed: int = 0
    max_steps: int | None = None
    rig_path: Path | None = None
    camera_jitter_m: float = 0.0
    camera_jitter_deg: float = 0.0
    depth: bool = False
    compression: str = "gzip"

    def __post_init__(self) -> None:
        from ..sim import TASK_NAMES

        if self.task not in TASK_NAMES:
            raise ValueError(f"unknown task {self.task!r}; valid tasks: {', '.join(TASK_NAMES)}")
        for name, lo in (("num_episodes", 1), ("image_size", 16), ("max_steps", 1), ("seed", 0)):
            value = getattr(self, name)
            if name == "max_steps" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
                raise ValueError(f"`{name}` must be an integer >= {lo}. Got {value!r}")
        for name in ("camera_jitter_m", "camera_jitter_deg"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < float("inf"):
                raise ValueError(f"`{name}` must be a number >= 0. Got {value!r}")
        if self.compression not in ("gzip", "lzf", "none"):
            raise ValueError(f"`compression` must be one of ['gzip', 'lzf', 'none']. Got {self.compression!r}")
        self.out_dir = Path(self.out_dir)
        if self.rig_path is not None:
            self.rig_path = Path(self.rig_path)
            if not self.rig_path.is_file():
                raise FileNotFoundError(f"camera rig file not found: {self.rig_path}")


@dataclasses.dataclass
class GenerateResult:
    """Outcome of one episode of :func:`generate_episodes`."""

    path: Path
    seed: int
    success: bool
    num_steps: int
    skipped: bool  # already on disk from an earlier (interrupted) run


def record_episode(env, seed: int, max_steps: int | None = None, depth: bool = False) -> Episode:
    """Run the task's scripted expert from ``env.reset(seed)`` and return the episode.

    Args:
        env: a simulation environment from ``action_images_ros.sim.make_env``.
        seed: seed of the initial state.
        max_steps: maximum number of expert actions (``None`` = the task's budget,
            ``env.max_episode_steps``).
        depth: record depth images (the environment must render them).

    Returns:
        An :class:`Episode` with ``T = actions + 1`` rows (the last row is the
        observation after the final action; its action repeats the final command).
    """
    from ..sim.rollout import run_expert_episode

    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    run = run_expert_episode(env, seed, max_steps=max_steps)
    obs = run.observations
    if run.num_steps == 0:  # expert done at reset: one row, holding the current pose
        actions = np.array([obs[0].ee_pose], dtype=np.float64)
    else:
        actions = np.concatenate([run.actions, run.actions[-1:]]).astype(np.float64)
    if depth and any(o.depth is None for o in obs):
        raise ValueError("depth recording was requested but the environment returned no depth images "
                         "(build it with render_depth=True)")
    return Episode(
        rgb=np.stack([o.images for o in obs]).astype(np.uint8, copy=False),
        ee_pose=np.stack([o.ee_pose for o in obs]).astype(np.float64),
        action=actions,
        joint_positions=np.stack([o.joint_positions for o in obs]).astype(np.float64),
        gripper=np.array([o.gripper for o in obs], dtype=np.float64),
        time=np.array([o.time for o in obs], dtype=np.float64),
        depth=np.stack([o.depth for o in obs]).astype(np.float32) if depth else None,
        cameras=list(env.cameras),
        task=str(env.task_name),
        instruction=str(run.instruction),
        seed=int(seed),
        success=bool(run.success),
        control_dt=float(env.control_dt),
        terminal_observation=True,
    )


def generate_episodes(config: GenerateConfig) -> Iterator[GenerateResult]:
    """Record ``config.num_episodes`` expert episodes, one file each, yielding as each is written.

    An episode file already present for the same task and seed (from an
    interrupted run) is kept and reported as skipped; one of another task or
    seed raises ``ValueError`` rather than being overwritten.
    """
    from ..sim import make_env

    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    env = make_env(config.task, image_size=config.image_size, rig_path=config.rig_path, seed=config.seed,
                   render_depth=config.depth)
    nominal = list(env.cameras)
    jitter = config.camera_jitter_m > 0 or config.camera_jitter_deg > 0
    try:
        for seed in range(config.seed, config.seed + config.num_episodes):
            path = out / episode_filename(seed)
            rig = (jittered_rig(nominal, config.camera_jitter_m, config.camera_jitter_deg,
                                np.random.default_rng([JITTER_STREAM, seed])) if jitter else nominal)
            existing = _existing(path, config.task, seed, rig)
            if existing is not None:
                yield existing
                continue
            if jitter:  # before the reset, whose check that the objects are in view uses the cameras
                env.move_cameras(rig)
            ep = record_episode(env, seed, max_steps=config.max_steps, depth=config.depth)
            write_episode(ep, path, compression=config.compression)
            logger.debug("wrote %s (%d steps, success=%s)", path, ep.num_steps, ep.success)
            yield GenerateResult(path=path, seed=seed, success=ep.success, num_steps=ep.num_steps, skipped=False)
    finally:
        env.close()


def _existing(path: Path, task: str, seed: int, rig: list) -> GenerateResult | None:
    if not path.exists():
        return None
    try:
        info = read_episode_info(path)
    except EpisodeFormatError as exc:
        raise ValueError(f"{exc}; delete it or choose another --out directory") from exc
    if info.task != task or info.seed != seed:
        raise ValueError(f"{path} already holds task {info.task!r} seed {info.seed}; "
                         f"choose another --out directory for task {task!r}")
    stored = np.stack([c.T_world_cam for c in info.cameras])
    if stored.shape != (len(rig), 4, 4) or not np.allclose(stored, np.stack([c.T_world_cam for c in rig]), atol=1e-9):
        raise ValueError(f"{path} was rendered from another camera rig (another --rig or --camera-jitter); "
                         f"choose another --out directory so that one dataset has one rig distribution")
    return GenerateResult(path=path, seed=seed, success=info.success, num_steps=info.num_steps, skipped=True)
