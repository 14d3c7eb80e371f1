"""Test-time probes: what the policy relies on, found by changing one input and nothing else.

``gripper_open``   the policy is always told the gripper is open (its only sign of the task's phase
                   besides the images: has it grasped yet?);
``swap_colours``   the instruction's first two colour words swap places ("put the green cube on the
                   red square"). The multi-hot instruction words are order-free and so unchanged:
                   only the per-role grounding maps (``grounding_roles``) swap. Tasks that name one
                   colour are unaffected.

A probe changes what the policy is given, never the scene, the executor or the safety envelope.
"""

from __future__ import annotations

import numpy as np

from ..model.conditioning import instruction_words

PROBES = ("none", "gripper_open", "swap_colours")


def swap_colour_words(instruction: str, colour_words) -> str:
    """``instruction`` with its first two words from ``colour_words`` exchanged (unchanged with fewer)."""
    words = instruction.split()
    idx = [i for i, w in enumerate(words) if instruction_words(w) and instruction_words(w)[0] in colour_words]
    if len(idx) < 2:
        return instruction
    i, j = idx[:2]
    words[i], words[j] = words[j], words[i]
    return " ".join(words)


class ProbedRunner:
    """A :class:`~action_images_ros.policy.PolicyRunner` whose inputs pass through ``probe`` first."""

    def __init__(self, runner, probe: str) -> None:
        if probe not in PROBES:
            raise ValueError(f"unknown probe {probe!r}; probes are {', '.join(PROBES)}")
        self.runner = runner
        self.probe = probe
        self.colour_words = set(getattr(runner.pipeline.model_cfg, "instruction_colours", {}) or {})

    def __getattr__(self, name):
        if name == "runner":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.runner, name)

    def predict(self, images, ee_pose, seed=None, instruction=None):
        state = np.array(ee_pose, dtype=np.float64)
        if self.probe == "gripper_open":
            state[7] = 1.0
        if self.probe == "swap_colours" and instruction:
            instruction = swap_colour_words(instruction, self.colour_words)
        return self.runner.predict(images, state, seed=seed, instruction=instruction)
