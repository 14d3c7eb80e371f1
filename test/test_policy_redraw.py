"""``PolicyRunner``'s redraw: a draw the executor would cut on confidence is drawn again with further noise of
the same generator, and the draw that runs furthest is kept (checked against the draws taken by hand)."""

import numpy as np
import pytest
import torch

from action_images_ros.config import PolicyConfig
from action_images_ros.control.chunk_execution import ChunkExecutor, ExecutionConfig, usable_prefix
from action_images_ros.model.config import ModelConfig
from action_images_ros.model.factory import build_pipeline
from action_images_ros.policy import PolicyRunner
from action_images_ros.sim import make_env


class CountingPipeline:
    """The real pipeline, counting its calls."""

    def __init__(self, pipe):
        self.pipe, self.calls = pipe, 0

    def __call__(self, **kwargs):
        self.calls += 1
        return self.pipe(**kwargs)

    def __getattr__(self, name):
        return getattr(self.pipe, name)


@pytest.fixture(scope="module")
def setting():
    env = make_env("reach_target", image_size=64)
    obs = env.reset(5)
    cameras = env.cameras
    env.close()
    torch.manual_seed(0)
    pipe = build_pipeline(ModelConfig(image_size=32, num_future=3, block_out_channels=(8, 16)))
    return pipe, cameras, obs


def _by_hand(pipe, runner, obs, seed, draws):
    """The draws a runner takes from ``seed``, made directly on the pipeline."""
    gen = torch.Generator().manual_seed(seed)
    small = runner.to_model_resolution(obs.images)
    outs = []
    for _ in range(draws):
        outs.append(pipe(cond_rgb=small.transpose(0, 3, 1, 2).astype(np.float32) / 255.0, state=obs.ee_pose,
                         instruction=None, cameras=runner.model_cameras, mode="policy",
                         num_inference_steps=runner.num_inference_steps, generator=gen))
    return outs


def _leading(conf, threshold):
    n = 0
    for c in conf:
        if not c >= threshold:
            break
        n += 1
    return n


def test_without_the_executors_settings_one_draw_is_taken_as_sampled(setting):
    pipe, cameras, obs = setting
    counted = CountingPipeline(pipe)
    runner = PolicyRunner(counted, cameras, num_inference_steps=1)
    pred = runner.predict(obs.images, obs.ee_pose, seed=11)
    assert counted.calls == 1 and pred.draws == 1
    (ref,) = _by_hand(pipe, runner, obs, 11, 1)
    np.testing.assert_array_equal(pred.actions, np.asarray(ref.actions))


class ScriptedConfidence(CountingPipeline):
    """The real pipeline's draws with the decoder confidence of call ``i`` set to ``confs[i]`` (an untrained
    network decodes the same confidence everywhere; a trained one varies from draw to draw)."""

    def __init__(self, pipe, confs):
        super().__init__(pipe)
        self.confs = confs

    def __call__(self, **kwargs):
        out = super().__call__(**kwargs)
        out.confidence = np.asarray(self.confs[self.calls - 1], dtype=np.float64)
        return out


