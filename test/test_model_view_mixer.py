"""The view mixer: attention across the views' bottlenecks, the identity until trained, in every runtime."""

import numpy as np
import pytest
import torch

from action_images_ros.commands.train import initial_pipeline
from action_images_ros.model.config import ModelConfig
from action_images_ros.model.factory import build_pipeline, with_gripper_readout, with_view_mixer
from action_images_ros.model.objective import flow_matching_loss
from action_images_ros.model.pipeline import ActionImagesPipeline
from action_images_ros.model.runtimes import use_runtime
from action_images_ros.model.synthetic import SyntheticReachDataset
from _fresh_process import loads_component
from action_images_ros.model.training import export_checkpoint, latest_checkpoint, train
from action_images_ros.model.config import TrainConfig

S, F = 32, 2


@pytest.fixture(scope="module")
def dataset():
    return SyntheticReachDataset(6, image_size=S, num_future=F, seed=5)


def _plain():
    torch.manual_seed(0)
    pipe = build_pipeline(ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), use_state=True,
                                      inference_bf16=False))  # float32: the ONNX Runtime comparison
    with torch.no_grad():  # a fresh UNet outputs "no change" (zero conv_out): make its drawing non-trivial
        for p in pipe.denoiser.conv_out.parameters():
            p.normal_(0.0, 0.05)
    return pipe


def _call(pipe, item, cams, steps=2):
    return pipe(cond_rgb=item["cond_rgb"], state=np.asarray(item["state"]), cameras=cams, mode="policy",
                num_inference_steps=steps, generator=torch.Generator().manual_seed(3))


def _trained_looking(mixer):
    with torch.no_grad():  # as if fine-tuned: the output projection away from zero
        mixer.out_proj.weight.normal_(0.0, 0.3)


def test_a_fresh_mixer_changes_nothing_and_a_trained_one_mixes_the_views(dataset, tmp_path):
    plain, item = _plain(), dataset[0]
    mixed = with_view_mixer(plain, num_views=3)
    assert mixed.denoiser is plain.denoiser and mixed.model_cfg.view_mixer and mixed.view_mixer.config.tokens_per_view == 256
    base = _call(plain, item, dataset.cameras)
    same = _call(mixed, item, dataset.cameras)
    np.testing.assert_allclose(same.future_action, base.future_action, atol=1e-6)  # oneDNN: ~1e-6 call to call
    np.testing.assert_allclose(same.actions, base.actions, atol=1e-6)
    with pytest.raises(ValueError, match="already has a view mixer"):
        with_view_mixer(mixed, 3)

    # Views are independent without the mixer, and not with a trained one: a change in view 2's input
    # reaches view 0's output only through the mixer.
    _trained_looking(mixed.view_mixer)
    x = torch.randn(3, plain.denoiser.config.in_channels, S, S)
    x2 = x.clone()
    x2[2] += 1.0
    t = torch.full((3,), 700.0)
    with torch.no_grad():
        a, _ = plain.backbone.network(x, t, False)
        b, _ = plain.backbone.network(x2, t, False)
        c, mid_c = mixed.backbone.network(x, t, True)
        d, _ = mixed.backbone.network(x2, t, True)
    np.testing.assert_allclose(a[0].numpy(), b[0].numpy(), atol=1e-6)
    assert (c[0] - d[0]).abs().max() > 1e-3
    # the features the read-out / head read are the mixed ones
    with torch.no_grad():
        raw = []
        hook = plain.denoiser.mid_block.register_forward_hook(lambda _m, _i, o: raw.append(o))
        plain.denoiser(x, t)
        hook.remove()
        np.testing.assert_allclose(mid_c.numpy(), mixed.view_mixer(raw[0]).numpy(), atol=1e-5)

    with pytest.raises(ValueError, match="built for 3 views"):
        with torch.no_grad():
            mixed.backbone.network(x[:2], t[:2], False)

    # saved and loaded with the pipeline
    out = _call(mixed, item, dataset.cameras)
    assert np.abs(out.future_action - base.future_action).max() > 1e-3
    mixed.save_pretrained(tmp_path / "m")
    loads_component(tmp_path / "m", "view_mixer")  # in a fresh process too
    loaded = ActionImagesPipeline.from_pretrained(tmp_path / "m")
    assert loaded.view_mixer is not None and loaded.model_cfg.view_mixer
    np.testing.assert_allclose(_call(loaded, item, dataset.cameras).future_action, out.future_action, atol=1e-6)


