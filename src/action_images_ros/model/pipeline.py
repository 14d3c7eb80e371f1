"""``ActionImagesPipeline``: one diffusion backbone that jointly generates the future
multi-view video and the multi-view action images, in four modes.

Shapes (one scene, ``V`` calibrated views, ``F`` future keyframes, images ``S x S``):

* inputs follow the dataset contract, channels first, values in ``[0, 1]``:
  ``cond_rgb (V, 3, S, S)``, ``cond_action (V, 3, S, S)``,
  ``future_rgb (V, F, 3, S, S)``, ``future_action (V, F, 3, S, S)``,
  cameras as ``geometry.Camera`` objects or ``K (V, 3, 3)`` + ``T_world_cam (V, 4, 4)``
  (OpenCV convention, camera-to-world, metres, intrinsics for ``S x S`` images);
* outputs are channels last for viewing: ``future_rgb`` / ``future_action``
  ``(V, F, S, S, 3)`` in ``[0, 1]``, decoded ``actions (F, 8)`` =
  ``[x y z qx qy qz qw gripper]`` in the cameras' world (robot base) frame and
  ``confidence (F,)``.

Sampling is flow matching (``x_sigma = (1 - sigma) x0 + sigma noise``) with any
scheduler whose loop needs only ``set_timesteps`` / ``timesteps`` / ``step``
(default :class:`diffusers.FlowMatchEulerDiscreteScheduler`). A network that
predicts the clean sample is turned into the velocity the scheduler expects by
``v = (x_sigma - x0) / max(sigma, min_sigma)``.
"""

from __future__ import annotations

import contextlib

import dataclasses
import inspect
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from ..codec import ActionImageCodec
from ..geometry import Camera, validate_actions
from .action_head import decode_outputs
from .gripper_readout import GripperReadout  # noqa: F401  diffusers loads a saved read-out only once imported
from .view_mixer import ViewMixer  # noqa: F401  the same for a saved view mixer
from .backbones import make_backbone
from .conditioning import (Conditions, check_mode, colour_grounding, instruction_vectors, mode_flags,
                           named_colours, plucker_rays, state_in_cameras)
from .config import ModelConfig
from .precision import bf16_is_fast

logger = logging.getLogger(__name__)

#: Modes whose output includes decoded actions.
ACTION_MODES = ("policy", "label")


@dataclasses.dataclass
class ActionImagesPipelineOutput(BaseOutput):
    """Result of one pipeline call (one scene).

    Attributes:
        future_rgb: ``(V, F, H, W, 3)`` future frames in [0, 1] (the given ones in ``label`` mode).
        future_action: ``(V, F, H, W, 3)`` future action images in [0, 1] (given ones in
            ``world_model`` mode); None in ``video`` mode.
        actions: ``(F, 8)`` decoded ``[x y z qx qy qz qw gripper]`` (metres, world frame) in the
            ``policy`` and ``label`` modes, else None.
        confidence: ``(F,)`` decoder confidence in [0, 1] where ``actions`` is set, else None.
        mode: the mode that produced this output.
    """

    future_rgb: np.ndarray | torch.Tensor
    future_action: np.ndarray | torch.Tensor | None
    actions: np.ndarray | None
    confidence: np.ndarray | None
    mode: str


