"""Conditioning inputs shared by every denoiser: mode flags, camera ray maps, scaling.

Modes are expressed by masking which of the two generated streams (future RGB,
future action images) is given clean:

=============  ===========  ==============  ================================
mode           future RGB   future actions  use
=============  ===========  ==============  ================================
``policy``     generated    generated       image -> video + actions
``world_model``generated    given           image + actions -> video
``label``      given        generated       video -> actions (labelling)
``video``      generated    dropped         image -> video (no actions)
=============  ===========  ==============  ================================
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import torch

from .config import MODES

#: (rgb_given, action_given, action_dropped) per mode.
MODE_FLAGS: dict[str, tuple[float, float, float]] = {
    "policy": (0.0, 0.0, 0.0),
    "world_model": (0.0, 1.0, 0.0),
    "label": (1.0, 0.0, 0.0),
    "video": (0.0, 0.0, 1.0),
}
NUM_FLAGS = 3
NUM_RAY_CHANNELS = 6


def check_mode(mode: str) -> str:
    """Return ``mode`` or raise ``ValueError`` listing the valid modes."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    return mode


def mode_flags(modes: Sequence[str], device: torch.device | None = None) -> torch.Tensor:
    """Flags ``(B, 3)`` = (rgb_given, action_given, action_dropped) for ``B`` modes."""
    return torch.tensor([MODE_FLAGS[check_mode(m)] for m in modes], dtype=torch.float32, device=device)


