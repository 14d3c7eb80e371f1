"""Closed-loop rollout of a (tiny, random) policy in the real simulated cell."""

import numpy as np
import pytest

from action_images_ros.model.config import ModelConfig
from action_images_ros.model.factory import build_pipeline
from action_images_ros.rollout import PolicyRunner, RolloutConfig, run_episode
from action_images_ros.sim import make_env


@pytest.fixture(scope="module")
def env():
    e = make_env("reach_target", image_size=64)
    yield e
    e.close()


def test_run_episode_steps_the_sim_and_respects_safety(env):
    pipe = build_pipeline(ModelConfig(image_size=32, num_future=2, block_out_channels=(8, 16)))
    runner = PolicyRunner(pipe, env.cameras, num_inference_steps=2)
    calls = []

    def refuse_all(target, current, confidence):
        calls.append(target.copy())
        return False, current, "test refuses everything"

    cfg = RolloutConfig(num_inference_steps=2, frame_stride=2, execute_keyframes=1, min_confidence=0.0, max_steps=4)
    start = env.reset(3).ee_pose
    out = run_episode(env, runner, cfg, seed=3, safety=refuse_all, record=True)
    assert out.steps == 4 and out.predictions == 2 and out.refused == 2
    assert len(calls) == 2 and all(np.isfinite(c).all() for c in calls)
    assert out.frames[0].shape == (32, 3 * 32, 3)
    # Every keyframe was refused, so the arm held its start pose.
    assert np.linalg.norm(env.ee_pose()[:3] - start[:3]) < 5e-3


def test_runner_rejects_bad_frames(env):
    pipe = build_pipeline(ModelConfig(image_size=32, num_future=2, block_out_channels=(8, 16)))
    runner = PolicyRunner(pipe, env.cameras)
    obs = env.reset(0)
    with pytest.raises(ValueError, match="V=3"):
        runner.predict(obs.images[:2], obs.ee_pose)
    with pytest.raises(ValueError, match="uint8"):
        runner.predict(obs.images.astype(np.float32), obs.ee_pose)
    with pytest.raises(ValueError, match="calibrated for"):
        runner.predict(obs.images[:, :32], obs.ee_pose)
    with pytest.raises(ValueError, match="at least 2"):
        PolicyRunner(pipe, env.cameras[:1])
