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
