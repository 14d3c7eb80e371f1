"""How each denoiser family lays out the two generated streams and their conditioning.

Both backbones expose the same small interface used by the pipeline and the
training objective, over "model-space" stream tensors (the tensors that are
noised and denoised):

* ``stream_shape(B, V)``: shape of one stream (future RGB or future action images),
* ``prepare(cond)``: precompute per-call conditioning (e.g. latents of the current frames),
* ``encode_stream(future, stream, cond)`` / ``decode_stream(x, stream, cond)``:
  normalised pixels ``(B, V, F, 3, H, W)`` <-> model space,
* ``forward(x_rgb, x_act, cond, timestep)``: raw network predictions for both streams.

``UNet2DBackbone`` works in pixel space with views folded into the batch;
``WanBackbone`` works on Wan VAE latents with all views in one token sequence,
per view the RGB clip then the action clip along time (the paper's layout),
the first latent frame of each clip being the clean current frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

from .conditioning import Conditions
from .config import ModelConfig
from .denoisers import unet_channels, wan_extra_channels

STREAMS = ("rgb", "action")


class UNet2DBackbone:
    """Pixel-space UNet2D: one view = one sample; keyframes stacked as channels.

    With ``residual_to_current`` the network's output is added to the current
    frame and action image (repeated over the ``F`` keyframes).

    Model-space stream shape: ``(B, V, F, 3, H, W)`` (the normalised pixels themselves).
    """

    pixel_space = True

    def __init__(self, cfg: ModelConfig, denoiser: torch.nn.Module, vae: torch.nn.Module | None,
                 view_mixer: torch.nn.Module | None = None) -> None:
        cin, cout = unet_channels(cfg)
        got = (denoiser.config.in_channels, denoiser.config.out_channels)
        if got != (cin, cout):
            raise ValueError(
                f"the UNet has (in, out) channels {got} but the model config (num_future={cfg.num_future}, "
                f"use_plucker={cfg.use_plucker}, use_state={cfg.use_state}) needs {(cin, cout)}; rebuild the "
                f"denoiser with build_unet2d(cfg)"
            )
        if denoiser.config.sample_size not in (cfg.image_size, [cfg.image_size] * 2, (cfg.image_size,) * 2):
            raise ValueError(f"the UNet was built for {denoiser.config.sample_size} px images, config says "
                             f"image_size={cfg.image_size}")
        self.cfg = cfg
        self.denoiser = denoiser
        #: ``model.view_mixer.ViewMixer`` applied to the mid-block output inside every UNet call, or None
        self.view_mixer = view_mixer
        #: ``network(x, t, features) -> (out, mid or None)``: the UNet call, eager torch by default;
        #: ``model.runtimes`` swaps in a compiled or ONNX Runtime one (eager stays the reference).
        self.network = self.eager_network

    def eager_network(self, x: torch.Tensor, t: torch.Tensor, features: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The UNet on ``x (N, C, H, W)`` at ``t (N,)``: its output, and with ``features`` its mid-block output."""
        captured: list[torch.Tensor] = []
        block = self.denoiser.mid_block
        # Hooks run in registration order, each on the previous one's output: the features are the mixed ones.
        hooks = ([block.register_forward_hook(lambda _m, _i, o: self.view_mixer(o))] if self.view_mixer is not None
                 else [])
        if features:
            hooks.append(block.register_forward_hook(lambda _m, _i, o: captured.append(o)))
        try:
            out = self.denoiser(x, t).sample
        finally:
            for hook in hooks:
                hook.remove()
        return out, (captured[-1] if features else None)

    def stream_shape(self, batch: int, views: int) -> tuple[int, ...]:
        s = self.cfg.image_size
        return (batch, views, self.cfg.num_future, 3, s, s)

    def prepare(self, cond: Conditions) -> Conditions:
        return cond

    def encode_stream(self, future: torch.Tensor, stream: str, cond: Conditions) -> torch.Tensor:
        return future

    def decode_stream(self, x: torch.Tensor, stream: str, cond: Conditions) -> torch.Tensor:
        return x

    def forward(self, x_rgb: torch.Tensor, x_act: torch.Tensor, cond: Conditions,
                timestep: torch.Tensor, features: bool = False):
        """Predictions ``(B, V, F, 3, H, W)`` for both streams; ``timestep`` is ``(B,)`` in [0, 1000].

        With ``features`` also the mid-block (bottleneck) output ``(B, V, C, h, w)``, the input of an
        action head, as a third element.
        """
        B, V, F, _, H, W = x_rgb.shape
        n = B * V
        parts = [x_rgb.reshape(n, F * 3, H, W), x_act.reshape(n, F * 3, H, W),
                 cond.cond_rgb.reshape(n, 3, H, W), cond.cond_action.reshape(n, 3, H, W)]
        if cond.rays is not None:
            parts.append(cond.rays.reshape(n, -1, H, W))
        if cond.state is not None:
            parts.append(cond.state.reshape(n, -1, 1, 1).expand(n, -1, H, W))
        if cond.maps is not None:
            parts.append(cond.maps.reshape(n, -1, H, W))
        parts.append(cond.flags[:, None, :, None, None].expand(B, V, -1, H, W).reshape(n, -1, H, W))
        t = timestep.reshape(B, 1).expand(B, V).reshape(n)
        dtype = self.denoiser.dtype
        out, mid = self.network(torch.cat(parts, dim=1).to(dtype), t.to(dtype), features)
        out = out.float().reshape(B, V, 2, F, 3, H, W)
        rgb, act = out[:, :, 0], out[:, :, 1]
        if self.cfg.residual_to_current:
            rgb = rgb + cond.cond_rgb[:, :, None]
            act = act + cond.cond_action[:, :, None]
        if features:
            return rgb, act, mid.reshape((B, V) + tuple(mid.shape[1:]))
        return rgb, act


