"""The gripper read-out: poses from the decoded action images, the gripper from a learned classifier."""

import math

import numpy as np
import pytest
import torch

from action_images_ros.model.config import ModelConfig
from action_images_ros.model.factory import build_pipeline, with_gripper_readout, without_gripper_readout
from action_images_ros.model.gripper_readout import gripper_targets
from action_images_ros.model.objective import flow_matching_loss
from action_images_ros.model.pipeline import ActionImagesPipeline
from action_images_ros.model.synthetic import SyntheticReachDataset
from _fresh_process import loads_component

S, F = 32, 2


@pytest.fixture(scope="module")
def dataset():
    return SyntheticReachDataset(8, image_size=S, num_future=F, seed=7)


@pytest.fixture(scope="module")
def plain():
    torch.manual_seed(0)
    return build_pipeline(ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), use_state=True))


def _call(pipe, item, cams, mode="policy", **kw):
    return pipe(cond_rgb=item["cond_rgb"], state=np.asarray(item["state"]), cameras=cams, mode=mode,
                num_inference_steps=2, generator=torch.Generator().manual_seed(3), **kw)


def test_the_readout_replaces_only_the_decoded_gripper(plain, dataset, tmp_path):
    item = dataset[0]
    ro = with_gripper_readout(plain, num_views=3)
    assert ro.denoiser is plain.denoiser and ro.model_cfg.gripper_readout and not plain.model_cfg.gripper_readout
    base = _call(plain, item, dataset.cameras)
    fresh = _call(ro, item, dataset.cameras)
    np.testing.assert_allclose(fresh.actions[:, 7], 0.5)  # zero last layer: undecided
    with torch.no_grad():
        ro.gripper_readout.mlp[-1].bias.copy_(torch.tensor([4.0, -4.0]))
    out = _call(ro, item, dataset.cameras)
    np.testing.assert_array_equal(out.future_action, base.future_action)  # the same images are generated ...
    np.testing.assert_array_equal(out.actions[:, :7], base.actions[:, :7])  # ... and decoded to the same poses
    np.testing.assert_allclose(out.actions[:, 7], 1.0 / (1.0 + np.exp([-4.0, 4.0])), rtol=1e-5)
    np.testing.assert_array_equal(out.confidence, base.confidence)
    label = _call(ro, item, dataset.cameras, mode="label", future_rgb=item["future_rgb"])
    np.testing.assert_allclose(label.actions[:, 7], out.actions[:, 7], rtol=1e-5)  # bias only: same read
    assert _call(ro, item, dataset.cameras, mode="video").actions is None

    ro.save_pretrained(tmp_path / "m")
    loads_component(tmp_path / "m", "gripper_readout")  # in a fresh process too
    loaded = ActionImagesPipeline.from_pretrained(tmp_path / "m")
    assert loaded.gripper_readout is not None and loaded.model_cfg.gripper_readout
    np.testing.assert_allclose(_call(loaded, item, dataset.cameras).actions, out.actions, atol=1e-6)

    # the ablation on the same weights: the drawn gripper again, everything else unchanged
    drawn = without_gripper_readout(loaded)
    assert drawn.denoiser is loaded.denoiser and drawn.gripper_readout is None
    np.testing.assert_allclose(_call(drawn, item, dataset.cameras).actions, base.actions, atol=1e-6)
    with pytest.raises(ValueError, match="no gripper read-out"):
        without_gripper_readout(drawn)