def plucker_rays(K: torch.Tensor, T_world_cam: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-pixel Plücker ray coordinates of pinhole cameras.

    Args:
        K: ``(..., 3, 3)`` intrinsics for an image of ``height`` x ``width`` pixels
            (OpenCV, pixel centres at integers).
        T_world_cam: ``(..., 4, 4)`` camera-to-world transforms (metres).

    Returns:
        ``(..., 6, H, W)`` float32: unit ray direction ``d`` (world frame) and
        moment ``o x d`` with ``o`` the optical centre (metres).
    """
    K = K.to(torch.float32)
    T = T_world_cam.to(torch.float32)
    dev = K.device
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=dev),
                          torch.arange(width, dtype=torch.float32, device=dev), indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1).reshape(-1, 3)  # (HW, 3)
    d_cam = pix @ torch.linalg.inv(K).transpose(-1, -2)  # (..., HW, 3)
    d = d_cam @ T[..., :3, :3].transpose(-1, -2)
    d = d / d.norm(dim=-1, keepdim=True)
    o = T[..., None, :3, 3].expand_as(d)
    m = torch.cross(o, d, dim=-1)
    rays = torch.cat([d, m], dim=-1)  # (..., HW, 6)
    return rays.transpose(-1, -2).reshape(*rays.shape[:-2], NUM_RAY_CHANNELS, height, width)


NUM_STATE_CHANNELS = 10


def rotation_matrices(quat_xyzw: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` quaternions (x y z w) -> ``(..., 3, 3)`` rotation matrices."""
    q = quat_xyzw / quat_xyzw.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    x, y, z, w = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(q.shape[:-1] + (3, 3))


def state_in_cameras(state: torch.Tensor, T_world_cam: torch.Tensor) -> torch.Tensor:
    """The current pose seen from every camera.

    Args:
        state: ``(B, 8)`` = ``[x y z qx qy qz qw gripper]`` in the world frame (metres).
        T_world_cam: ``(B, V, 4, 4)`` camera-to-world transforms.

    Returns:
        ``(B, V, 10)``: gripper position in the camera frame (metres, z = depth), tool x and
        z axes in the camera frame, gripper openness.
    """
    state = state.to(torch.float32)
    T = T_world_cam.to(torch.float32)
    R = rotation_matrices(state[:, 3:7])
    axis_x, axis_z = R[..., :, 0], R[..., :, 2]
    R_cw = T[..., :3, :3].transpose(-1, -2)  # world -> camera rotation, (B, V, 3, 3)
    p_cam = (R_cw @ (state[:, None, :3] - T[..., :3, 3])[..., None])[..., 0]
    x_cam = (R_cw @ axis_x[:, None, :, None])[..., 0]
    z_cam = (R_cw @ axis_z[:, None, :, None])[..., 0]
    grip = state[:, None, 7:8].expand(-1, T.shape[1], 1)
    return torch.cat([p_cam, x_cam, z_cam, grip], dim=-1)


def instruction_words(text: str) -> list[str]:
    """Lower-case words of an instruction (punctuation dropped)."""
    return re.findall(r"[a-z0-9]+", str(text).lower())


def build_vocab(instructions: Sequence[str]) -> tuple[str, ...]:
    """Sorted unique words of ``instructions``."""
    return tuple(sorted({w for text in instructions for w in instruction_words(text)}))


def instruction_vectors(instructions: Sequence[str], vocab: Sequence[str]) -> torch.Tensor:
    """Multi-hot ``(B, len(vocab))`` float32 of ``B`` instructions over ``vocab``.

    Raises:
        ValueError: an instruction shares no word with ``vocab`` (the model would ignore it).
    """
    index = {w: i for i, w in enumerate(vocab)}
    out = torch.zeros(len(instructions), len(vocab), dtype=torch.float32)
    for b, text in enumerate(instructions):
        hits = [index[w] for w in instruction_words(text) if w in index]
        if not hits:
            raise ValueError(f"instruction {text!r} has none of the words this model was trained on: "
                             f"{list(vocab)}")
        out[b, hits] = 1.0
    return out


#: Gaussian width (degrees of hue) of the colour grounding map.
HUE_WIDTH_DEG = 10.0


def _hue_sat_val(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue (degrees), saturation and value of ``(..., 3, H, W)`` RGB in [0, 1] (HSV, channel dim removed)."""
    r, g, b = rgb.unbind(-3)
    mx, mn = rgb.amax(-3), rgb.amin(-3)
    d = (mx - mn).clamp(min=1e-6)
    h = torch.where(mx == r, ((g - b) / d) % 6.0, torch.where(mx == g, (b - r) / d + 2.0, (r - g) / d + 4.0))
    return 60.0 * h, (mx - mn) / mx.clamp(min=1e-6), mx


def colour_grounding(rgb01: torch.Tensor, colours: Sequence[Sequence[Sequence[float]]]) -> torch.Tensor:
    """Where in each view are the colours an instruction names.

    Args:
        rgb01: ``(B, V, 3, H, W)`` frames in [0, 1].
        colours: per scene, the RGB colours named (may be empty: the map is 0).

    Returns:
        ``(B, V, 1, H, W)`` in [0, 1]: hue similarity to the nearest named colour, gated by
        saturation and brightness (grey, white, dark and pale surfaces such as a wooden table score 0).
    """
    hue, sat, val = _hue_sat_val(rgb01.float())
    gate = ((sat - 0.45) / 0.2).clamp(0.0, 1.0) * ((val - 0.15) / 0.15).clamp(0.0, 1.0)
    out = torch.zeros_like(hue)
    for b, named in enumerate(colours):
        if len(named) == 0:
            continue
        ref_h, _, _ = _hue_sat_val(torch.tensor(named, dtype=torch.float32, device=rgb01.device)[..., None, None])
        diff = (hue[b, None] - ref_h.reshape(-1, 1, 1, 1)).abs() % 360.0  # (k, V, H, W)
        diff = torch.minimum(diff, 360.0 - diff)
        out[b] = torch.exp(-((diff / HUE_WIDTH_DEG) ** 2)).amax(0) * gate[b]
    return out[:, :, None]


def named_colours(instruction: str, table: dict) -> list:
    """RGB colours of the colour words of ``instruction`` found in ``table`` (word -> RGB)."""
    return [list(table[w]) for w in instruction_words(instruction) if w in table]


@dataclasses.dataclass
class Conditions:
    """Everything the denoiser sees besides the noisy streams, for a batch of ``B`` scenes with ``V`` views.

    Attributes:
        cond_rgb: ``(B, V, 3, H, W)`` current frames, normalised.
        cond_action: ``(B, V, 3, H, W)`` action image of the current pose, normalised.
        rays: ``(B, V, 6, H, W)`` Plücker ray maps, or None when the model does not use them.
        flags: ``(B, 3)`` mode flags (rgb_given, action_given, action_dropped).
        state: ``(B, V, k)`` constant per-view features: the current pose in each camera
            (:func:`state_in_cameras`, 10) and/or the instruction (multi-hot), or None.
        maps: ``(B, V, k, H, W)`` per-pixel conditioning maps (instruction grounding), or None.
        given_rgb: model-space clean future RGB where given (shape of the RGB stream), else None.
        given_action: model-space clean future action images where given, else None.
        cache: backbone-specific precomputed tensors (e.g. conditioning latents).
    """

    cond_rgb: torch.Tensor
    cond_action: torch.Tensor
    rays: torch.Tensor | None
    flags: torch.Tensor
    state: torch.Tensor | None = None
    maps: torch.Tensor | None = None
    given_rgb: torch.Tensor | None = None
    given_action: torch.Tensor | None = None
    cache: dict = dataclasses.field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.cond_rgb.shape[0])

    @property
    def num_views(self) -> int:
        return int(self.cond_rgb.shape[1])
