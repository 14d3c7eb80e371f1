"""Training objective and loop: the loss goes down, checkpoints, resume, loss curve."""

import numpy as np
import pytest
import torch

from action_images_ros.model.config import ModelConfig, TrainConfig
from action_images_ros.model.factory import build_pipeline
from action_images_ros.model.objective import blob_intensity, flow_matching_loss, sample_modes
from action_images_ros.model.pipeline import ActionImagesPipeline
from action_images_ros.model.synthetic import SyntheticReachDataset
from action_images_ros.model.training import export_checkpoint, latest_checkpoint, train

S, F = 32, 2


@pytest.fixture(scope="module")
def cfg():
    return ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16))


@pytest.fixture(scope="module")
def dataset():
    return SyntheticReachDataset(8, image_size=S, num_future=F, seed=5)


def _batch(ds, n):
    return torch.utils.data.default_collate([ds[i] for i in range(n)])


def test_few_steps_reduce_the_loss(cfg, dataset):
    torch.manual_seed(0)
    pipe = build_pipeline(cfg)
    batch = _batch(dataset, 4)
    modes = ["policy", "world_model", "label", "video"]

    def fixed_loss():
        with torch.no_grad():
            return flow_matching_loss(pipe, batch, modes, generator=torch.Generator().manual_seed(123)).loss.item()

    before = fixed_loss()
    opt = torch.optim.AdamW(pipe.denoiser.parameters(), lr=3e-3)
    for step in range(15):
        parts = flow_matching_loss(pipe, batch, modes, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        parts.loss.backward()
        opt.step()
    after = fixed_loss()
    assert after < 0.7 * before, (before, after)


def test_loss_counts_only_generated_streams(cfg, dataset):
    torch.manual_seed(0)
    pipe = build_pipeline(cfg)
    batch = _batch(dataset, 2)
    label = flow_matching_loss(pipe, batch, ["label", "label"], generator=torch.Generator().manual_seed(0))
    video = flow_matching_loss(pipe, batch, ["video", "video"], generator=torch.Generator().manual_seed(0))
    assert label.rgb == 0.0 and label.action > 0.0  # future RGB given: no RGB loss
    assert video.action == 0.0 and video.rgb > 0.0  # actions dropped: no action loss


def test_blob_intensity_ignores_gripper_background(dataset):
    act = torch.from_numpy(dataset[0]["future_action"])  # (V, F, 3, H, W), gripper open -> B background 0.25
    w = blob_intensity(act)
    assert w.shape == (act.shape[0], F, 1, S, S)
    assert float(w.amax()) > 0.9
    assert float(torch.quantile(w.flatten(), 0.5)) < 0.05


def test_sample_modes_follows_probabilities():
    modes = sample_modes(4000, {"policy": 0.75, "label": 0.25}, np.random.default_rng(0))
    assert set(modes) == {"policy", "label"}
    assert abs(modes.count("policy") / 4000 - 0.75) < 0.03


def test_train_checkpoints_resumes_and_plots(cfg, dataset, tmp_path):
    tc = TrainConfig(batch_size=2, max_steps=3, checkpoint_every=2, log_every=1, progress=False, ema_decay=0.9,
                     warmup_steps=1)
    res = train(cfg, dataset, tc, tmp_path / "run")
    assert res.steps == 3 and len(res.history) == 3
    assert latest_checkpoint(tmp_path / "run").name == "step_0000003"
    for f in ("model_config.yaml", "train_config.yaml", "metrics.jsonl", "loss_curve.png"):
        assert (tmp_path / "run" / f).is_file(), f
    model = ActionImagesPipeline.from_pretrained(tmp_path / "run" / "model")
    assert model.model_cfg == cfg

    tc2 = TrainConfig(batch_size=2, max_steps=5, checkpoint_every=2, log_every=1, progress=False, ema_decay=0.9,
                      warmup_steps=1, keep_checkpoints=2)
    res2 = train(cfg, dataset, tc2, tmp_path / "run")
    assert res2.steps == 5 and [h["step"] for h in res2.history] == [1, 2, 3, 4, 5]
    assert res2.elapsed_s >= res.elapsed_s
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_0000004", "step_0000005"]

    other = ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), use_plucker=False)
    with pytest.raises(ValueError, match="different model configuration"):
        train(other, dataset, tc2, tmp_path / "run")

    # Exporting the last checkpoint gives the final model (EMA weights); raw weights differ.
    final = ActionImagesPipeline.from_pretrained(tmp_path / "run" / "model").denoiser.state_dict()
    ema = export_checkpoint(latest_checkpoint(tmp_path / "run"), tmp_path / "ema")
    raw = export_checkpoint(latest_checkpoint(tmp_path / "run"), tmp_path / "raw", use_ema=False)
    ema_sd = ActionImagesPipeline.from_pretrained(ema).denoiser.state_dict()
    raw_sd = ActionImagesPipeline.from_pretrained(raw).denoiser.state_dict()
    assert all(torch.equal(final[k], ema_sd[k]) for k in final)
    assert not all(torch.equal(final[k], raw_sd[k]) for k in final)
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        export_checkpoint(tmp_path / "run", tmp_path / "bad")