def test_onnxruntime_runs_the_mixer_as_eager_does(dataset):
    pipe = with_view_mixer(with_gripper_readout(_plain(), 3), 3)
    _trained_looking(pipe.view_mixer)
    with torch.no_grad():
        pipe.gripper_readout.mlp[-1].weight.normal_(0.0, 0.05)
    item = dataset[1]
    ref = _call(pipe, item, dataset.cameras, steps=3)
    use_runtime(pipe, "onnxruntime")
    got = _call(pipe, item, dataset.cameras, steps=3)
    np.testing.assert_allclose(got.future_action, ref.future_action, atol=1e-4)
    np.testing.assert_allclose(got.actions[:, :3], ref.actions[:, :3], atol=1e-4)
    np.testing.assert_allclose(got.actions[:, 7], ref.actions[:, 7], atol=1e-4)
    np.testing.assert_allclose(got.confidence, ref.confidence, atol=1e-3)


def test_the_mixer_trains_with_the_network_and_is_added_by_init_from(dataset, tmp_path):
    plain = _plain()
    cfg = ModelConfig(**{**plain.model_cfg.to_dict(), "view_mixer": True})
    pipe = initial_pipeline(plain, tmp_path, cfg, num_views=3)
    assert pipe.view_mixer is not None and pipe.denoiser is plain.denoiser
    batch = torch.utils.data.default_collate([dataset[i] for i in range(4)])
    loss = flow_matching_loss(pipe, batch, ["policy"] * 4, generator=torch.Generator().manual_seed(0))
    loss.loss.backward()
    grad = pipe.view_mixer.out_proj.weight.grad
    assert grad is not None and grad.abs().max() > 0  # the zero projection gets a gradient: it can learn
    with pytest.raises(ValueError, match="denoiser_type 'unet2d'"):
        ModelConfig(denoiser_type="wan", image_size=32, num_future=4, prediction_type="velocity", view_mixer=True)
    other = ModelConfig(**{**cfg.to_dict(), "layers_per_block": 2})
    with pytest.raises(ValueError, match="layers_per_block"):
        initial_pipeline(plain, tmp_path, other, num_views=3)


def test_training_updates_saves_and_averages_the_mixer_and_freeze_denoiser_freezes_it(dataset, tmp_path):
    cfg = ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), use_state=True, view_mixer=True)
    tc = TrainConfig(batch_size=2, max_steps=2, checkpoint_every=2, log_every=1, progress=False, ema_decay=0.5,
                     warmup_steps=1, mode_probs={"policy": 1.0})
    train(cfg, dataset, tc, tmp_path / "run")
    model = ActionImagesPipeline.from_pretrained(tmp_path / "run" / "model")
    assert model.view_mixer.out_proj.weight.abs().max() > 0  # trained from zero, saved with the model
    ema = ActionImagesPipeline.from_pretrained(export_checkpoint(latest_checkpoint(tmp_path / "run"), tmp_path / "e"))
    assert ema.view_mixer.out_proj.weight.abs().max() > 0  # and averaged

    frozen = with_gripper_readout(model, 3)
    before = frozen.view_mixer.out_proj.weight.detach().clone()
    train(frozen, dataset, TrainConfig(batch_size=2, max_steps=1, progress=False, freeze_denoiser=True,
                                       mode_probs={"policy": 1.0}), tmp_path / "frozen")
    torch.testing.assert_close(frozen.view_mixer.out_proj.weight.detach(), before)  # part of the frozen network
