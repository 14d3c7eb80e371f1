"""Model/train configuration: defaults, YAML loading, validation messages."""

import pytest
import yaml

from action_images_ros.model.config import ModelConfig, TrainConfig, load_configs


def test_defaults_are_valid_and_round_trip():
    cfg = ModelConfig()
    assert cfg.denoiser_type == "unet2d" and cfg.image_size == 64 and cfg.num_future == 4
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_yaml_sections(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"image_size": 32, "block_out_channels": [8, 16], "wan": {"num_layers": 1}},
        "train": {"batch_size": 4, "time_budget_s": 60, "mode_probs": {"policy": 1.0}},
    }))
    m, t = load_configs(path)
    assert m.image_size == 32 and m.block_out_channels == (8, 16) and m.wan.num_layers == 1
    assert t.batch_size == 4 and t.time_budget_s == 60 and t.mode_probs == {"policy": 1.0}
    assert ModelConfig.from_yaml(path).image_size == 32
    assert TrainConfig.from_yaml(path).batch_size == 4


@pytest.mark.parametrize("kwargs, words", [
    ({"denoiser_type": "dit"}, "denoiser_type must be one of"),
    ({"prediction_type": "epsilon"}, "prediction_type must be one of"),
    ({"image_size": 60}, "divisible"),
    ({"block_out_channels": (12, 16)}, "norm_num_groups"),
    ({"denoiser_type": "wan", "num_future": 3}, "multiple of 4"),
    ({"loss_rgb_weight": -1.0}, "loss_rgb_weight"),
    ({"wan": {"patch_size": [2, 2, 2]}}, "patch_size[0]"),
])
def test_model_config_rejects(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        ModelConfig(**kwargs)


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="unknown key"):
        ModelConfig.from_dict({"imagesize": 64})
    with pytest.raises(ValueError, match="unknown mode"):
        TrainConfig(mode_probs={"policy": 1.0, "dream": 0.5})
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_missing_yaml_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_configs(tmp_path / "nope.yaml")


def test_a_training_config_names_its_base_and_changes_settings_one_by_one(tmp_path):
    """``base:``: the base file's sections, each setting of this file over it (a mapping such as mode_probs is one
    setting: replaced whole); the shipped ablation reads as its base with two settings changed."""
    from action_images_ros.commands.train import read_config

    (tmp_path / "sub").mkdir()
    base = {"model": {"image_size": 32, "num_future": 2, "block_out_channels": [8, 16], "loss_rgb_weight": 1.0},
            "train": {"batch_size": 4, "mode_probs": {"policy": 0.5, "video": 0.5}},
            "data": {"horizon": 2, "image_size": 32, "frame_stride": 3}}
    (tmp_path / "sub" / "base.yaml").write_text(yaml.safe_dump(base))
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"base": "sub/base.yaml", "model": {"loss_rgb_weight": 0.0},
                                     "train": {"mode_probs": {"policy": 1.0}}}))
    m, t, c = read_config(child)
    assert m.loss_rgb_weight == 0.0 and m.image_size == 32 and m.block_out_channels == (8, 16)
    assert t.mode_probs == {"policy": 1.0} and t.batch_size == 4 and c.frame_stride == 3

    shipped = read_config("config/model_fourtask_short.yaml")
    ablation = read_config("config/model_fourtask_short_actions_only.yaml")
    assert ablation[0].loss_rgb_weight == 0.0 and ablation[1].mode_probs == {"policy": 1.0}
    import dataclasses
    assert dataclasses.replace(ablation[0], loss_rgb_weight=shipped[0].loss_rgb_weight) == shipped[0]
    assert dataclasses.replace(ablation[1], mode_probs=shipped[1].mode_probs) == shipped[1]
    assert ablation[2] == shipped[2]

    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        read_config(loop)
    (tmp_path / "bad.yaml").write_text("base: sub/base.yaml\nmodle: {}\n")
    with pytest.raises(ValueError, match="modle"):
        read_config(tmp_path / "bad.yaml")
    (tmp_path / "gone.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        read_config(tmp_path / "gone.yaml")
