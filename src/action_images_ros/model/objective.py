"""The training objective: masked flow matching over the two streams.

For each scene a mode is drawn (which stream is given clean / dropped), a
noise level ``sigma = sigmoid(N(mu, s))`` (noise-heavy for ``mu > 0``), and
``x_sigma = (1 - sigma) x0 + sigma noise`` per stream. The network predicts
``x0`` (``prediction_type="sample"``) or ``noise - x0`` (``"velocity"``); the
squared error counts only on generated streams, the action stream weighted
``loss_action_weight`` and, in pixel space, each action-image pixel by
``1 + loss_blob_weight * blob intensity`` (the blobs are sparse), the intensity
being the larger of the target's and the current action image's blobs.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import torch

from .action_head import encode_targets
from .conditioning import mode_flags
from .config import MODES
from .gripper_readout import gripper_targets

BATCH_KEYS = ("cond_rgb", "cond_action", "future_rgb", "future_action", "K", "T_world_cam")


@dataclasses.dataclass
class LossParts:
    """A training loss and its parts (floats are detached, for logging)."""

    loss: torch.Tensor
    rgb: float
    action: float
    gripper: float | None = None  #: the gripper read-out's cross-entropy (models with ``gripper_readout``)


def sample_modes(n: int, probs: Mapping[str, float], rng: np.random.Generator) -> list[str]:
    """``n`` modes drawn with probabilities ``probs`` (normalised; unknown names rejected)."""
    names = [m for m in MODES if probs.get(m, 0.0) > 0]
    if not names:
        raise ValueError(f"no mode has a positive probability in {dict(probs)}")
    p = np.array([probs[m] for m in names], dtype=np.float64)
    return [names[i] for i in rng.choice(len(names), size=n, p=p / p.sum())]


def sample_sigmas(n: int, logit_mean: float, logit_std: float, generator: torch.Generator | None) -> torch.Tensor:
    """``(n,)`` noise levels ``sigmoid(N(logit_mean, logit_std))`` in (0, 1)."""
    return torch.sigmoid(torch.randn(n, generator=generator) * logit_std + logit_mean)


def blob_intensity(action01: torch.Tensor) -> torch.Tensor:
    """Per-pixel blob strength ``(..., 1, H, W)`` of action images ``(..., 3, H, W)`` in [0, 1].

    R and G are blobs on black; B is a blob over the gripper background, which is
    removed (its per-image minimum) and rescaled.
    """
    b = action01[..., 2:3, :, :]
    bg = b.amin(dim=(-2, -1), keepdim=True)
    b = (b - bg) / (1.0 - bg).clamp(min=1e-3)
    return torch.cat([action01[..., 0:2, :, :], b], dim=-3).amax(dim=-3, keepdim=True).clamp(0.0, 1.0)


def generated_streams(flags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which scenes generate (are scored on) the RGB and the action stream: two ``(B,)`` 0/1 masks from
    the ``(B, 3)`` mode flags (rgb_given, action_given, action_dropped)."""
    return 1.0 - flags[:, 0], (1.0 - flags[:, 1]) * (1.0 - flags[:, 2])