def test_the_readout_trains_on_the_recorded_gripper_where_action_images_are_generated(plain, dataset):
    torch.manual_seed(1)
    pipe = build_pipeline(ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), use_state=True,
                                      gripper_readout=True, loss_gripper_weight=2.0))
    batch = torch.utils.data.default_collate([dataset[i] for i in range(6)])
    batch["actions"][::2, :, 7] = 0.0  # closed in half the scenes: something to tell apart
    targets = gripper_targets(batch["actions"])
    assert targets.sum() == targets.numel() / 2
    gen = torch.Generator().manual_seed(0)
    start = flow_matching_loss(pipe, batch, ["policy"] * 6, generator=gen)
    assert start.gripper == pytest.approx(math.log(2.0), rel=1e-5)  # logit 0 against 0/1 targets
    without = flow_matching_loss(plain, batch, ["policy"] * 6, generator=torch.Generator().manual_seed(0))
    assert without.gripper is None
    assert flow_matching_loss(pipe, batch, ["video"] * 6).gripper == 0.0  # no action images generated
    with torch.no_grad():
        pipe.gripper_readout.mlp[-1].bias.fill_(4.0)  # "open" everywhere: scenes 0, 2, 4 are wrong
    world = flow_matching_loss(pipe, batch, ["world_model"] * 3 + ["policy"] * 3,
                               generator=torch.Generator().manual_seed(0))
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731  cross-entropy of logit 4: -x for open, +x closed
    # only scenes 3 (open), 4 (closed), 5 (open) generate action images
    assert world.gripper == pytest.approx((2 * softplus(-4.0) + softplus(4.0)) / 3, rel=1e-5)
    with torch.no_grad():
        pipe.gripper_readout.mlp[-1].bias.zero_()

    opt = torch.optim.AdamW(pipe.gripper_readout.parameters(), lr=3e-3)
    for step in range(30):
        parts = flow_matching_loss(pipe, batch, ["policy"] * 6, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        parts.loss.backward()
        opt.step()
    after = flow_matching_loss(pipe, batch, ["policy"] * 6, generator=torch.Generator().manual_seed(0))
    assert after.gripper < 0.5 * start.gripper, (start.gripper, after.gripper)


def test_config_and_components_must_agree(plain):
    with pytest.raises(ValueError, match="gripper_readout=True but the pipeline has no gripper_readout"):
        ActionImagesPipeline(denoiser=plain.denoiser, scheduler=plain.scheduler,
                             model_config={**plain.model_cfg.to_dict(), "gripper_readout": True})
    with pytest.raises(ValueError, match="needs action_output 'images' and denoiser_type 'unet2d'"):
        ModelConfig(action_output="head", gripper_readout=True)
    with pytest.raises(ValueError, match="already has a gripper read-out"):
        with_gripper_readout(with_gripper_readout(plain, 3), 3)
    with pytest.raises(ValueError, match="loss_gripper_weight must be >= 0"):
        ModelConfig(loss_gripper_weight=-1.0)


def test_freeze_denoiser_trains_only_the_readout(plain, dataset, tmp_path):
    from action_images_ros.model.config import TrainConfig
    from action_images_ros.model.training import train

    ro = with_gripper_readout(build_pipeline(plain.model_cfg), num_views=3)
    before = {k: v.clone() for k, v in ro.denoiser.state_dict().items()}
    tc = TrainConfig(max_steps=3, batch_size=2, progress=False, mixed_precision="no", freeze_denoiser=True,
                     mode_probs={"policy": 1.0}, learning_rate=1e-2, warmup_steps=1)
    res = train(ro, dataset, tc, tmp_path / "run")
    loaded = ActionImagesPipeline.from_pretrained(tmp_path / "run" / "model")
    for k, v in loaded.denoiser.state_dict().items():
        assert torch.equal(v, before[k]), k  # the denoiser's weights bit for bit
    assert float(loaded.gripper_readout.mlp[-1].weight.detach().abs().sum()) > 0  # the read-out moved from zero
    assert all("gripper" in h for h in res.history)
    with pytest.raises(ValueError, match="no action head or gripper read-out to train"):
        train(build_pipeline(plain.model_cfg), dataset, tc, tmp_path / "run2")
    with pytest.raises(ValueError, match="freeze_denoiser trains only the heads: set ema_decay: 0"):
        TrainConfig(freeze_denoiser=True, ema_decay=0.99)


def test_keyframes_that_change_the_gripper_weigh_more(dataset):
    pipe = build_pipeline(ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), use_state=True,
                                      gripper_readout=True, loss_gripper_change_weight=3.0))
    batch = torch.utils.data.default_collate([dataset[i] for i in range(4)])
    assert torch.all(batch["state"][:, 7] > 0.5)  # the synthetic arm starts open
    batch["actions"][:, :, 7] = 1.0
    batch["actions"][::2, :, 7] = 0.0  # scenes 0 and 2 close: every keyframe of theirs changes the state
    with torch.no_grad():
        pipe.gripper_readout.mlp[-1].bias.fill_(4.0)
    parts = flow_matching_loss(pipe, batch, ["policy"] * 4, generator=torch.Generator().manual_seed(0))
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert parts.gripper == pytest.approx((2 * 3.0 * softplus(4.0) + 2 * softplus(-4.0)) / 4, rel=1e-5)
    with pytest.raises(ValueError, match="loss_gripper_change_weight must be >= 1"):
        ModelConfig(loss_gripper_change_weight=0.5)