class ActionImagesPipeline(DiffusionPipeline):
    """Joint future-video + action-image generation (Action Images, arXiv 2604.06168).

    Components: ``denoiser`` (``UNet2DModel`` or ``WanTransformer3DModel``),
    ``scheduler`` (flow matching), optional ``vae`` (``AutoencoderKLWan``, Wan
    configuration only). ``model_config`` is the :class:`ModelConfig` as a dict;
    it is saved in ``model_index.json``. Build a fresh one with
    :func:`action_images_ros.model.factory.build_pipeline`; load a saved one
    with ``ActionImagesPipeline.from_pretrained(folder)``.
    """

    model_cpu_offload_seq = "denoiser->vae"
    _optional_components = ["vae", "action_head", "gripper_readout", "view_mixer"]

    def __init__(self, denoiser, scheduler, vae=None, action_head=None, model_config: dict | None = None,
                 policy_config: dict | None = None, gripper_readout=None, view_mixer=None) -> None:
        super().__init__()
        self.register_modules(denoiser=denoiser, scheduler=scheduler, vae=vae, action_head=action_head,
                              gripper_readout=gripper_readout, view_mixer=view_mixer)
        self.policy_cfg = None
        if policy_config is not None:
            self.set_policy_config(policy_config)
        if isinstance(model_config, dict):
            # Checkpoints saved before these options existed were trained without them.
            model_config = {"use_state": False, "residual_to_current": False, **model_config}
        cfg = model_config if isinstance(model_config, ModelConfig) else ModelConfig.from_dict(model_config)
        self.register_to_config(model_config=cfg.to_dict())
        self.model_cfg = cfg
        if (cfg.action_output == "head") != (action_head is not None):
            raise ValueError(f"the model config has action_output={cfg.action_output!r} but the pipeline "
                             f"{'has no' if action_head is None else 'has an'} action_head component; build it "
                             f"with model.factory.build_pipeline")
        if cfg.gripper_readout != (gripper_readout is not None):
            raise ValueError(f"the model config has gripper_readout={cfg.gripper_readout} but the pipeline "
                             f"{'has no' if gripper_readout is None else 'has a'} gripper_readout component; build it "
                             f"with model.factory.build_pipeline")
        if cfg.view_mixer != (view_mixer is not None):
            raise ValueError(f"the model config has view_mixer={cfg.view_mixer} but the pipeline "
                             f"{'has no' if view_mixer is None else 'has a'} view_mixer component; build it "
                             f"with model.factory.build_pipeline")
        if cfg.use_instruction and not cfg.instruction_vocab:
            raise ValueError("the model config has use_instruction but an empty instruction_vocab; "
                             "`action-images train` fills it from the training instructions")
        self.codec = ActionImageCodec(cfg.image_size, cfg.image_size, sigma_frac=cfg.codec_sigma_frac,
                                      axis_length=cfg.codec_axis_length,
                                      open_background=cfg.codec_open_background)
        self._backbone = None
        self._backbone_key = None
        self.set_progress_bar_config(disable=True)  # one call per control step: no bars unless asked for
        _ = self.backbone  # validate that the components fit the config now, not at the first call

    @property
    def device(self) -> torch.device:
        """Where the pipeline computes: diffusers' rule (the first component on an accelerator, else the
        first component), read from each component's first parameter. diffusers' own property also looks
        for group-offload hooks through every submodule at each access (~0.9 ms on this CPU, 7 accesses a
        call: 7-10 ms of a 1-step policy call, ``bench/bench_call_breakdown.py``); these pipelines never offload."""
        devices = []
        for name in ("denoiser", "vae", "action_head", "gripper_readout", "view_mixer"):
            m = getattr(self, name, None)
            if isinstance(m, torch.nn.Module):
                p = next(m.parameters(), None)
                if p is not None:
                    devices.append(p.device)
        for d in devices:
            if d.type not in ("cpu", "meta"):
                return d
        return devices[0] if devices else torch.device("cpu")

    def set_policy_config(self, policy_config) -> None:
        """Register the clip / execution settings (``config.PolicyConfig`` or its dict) with the pipeline,
        so ``save_pretrained`` writes them into ``model_index.json`` beside the model config."""
        from ..config import PolicyConfig

        cfg = policy_config if isinstance(policy_config, PolicyConfig) else PolicyConfig.from_dict(policy_config)
        self.register_to_config(policy_config=cfg.to_dict())
        self.policy_cfg = cfg

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> "ActionImagesPipeline":
        """Load a pipeline saved with ``save_pretrained`` from a local folder.

        Raises:
            FileNotFoundError: the folder, its ``model_index.json`` or a component subfolder is missing.
            ValueError: the folder is corrupt (unreadable index, wrong class, broken weights).
        """
        path = Path(pretrained_model_name_or_path).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"model folder {path} does not exist (expected a folder written by "
                                    f"ActionImagesPipeline.save_pretrained or `action-images train`)")
        index_path = path / "model_index.json"
        if not index_path.is_file():
            raise FileNotFoundError(f"{path} is not a saved pipeline: {index_path.name} is missing "
                                    f"(save one with pipeline.save_pretrained(folder))")
        try:
            index = json.loads(index_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"checkpoint folder {path} is corrupt: {index_path.name} is not valid JSON "
                             f"({exc})") from exc
        if not isinstance(index, dict) or index.get("_class_name") != cls.__name__:
            found = index.get("_class_name") if isinstance(index, dict) else type(index).__name__
            raise ValueError(f"checkpoint folder {path} holds a {found}, not an {cls.__name__}")
        for name in ("denoiser", "scheduler", "vae", "action_head", "gripper_readout", "view_mixer"):
            entry = index.get(name)
            if name in ("denoiser", "scheduler") and not entry:
                raise ValueError(f"checkpoint folder {path} is corrupt: model_index.json has no {name!r} entry")
            if entry and entry[0] is not None and not (path / name).is_dir():
                raise FileNotFoundError(f"checkpoint folder {path} is incomplete: subfolder {name}/ is missing")
        kwargs.setdefault("local_files_only", True)
        try:
            return super().from_pretrained(path, **kwargs)
        except (FileNotFoundError, ValueError):
            raise
        except Exception as exc:  # diffusers/safetensors raise OSError, RuntimeError, SafetensorError...
            raise ValueError(f"checkpoint folder {path} is corrupt or incomplete: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ building blocks (shared with training)
    @property
    def backbone(self):
        """The denoiser-family adapter (rebuilt if a component was replaced)."""
        key = (id(self.denoiser), id(self.vae), id(self.view_mixer))
        if self._backbone is None or key != self._backbone_key:
            self._backbone = make_backbone(self.model_cfg, self.denoiser, self.vae, self.view_mixer)
            self._backbone_key = key
        return self._backbone

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> network range."""
        return (x - self.model_cfg.input_mean) / self.model_cfg.input_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Network range -> [0, 1] images (clamped)."""
        return (x * self.model_cfg.input_std + self.model_cfg.input_mean).clamp(0.0, 1.0)

    def prepare_conditions(self, cond_rgb: torch.Tensor, cond_action: torch.Tensor, K: torch.Tensor,
                           T_world_cam: torch.Tensor, modes: Sequence[str],
                           state: torch.Tensor | None = None,
                           instruction: Sequence[str] | None = None) -> Conditions:
        """Batched conditioning.

        Args:
            cond_rgb, cond_action: ``(B, V, 3, H, W)`` in [0, 1].
            K: ``(B, V, 3, 3)`` intrinsics at ``H x W``; T_world_cam: ``(B, V, 4, 4)``.
            modes: ``B`` mode names.
            state: ``(B, 8)`` current pose (world frame); required when the config has ``use_state``.
            instruction: ``B`` instructions; required when the config has ``use_instruction``.
        """
        dev = self.device
        cond_rgb = cond_rgb.to(dev, torch.float32)
        B, V, _, H, W = cond_rgb.shape
        rays = plucker_rays(K.to(dev), T_world_cam.to(dev), H, W) if self.model_cfg.use_plucker else None
        state_cam = None
        if self.model_cfg.use_state:
            if state is None:
                raise ValueError("this model is conditioned on the current pose (use_state): pass state (B, 8)")
            state_cam = state_in_cameras(state.to(dev), T_world_cam.to(dev))
        if self.model_cfg.use_instruction:
            if instruction is None or isinstance(instruction, str) or len(instruction) != B:
                raise ValueError(f"this model follows an instruction (use_instruction): pass {B} instruction "
                                 f"string(s) using the words {list(self.model_cfg.instruction_vocab)}")
            words = instruction_vectors(list(instruction), self.model_cfg.instruction_vocab).to(dev)
            words = words[:, None].expand(B, V, -1)
            state_cam = words if state_cam is None else torch.cat([state_cam, words], dim=-1)
        maps = None
        if self.model_cfg.num_grounding_maps:
            table = self.model_cfg.instruction_colours
            named = [named_colours(text, table) for text in instruction]
            if self.model_cfg.grounding_roles:
                maps = torch.cat([colour_grounding(cond_rgb, [n[role:role + 1] for n in named])
                                  for role in range(2)], dim=2)
            else:
                maps = colour_grounding(cond_rgb, named)
        cond = Conditions(
            cond_rgb=self.normalize(cond_rgb),
            cond_action=self.normalize(cond_action.to(dev, torch.float32)),
            rays=rays,
            flags=mode_flags(self.stream_modes(modes), device=dev),
            state=state_cam,
            maps=maps,
        )
        return self.backbone.prepare(cond)

    def stream_modes(self, modes: Sequence[str]) -> list[str]:
        """The modes as the streams see them: an action-head model generates no action images, so its
        ``policy`` mode is the ``video`` mode plus the head."""
        if self.action_head is None:
            return list(modes)
        return ["video" if m == "policy" else m for m in modes]

    def head_poses(self, features: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The action head's raw ``(B, F, 10)`` pose changes from bottleneck ``features`` at ``state (B, 8)``."""
        return self.action_head(features, state.to(features.device, torch.float32))

    def gripper_logits(self, features: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The gripper read-out's ``(B, F)`` logits of "open" from bottleneck ``features`` at ``state (B, 8)``."""
        return self.gripper_readout(features, state.to(features.device, torch.float32))

    def denoise(self, x_rgb: torch.Tensor, x_act: torch.Tensor, cond: Conditions, timestep: torch.Tensor,
                autocast: bool | None = False, features: bool = False):
        """Raw network predictions for both streams (given streams substituted clean, dropped ones zeroed).

        Args:
            x_rgb, x_act: noisy streams in model space.
            timestep: ``(B,)`` in [0, num_train_timesteps].
            autocast: run the network under bf16 autocast (True; float32 where the device has no native
                bf16, see ``model.precision``), without it (False), or under whatever
                autocast the caller set up (None: training, where Accelerate's mixed precision decides).
            features: also return the backbone's bottleneck features (the action head's input).
        """
        f = cond.flags
        shape = (-1,) + (1,) * (x_rgb.ndim - 1)
        if cond.given_rgb is not None:
            x_rgb = torch.where(f[:, 0].view(shape) > 0.5, cond.given_rgb, x_rgb)
        if cond.given_action is not None:
            x_act = torch.where(f[:, 1].view(shape) > 0.5, cond.given_action, x_act)
        x_act = x_act * (1.0 - f[:, 2].view(shape))
        ctx = (contextlib.nullcontext() if autocast is None else
               torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast and bf16_is_fast(self.device)))
        with ctx:
            if features:
                return self.backbone.forward(x_rgb, x_act, cond, timestep, features=True)
            return self.backbone.forward(x_rgb, x_act, cond, timestep)

    def to_velocity(self, pred: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Flow velocity ``d x / d sigma`` from a network prediction; ``sigma`` is ``(B,)``."""
        if self.model_cfg.prediction_type == "velocity":
            return pred
        s = sigma.clamp(min=self.model_cfg.min_sigma).view((-1,) + (1,) * (x.ndim - 1))
        return (x - pred) / s

    def sampler_step(self, pred_rgb: torch.Tensor, pred_act: torch.Tensor, x_rgb: torch.Tensor, x_act: torch.Tensor,
                     t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One scheduler step at timestep ``t`` of both streams of ``B`` scenes from the network's predictions:
        the streams advance together as one flat sample per scene (the sampler of :meth:`__call__`, and of a
        distillation teacher)."""
        B, numel = x_rgb.shape[0], x_rgb[0].numel()
        sigma = t.reshape(1).to(x_rgb.device, torch.float32).expand(B) / float(self.scheduler.config.num_train_timesteps)
        v = torch.cat([self.to_velocity(pred_rgb, x_rgb, sigma).reshape(B, -1),
                       self.to_velocity(pred_act, x_act, sigma).reshape(B, -1)], dim=1)
        x = torch.cat([x_rgb.reshape(B, -1), x_act.reshape(B, -1)], dim=1)
        x = self.scheduler.step(v, t, x, return_dict=False)[0]
        return x[:, :numel].reshape(x_rgb.shape), x[:, numel:].reshape(x_act.shape)

    # ------------------------------------------------------------------ __call__ helpers
    def check_inputs(self, cond_rgb, cond_action, state, cameras, K, T_world_cam, mode, future_rgb,
                     future_action, actions, num_inference_steps, generator) -> dict[str, Any]:
        """Validate the inputs of :meth:`__call__` and return them as float32 arrays + cameras."""
        check_mode(mode)
        if self.action_head is not None and mode not in ("policy", "video"):
            raise ValueError(f"an action-head model (action_output='head') has no action-image stream: it runs "
                             f"the modes 'policy' and 'video', not {mode!r}")
        S, F = self.model_cfg.image_size, self.model_cfg.num_future
        rgb = _as_images(cond_rgb, "cond_rgb", 4)
        V = rgb.shape[0]
        if rgb.shape[1:] != (3, S, S):
            raise ValueError(_size_message("cond_rgb", rgb.shape, f"(V, 3, {S}, {S})", S))
        if mode in ACTION_MODES and V < 2:
            raise ValueError(f"mode {mode!r} decodes actions by triangulation and needs at least 2 views, got {V}")
        cams = _cameras(cameras, K, T_world_cam, V, S)
        if cond_action is None and state is None:
            raise ValueError("pass cond_action (V, 3, H, W) or state (8,) = the current pose to draw it")
        st = None
        if state is not None:
            st = np.asarray(state.detach().cpu() if isinstance(state, torch.Tensor) else state, dtype=np.float64)
            if st.shape != (8,):
                raise ValueError(f"state must have shape (8,) = [x y z qx qy qz qw gripper], got {st.shape}")
            validate_actions(st[None])
        if cond_action is not None:
            cact = _as_images(cond_action, "cond_action", 4)
            if cact.shape != rgb.shape:
                raise ValueError(_size_message("cond_action", cact.shape, f"{rgb.shape} like cond_rgb", S))
        else:
            cact = self.codec.encode(st[None], cams)[:, 0].transpose(0, 3, 1, 2)
        if st is None and (self.model_cfg.use_state or self.action_head is not None or self.gripper_readout is not None):
            if V < 2:
                raise ValueError("pass state (8,): the current pose cannot be read from a single view's action image")
            st = self.codec.decode(cact.transpose(0, 2, 3, 1)[:, None], cams)[0][0]
        out = {"cond_rgb": rgb, "cond_action": np.ascontiguousarray(cact, dtype=np.float32), "cameras": cams,
               "state": None if st is None else st.astype(np.float32), "future_rgb": None, "future_action": None}
        if mode == "label":
            if future_rgb is None:
                raise ValueError("mode 'label' labels a given video: pass future_rgb (V, F, 3, H, W)")
            out["future_rgb"] = _as_images(future_rgb, "future_rgb", 5)
            if out["future_rgb"].shape != (V, F, 3, S, S):
                raise ValueError(_size_message("future_rgb", out["future_rgb"].shape, f"({V}, {F}, 3, {S}, {S})", S))
        elif future_rgb is not None:
            logger.warning("future_rgb is ignored in mode %r (it is generated)", mode)
        if mode == "world_model":
            if future_action is None and actions is None:
                raise ValueError("mode 'world_model' needs the actions: pass future_action (V, F, 3, H, W) "
                                 "or actions (F, 8)")
            if future_action is not None:
                fa = _as_images(future_action, "future_action", 5)
            else:
                a = np.asarray(actions, dtype=np.float64)
                if a.shape != (F, 8):
                    raise ValueError(f"actions must have shape ({F}, 8) = num_future x [x y z qx qy qz qw g], "
                                     f"got {a.shape}")
                fa = self.codec.encode(a, cams).transpose(0, 1, 4, 2, 3)
            if fa.shape != (V, F, 3, S, S):
                raise ValueError(_size_message("future_action", fa.shape, f"({V}, {F}, 3, {S}, {S})", S))
            out["future_action"] = np.ascontiguousarray(fa, dtype=np.float32)
        elif future_action is not None or actions is not None:
            logger.warning("future_action / actions are ignored in mode %r", mode)
        if not 1 <= int(num_inference_steps) <= 1000:
            raise ValueError(f"num_inference_steps must be in [1, 1000], got {num_inference_steps}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        return out

    def prepare_noise(self, shape: tuple[int, ...],
                      generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial noise for the RGB and action streams (drawn on the CPU so seeds are device independent)."""
        n_rgb = torch.randn(shape, generator=generator, dtype=torch.float32)
        n_act = torch.randn(shape, generator=generator, dtype=torch.float32)
        return n_rgb.to(self.device), n_act.to(self.device)

    def retrieve_timesteps(self, num_inference_steps: int) -> torch.Tensor:
        """Uniform sigmas ``1, ..., 1/N`` when the scheduler accepts custom sigmas, else its own spacing."""
        n = int(num_inference_steps)
        if "sigmas" in inspect.signature(self.scheduler.set_timesteps).parameters:
            self.scheduler.set_timesteps(sigmas=np.linspace(1.0, 1.0 / n, n).tolist(), device=self.device)
        else:
            self.scheduler.set_timesteps(n, device=self.device)
        return self.scheduler.timesteps

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        cond_rgb: np.ndarray | torch.Tensor,
        cond_action: np.ndarray | torch.Tensor | None = None,
        cameras: Sequence[Camera] | None = None,
        K: np.ndarray | torch.Tensor | None = None,
        T_world_cam: np.ndarray | torch.Tensor | None = None,
        mode: str = "policy",
        future_rgb: np.ndarray | torch.Tensor | None = None,
        future_action: np.ndarray | torch.Tensor | None = None,
        actions: np.ndarray | None = None,
        state: np.ndarray | None = None,
        instruction: str | None = None,
        num_inference_steps: int = 6,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        return_dict: bool = True,
    ) -> ActionImagesPipelineOutput | tuple:
        """Generate the future of one scene.

        Args:
            cond_rgb: ``(V, 3, S, S)`` current frames in [0, 1] (uint8 accepted and scaled).
            cond_action: ``(V, 3, S, S)`` action image of the current pose, or None with ``state``.
            cameras: ``V`` cameras of size ``S x S``; or give ``K (V, 3, 3)`` and ``T_world_cam (V, 4, 4)``.
            mode: ``policy`` | ``world_model`` | ``label`` | ``video`` (see ``conditioning``).
            future_rgb: ``(V, F, 3, S, S)`` given future frames (``label`` mode).
            future_action: ``(V, F, 3, S, S)`` given action images (``world_model``), or ``actions (F, 8)``.
            state: ``(8,)`` current pose (world frame); drawn with the codec when ``cond_action`` is
                None, decoded from ``cond_action`` when not given (models with ``use_state``).
            instruction: what to do, e.g. ``"reach the red target"`` (models with ``use_instruction``;
                ignored with a warning by models without).
            num_inference_steps: denoising steps (6 by default; <= 8 is the intended range).
            generator: seeds the initial noise (samples are reproducible with a seeded generator).
            output_type: ``"np"`` (numpy) or ``"pt"`` (torch) for the image outputs.
            return_dict: return an :class:`ActionImagesPipelineOutput` (else a tuple of its fields).
        """
        # 1. Check inputs
        if output_type not in ("np", "pt"):
            raise ValueError(f"output_type must be 'np' or 'pt', got {output_type!r}")
        inp = self.check_inputs(cond_rgb, cond_action, state, cameras, K, T_world_cam, mode, future_rgb,
                                future_action, actions, num_inference_steps, generator)
        cams = inp["cameras"]
        V = len(cams)
        dev = self.device

        # 2. Prepare conditioning (batch of one scene) and the given streams
        Kt = torch.as_tensor(np.stack([c.K for c in cams]), dtype=torch.float32)[None]
        Tt = torch.as_tensor(np.stack([c.T_world_cam for c in cams]), dtype=torch.float32)[None]
        state_t = None if inp["state"] is None else torch.from_numpy(inp["state"])[None]
        if instruction is not None and not self.model_cfg.use_instruction:
            logger.warning("this model does not take an instruction; ignoring %r", instruction)
        cond = self.prepare_conditions(torch.from_numpy(inp["cond_rgb"])[None],
                                       torch.from_numpy(inp["cond_action"])[None], Kt, Tt, [mode], state=state_t,
                                       instruction=None if instruction is None else [instruction])
        if inp["future_rgb"] is not None:
            cond.given_rgb = self.backbone.encode_stream(
                self.normalize(torch.from_numpy(inp["future_rgb"])[None].to(dev)), "rgb", cond)
        if inp["future_action"] is not None:
            cond.given_action = self.backbone.encode_stream(
                self.normalize(torch.from_numpy(inp["future_action"])[None].to(dev)), "action", cond)

        # 3. Prepare the initial noise
        shape = self.backbone.stream_shape(1, V)
        x_rgb, x_act = self.prepare_noise(shape, generator)

        # 4. Timesteps
        timesteps = self.retrieve_timesteps(num_inference_steps)

        # 5. Denoising loop
        head = self.action_head is not None and mode == "policy"
        readout = self.gripper_readout is not None and mode in ACTION_MODES
        feats = None
        first_step_readout = readout and self.model_cfg.gripper_readout_at == "first_step"
        for i, t in enumerate(self.progress_bar(timesteps)):
            t_batch = t.reshape(1).to(dev, torch.float32)
            read = head or (readout and (i == 0 or not first_step_readout))
            out = self.denoise(x_rgb, x_act, cond, t_batch, autocast=self.model_cfg.inference_bf16, features=read)
            pred_rgb, pred_act = out[0], out[1]
            if read:
                # the head / a last-step read-out reads the last (least noisy) step's features, a
                # first-step read-out those of pure noise (ModelConfig.gripper_readout_at)
                feats = out[2]
            x_rgb, x_act = self.sampler_step(pred_rgb, pred_act, x_rgb, x_act, t)

        # 6. Decode: given streams pass through; generated ones back to [0, 1] pixels
        if inp["future_rgb"] is not None:
            rgb01 = torch.from_numpy(inp["future_rgb"])[None].to(dev)
        else:
            rgb01 = self.denormalize(self.backbone.decode_stream(x_rgb, "rgb", cond))
        act01 = None
        acts = conf = None
        if head:
            raw = self.head_poses(feats, state_t).float().cpu().numpy()[0]
            acts = decode_outputs(inp["state"], raw, self.action_head.config.position_scale)
            conf = np.ones(len(acts))  # a regression head has no measure of its own certainty
            # Drawn with the codec for display (RViz, previews): the head's poses as action images.
            act01 = torch.from_numpy(self.codec.encode(acts, cams).transpose(0, 1, 4, 2, 3).astype(np.float32))[None]
        elif inp["future_action"] is not None:
            act01 = torch.from_numpy(inp["future_action"])[None].to(dev)
        elif mode != "video":
            act01 = self.denormalize(self.backbone.decode_stream(x_act, "action", cond))
        rgb_out = rgb01[0].permute(0, 1, 3, 4, 2).float().cpu()  # (V, F, H, W, 3)
        act_out = None if act01 is None else act01[0].permute(0, 1, 3, 4, 2).float().cpu()

        # 7. Decode actions with the codec where the mode yields them
        if mode in ACTION_MODES and not head:
            acts, conf = self.codec.decode(act_out.numpy(), cams)
            if readout:  # poses from the images, the gripper read where they were generated
                p_open = torch.sigmoid(self.gripper_logits(feats.float(), state_t)).float().cpu().numpy()[0]
                acts[:, 7] = p_open

        # 8. Output
        self.maybe_free_model_hooks()
        if output_type == "np":
            rgb_out = rgb_out.numpy()
            act_out = None if act_out is None else act_out.numpy()
        if not return_dict:
            return rgb_out, act_out, acts, conf, mode
        return ActionImagesPipelineOutput(future_rgb=rgb_out, future_action=act_out, actions=acts,
                                          confidence=conf, mode=mode)


# --------------------------------------------------------------------------- input helpers
def _as_images(x, name: str, ndim: int) -> np.ndarray:
    """Array-like images -> float32 numpy in [0, 1] (uint8 is scaled by 1/255)."""
    if x is None:
        raise ValueError(f"{name} is required")
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != ndim:
        want = "(V, 3, H, W)" if ndim == 4 else "(V, F, 3, H, W)"
        raise ValueError(f"{name} must have shape {want} (channels first), got {a.shape}")
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _size_message(name: str, got: tuple, want: str, size: int) -> str:
    return (f"{name} has shape {tuple(got)}, expected {want}: images must be {size}x{size} channels-first; "
            f"resize them (cv2.resize) and scale the cameras with cam.scaled({size}, {size})")


def _cameras(cameras, K, T_world_cam, views: int, size: int) -> list[Camera]:
    """Cameras from ``cameras`` or ``K``/``T_world_cam``, checked against the view count and image size."""
    if cameras is None:
        if K is None or T_world_cam is None:
            raise ValueError("cameras are missing: pass cameras=[geometry.Camera, ...] (one per view) "
                             "or both K (V, 3, 3) and T_world_cam (V, 4, 4)")
        K = np.asarray(K.detach().cpu() if isinstance(K, torch.Tensor) else K, dtype=np.float64)
        T = np.asarray(T_world_cam.detach().cpu() if isinstance(T_world_cam, torch.Tensor) else T_world_cam,
                       dtype=np.float64)
        if K.ndim != 3 or K.shape[1:] != (3, 3) or T.ndim != 3 or T.shape[1:] != (4, 4):
            raise ValueError(f"K must be (V, 3, 3) and T_world_cam (V, 4, 4), got {K.shape} and {T.shape}")
        if len(K) != len(T):
            raise ValueError(f"K has {len(K)} views but T_world_cam has {len(T)}")
        cameras = [Camera(K=k, T_world_cam=t, width=size, height=size, name=f"view{i}")
                   for i, (k, t) in enumerate(zip(K, T))]
    cams = list(cameras)
    if len(cams) != views:
        raise ValueError(f"got {views} views of images but {len(cams)} cameras; pass exactly one camera per view "
                         f"in the same order")
    for cam in cams:
        if not isinstance(cam, Camera):
            raise ValueError(f"cameras must be geometry.Camera objects, got {type(cam).__name__}")
        if (cam.width, cam.height) != (size, size):
            raise ValueError(f"camera {cam.name!r} is {cam.width}x{cam.height} but the model works at "
                             f"{size}x{size}; pass cam.scaled({size}, {size})")
    return cams