def test_learning_rate_decays_by_cosine_over_steps_or_time_budget(cfg, dataset, tmp_path):
    tc = TrainConfig(batch_size=2, max_steps=4, log_every=1, progress=False, warmup_steps=1, learning_rate=1e-3,
                     lr_final_ratio=0.1, checkpoint_every=100)
    lrs = [h["lr"] for h in train(cfg, dataset, tc, tmp_path / "steps").history]
    expected = [1e-3 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * k / 4))) for k in (1, 2, 3, 4)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)
    # a run its time budget ends has decayed by then too, whatever its max_steps
    tc = TrainConfig(batch_size=2, max_steps=10_000, time_budget_s=1e-6, log_every=1, progress=False,
                     warmup_steps=1, learning_rate=1e-3, lr_final_ratio=0.1, checkpoint_every=100)
    res = train(cfg, dataset, tc, tmp_path / "time")
    assert res.steps == 1 and res.history[-1]["lr"] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="lr_final_ratio"):
        TrainConfig(lr_final_ratio=1.5)


def test_train_rejects_mismatched_data(cfg, tmp_path):
    ds = SyntheticReachDataset(2, image_size=S, num_future=F + 1)
    with pytest.raises(ValueError, match="num_future"):
        train(cfg, ds, TrainConfig(max_steps=1, progress=False), tmp_path / "run")


class _Clips(torch.utils.data.Dataset):
    """1000 clips that know their task (10 % reach) and whether they hold a gripper event (1 %: one in reach,
    nine in stack); items are their own index."""

    tasks = np.array(["reach"] * 100 + ["stack"] * 900)
    events = np.arange(1000) % 100 == 7

    def __len__(self):
        return len(self.tasks)

    def __getitem__(self, i):
        return {"i": torch.tensor(i)}

    def clip_tasks(self):
        return self.tasks

    def clip_gripper_events(self):
        return self.events


def _drawn(ds, cfg: TrainConfig, batches: int) -> np.ndarray:
    """The clip indices of the first ``batches`` batches the training loop draws."""
    from action_images_ros.model.training import _batches

    loader = _batches(ds, cfg, 0)[1]
    return np.concatenate([next(loader)["i"].numpy() for _ in range(batches)])


def test_balance_tasks_gives_every_task_the_same_share():
    ds = _Clips()
    balanced = ds.tasks[_drawn(ds, TrainConfig(batch_size=10, balance_tasks=True), 200)]
    share = np.mean(balanced == "reach")
    assert 0.45 < share < 0.55, share  # 2000 draws: equal shares within ±5 points
    plain = ds.tasks[_drawn(ds, TrainConfig(batch_size=10), 200)]
    assert 0.05 < np.mean(plain == "reach") < 0.15  # without it: the clips' own 10 %


def test_task_shares_give_each_task_its_share_and_must_name_every_task():
    ds = _Clips()  # 10 % reach clips, 90 % other
    tasks = ds.tasks[_drawn(ds, TrainConfig(batch_size=10, task_shares={"reach": 3, "stack": 1}), 200)]
    assert 0.70 < np.mean(tasks == "reach") < 0.80, np.mean(tasks == "reach")  # 3 / (3 + 1)
    with pytest.raises(ValueError, match="does not name"):
        _drawn(ds, TrainConfig(batch_size=10, task_shares={"reach": 1}), 1)
    with pytest.raises(ValueError, match="positive"):
        TrainConfig(task_shares={"reach": 0.0})


def test_gripper_event_weight_draws_event_clips_more_often_and_keeps_task_shares():
    ds = _Clips()
    picks = _drawn(ds, TrainConfig(batch_size=10, gripper_event_weight=20.0), 400)
    # 10 x 20 / (990 + 200) = 16.8 % of the draws are event clips (1 % without the weight)
    assert 0.13 < np.mean(ds.events[picks]) < 0.21
    picks = _drawn(ds, TrainConfig(batch_size=10, gripper_event_weight=20.0, balance_tasks=True), 400)
    assert 0.45 < np.mean(ds.tasks[picks] == "reach") < 0.55  # the task shares stay equal
    reach = picks[ds.tasks[picks] == "reach"]
    assert 0.12 < np.mean(ds.events[reach]) < 0.24  # within reach: 20 / (99 + 20) = 16.8 %
    with pytest.raises(ValueError, match="gripper_event_weight"):
        TrainConfig(gripper_event_weight=0.5)
