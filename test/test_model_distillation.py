"""Few-step distillation: the rows at pure noise learn the teacher's multi-step sample from their noise."""

import numpy as np
import pytest
import torch

from action_images_ros.model.config import ModelConfig, TrainConfig
from action_images_ros.model.distillation import Teacher, select_rows
from action_images_ros.model.factory import build_pipeline
from action_images_ros.model.objective import flow_matching_loss
from action_images_ros.model.synthetic import SyntheticReachDataset

S, F = 32, 2


@pytest.fixture(scope="module")
def dataset():
    return SyntheticReachDataset(6, image_size=S, num_future=F, seed=11)


def _pipe(**kw):
    torch.manual_seed(0)
    pipe = build_pipeline(ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), **kw))
    with torch.no_grad():  # a network that draws something: the zero-initialised output layer made non-zero
        for p in pipe.denoiser.parameters():
            if p.abs().sum() == 0:
                p.normal_(0.0, 0.05)
    return pipe


def test_the_teacher_draws_what_the_pipeline_draws_batched(dataset):
    pipe = _pipe()
    batch = torch.utils.data.default_collate([dataset[i] for i in range(3)])
    V = batch["cond_rgb"].shape[1]
    noises = []
    for seed in (3, 4, 5):  # the pipeline's own noise for each seed (prepare_noise: RGB first, then actions)
        noises.append(pipe.prepare_noise(pipe.backbone.stream_shape(1, V), torch.Generator().manual_seed(seed)))
    n_rgb = torch.cat([n[0] for n in noises])
    n_act = torch.cat([n[1] for n in noises])
    x_rgb, x_act = Teacher(pipe, steps=3).samples(batch, ["policy"] * 3, n_rgb, n_act)
    cond = pipe.prepare_conditions(batch["cond_rgb"], batch["cond_action"], batch["K"], batch["T_world_cam"],
                                   ["policy"] * 3, state=batch["state"])
    images = pipe.denormalize(pipe.backbone.decode_stream(x_act, "action", cond)).permute(0, 1, 2, 4, 5, 3)
    for i, seed in enumerate((3, 4, 5)):
        item = dataset[i]
        out = pipe(cond_rgb=item["cond_rgb"], cond_action=item["cond_action"], K=item["K"],
                   T_world_cam=item["T_world_cam"], state=np.asarray(item["state"]), mode="policy", num_inference_steps=3,
                   generator=torch.Generator().manual_seed(seed))
        np.testing.assert_allclose(images[i].numpy(), out.future_action, atol=2e-5)


def test_a_one_step_teacher_of_the_same_weights_leaves_nothing_to_learn(dataset):
    """One Euler step from pure noise returns the clean-sample prediction, so a teacher that is the student
    taking one step asks for exactly what the student answers: zero loss on rows all at pure noise. Zero needs
    the teacher to see each row's own noise and conditioning."""
    pipe = _pipe(readout_pure_noise_share=1.0, loss_blob_weight=0.0, inference_bf16=False)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(4)])
    modes = ["policy", "world_model", "policy", "label"]
    plain = flow_matching_loss(pipe, batch, modes, generator=torch.Generator().manual_seed(0))
    assert float(plain.loss.detach()) > 1e-3
    same = flow_matching_loss(pipe, batch, modes, generator=torch.Generator().manual_seed(0),
                              teacher=Teacher(pipe, steps=1))
    assert float(same.loss) == pytest.approx(0.0, abs=1e-10)
    # a shard of the batch (a process's rows) gets the same noise as in the whole batch: zero again
    shard = flow_matching_loss(pipe, select_rows(batch, torch.tensor([False, False, True, True])), modes,
                               generator=torch.Generator().manual_seed(0), offset=2, teacher=Teacher(pipe, 1))
    assert float(shard.loss) == pytest.approx(0.0, abs=1e-10)
    # the teacher's two steps are another sample: something to learn
    two = flow_matching_loss(pipe, batch, modes, generator=torch.Generator().manual_seed(0),
                             teacher=Teacher(_pipe(), steps=2))
    assert float(two.loss) > 1e-6


def test_train_distils_from_a_saved_teacher_and_resumes(dataset, tmp_path):
    from action_images_ros.model.pipeline import ActionImagesPipeline
    from action_images_ros.model.training import train

    teacher = _pipe()
    teacher.save_pretrained(tmp_path / "teacher")
    tc = TrainConfig(max_steps=2, batch_size=2, progress=False, mixed_precision="no", mode_probs={"policy": 1.0},
                     distill_from=str(tmp_path / "teacher"), distill_steps=2, checkpoint_every=1, log_every=1)
    train(ActionImagesPipeline.from_pretrained(tmp_path / "teacher"), dataset, tc, tmp_path / "run")
    res = train(ActionImagesPipeline.from_pretrained(tmp_path / "teacher"), dataset,
                TrainConfig(**{**tc.to_dict(), "max_steps": 3}), tmp_path / "run")
    assert res.history[-1]["step"] == 3 and np.isfinite(res.history[-1]["loss"])
    reloaded = ActionImagesPipeline.from_pretrained(tmp_path / "teacher")  # the teacher was not trained
    for k, v in reloaded.denoiser.state_dict().items():
        assert torch.equal(v, teacher.denoiser.state_dict()[k]), k
    with pytest.raises(ValueError, match="distill_steps must be in"):
        TrainConfig(distill_steps=0)
    with pytest.raises(ValueError, match="teacher steps must be in"):
        Teacher(teacher, 0)