def _masked_mean(per_scene: torch.Tensor, mask: torch.Tensor, global_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_scene`` over the masked scenes of the *global* batch, as this shard's part.

    ``mask`` covers this shard's ``B`` rows, ``global_mask`` all ``N`` rows of the optimiser step. The
    shard's sum is divided by ``count(global_mask) * B / N``, so the average of the shards' losses (what
    DDP and gradient accumulation take) is the masked mean over the whole batch whatever the split.
    """
    share = per_scene.shape[0] / global_mask.shape[0]
    return (per_scene * mask).sum() / (global_mask.sum().clamp(min=1.0) * share)


class TrainedNetwork(torch.nn.Module):
    """One network evaluation of a pipeline's trained modules (the denoiser, and the action head or the
    gripper read-out where there is one), as the module a distributed wrapper (DDP, FSDP) and mixed
    precision wrap.

    ``forward(x_rgb, x_act, cond, timestep, state)`` returns ``(pred_rgb, pred_act, head, gripper)``: the
    two streams' predictions, the head's raw ``(B, F, 10)`` pose changes (None without a head) and the
    read-out's ``(B, F)`` gripper logits (None without one). Only the network runs here; conditions and
    the loss stay outside, in float32.
    """

    def __init__(self, pipe, autocast: bool | None = False) -> None:
        super().__init__()
        self.denoiser = pipe.denoiser
        self.view_mixer = pipe.view_mixer  # registered here so that DDP / FSDP see its parameters
        self.action_head = pipe.action_head
        self.gripper_readout = pipe.gripper_readout
        self.autocast = autocast
        self.__dict__["pipe"] = pipe  # a plain reference: the pipeline is not a module of this one

    def forward(self, x_rgb, x_act, cond, timestep, state=None):
        pipe = self.pipe
        head, readout = pipe.action_head is not None, pipe.gripper_readout is not None
        out = pipe.denoise(x_rgb, x_act, cond, timestep, autocast=self.autocast, features=head or readout)
        if not (head or readout):
            return out[0], out[1], None, None
        with torch.autocast(out[2].device.type, enabled=False):  # heads run in float32, as at inference
            feats = out[2].float()
            return (out[0], out[1], pipe.head_poses(feats, state) if head else None,
                    pipe.gripper_logits(feats, state) if readout else None)


def training_conditions(pipe, batch: Mapping[str, torch.Tensor], modes: Sequence[str]):
    """The conditioning of a training batch's rows (``modes``: one per row) and their recorded future streams in
    model space ``(x0_rgb, x0_act)``, which are also what the modes that give a stream are given."""
    dev = pipe.device
    cond = pipe.prepare_conditions(batch["cond_rgb"], batch["cond_action"], batch["K"], batch["T_world_cam"],
                                   list(modes), state=batch.get("state"), instruction=batch.get("instruction"))
    x0_rgb = pipe.backbone.encode_stream(pipe.normalize(batch["future_rgb"].to(dev, torch.float32)), "rgb", cond)
    x0_act = pipe.backbone.encode_stream(pipe.normalize(batch["future_action"].to(dev, torch.float32)), "action", cond)
    cond.given_rgb, cond.given_action = x0_rgb, x0_act
    return cond, x0_rgb, x0_act


def select_rows(batch: Mapping[str, object], rows: torch.Tensor) -> dict[str, object]:
    """The items of ``batch`` at the boolean ``rows`` (tensors indexed, lists of strings filtered)."""
    idx = torch.nonzero(rows.cpu(), as_tuple=False).flatten()
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v[idx.to(v.device)]
        elif isinstance(v, (list, tuple)):
            out[k] = [v[i] for i in idx.tolist()]
        else:
            out[k] = v
    return out


def flow_matching_loss(pipe, batch: Mapping[str, torch.Tensor], modes: Sequence[str],
                       generator: torch.Generator | None = None, autocast: bool = False,
                       offset: int = 0, network: torch.nn.Module | None = None, teacher=None) -> LossParts:
    """Masked flow-matching loss of ``pipe`` on a collated batch, or on one shard of a larger batch.

    Args:
        pipe: an :class:`ActionImagesPipeline`.
        batch: tensors with a leading batch dimension ``B``: ``cond_rgb``/``cond_action``
            ``(B, V, 3, H, W)``, ``future_rgb``/``future_action`` ``(B, V, F, 3, H, W)`` in [0, 1],
            ``K (B, V, 3, 3)``, ``T_world_cam (B, V, 4, 4)``, ``state (B, 8)`` (models with ``use_state``), ``instruction`` (B strings, models with
            ``use_instruction``).
        modes: the mode names (which streams are given) of the whole batch of the optimiser step,
            ``N >= B`` of them; ``batch`` holds its rows ``offset .. offset + B - 1``.
        generator: seeds the noise levels and noise, drawn for all ``N`` rows and sliced, so a shard
            sees exactly the noise its rows get when the batch is not split.
        autocast: bf16 autocast for the forward pass.
        offset: the first row of ``batch`` in the whole batch (a process's / micro-batch's shard).
        network: the :class:`TrainedNetwork` to run (training passes the one Accelerate prepared);
            default: ``TrainedNetwork(pipe, autocast)``.
        teacher: a :class:`~.distillation.Teacher`: the rows drawn at pure noise learn its sample from their
            noise instead of the recorded future (few-step distillation); None: the data alone.
    """
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise ValueError(f"training batch lacks key(s) {missing}; items need {list(BATCH_KEYS)}")
    cfg = pipe.model_cfg
    dev = pipe.device
    fut_rgb = batch["future_rgb"].to(dev, torch.float32)
    fut_act = batch["future_action"].to(dev, torch.float32)
    B, V, F = fut_rgb.shape[:3]
    if F != cfg.num_future or fut_rgb.shape[-1] != cfg.image_size or fut_rgb.shape[-2] != cfg.image_size:
        raise ValueError(f"batch has {F} future frames of {tuple(fut_rgb.shape[-2:])} px but the model expects "
                         f"{cfg.num_future} of {cfg.image_size}x{cfg.image_size}")
    N = len(modes)
    if not 0 <= offset <= N - B:
        raise ValueError(f"a shard of {B} rows at offset {offset} does not fit the {N} modes of the whole batch")
    all_modes, modes = list(modes), list(modes)[offset:offset + B]

    if cfg.use_state and "state" not in batch:
        raise ValueError("the model is conditioned on the current pose (use_state): batches need 'state' (B, 8)")
    if cfg.use_instruction and "instruction" not in batch:
        raise ValueError("the model follows an instruction (use_instruction): batches need 'instruction' (B strings)")
    cond, x0_rgb, x0_act = training_conditions(pipe, batch, modes)

    rows = slice(offset, offset + B)
    sigma = sample_sigmas(N, cfg.sigma_logit_mean, cfg.sigma_logit_std, generator)
    first_step = pipe.gripper_readout is not None and cfg.gripper_readout_at == "first_step"
    if first_step or teacher is not None:
        # The first-step read-out learns where it is read, and distillation where one step is taken: rows
        # drawn at pure noise (what the sampler starts from, t = num_train_timesteps).
        pure_all = torch.rand(N, generator=generator) < cfg.readout_pure_noise_share
        sigma = torch.where(pure_all, torch.ones_like(sigma), sigma)
        pure_all = pure_all.to(dev, torch.float32)
    sigma = sigma[rows].to(dev)
    n_rgb = torch.randn((N,) + x0_rgb.shape[1:], generator=generator)[rows].to(dev)
    n_act = torch.randn((N,) + x0_act.shape[1:], generator=generator)[rows].to(dev)
    s = sigma.view((-1,) + (1,) * (x0_rgb.ndim - 1))
    x_rgb = (1.0 - s) * x0_rgb + s * n_rgb
    x_act = (1.0 - s) * x0_act + s * n_act
    timestep = sigma * float(pipe.scheduler.config.num_train_timesteps)
    head, readout = pipe.action_head is not None, pipe.gripper_readout is not None
    network = network if network is not None else TrainedNetwork(pipe, autocast)
    if (head or readout) and "state" not in batch:
        raise ValueError("a model with an action head or a gripper read-out reads the current pose: "
                         "batches need 'state' (B, 8)")
    if (head or readout) and "actions" not in batch:
        raise ValueError("a model with an action head or a gripper read-out trains on the future poses: "
                         "batches need 'actions' (B, F, 8)")
    state = batch["state"].to(dev, torch.float32) if head or readout else None
    pred_rgb, pred_act, head_out, grip_out = network(x_rgb, x_act, cond, timestep, state)

    c_rgb, c_act = x0_rgb, x0_act  # the clean streams the rows learn
    blob_act = fut_act  # the action images those are, in [0, 1], whose blobs weight the loss
    if teacher is not None:
        pure = pure_all[rows] > 0
        if bool(pure.any()):
            keep = pure.tolist()
            d_rgb, d_act = teacher.samples(select_rows(batch, pure), [m for m, k in zip(modes, keep) if k],
                                           n_rgb[pure], n_act[pure])
            c_rgb, c_act = x0_rgb.clone(), x0_act.clone()
            c_rgb[pure], c_act[pure] = d_rgb.to(c_rgb.dtype), d_act.to(c_act.dtype)
            if pipe.backbone.pixel_space:  # weight where the teacher drew its blobs, not where the recording has them
                blob_act = fut_act.clone()
                blob_act[pure] = pipe.denormalize(d_act.to(fut_act.dtype))
    if cfg.prediction_type == "sample":
        t_rgb, t_act = c_rgb, c_act
    else:
        t_rgb, t_act = n_rgb - c_rgb, n_act - c_act
    err_rgb = (pred_rgb.float() - t_rgb) ** 2
    err_act = (pred_act.float() - t_act) ** 2
    if pipe.backbone.pixel_space and cfg.loss_blob_weight > 0:
        # Emphasise where a blob should be and where it was (a blob left behind is as wrong as a missing one).
        cur = batch["cond_action"].to(dev, torch.float32)[:, :, None]
        blobs = torch.maximum(blob_intensity(blob_act), blob_intensity(cur))
        err_act = err_act * (1.0 + cfg.loss_blob_weight * blobs)
    gen_rgb, gen_act = generated_streams(cond.flags)
    all_rgb, all_act = generated_streams(mode_flags(pipe.stream_modes(all_modes), device=dev))
    l_rgb = _masked_mean(err_rgb.flatten(1).mean(1), gen_rgb, all_rgb)
    l_act = _masked_mean(err_act.flatten(1).mean(1), gen_act, all_act)
    if head:
        # The baseline: the future poses regressed from the bottleneck features, in policy mode only.
        target = encode_targets(state, batch["actions"].to(dev, torch.float32), pipe.action_head.config.position_scale)
        err_head = (head_out.float() - target) ** 2
        policy = torch.tensor([m == "policy" for m in all_modes], dtype=torch.float32, device=dev)
        l_act = _masked_mean(err_head.flatten(1).mean(1), policy[rows], policy)
    loss = cfg.loss_rgb_weight * l_rgb + cfg.loss_action_weight * l_act
    l_grip = None
    if readout:
        # Where the action images are generated (what the read-out decodes at inference).
        target = gripper_targets(batch["actions"].to(dev, torch.float32))
        bce = torch.nn.functional.binary_cross_entropy_with_logits(grip_out.float(), target, reduction="none")
        change = target != (state[:, 7:8] > 0.5).float()  # keyframes that open or close the gripper
        bce = bce * (1.0 + (cfg.loss_gripper_change_weight - 1.0) * change.float())
        if first_step:
            l_grip = _masked_mean(bce.mean(1), gen_act * pure_all[rows], all_act * pure_all)
        else:
            l_grip = _masked_mean(bce.mean(1), gen_act, all_act)
        loss = loss + cfg.loss_gripper_weight * l_grip
    return LossParts(loss=loss, rgb=float(l_rgb.detach()), action=float(l_act.detach()),
                     gripper=None if l_grip is None else float(l_grip.detach()))
