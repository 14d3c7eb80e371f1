"""The large (Wan) configuration on a randomly initialised miniature: one training step, sampling, save/load."""

import numpy as np
import pytest
import torch

from action_images_ros.model.config import ModelConfig
from action_images_ros.model.denoisers import build_wan_miniature, widen_patch_embedding
from action_images_ros.model.factory import build_pipeline
from action_images_ros.model.objective import flow_matching_loss
from action_images_ros.model.pipeline import ActionImagesPipeline
from action_images_ros.model.synthetic import SyntheticReachDataset

S, F = 32, 4


@pytest.fixture(scope="module")
def cfg():
    return ModelConfig(denoiser_type="wan", image_size=S, num_future=F, prediction_type="velocity")


@pytest.fixture(scope="module")
def pipe(cfg):
    torch.manual_seed(0)
    return build_pipeline(cfg)


@pytest.fixture(scope="module")
def ds():
    return SyntheticReachDataset(2, image_size=S, num_future=F, seed=2)


def test_miniature_is_small(pipe):
    n = sum(p.numel() for p in pipe.denoiser.parameters()) + sum(p.numel() for p in pipe.vae.parameters())
    assert n < 1_000_000, n
    assert pipe.backbone.stream_shape(1, 3) == (1, 3, 4, 1, S // 8, S // 8)


def test_one_training_step(pipe, ds):
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    opt = torch.optim.AdamW(pipe.denoiser.parameters(), lr=1e-3)
    parts = flow_matching_loss(pipe, batch, ["policy", "world_model"], generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(parts.loss) and parts.rgb > 0 and parts.action > 0
    before = [p.detach().clone() for p in pipe.denoiser.parameters()]
    opt.zero_grad()
    parts.loss.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, pipe.denoiser.parameters()))
    assert all(p.grad is None for p in pipe.vae.parameters())  # the VAE is never trained


@pytest.mark.parametrize("mode", ["policy", "label"])
def test_sampling_and_reload(pipe, ds, mode, tmp_path):
    it = ds[0]
    kw = dict(cond_rgb=it["cond_rgb"], cond_action=it["cond_action"], K=it["K"], T_world_cam=it["T_world_cam"],
              mode=mode, num_inference_steps=2)
    if mode == "label":
        kw["future_rgb"] = it["future_rgb"]
    out = pipe(generator=torch.Generator().manual_seed(0), **kw)
    assert out.future_rgb.shape == (3, F, S, S, 3) and out.future_action.shape == (3, F, S, S, 3)
    assert out.actions.shape == (F, 8) and np.isfinite(out.actions).all()
    if mode == "policy":
        pipe.save_pretrained(tmp_path / "wan")
        loaded = ActionImagesPipeline.from_pretrained(tmp_path / "wan")
        # the weights and config round-trip exactly ...
        for name in ("denoiser", "vae"):
            saved, back = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
            assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved), name
        # ... the outputs to float32 rounding: on CPUs without bf16 kernels the pipeline runs in float32
        # (model/precision.py), whose oneDNN kernels are not bitwise reproducible from call to call
        # (measured here: 6e-8 on a 0..1 image); a wrong weight or config would differ by far more
        again = loaded(generator=torch.Generator().manual_seed(0), **kw)
        np.testing.assert_allclose(out.future_action, again.future_action, atol=1e-5, rtol=0)
        np.testing.assert_allclose(out.actions, again.actions, atol=1e-4, rtol=0)


def test_widen_patch_embedding_keeps_pretrained_channels(cfg):
    transformer, _ = build_wan_miniature(cfg)
    old_in = transformer.config.in_channels
    x = torch.randn(1, old_in, 2, 4, 4)
    t = torch.tensor([500.0])
    text = torch.zeros(1, 1, transformer.config.text_dim)
    with torch.no_grad():
        ref = transformer(x, timestep=t, encoder_hidden_states=text).sample
        widen_patch_embedding(transformer, old_in + 5)
        wide = torch.cat([x, torch.randn(1, 5, 2, 4, 4)], dim=1)
        out = transformer(wide, timestep=t, encoder_hidden_states=text).sample
    assert transformer.config.in_channels == old_in + 5
    torch.testing.assert_close(out, ref)  # zero-initialised extra channels: no effect yet


def test_wan_config_checks(tmp_path):
    with pytest.raises(FileNotFoundError, match="transformer"):
        build_pipeline(ModelConfig(denoiser_type="wan", image_size=S, wan={"pretrained": str(tmp_path)}))


def test_gradient_checkpointing_gives_the_same_training_steps(cfg, ds, tmp_path):
    """train(gradient_checkpointing=True) recomputes the Wan blocks' activations in the backward pass:
    it must change memory only, not the weights the steps produce."""
    from safetensors.torch import load_file

    from action_images_ros.model.config import TrainConfig
    from action_images_ros.model.training import train

    weights = {}
    for ckpt in (False, True):
        torch.manual_seed(0)
        tc = TrainConfig(batch_size=2, max_steps=2, mixed_precision="no", gradient_checkpointing=ckpt,
                         progress=False, warmup_steps=1)
        res = train(cfg, ds, tc, tmp_path / str(ckpt), device="cpu")
        assert res.pipeline.denoiser.is_gradient_checkpointing == ckpt
        weights[ckpt] = load_file(next((tmp_path / str(ckpt) / "model" / "denoiser").glob("*.safetensors")))
    torch.manual_seed(0)
    start = build_pipeline(cfg).denoiser.state_dict()  # the runs' common initial weights

    def dist(a, b):
        return sum(float(((a[k] - b[k]) ** 2).sum()) for k in start) ** 0.5

    gap, moved = dist(weights[True], weights[False]), dist(weights[False], start)
    assert gap < 1e-4 and moved > 100 * max(gap, 1e-7), (gap, moved)
