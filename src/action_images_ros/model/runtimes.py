"""Where the UNet of a pixel-space pipeline runs at inference: eager torch (the reference) or a faster runtime.

* ``eager``: the network as trained, under the model's ``inference_bf16`` autocast where the CPU has
  native bf16 (``model.precision``). Every other runtime is checked against it
  (``test/test_model_runtimes.py``: the same decoded actions).
* ``onnxruntime``: the UNet and its mid-block output exported once to ONNX (torch's TorchScript-based
  exporter; a batch axis of any size) and run by ONNX Runtime's CPU provider in float32 (it has no bf16
  convolutions), with torch's thread count at the time of the export and its threads not spinning
  between calls (torch's own pool runs the sampler and decoder between them). The graph holds a copy of
  the weights at that time: call :func:`use_runtime` again after loading or training new ones. A float32
  pipeline on the CPU only.
* ``openvino``: the same ONNX export compiled by OpenVINO's CPU plugin, at the precision eager runs the
  model in: bf16 where the model has ``inference_bf16`` and the CPU native bf16 (OpenVINO's own default
  there), else float32; OpenVINO's latency hint and torch's thread count. A float32 pipeline on the CPU only.
* ``compile``: ``torch.compile`` (Inductor) of the same call, in the same precision as eager. Its first
  call compiles for about two minutes on a 2-core CPU, so it suits a long-running policy node more than a CLI.

Only the network call is swapped (``UNet2DBackbone.network``); the conditioning, the sampler, the codec
and the gripper read-out run as before. ``bench/bench_runtimes.py`` times them against each other.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..config import RUNTIMES  # one list, read by the CLIs without importing torch
from .precision import bf16_is_fast

logger = logging.getLogger(__name__)

class _MidTap(torch.nn.Module):
    """Stands in for the UNet's mid block while an exported or compiled call runs: applies the view mixer
    (when the model has one, as ``UNet2DBackbone.eager_network`` does) and keeps the output."""

    def __init__(self, block: torch.nn.Module, view_mixer: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.block = block
        self.view_mixer = view_mixer
        self.last: torch.Tensor | None = None

    def forward(self, *args, **kwargs):
        out = self.block(*args, **kwargs)
        if self.view_mixer is not None:
            out = self.view_mixer(out)
        self.last = out
        return out


class UNetWithFeatures(torch.nn.Module):
    """``(x, t) -> (UNet output, mid-block output)`` as one module, for exporters and compilers that take a
    module with tensor outputs (a forward hook is not part of an exported graph)."""

    def __init__(self, unet: torch.nn.Module, view_mixer: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.unet = unet
        self.tap = _MidTap(unet.mid_block, view_mixer)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        block = self.unet.mid_block
        self.unet.mid_block = self.tap
        try:
            out = self.unet(x, t).sample
        finally:
            self.unet.mid_block = block
        return out, self.tap.last


def use_runtime(pipe, name: str, example_batch: int = 3) -> None:
    """Run ``pipe``'s UNet through runtime ``name`` (one of :data:`RUNTIMES`) from now on;
    ``pipe.runtime`` names the one in use.

    ``example_batch`` sizes the tracing input (views x scenes of a policy call); any batch runs after.

    Raises:
        ValueError: an unknown runtime, or a pipeline that is not the pixel-space UNet.
        ImportError: ``onnxruntime`` / ``openvino`` is not installed.
    """
    if name not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {name!r}")
    backbone = pipe.backbone
    if name == "eager":  # every backbone runs eager torch; only the UNet's call can be swapped
        if hasattr(backbone, "eager_network"):
            backbone.network = backbone.eager_network
        pipe.runtime = name
        return
    if not hasattr(backbone, "eager_network"):
        raise ValueError(f"runtime {name!r} needs the pixel-space UNet2D denoiser, not {pipe.model_cfg.denoiser_type!r}")
    pipe.denoiser.eval()
    if backbone.view_mixer is not None:
        backbone.view_mixer.eval()
    module = UNetWithFeatures(pipe.denoiser, backbone.view_mixer).eval()
    if backbone.view_mixer is not None:  # it mixes the views of a scene: trace one scene of its views
        example_batch = backbone.view_mixer.config.num_views
    s = pipe.model_cfg.image_size  # the tracing / warm-up input: a mid-noise call on example_batch images
    example = (torch.zeros(example_batch, pipe.denoiser.config.in_channels, s, s),
               torch.full((example_batch,), 500.0))
    if name == "compile":
        compiled = torch.compile(module, dynamic=False)  # recompiles for each new batch size (views x scenes)

        def network(x, t, features):
            out, mid = compiled(x, t)  # under the caller's autocast, as eager
            return out, (mid if features else None)

        try:  # compile now, not in the first policy call; a failure leaves the eager network in place
            with torch.no_grad():
                network(*example, False)
        except Exception:
            backbone.network = backbone.eager_network
            raise
        backbone.network, pipe.runtime = network, name
        return
    if pipe.device.type != "cpu" or pipe.denoiser.dtype != torch.float32:
        raise ValueError(f"the {name} runtime runs a float32 pipeline on the CPU; this one is "
                         f"{pipe.denoiser.dtype} on {pipe.device}")
    if name == "onnxruntime":
        backbone.network = _onnxruntime_network(module, example)
    else:
        bf16 = pipe.model_cfg.inference_bf16 and bf16_is_fast("cpu")
        backbone.network = _openvino_network(module, example, bf16=bf16)
    pipe.runtime = name


def _export_onnx(module: UNetWithFeatures, example: tuple[torch.Tensor, torch.Tensor], path: Path) -> None:
    """The UNet and its mid-block output as one ONNX graph with a batch axis of any size (float32)."""
    with torch.no_grad(), warnings_quiet():
        torch.onnx.export(module, example, str(path), input_names=["x", "t"], output_names=["out", "mid"],
                          dynamic_axes={"x": {0: "n"}, "t": {0: "n"}, "out": {0: "n"}, "mid": {0: "n"}},
                          dynamo=False)


def _onnxruntime_network(module: UNetWithFeatures, example: tuple[torch.Tensor, torch.Tensor]):
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "unet.onnx"
        _export_onnx(module, example, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    logger.info("UNet exported to ONNX Runtime (%d threads)", options.intra_op_num_threads)

    def network(x, t, features):
        out, mid = session.run(None, {"x": x.detach().float().cpu().numpy(),
                                      "t": t.detach().float().cpu().numpy()})
        return torch.from_numpy(np.ascontiguousarray(out)), (torch.from_numpy(mid) if features else None)

    return network


def _openvino_network(module: UNetWithFeatures, example: tuple[torch.Tensor, torch.Tensor], bf16: bool):
    import openvino as ov

    core = ov.Core()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "unet.onnx"
        _export_onnx(module, example, path)
        # the model is read into memory here; the file may go with the folder
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        })
    request = compiled.create_infer_request()
    logger.info("UNet compiled by OpenVINO (%s, %d threads)", "bf16" if bf16 else "f32", torch.get_num_threads())

    def network(x, t, features):
        res = request.infer({"x": x.detach().float().cpu().numpy(), "t": t.detach().float().cpu().numpy()})
        out, mid = res["out"], res["mid"]  # copies: the request's buffers are reused by the next call
        return torch.from_numpy(np.array(out)), (torch.from_numpy(np.array(mid)) if features else None)

    return network


@contextlib.contextmanager
def warnings_quiet():
    """The tracer warns about every shape assertion of diffusers' blocks (channel counts, and a batch >= 64
    branch a policy call never takes); a batch other than the example's is checked by the tests."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield
