"""Faster runtimes of the UNet give the actions eager torch gives (the reference path)."""

import numpy as np
import pytest
import torch

from action_images_ros.model.config import ModelConfig
from action_images_ros.model.factory import build_pipeline, with_gripper_readout
from action_images_ros.model.runtimes import RUNTIMES, use_runtime
from action_images_ros.model.synthetic import SyntheticReachDataset

S, F = 32, 2


@pytest.fixture(scope="module")
def dataset():
    return SyntheticReachDataset(2, image_size=S, num_future=F, seed=11)


def _pipe(inference_bf16=False):
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=S, num_future=F, block_out_channels=(8, 16), use_state=True,
                      inference_bf16=inference_bf16)
    pipe = with_gripper_readout(build_pipeline(cfg), num_views=3)  # the read-out needs the mid-block features
    with torch.no_grad():  # a fresh model starts at "no change" (zero output layers): make both outputs random
        for p in list(pipe.denoiser.conv_out.parameters()) + list(pipe.gripper_readout.parameters()):
            p.normal_(0.0, 0.05)
    return pipe.to("cpu")


def _call(pipe, item, cams):
    return pipe(cond_rgb=item["cond_rgb"], state=np.asarray(item["state"]), cameras=cams, mode="policy",
                num_inference_steps=3, generator=torch.Generator().manual_seed(5))


def _agree(got, ref, atol_image):
    np.testing.assert_allclose(got.future_action, ref.future_action, atol=atol_image)
    np.testing.assert_allclose(got.future_rgb, ref.future_rgb, atol=atol_image)
    np.testing.assert_allclose(got.actions[:, :3], ref.actions[:, :3], atol=1e-4)  # metres
    np.testing.assert_allclose(got.actions[:, 7], ref.actions[:, 7], atol=1e-4)  # the read-out's gripper
    np.testing.assert_allclose(got.confidence, ref.confidence, atol=1e-3)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_exported_runtimes_give_the_eager_actions(dataset, runtime):
    pipe = _pipe()
    item = dataset[0]
    ref = _call(pipe, item, dataset.cameras)
    assert ref.actions is not None and np.ptp(ref.future_action) > 0.1  # a non-trivial drawing to compare
    use_runtime(pipe, runtime)
    assert pipe.backbone.network != pipe.backbone.eager_network and pipe.runtime == runtime
    _agree(_call(pipe, item, dataset.cameras), ref, atol_image=1e-4)
    # a batch other than the tracing example's (3 views): 5 images straight through the network
    x = torch.randn(5, pipe.denoiser.config.in_channels, S, S)
    t = torch.linspace(10.0, 990.0, 5)
    out, mid = pipe.backbone.network(x, t, True)
    with torch.no_grad():
        ref_out, ref_mid = pipe.backbone.eager_network(x, t, True)
    np.testing.assert_allclose(out.numpy(), ref_out.numpy(), atol=1e-4)
    np.testing.assert_allclose(mid.numpy(), ref_mid.numpy(), atol=1e-4)
    other = dataset[1]  # another input after the export: the graph is not frozen to the tracing example
    ort_other = _call(pipe, other, dataset.cameras)
    use_runtime(pipe, "eager")  # and back to the reference
    _agree(ort_other, _call(pipe, other, dataset.cameras), atol_image=1e-4)


def test_openvino_runs_in_the_precision_eager_runs_the_model_in(dataset):
    """bf16 where the model has inference_bf16 and the CPU native bf16 (eager's autocast), else float32."""
    from action_images_ros.model.precision import bf16_is_fast

    if not bf16_is_fast("cpu"):
        pytest.skip("this CPU has no native bf16: both run float32")
    item = dataset[0]
    runs = {}
    for bf16 in (False, True):
        pipe = _pipe(inference_bf16=bf16)
        eager = _call(pipe, item, dataset.cameras)
        use_runtime(pipe, "openvino")
        runs[bf16] = (eager, _call(pipe, item, dataset.cameras))
    _agree(runs[False][1], runs[False][0], atol_image=1e-4)  # float32: eager's images
    eager_bf16, ov_bf16 = runs[True]
    assert np.abs(ov_bf16.future_action - runs[False][1].future_action).max() > 1e-4  # not float32
    np.testing.assert_allclose(ov_bf16.future_action, eager_bf16.future_action, atol=0.05)  # bf16 rounding only


