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

from .objective import training_conditions


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
        cond = training_conditions(pipe, batch, modes)[0]
        x_rgb, x_act = n_rgb.to(pipe.device, torch.float32), n_act.to(pipe.device, torch.float32)
        for t in pipe.retrieve_timesteps(self.steps):  # the pipeline's own sampler and spacing
            t_batch = t.reshape(1).to(pipe.device, torch.float32).expand(x_rgb.shape[0])
            out = pipe.denoise(x_rgb, x_act, cond, t_batch, autocast=pipe.model_cfg.inference_bf16)
            x_rgb, x_act = pipe.sampler_step(out[0], out[1], x_rgb, x_act, t)
        return x_rgb, x_act
