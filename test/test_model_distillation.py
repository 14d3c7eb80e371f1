"""Few-step distillation: the rows at pure noise learn the teacher's multi-step sample from their noise."""

import numpy as np
import pytest
import torch

from action_images_ros.model.config import ModelConfig, TrainConfig
from action_images_ros.model.distillation import Teacher
from action_images_ros.model.factory import build_pipeline
from action_images_ros.model.objective import flow_matching_loss, select_rows
from action_images_ros.model.synthetic import SyntheticReachDataset

S, F = 32, 2


@pytest.fixture(scope="module")
def dataset():
    return SyntheticReachDataset(6, image_size=S, num_future=F, seed=11)


def _pipe(seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"image_size": S, "num_future": F, "block_out_channels": (8, 16),
          "inference_bf16": False, **kw}  # float32: the same numbers on any CPU
    pipe = build_pipeline(ModelConfig(**kw))
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
    pipe = _pipe(readout_pure_noise_share=1.0, loss_blob_weight=0.0)
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


def test_only_the_rows_at_pure_noise_learn_the_teacher_and_shards_agree(dataset):
    """Half the rows at pure noise, a teacher with other weights: the loss changes from the data's, and the
    shards' losses average to the whole batch's, so each shard's rows get their own noise, flags and samples."""
    pipe = _pipe(readout_pure_noise_share=0.5)
    teacher = Teacher(_pipe(seed=1), steps=2)
    batch = torch.utils.data.default_collate([dataset[i % len(dataset)] for i in range(8)])
    modes = ["policy"] * 8

    def loss(shard=None, t=teacher):  # shard: the first row of a 4-row shard, None: the whole batch
        rows = batch if shard is None else select_rows(batch, (torch.arange(8) >= shard) & (torch.arange(8) < shard + 4))
        return float(flow_matching_loss(pipe, rows, modes, generator=torch.Generator().manual_seed(5),
                                        offset=shard or 0, teacher=t).loss.detach())

    whole = loss()
    assert abs(whole - loss(t=None)) > 1e-4  # the teacher's samples are other targets
    assert (loss(shard=0) + loss(shard=4)) / 2 == pytest.approx(whole, rel=1e-5)


class _FixedTeacher:
    """Test-only stand-in for :class:`Teacher` whose samples are given: the streams of other recorded clips."""

    def __init__(self, rgb, act):
        self.rgb, self.act = rgb, act

    def samples(self, batch, modes, n_rgb, n_act):
        return self.rgb[: n_rgb.shape[0]], self.act[: n_act.shape[0]]


def test_a_teacher_row_is_weighted_by_the_teachers_blobs_as_if_it_were_the_recording(dataset):
    """The loss's blob weights follow the target a row learns: a teacher row scores exactly as the same row
    would with the teacher's sample as its recorded future (policy mode: the future is not given)."""
    pipe = _pipe(readout_pure_noise_share=1.0, loss_blob_weight=10.0, gripper_readout=True,
                 gripper_readout_at="first_step")
    batch = torch.utils.data.default_collate([dataset[i] for i in range(2)])
    other = torch.utils.data.default_collate([dataset[i] for i in range(2, 4)])
    teacher = _FixedTeacher(pipe.normalize(other["future_rgb"]), pipe.normalize(other["future_action"]))
    as_recorded = {**batch, "future_rgb": other["future_rgb"], "future_action": other["future_action"]}
    modes = ["policy", "policy"]
    with torch.no_grad():
        distilled = flow_matching_loss(pipe, batch, modes, generator=torch.Generator().manual_seed(2), teacher=teacher)
        recorded = flow_matching_loss(pipe, as_recorded, modes, generator=torch.Generator().manual_seed(2))
    assert float(distilled.loss) == pytest.approx(float(recorded.loss), rel=1e-5)
    assert distilled.action == pytest.approx(recorded.action, rel=1e-5)


def test_train_distils_from_a_saved_teacher_and_resumes(dataset, tmp_path, monkeypatch):
    from action_images_ros.model.pipeline import ActionImagesPipeline
    from action_images_ros.model.training import train

    teacher = _pipe(readout_pure_noise_share=1.0)  # the student starts from it: every row at pure noise
    teacher.save_pretrained(tmp_path / "teacher")
    tc = TrainConfig(max_steps=2, batch_size=2, progress=False, mixed_precision="no", mode_probs={"policy": 1.0},
                     distill_from=str(tmp_path / "teacher"), distill_steps=2, checkpoint_every=1, log_every=1)
    used = []
    samples = Teacher.samples
    monkeypatch.setattr(Teacher, "samples", lambda self, *a: used.append(self) or samples(self, *a))
    train(ActionImagesPipeline.from_pretrained(tmp_path / "teacher"), dataset, tc, tmp_path / "run")
    res = train(ActionImagesPipeline.from_pretrained(tmp_path / "teacher"), dataset,
                TrainConfig(**{**tc.to_dict(), "max_steps": 3}), tmp_path / "run")
    assert res.history[-1]["step"] == 3 and np.isfinite(res.history[-1]["loss"])
    assert len(used) == 3 and len({id(t) for t in used}) == 2  # asked every step; a resume loads the teacher again
    for t in used:  # frozen, and still the saved teacher after the steps that learnt from it
        assert not any(p.requires_grad for p in t.pipe.denoiser.parameters())
        for k, v in t.pipe.denoiser.state_dict().items():
            assert torch.equal(v, teacher.denoiser.state_dict()[k]), k
    student = ActionImagesPipeline.from_pretrained(tmp_path / "run" / "model")
    assert any(not torch.equal(v, teacher.denoiser.state_dict()[k]) for k, v in student.denoiser.state_dict().items())
    _pipe(image_size=16, readout_pure_noise_share=1.0).save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="another stream space"):
        train(ActionImagesPipeline.from_pretrained(tmp_path / "teacher"), dataset,
              TrainConfig(**{**tc.to_dict(), "distill_from": str(tmp_path / "other")}), tmp_path / "run3")
    with pytest.raises(ValueError, match="distill_steps must be in"):
        TrainConfig(distill_steps=0)
    with pytest.raises(ValueError, match="teacher steps must be in"):
        Teacher(teacher, 0)
