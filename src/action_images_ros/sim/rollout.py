"""Run scripted-expert episodes (used by tests, the benchmark and dataset generation)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .env import FrankaEnv, Observation


@dataclasses.dataclass
class ExpertEpisode:
    """One expert episode.

    Attributes:
        seed: the reset seed.
        instruction: language instruction.
        observations: ``T + 1`` observations (the reset one first).
        actions: ``(T, 8)`` actions sent.
        success: the task's success check after the last step.
        clamped_steps: steps whose action the env had to clamp.
    """

    seed: int
    instruction: str
    observations: list[Observation]
    actions: np.ndarray
    success: bool
    clamped_steps: int

    @property
    def num_steps(self) -> int:
        return len(self.actions)


def run_expert_episode(env: FrankaEnv, seed: int, max_steps: int | None = None,
                       keep_observations: bool = True) -> ExpertEpisode:
    """Reset ``env`` with ``seed`` and let its scripted expert act until done (or ``max_steps``).

    With ``keep_observations=False`` only the reset observation is kept (cheaper for benchmarks).
    """
    max_steps = env.max_episode_steps if max_steps is None else int(max_steps)
    obs = env.reset(seed=seed)
    expert = env.make_expert()
    observations, actions, clamped = [obs], [], 0
    while not expert.done and len(actions) < max_steps:
        action = expert.act(obs)
        obs, info = env.step(action)
        actions.append(action)
        clamped += int(info["clamped"])
        if keep_observations:
            observations.append(obs)
    return ExpertEpisode(seed=int(seed), instruction=env.instruction, observations=observations,
                         actions=np.array(actions).reshape(-1, 8), success=env.success(), clamped_steps=clamped)
