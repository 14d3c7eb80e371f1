"""`action-images predict` / `evaluate-video` on a tiny random model, and the SSIM / PSNR measures."""

import csv
import json
import shutil

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from _data_synthetic import synthetic_episode
from action_images_ros.cli import main
from action_images_ros.commands.evaluate_video import choose_clips, choose_clips_per_task, select_episodes
from action_images_ros.commands.predict import check_step
from action_images_ros.data.episode import load_episode, write_episode
from action_images_ros.model.config import ModelConfig
from action_images_ros.model.factory import build_pipeline
from action_images_ros.model.video_metrics import PSNR_MAX_DB, fvd_status, motion_mask, psnr_per_image, ssim
from action_images_ros.config import LEGACY_CLIP_CONFIG_FILE as CLIP_CONFIG_FILE  # an old-style model folder

S, F, STRIDE, T = 32, 2, 2, 10
VIEWS = ["front", "left_shoulder", "right_shoulder"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A saved tiny random model (held-out list = episode 2) and three synthetic episodes."""
    root = tmp_path_factory.mktemp("cmds")
    data = root / "data"
    paths = [write_episode(synthetic_episode(steps=T, size=64, seed=s), data / f"episode_{s:06d}.h5")
             for s in range(3)]
    torch.manual_seed(0)
    pipe = build_pipeline(ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16)))
    with torch.no_grad():  # a fresh model may start at "no motion" (zero output layer): make its output random
        for p in pipe.denoiser.conv_out.parameters():
            p.normal_(0.0, 0.05)
    model = root / "model"
    pipe.save_pretrained(model)
    record = {"horizon": F, "frame_stride": STRIDE, "image_size": S, "views": VIEWS, "only_success": True,
              "action_source": "ee_pose", "gripper_from_command": True, "train_episodes": 2,
              "held_out_episodes": [str(paths[2])]}
    (model / CLIP_CONFIG_FILE).write_text(json.dumps(record))
    return {"root": root, "data": data, "paths": paths, "model": model, "record": record}


def _predict(setup, out, *extra):
    return main(["predict", "--model", str(setup["model"]), "--episode", str(setup["paths"][0]),
                 "--out", str(out), "--steps", "2", *extra])


def test_predict_policy_writes_videos_sheet_and_trajectory(setup, tmp_path):
    K = 3
    assert _predict(setup, tmp_path, "--step", str(K), "--scale", "2") == 0
    for v in VIEWS:
        for stem in ("generated", "overlay"):
            frames = imageio.mimread(tmp_path / f"{stem}_{v}.gif")
            assert len(frames) == 1 + F  # current frame + F generated keyframes
            assert frames[0].shape[1] == 2 * S and frames[0].shape[0] > 2 * S  # enlarged, caption strip on top
    sheet = imageio.imread(tmp_path / "contact_sheet.png")
    assert sheet.shape[1] == (1 + F) * 3 * S + F * 2  # columns: now, +1..+F at scale 3, 2-px gutters
    # rows: 3 views x (recorded, generated, 2 overlays), captioned, 4-px gaps between views
    assert sheet.shape[0] == 3 * 4 * (3 * S + 20) + 2 * 4

    traj = json.loads((tmp_path / "trajectory.json").read_text())
    rows = [K + STRIDE * k for k in range(1, F + 1)]
    assert [kf["row"] for kf in traj["keyframes"]] == rows and traj["views"] == VIEWS
    ep = load_episode(setup["paths"][0])
    for kf in traj["keyframes"]:  # the truth is the recorded pose of that row, gripper from the command
        np.testing.assert_allclose([kf["true_x"], kf["true_y"], kf["true_z"]], ep.ee_pose[kf["row"], :3], atol=1e-6)
        assert kf["true_gripper"] == ep.action[kf["row"] - 1, 7]
        pred, true = [kf[c] for c in ("x", "y", "z")], [kf[f"true_{c}"] for c in ("x", "y", "z")]
        err = 1000 * np.linalg.norm(np.subtract(pred, true))
        assert kf["position_error_mm"] == pytest.approx(err)
        assert 0.0 <= kf["confidence"] <= 1.0
    with (tmp_path / "trajectory.csv").open() as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == F and float(lines[0]["x"]) == pytest.approx(traj["keyframes"][0]["x"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert np.isfinite(summary["frames"]["policy"]["psnr_db"])
    assert summary["actions"]["no_motion"]["rotation_deg_mean"] >= 0


def test_predict_is_reproducible_with_a_seed(setup, tmp_path):
    for d, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert _predict(setup, tmp_path / d, "--step", "1", "--seed", seed) == 0
    a, b, c = (json.loads((tmp_path / d / "summary.json").read_text())["frames"]["policy"]["psnr_db_per_keyframe"]
               for d in ("a", "b", "c"))
    assert a == b and a != c


@pytest.mark.parametrize("mode, has_actions", [("label", True), ("world_model", False), ("video", False)])
def test_predict_other_modes(setup, tmp_path, mode, has_actions):
    assert _predict(setup, tmp_path, "--step", str(T - 2), "--mode", mode) == 0
    assert (tmp_path / "generated_front.gif").is_file() and (tmp_path / "contact_sheet.png").is_file()
    assert (tmp_path / "overlay_front.gif").is_file() == (mode != "video")
    assert (tmp_path / "trajectory.json").is_file() == has_actions
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["future_rows"] == [T - 1] * F  # clamped to the last row, as in training clips
    assert ("frames" in summary) == (mode != "label")  # label mode is given the recorded frames


def test_predict_bad_inputs(setup, tmp_path, capsys):
    ep = setup["paths"][0]
    with pytest.raises(ValueError, match=r"rows 0\.\.8"):
        check_step(ep, T - 1)  # the last row has no future
    with pytest.raises(ValueError, match="out of range"):
        check_step(ep, -1)
    with pytest.raises(FileNotFoundError):
        check_step(tmp_path / "episode_000099.h5", 0)
    assert _predict(setup, tmp_path / "o", "--step", "50") == 2
    assert "--step 50 is out of range" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "nope"), "--episode", str(ep), "--step", "0",
                 "--out", str(tmp_path / "o")]) == 2
    assert "model folder not found" in capsys.readouterr().err
    other = tmp_path / "model_top"
    shutil.copytree(setup["model"], other)
    (other / CLIP_CONFIG_FILE).write_text(json.dumps({**setup["record"], "views": ["front", "top"]}))
    assert main(["predict", "--model", str(other), "--episode", str(ep), "--step", "0",
                 "--out", str(tmp_path / "o")]) == 2
    assert "view 'top' is not in the rig" in capsys.readouterr().err


def test_train_init_from_starts_from_a_trained_model(setup, tmp_path, capsys):
    """`train --init-from`: the run starts from the folder's weights (a tiny learning rate keeps it there, where
    a fresh start would not be), and a configuration that does not match the folder is refused by name."""
    import yaml
    from safetensors.torch import load_file

    from action_images_ros.model.pipeline import ActionImagesPipeline

    from action_images_ros.config import PolicyConfig

    init = ActionImagesPipeline.from_pretrained(setup["model"])
    init.set_policy_config(PolicyConfig(clip=setup["record"], control_dt_s=0.05,  # the synthetic episodes' period
                                        num_inference_steps=3))
    init.save_pretrained(tmp_path / "init")
    cfg = {"model": init.model_cfg.to_dict(),
           "train": {"learning_rate": 1e-7, "batch_size": 2, "mixed_precision": "no", "ema_decay": 0.0,
                     "checkpoint_every": 1000},
           "data": {"horizon": F, "frame_stride": STRIDE, "image_size": S}}
    (tmp_path / "ft.yaml").write_text(yaml.safe_dump(cfg))
    run = ["train", "--config", str(tmp_path / "ft.yaml"), "--data", str(setup["data"]), "--max-steps", "2",
           "--held-out", "0", "--threads", "1"]
    assert main(run + ["--out", str(tmp_path / "ft"), "--init-from", str(tmp_path / "init")]) == 0
    assert main(run + ["--out", str(tmp_path / "fresh")]) == 0
    start = init.denoiser.state_dict()

    def dist(folder):
        w = load_file(next((tmp_path / folder / "model" / "denoiser").glob("*.safetensors")))
        return sum(float(((w[k] - start[k]) ** 2).sum()) for k in start) ** 0.5

    assert dist("ft") < 1e-3 < 1.0 < dist("fresh")
    cfg["model"]["block_out_channels"] = [8, 32]
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "other.yaml"), "--data", str(setup["data"]), "--max-steps", "1",
                 "--held-out", "0", "--out", str(tmp_path / "x"), "--init-from", str(tmp_path / "init")]) == 2
    assert "differs from --config's in ['block_out_channels']" in capsys.readouterr().err
    cfg["model"]["block_out_channels"] = [8, 16]
    cfg["data"]["frame_stride"] = 1  # keyframes twice as close: the weights would mean something else
    (tmp_path / "stride.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "stride.yaml"), "--data", str(setup["data"]), "--max-steps", "1",
                 "--held-out", "0", "--out", str(tmp_path / "y"), "--init-from", str(tmp_path / "init")]) == 2
    assert "data settings differ from the model's: frame_stride: 2 -> 1" in capsys.readouterr().err
    cfg["data"]["frame_stride"] = STRIDE
    cfg["model"]["loss_blob_weight"] = 3.0  # a training setting: the same network, reweighted losses
    (tmp_path / "weights.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "weights.yaml"), "--data", str(setup["data"]), "--max-steps",
                 "2", "--held-out", "0", "--threads", "1", "--out", str(tmp_path / "rw"),
                 "--init-from", str(tmp_path / "init")]) == 0
    rw = ActionImagesPipeline.from_pretrained(tmp_path / "rw" / "model")
    assert rw.model_cfg.loss_blob_weight == 3.0 and dist("rw") < 1e-3
    cfg["model"]["gripper_readout"] = True  # a fresh read-out on the trained weights
    (tmp_path / "readout.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "readout.yaml"), "--data", str(setup["data"]), "--max-steps",
                 "2", "--held-out", "0", "--threads", "1", "--out", str(tmp_path / "ro"),
                 "--init-from", str(tmp_path / "init")]) == 0
    ro = ActionImagesPipeline.from_pretrained(tmp_path / "ro" / "model")
    assert ro.gripper_readout is not None and ro.model_cfg.gripper_readout and dist("ro") < 1e-3
    assert ro.policy_cfg.num_inference_steps == 3  # sampled as the model it started from


def test_evaluate_video_on_held_out_clips(setup, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate-video", "--model", str(setup["model"]), "--data", str(setup["data"]),
                 "--clips", "3", "--steps", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no-motion baseline" in printed and "FVD skipped" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["clips"] == 3 and m["episodes"] == 1  # only the held-out episode
    assert {c["episode"] for c in m["clip_list"]} == {str(setup["paths"][2])}
    for mode in ("policy", "world_model", "no_motion"):
        f = m["frames"][mode]
        assert np.isfinite(f["psnr_db_mean"]) and -1 <= f["ssim_mean"] <= 1 and len(f["psnr_db_per_keyframe"]) == F
    for mode in ("policy", "label", "no_motion", "codec"):
        assert 0 <= m["actions"][mode]["gripper_accuracy"] <= 1
    # Decoding the recorded action images recovers the recorded poses: the truth is wired consistently.
    assert m["actions"]["codec"]["position_mm_p95"] < 1.0 and m["actions"]["codec"]["gripper_accuracy"] == 1.0
    # The synthetic arm moves ~80 mm per keyframe: standing still must be wrong by about that much.
    assert m["actions"]["no_motion"]["position_mm_median"] > 10.0
    assert m["skipped"]["fvd"]
    # The moving region is scored too, and per task (the synthetic episodes are all one task).
    assert "moving region" in printed
    for mode in ("policy", "no_motion"):
        f = m["frames"][mode]
        assert np.isfinite(f["psnr_db_moving_mean"]) and -1 <= f["ssim_moving_mean"] <= 1
        assert 0 < f["moving_fraction"] <= 1
        # where the arm moves, standing still is worse than over the (mostly static) whole frame
    assert m["frames"]["no_motion"]["psnr_db_moving_mean"] < m["frames"]["no_motion"]["psnr_db_mean"]
    [(task, per)] = m["per_task"].items()
    assert task in printed and per["clips"] == 3
    assert per["frames"]["policy"]["psnr_db_mean"] == pytest.approx(m["frames"]["policy"]["psnr_db_mean"])


def test_select_episodes(setup, tmp_path):
    paths, record = setup["paths"], setup["record"]
    assert select_episodes([setup["data"]], record, False, 0.1) == [paths[2]]
    assert select_episodes([setup["data"]], record, True, 0.1) == paths
    assert select_episodes(None, record, False, 0.1) == [paths[2]]
    no_list = {k: v for k, v in record.items() if k != "held_out_episodes"}
    assert select_episodes([setup["data"]], no_list, False, 0.5) == [paths[1]]  # split_episodes: index 1 of 0..2
    with pytest.raises(ValueError, match="pass the episodes with --data"):
        select_episodes(None, no_list, False, 0.1)
    with pytest.raises(ValueError, match="none of the 2 given episodes"):
        select_episodes(paths[:2], record, False, 0.1)
    with pytest.raises(FileNotFoundError, match="held-out episodes are missing"):
        select_episodes(None, {"held_out_episodes": [str(tmp_path / "episode_000007.h5")]}, False, 0.1)


def test_choose_clips_is_deterministic_without_repeats():
    a = choose_clips(100, 10, seed=3)
    assert np.array_equal(a, choose_clips(100, 10, seed=3)) and len(set(a.tolist())) == 10
    assert not np.array_equal(a, choose_clips(100, 10, seed=4))
    assert np.array_equal(choose_clips(5, 10, seed=0), np.arange(5))
    with pytest.raises(ValueError):
        choose_clips(5, 0, seed=0)


def test_choose_clips_per_task_draws_from_every_task():
    tasks = np.array(["reach"] * 50 + ["place"] * 7 + ["stack"] * 30)
    got = choose_clips_per_task(tasks, 10, seed=1)
    assert np.array_equal(got, np.sort(got)) and len(set(got.tolist())) == len(got)
    counts = {t: int((tasks[got] == t).sum()) for t in ("reach", "place", "stack")}
    assert counts == {"reach": 10, "place": 7, "stack": 10}
    assert np.array_equal(got, choose_clips_per_task(tasks, 10, seed=1))


# --------------------------------------------------------------------------- SSIM / PSNR
def test_motion_mask_covers_where_things_move_at_any_frame():
    cur = np.zeros((2, 20, 20, 3))
    fut = np.zeros((2, 3, 20, 20, 3))
    cur[0, 2:4, 2:4] = 1.0  # view 0: a square at (2, 2) ...
    fut[0, 2, 10:12, 10:12] = 1.0  # ... is at (10, 10) in the last frame
    m = motion_mask(cur, fut, dilate_px=1)
    assert m.shape == (2, 20, 20) and not m[1].any()  # view 1 does not move
    expect = np.zeros((20, 20), bool)
    expect[1:5, 1:5] = expect[9:13, 9:13] = True  # both positions (it left one, reached the other), grown 1 px
    np.testing.assert_array_equal(m[0], expect)
    fut[0, 0, 15, 15] = 0.05  # below the threshold
    np.testing.assert_array_equal(motion_mask(cur, fut, dilate_px=1)[0], expect)
    with pytest.raises(ValueError, match="same views"):
        motion_mask(cur, fut[:1])


def test_masked_psnr_and_ssim_score_only_the_region():
    rng = np.random.default_rng(2)
    true = rng.uniform(size=(2, 24, 24, 3))
    pred = true.copy()
    pred[:, :8, :8] = np.clip(pred[:, :8, :8] + 0.2, 0, 1)  # the error is all in one corner
    mask = np.zeros((2, 24, 24), bool)
    mask[0, :12, :12] = True  # image 1: empty mask
    got = psnr_per_image(pred, true, mask=mask)
    mse = np.mean((pred[0, :12, :12] - true[0, :12, :12]) ** 2)  # independent: the MSE over the region
    assert got[0] == pytest.approx(10 * np.log10(1 / mse)) and np.isnan(got[1])
    assert got[0] < psnr_per_image(pred, true)[0]  # the region holds the error, the frame dilutes it
    np.testing.assert_allclose(psnr_per_image(pred, true, mask=np.ones((2, 24, 24), bool)), psnr_per_image(pred, true))
    np.testing.assert_allclose(ssim(pred, true, mask=np.ones((24, 24), bool)), ssim(pred, true))
    s = ssim(pred, true, mask=mask)
    assert s[0] < ssim(pred, true)[0] and np.isnan(s[1])
    far = np.zeros((24, 24), bool)
    far[14:20, 14:20] = True  # away from the error (beyond the 5-px window): identical there
    assert ssim(pred, true, mask=far)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="boolean"):
        psnr_per_image(pred, true, mask=mask.astype(float))
    with pytest.raises(ValueError, match="does not match"):
        ssim(pred, true, mask=mask[:, :10])


def test_ssim_identical_is_one_and_falls_with_noise():
    rng = np.random.default_rng(0)
    img = rng.uniform(size=(2, 32, 32, 3))
    np.testing.assert_allclose(ssim(img, img), 1.0, atol=1e-12)
    values = [float(ssim(np.clip(img + rng.normal(0, s, img.shape), 0, 1), img).mean()) for s in (0.02, 0.05, 0.1, 0.3)]
    assert values == sorted(values, reverse=True) and values[0] < 1.0 and values[-1] < 0.8


def test_ssim_matches_reference_values():
    # Two constant images a, b: SSIM = (2ab + C1) / (a^2 + b^2 + C1) (no structure term).
    a, b = 0.3, 0.6
    c1 = (0.01 * 1.0) ** 2
    got = ssim(np.full((16, 16, 3), a), np.full((16, 16, 3), b))
    assert got == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)
    # skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    # data_range=1, channel_axis=-1) on these images (computed once with scikit-image 0.26).
    rng = np.random.default_rng(1234)
    x = rng.uniform(size=(24, 24, 3))
    y = np.clip(x + rng.normal(0, 0.1, size=x.shape), 0, 1)
    assert float(ssim(x, y)) == pytest.approx(0.9436878482623667, abs=1e-9)
    assert float(ssim(y, x)) == pytest.approx(float(ssim(x, y)), abs=1e-12)


def test_ssim_psnr_shapes_and_errors():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(3, 2, 20, 20, 3))
    assert ssim(x, x[::-1]).shape == (3, 2) and psnr_per_image(x, x[::-1]).shape == (3, 2)
    assert np.all(psnr_per_image(x, x) == PSNR_MAX_DB)  # identical: capped, not infinite
    assert float(psnr_per_image(np.full((8, 8, 3), 0.1), np.zeros((8, 8, 3)))) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(x, x[:, :1])
    with pytest.raises(ValueError, match="smaller than"):
        ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    assert "16" in fvd_status(5)