class WanBackbone:
    """Wan transformer on Wan VAE latents, all views in one sequence.

    Model-space stream shape: ``(B, V, C, Tl, h, w)`` with ``C`` the latent
    channels and ``Tl = F / 4`` latent frames (the conditioning latent frame is
    kept in ``cond.cache``, not in the stream).
    """

    pixel_space = False

    def __init__(self, cfg: ModelConfig, denoiser: torch.nn.Module, vae: torch.nn.Module | None) -> None:
        if vae is None:
            raise ValueError("the Wan configuration needs a VAE component (AutoencoderKLWan), got None")
        self.cfg = cfg
        self.denoiser = denoiser
        self.vae = vae
        self.z = int(vae.config.z_dim)
        self.t_scale = int(vae.config.scale_factor_temporal or 4)
        self.s_scale = int(vae.config.scale_factor_spatial or 8)
        pt, ph, pw = denoiser.config.patch_size
        self.patch = (ph, pw)
        if cfg.num_future % self.t_scale:
            raise ValueError(f"num_future={cfg.num_future} must be a multiple of the VAE's temporal factor "
                             f"{self.t_scale}")
        if cfg.image_size % (self.s_scale * ph) or cfg.image_size % (self.s_scale * pw):
            raise ValueError(f"image_size={cfg.image_size} must be divisible by VAE factor {self.s_scale} x "
                             f"patch {ph}x{pw}")
        want = self.z + wan_extra_channels(cfg)
        if denoiser.config.in_channels != want:
            raise ValueError(f"the Wan transformer takes {denoiser.config.in_channels} input channels, the config "
                             f"needs {want} (latents {self.z} + conditioning); widen it with widen_patch_embedding")
        mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self._mean, self._std = mean, std

    @property
    def latent_frames(self) -> int:
        return self.cfg.num_future // self.t_scale

    def stream_shape(self, batch: int, views: int) -> tuple[int, ...]:
        h = self.cfg.image_size // self.s_scale
        return (batch, views, self.z, self.latent_frames, h, h)

    # ---- VAE helpers: pixel clips (N, 3, T, H, W) in [-1, 1] <-> normalised latents (N, C, Tl, h, w)
    def _encode(self, clips: torch.Tensor) -> torch.Tensor:
        vae_dtype = self.vae.dtype
        z = self.vae.encode(clips.to(vae_dtype)).latent_dist.mode().float()
        return (z - self._mean.to(z.device)) / self._std.to(z.device)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        z = z * self._std.to(z.device) + self._mean.to(z.device)
        return self.vae.decode(z.to(self.vae.dtype)).sample.float().clamp(-1.0, 1.0)

    def prepare(self, cond: Conditions) -> Conditions:
        """Encode the current RGB frame and action image of every view (the clean first latent frame)."""
        B, V, _, H, W = cond.cond_rgb.shape
        frames = torch.cat([cond.cond_rgb, cond.cond_action], dim=0).reshape(2 * B * V, 3, 1, H, W)
        with torch.no_grad():
            z = self._encode(frames)
        z = z.reshape(2, B, V, *z.shape[1:])
        cond.cache["rgb0"], cond.cache["action0"] = z[0], z[1]
        if cond.rays is not None:
            h = H // self.s_scale
            cond.cache["rays"] = nnf.adaptive_avg_pool2d(cond.rays.reshape(B * V, -1, H, W), h).reshape(B, V, -1, h, h)
        return cond

    def encode_stream(self, future: torch.Tensor, stream: str, cond: Conditions) -> torch.Tensor:
        """``(B, V, F, 3, H, W)`` normalised pixels -> ``(B, V, C, Tl, h, w)`` latents of the future frames."""
        B, V, F, _, H, W = future.shape
        first = cond.cond_rgb if stream == "rgb" else cond.cond_action
        clips = torch.cat([first[:, :, None], future], dim=2).reshape(B * V, F + 1, 3, H, W).transpose(1, 2)
        with torch.no_grad():
            z = self._encode(clips)[:, :, 1:]
        return z.reshape(B, V, *z.shape[1:])

    def decode_stream(self, x: torch.Tensor, stream: str, cond: Conditions) -> torch.Tensor:
        """``(B, V, C, Tl, h, w)`` latents -> ``(B, V, F, 3, H, W)`` normalised pixels."""
        B, V = x.shape[:2]
        z0 = cond.cache["rgb0" if stream == "rgb" else "action0"]
        z = torch.cat([z0, x], dim=3).reshape(B * V, *x.shape[2:3], -1, *x.shape[4:])
        frames = self._decode(z)[:, :, 1:]  # drop the conditioning frame
        return frames.transpose(1, 2).reshape(B, V, frames.shape[2], 3, *frames.shape[3:])

    def forward(self, x_rgb: torch.Tensor, x_act: torch.Tensor, cond: Conditions,
                timestep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions for both streams, shapes as the inputs; ``timestep`` is ``(B,)`` in [0, 1000]."""
        B, V, C, Tl, h, w = x_rgb.shape
        seg = 1 + Tl  # frames per clip: the clean conditioning frame, then the generated ones
        lat = torch.cat([cond.cache["rgb0"], x_rgb, cond.cache["action0"], x_act], dim=3)  # (B, V, C, 2*seg, h, w)
        f = cond.flags  # (B, 3): rgb_given, action_given, action_dropped
        one, zero = torch.ones_like(f[:, 0]), torch.zeros_like(f[:, 0])
        # Per frame of one view: is_action, given (clean), dropped; and the noise level of the frame.
        is_action = torch.cat([zero[:, None].expand(B, seg), one[:, None].expand(B, seg)], dim=1)
        given = torch.cat([one[:, None], f[:, 0:1].expand(B, Tl), one[:, None], f[:, 1:2].expand(B, Tl)], dim=1)
        dropped = torch.cat([zero[:, None].expand(B, seg + 1), f[:, 2:3].expand(B, Tl)], dim=1)
        noisy = (1.0 - given) * (1.0 - dropped)
        frame_flags = torch.stack([is_action, given, dropped], dim=2)  # (B, 2*seg, 3)
        extra = [frame_flags[:, None, :, :, None, None].expand(B, V, 2 * seg, 3, h, w).transpose(2, 3)]
        if cond.maps is not None:  # per-pixel maps at latent resolution
            m = torch.nn.functional.interpolate(cond.maps.flatten(0, 1), size=(h, w), mode="area")
            extra.insert(0, m.reshape(B, V, -1, 1, h, w).expand(B, V, -1, 2 * seg, h, w))
        if cond.state is not None:
            extra.insert(0, cond.state[:, :, :, None, None, None].expand(B, V, -1, 2 * seg, h, w))
        if cond.rays is not None:
            extra.insert(0, cond.cache["rays"][:, :, :, None].expand(B, V, -1, 2 * seg, h, w))
        hidden = torch.cat([lat] + extra, dim=2)  # (B, V, C + extra, 2*seg, h, w)
        hidden = hidden.permute(0, 2, 1, 3, 4, 5).reshape(B, hidden.shape[2], V * 2 * seg, h, w)
        ph, pw = self.patch
        tokens_per_frame = (h // ph) * (w // pw)
        t_frame = (timestep.reshape(B, 1) * noisy).repeat(1, V)  # (B, V*2*seg)
        t_tokens = t_frame.repeat_interleave(tokens_per_frame, dim=1)
        dtype = self.denoiser.dtype
        text = torch.zeros(B, 1, self.denoiser.config.text_dim, dtype=dtype, device=hidden.device)
        out = self.denoiser(hidden.to(dtype), timestep=t_tokens.to(dtype), encoder_hidden_states=text).sample.float()
        out = out.reshape(B, C, V, 2 * seg, h, w).permute(0, 2, 1, 3, 4, 5)
        return out[:, :, :, 1:seg], out[:, :, :, seg + 1:]


def make_backbone(cfg: ModelConfig, denoiser: torch.nn.Module, vae: torch.nn.Module | None,
                  view_mixer: torch.nn.Module | None = None):
    """The backbone adapter for ``cfg.denoiser_type`` (``view_mixer``: unet2d only)."""
    if cfg.denoiser_type == "unet2d":
        return UNet2DBackbone(cfg, denoiser, vae, view_mixer)
    if cfg.denoiser_type == "wan":
        return WanBackbone(cfg, denoiser, vae)
    raise ValueError(f"unknown denoiser_type {cfg.denoiser_type!r}")