@pytest.mark.parametrize("confs, redraws, kept, execute_fraction", [
    ([[0.9, 0.1, 0.9], [0.9, 0.9, 0.1], [0.1, 0.9, 0.9]], 2, 1, 1.0),  # none whole: the one that runs furthest
    ([[0.1, 0.9, 0.9], [0.9, 0.9, 0.9], [0.1, 0.1, 0.1]], 2, 1, 1.0),  # whole at the second: no third draw
    ([[0.9, 0.1, 0.9], [0.5, 0.1, 0.5]], 1, 0, 1.0),                   # as far: the higher mean confidence
    ([[0.5, 0.1, 0.5], [0.9, 0.1, 0.9]], 1, 1, 1.0),                   # (whichever comes first)
    ([[0.1, 0.9, 0.9], [0.9, 0.9, 0.9]], 0, 0, 1.0),                   # no redraw allowed
    ([[0.9, 0.1, 0.1], [0.9, 0.9, 0.9]], 2, 0, 0.5),                   # the executor keeps 1 step: whole
    ([[0.9, 0.1, 0.9], [0.9, 0.9, 0.1]], 1, 1, 0.7),                   # it keeps 2: the second runs whole
])
def test_a_cut_draw_is_drawn_again_and_the_one_that_runs_furthest_is_kept(setting, confs, redraws, kept,
                                                                          execute_fraction):
    pipe, cameras, obs = setting
    scripted = ScriptedConfidence(pipe, confs)
    execution = ExecutionConfig(min_confidence=0.2, execute_fraction=execute_fraction)
    runner = PolicyRunner(scripted, cameras, num_inference_steps=1, execution=execution, redraws=redraws)
    pred = runner.predict(obs.images, obs.ee_pose, seed=11)
    n_kept = {1.0: 3, 0.7: 2, 0.5: 1}[execute_fraction]  # keyframes 1, 2, 3 periods ahead; kept up to f x 3
    taken = min(len(confs), redraws + 1,
                next((i + 1 for i, c in enumerate(confs) if min(c[:n_kept]) >= 0.2), len(confs)))
    assert scripted.calls == pred.draws == taken
    # the actions are the kept draw's: the same noise as that draw made by hand from the seed
    by_hand = _by_hand(pipe, runner, obs, 11, taken)
    np.testing.assert_array_equal(pred.actions, np.asarray(by_hand[kept].actions))
    if kept != taken - 1:
        assert not np.array_equal(pred.actions, np.asarray(by_hand[taken - 1].actions))
    np.testing.assert_array_equal(pred.confidence, confs[kept])
    # the executor itself runs the kept draw as far as the best of the draws taken
    best = max(_leading(c[:n_kept], 0.2) for c in confs[:taken])
    executor = ChunkExecutor(execution)
    executor.reset(now_s=0.0)
    plan = executor.add_chunk(pred.to_chunk(0.0), 0.0, obs.ee_pose)
    assert plan.accepted == (best > 0) and plan.steps == best


def test_no_draw_passes_then_all_are_taken_and_the_executor_refuses_the_chunk(setting):
    pipe, cameras, obs = setting
    counted = CountingPipeline(pipe)
    execution = ExecutionConfig(min_confidence=1.0)
    runner = PolicyRunner(counted, cameras, num_inference_steps=1, execution=execution, redraws=2)
    pred = runner.predict(obs.images, obs.ee_pose, seed=3)
    assert counted.calls == pred.draws == 3
    assert np.all(pred.confidence < 1.0)
    executor = ChunkExecutor(execution)
    executor.reset(now_s=0.0)
    plan = executor.add_chunk(pred.to_chunk(0.0), 0.0, obs.ee_pose)
    assert not plan.accepted and "uncertain" in plan.reason


def test_a_draw_that_runs_whole_is_not_drawn_again(setting):
    pipe, cameras, obs = setting
    counted = CountingPipeline(pipe)
    runner = PolicyRunner(counted, cameras, num_inference_steps=1, execution=ExecutionConfig(min_confidence=0.0),
                          redraws=4)
    assert runner.predict(obs.images, obs.ee_pose, seed=3).draws == 1 and counted.calls == 1


def test_a_non_finite_step_counts_as_cut():
    poses = np.tile([0.4, 0.0, 0.3, 0.0, 0.0, 0.0, 1.0, 1.0], (3, 1))
    poses[1, 0] = np.nan
    assert usable_prefix(poses, np.array([0.9, 0.9, 0.9]), 0.2) == 1
    poses[1, 0], poses[2, 3:7] = 0.4, 0.0  # a zero quaternion
    assert usable_prefix(poses, np.array([0.9, 0.9, 0.9]), 0.2) == 2


def test_redraw_settings_are_checked_and_default_to_the_models(setting):
    pipe, cameras, _ = setting
    execution = ExecutionConfig(min_confidence=0.2)
    with pytest.raises(ValueError, match="redraws"):
        PolicyRunner(pipe, cameras, redraws=9, execution=execution)
    with pytest.raises(ValueError, match="redraws"):
        PolicyRunner(pipe, cameras, redraws=1.5, execution=execution)
    with pytest.raises(ValueError, match="executor's settings"):
        PolicyRunner(pipe, cameras, redraws=2)
    with pytest.raises(ValueError, match="redraws"):
        PolicyConfig(redraws=-1)
    assert PolicyConfig.from_dict(PolicyConfig(redraws=2).to_dict()).redraws == 2
    assert "redraws" not in PolicyConfig().to_dict()  # a folder without redraws loads in older checkouts
    wrapped = CountingPipeline(pipe)
    wrapped.policy_cfg = PolicyConfig(redraws=3)  # a model folder saved with redraws: 3
    assert PolicyRunner(wrapped, cameras, execution=execution).redraws == 3
    assert PolicyRunner(wrapped, cameras).redraws == 0  # nothing to judge a draw by: one draw