def test_bad_runtime_names_and_pipelines_are_refused():
    with pytest.raises(ValueError, match="runtime must be one of"):
        use_runtime(_pipe(), "tensorrt")
    assert RUNTIMES[0] == "eager"
    half = _pipe()
    half.denoiser.to(torch.bfloat16)
    with pytest.raises(ValueError, match="float32 pipeline on the CPU"):
        use_runtime(half, "onnxruntime")
    assert half.backbone.network == half.backbone.eager_network
    # Only the UNet's call can be swapped; another denoiser runs eager torch, the fallback included.
    wan = build_pipeline(ModelConfig(denoiser_type="wan", image_size=32, num_future=4, prediction_type="velocity"))
    with pytest.raises(ValueError, match="needs the pixel-space UNet2D denoiser"):
        use_runtime(wan, "onnxruntime")
    use_runtime(wan, "eager")
    assert wan.runtime == "eager"


@pytest.mark.slow
def test_compile_gives_the_eager_actions(dataset):
    pipe = _pipe()
    item = dataset[0]
    ref = _call(pipe, item, dataset.cameras)
    use_runtime(pipe, "compile")
    _agree(_call(pipe, item, dataset.cameras), ref, atol_image=1e-4)


def test_load_policy_sets_the_runtime_and_falls_back_to_eager_where_it_cannot(tmp_path, monkeypatch, caplog):
    import logging
    import sys

    from action_images_ros.config import PolicyConfig
    from action_images_ros.model_io import load_policy

    pipe = _pipe()
    pipe.set_policy_config(PolicyConfig(control_dt_s=0.05))
    pipe.save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="runtime must be one of"):
        load_policy(tmp_path / "m", runtime="tensorrt")
    ort, _ = load_policy(tmp_path / "m", runtime="onnxruntime")
    assert ort.backbone.network != ort.backbone.eager_network and ort.runtime == "onnxruntime"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed: import fails
    with caplog.at_level(logging.WARNING, logger="action_images_ros.model_io"):
        eager, _ = load_policy(tmp_path / "m", runtime="onnxruntime")
    assert eager.backbone.network == eager.backbone.eager_network and eager.runtime == "eager"
    assert "runtime 'onnxruntime' is not available" in caplog.text and "ModuleNotFoundError" in caplog.text


def test_a_model_folder_names_the_runtime_it_runs_under_by_default(tmp_path, dataset):
    """policy_config.runtime is what load_policy (node, eval, predict, bench) uses unless one is asked for."""
    from action_images_ros.config import PolicyConfig, load_policy_config
    from action_images_ros.model_io import load_policy

    with pytest.raises(ValueError, match="policy_config.runtime must be one of"):
        PolicyConfig(runtime="tensorrt")
    assert "runtime" not in PolicyConfig().to_dict()  # a folder without it still loads in older checkouts
    pipe = _pipe()
    pipe.set_policy_config(PolicyConfig(control_dt_s=0.05, runtime="onnxruntime"))
    pipe.save_pretrained(tmp_path / "m")
    assert load_policy_config(tmp_path / "m")[0].runtime == "onnxruntime"  # JSON only, as the nodes read it
    ort, cfg = load_policy(tmp_path / "m")
    assert ort.runtime == cfg.runtime == "onnxruntime" and ort.backbone.network != ort.backbone.eager_network
    eager, _ = load_policy(tmp_path / "m", runtime="eager")  # asked for: the reference path
    assert eager.runtime == "eager" and eager.backbone.network == eager.backbone.eager_network
    _agree(_call(ort, dataset[0], dataset.cameras), _call(eager, dataset[0], dataset.cameras), atol_image=1e-4)
