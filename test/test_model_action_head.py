"""The action-head baseline: the same backbone with the future poses regressed by a small head."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from action_images_ros.model.action_head import decode_outputs, encode_targets
from action_images_ros.model.conditioning import rotation_matrices
from action_images_ros.model.config import ModelConfig
from action_images_ros.model.factory import build_pipeline
from action_images_ros.model.objective import flow_matching_loss
from action_images_ros.model.pipeline import ActionImagesPipeline
from action_images_ros.model.synthetic import SyntheticReachDataset

S, F = 32, 2


@pytest.fixture(scope="module")
def cfg():
    return ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), action_output="head")


@pytest.fixture(scope="module")
def dataset():
    return SyntheticReachDataset(8, image_size=S, num_future=F, seed=5)


def _batch(ds, n):
    return torch.utils.data.default_collate([ds[i] for i in range(n)])


def test_rotation_matrices_match_scipy():
    q = Rotation.random(5, random_state=1).as_quat()
    want = Rotation.from_quat(q).as_matrix()
    np.testing.assert_allclose(rotation_matrices(torch.tensor(q)).numpy(), want, atol=1e-12)


def test_targets_decode_back_to_the_future_poses():
    rng = np.random.default_rng(0)
    state = np.concatenate([[0.5, 0.0, 0.3], Rotation.random(random_state=2).as_quat(), [1.0]])
    turns = Rotation.from_rotvec(rng.normal(scale=0.3, size=(3, 3)))
    fut = np.concatenate([state[:3] + rng.normal(scale=0.05, size=(3, 3)),
                          (turns * Rotation.from_quat(state[3:7])).as_quat(), [[1.0], [0.0], [0.0]]], axis=1)
    raw = encode_targets(torch.tensor(state)[None], torch.tensor(fut)[None], 0.05)[0].numpy()
    back = decode_outputs(state, raw, 0.05)
    np.testing.assert_allclose(back[:, :3], fut[:, :3], atol=1e-9)
    angle = (Rotation.from_quat(back[:, 3:7]).inv() * Rotation.from_quat(fut[:, 3:7])).magnitude()
    assert np.all(angle < 1e-7)
    np.testing.assert_allclose(back[:, 7], fut[:, 7])
    # no motion is the zero output (what an untrained head, zero-initialised, predicts)
    still = decode_outputs(state, np.zeros((3, 10)), 0.05)
    np.testing.assert_allclose(still[:, :3], np.tile(state[:3], (3, 1)), atol=1e-12)
    assert np.all((Rotation.from_quat(still[:, 3:7]).inv() * Rotation.from_quat(state[3:7])).magnitude() < 1e-7)


def test_head_trains_on_the_poses_and_not_on_action_images(cfg, dataset):
    torch.manual_seed(0)
    pipe = build_pipeline(cfg, num_views=3)
    batch = _batch(dataset, 4)
    policy = flow_matching_loss(pipe, batch, ["policy"] * 4, generator=torch.Generator().manual_seed(0))
    video = flow_matching_loss(pipe, batch, ["video"] * 4, generator=torch.Generator().manual_seed(0))
    assert policy.action > 0.0 and video.action == 0.0  # pose loss in policy mode only
    # the untrained head predicts "no motion": its loss is the target's own size
    st = batch["state"]
    want = encode_targets(st, batch["actions"], pipe.action_head.config.position_scale).pow(2).mean().item()
    assert policy.action == pytest.approx(want, rel=1e-4)

    params = list(pipe.denoiser.parameters()) + list(pipe.action_head.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3)
    for step in range(20):
        parts = flow_matching_loss(pipe, batch, ["policy"] * 4, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        parts.loss.backward()
        opt.step()
    after = flow_matching_loss(pipe, batch, ["policy"] * 4, generator=torch.Generator().manual_seed(0))
    assert after.action < 0.5 * policy.action, (policy.action, after.action)


def test_head_pipeline_saves_loads_and_predicts_poses(cfg, dataset, tmp_path):
    torch.manual_seed(0)
    pipe = build_pipeline(cfg, num_views=3)
    pipe.save_pretrained(tmp_path / "m")
    loaded = ActionImagesPipeline.from_pretrained(tmp_path / "m")
    assert loaded.action_head is not None and loaded.action_head.config.num_views == 3
    item = dataset[0]
    out = loaded(cond_rgb=item["cond_rgb"], state=np.asarray(item["state"]), cameras=dataset.cameras, mode="policy",
                 num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.actions.shape == (F, 8) and np.all(out.confidence == 1.0)
    # untrained (zero last layer): the poses stay where the arm is
    np.testing.assert_allclose(out.actions[:, :3], np.tile(np.asarray(item["state"])[:3], (F, 1)), atol=1e-5)
    assert out.future_action.shape == (3, F, S, S, 3)  # the poses drawn for display
    with pytest.raises(ValueError, match="no action-image stream"):
        loaded(cond_rgb=item["cond_rgb"], state=np.asarray(item["state"]), cameras=dataset.cameras, mode="label",
               future_rgb=item["future_rgb"])
    with pytest.raises(ValueError, match="built for 3 views"):
        loaded(cond_rgb=item["cond_rgb"][:2], state=np.asarray(item["state"]), cameras=dataset.cameras[:2],
               mode="policy", num_inference_steps=1)


def test_training_refuses_modes_a_head_model_does_not_have(cfg, dataset, tmp_path):
    from action_images_ros.model.config import TrainConfig
    from action_images_ros.model.training import train

    with pytest.raises(ValueError, match=r"cannot train the mode\(s\) \['label', 'world_model'\]"):
        train(cfg, dataset, TrainConfig(max_steps=1, progress=False), tmp_path / "run")


def test_config_and_components_must_agree(cfg):
    images = build_pipeline(ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16)))
    with pytest.raises(ValueError, match="no action_head component"):
        ActionImagesPipeline(denoiser=images.denoiser, scheduler=images.scheduler, model_config=cfg.to_dict())
    with pytest.raises(ValueError, match="needs denoiser_type 'unet2d'"):
        ModelConfig(denoiser_type="wan", num_future=4, action_output="head")
    with pytest.raises(ValueError, match="action_output must be one of"):
        ModelConfig(action_output="joints")


def test_grounding_roles_give_one_map_per_named_colour():
    colours = {"red": (0.85, 0.12, 0.10), "green": (0.15, 0.70, 0.20)}
    c = ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), use_instruction=True,
                    instruction_vocab=("cube", "green", "on", "put", "red", "square", "the"),
                    instruction_colours=colours, grounding_roles=True)
    pipe = build_pipeline(c)
    img = torch.zeros(1, 2, 3, S, S)
    img[0, :, :, :, :16] = torch.tensor(colours["red"]).view(3, 1, 1)
    img[0, :, :, :, 16:] = torch.tensor(colours["green"]).view(3, 1, 1)
    K = torch.tensor([[20.0, 0, 15.5], [0, 20.0, 15.5], [0, 0, 1]]).expand(1, 2, 3, 3)
    T = torch.eye(4).expand(1, 2, 4, 4)

    def maps(text):
        return pipe.prepare_conditions(img, img, K, T, ["policy"], state=torch.tensor([[0.5, 0, 0.3, 1, 0, 0, 0, 1.0]]),
                                       instruction=[text]).maps[0, 0]

    m = maps("put the red cube on the green square")
    assert m.shape == (2, S, S)
    assert m[0, :, :16].mean() > 0.9 and m[0, :, 16:].max() < 0.1  # role 1: the red object
    assert m[1, :, 16:].mean() > 0.9 and m[1, :, :16].max() < 0.1  # role 2: the green destination
    swapped = maps("put the green cube on the red square")
    torch.testing.assert_close(swapped[0], m[1])
    one = maps("reach the red target")
    assert one[1].max() == 0.0  # a single colour fills role 1 only