def _randomised_readout(at: str, share: float = 1.0):
    torch.manual_seed(2)
    pipe = build_pipeline(ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), use_state=True,
                                      gripper_readout=True, gripper_readout_at=at, readout_pure_noise_share=share))
    with torch.no_grad():  # a read-out that depends on its features (a fresh one says 0.5 whatever it reads)
        pipe.gripper_readout.mlp[-1].weight.normal_(0.0, 1.0)
    return pipe


@pytest.mark.parametrize("share", [1.0, 0.5])
def test_a_first_step_readout_learns_from_pure_noise_not_the_recorded_action_images(dataset, share):
    batch = torch.utils.data.default_collate([dataset[i] for i in range(6)])
    other = dict(batch, future_action=torch.rand_like(batch["future_action"]))  # same poses, other images
    for at, same in (("first_step", True), ("last_step", False)):
        pipe = _randomised_readout(at, share)
        a, b = (flow_matching_loss(pipe, x, ["policy"] * 6, generator=torch.Generator().manual_seed(0))
                for x in (batch, other))
        assert a.action != b.action  # the denoising loss sees the recorded action images at every level
        assert a.gripper > 0  # rows at pure noise were drawn: the equality below is not between two zeros
        # at pure noise the read-out's input holds nothing of them: it can only learn from the scene
        assert (a.gripper == b.gripper) is same, (at, a.gripper, b.gripper)


def test_a_first_step_readout_reads_the_first_denoising_step(dataset):
    item = dataset[1]
    for at, same in (("first_step", True), ("last_step", False)):
        pipe = _randomised_readout(at)
        grip = [pipe(cond_rgb=item["cond_rgb"], state=np.asarray(item["state"]), cameras=dataset.cameras,
                     num_inference_steps=n, generator=torch.Generator().manual_seed(3)).actions[:, 7]
                for n in (1, 3)]
        # both samplers start from the same noise at t = 1000; only their last steps differ
        assert np.array_equal(grip[0], grip[1]) is same, (at, grip)
    with pytest.raises(ValueError, match="gripper_readout_at must be one of"):
        ModelConfig(gripper_readout=True, gripper_readout_at="middle")
    with pytest.raises(ValueError, match="readout_pure_noise_share must be in"):
        ModelConfig(readout_pure_noise_share=0.0)
    plain = build_pipeline(ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), use_state=True))
    ro = with_gripper_readout(plain, 3, gripper_readout_at="first_step", readout_pure_noise_share=1.0)
    assert ro.model_cfg.gripper_readout_at == "first_step" and ro.model_cfg.readout_pure_noise_share == 1.0
    with pytest.raises(ValueError, match="not read-out settings"):
        with_gripper_readout(plain, 3, block_out_channels=(8, 8))
