"""Few-step distillation: the network's one-step answer learns a teacher's multi-step samples.

One sampling step from pure noise returns the network's clean-sample prediction at sigma = 1. Trained on
data, that prediction is the mean of the futures the scene allows: where the future is uncertain (when the
arm will close, how fast it goes), the blobs blur, and the codec decodes blurred blobs with low confidence,
so the executor holds. Distilled, the rows drawn at pure noise learn instead the sample a frozen teacher
(the same model before the fine-tune) draws from that same noise in ``steps`` Euler steps: one committed
future, as sharp as the teacher's (the mapping of progressive distillation, Salimans & Ho 2022, taken in
one jump). The other rows keep the data's flow-matching loss, so the model still samples with more steps.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch



class Teacher:
    """A frozen pipeline that draws clean samples for given noise, batched, with its own sampler.

    Args:
        pipe: the teacher :class:`ActionImagesPipeline` (not trained; put in eval mode).
        steps: its denoising steps (the sampler's uniform sigmas ``1, ..., 1/steps``, then 0).
    """

    def __init__(self, pipe, steps: int) -> None:
        if not 1 <= int(steps) <= 100:
            raise ValueError(f"distillation teacher steps must be in [1, 100], got {steps}")
        self.pipe = pipe
        self.steps = int(steps)
        for m in (pipe.denoiser, pipe.view_mixer, pipe.gripper_readout, pipe.action_head):
            if m is not None:
                m.requires_grad_(False).eval()

    @torch.no_grad()
    def samples(self, batch: Mapping[str, torch.Tensor], modes: Sequence[str], n_rgb: torch.Tensor,
                n_act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's clean streams (model space) drawn from the noise ``n_rgb``/``n_act`` (B rows).

        ``batch`` and ``modes`` are the rows' training items and modes (the same conditioning the student
        sees: given streams come from the recorded future, as in the loss)."""
        pipe = self.pipe
        dev = pipe.device
        cond = pipe.prepare_conditions(batch["cond_rgb"], batch["cond_action"], batch["K"], batch["T_world_cam"],
                                       list(modes), state=batch.get("state"), instruction=batch.get("instruction"))
        fut_rgb = batch["future_rgb"].to(dev, torch.float32)
        fut_act = batch["future_action"].to(dev, torch.float32)
        cond.given_rgb = pipe.backbone.encode_stream(pipe.normalize(fut_rgb), "rgb", cond)
        cond.given_action = pipe.backbone.encode_stream(pipe.normalize(fut_act), "action", cond)
        x_rgb, x_act = n_rgb.to(dev, torch.float32), n_act.to(dev, torch.float32)
        B = x_rgb.shape[0]
        n_train = float(pipe.scheduler.config.num_train_timesteps)
        numel = x_rgb[0].numel()
        pred_rgb = pred_act = None
        for t in pipe.retrieve_timesteps(self.steps):  # the pipeline's own sampler and spacing
            t_batch = t.reshape(1).to(dev, torch.float32).expand(B)
            out = pipe.denoise(x_rgb, x_act, cond, t_batch, autocast=pipe.model_cfg.inference_bf16)
            pred_rgb, pred_act = out[0].float(), out[1].float()
            sigma = t_batch / n_train
            v = torch.cat([pipe.to_velocity(pred_rgb, x_rgb, sigma).reshape(B, -1),
                           pipe.to_velocity(pred_act, x_act, sigma).reshape(B, -1)], dim=1)
            x = torch.cat([x_rgb.reshape(B, -1), x_act.reshape(B, -1)], dim=1)
            x = pipe.scheduler.step(v, t, x, return_dict=False)[0]
            x_rgb, x_act = x[:, :numel].reshape(x_rgb.shape), x[:, numel:].reshape(x_act.shape)
        return x_rgb, x_act


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
