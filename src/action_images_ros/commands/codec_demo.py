"""`action-images codec-demo`: encode a sample trajectory for a 3-camera rig, decode it, report errors."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

HELP = "encode/decode a sample trajectory on a 3-camera rig; print errors, write a PNG contact sheet"
logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rig", type=Path, default=None, help="camera rig YAML (default: the reference 3-view rig)")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=8, help="trajectory length")
    p.add_argument("--out", type=Path, default=Path("outputs/codec_demo"))


def sample_trajectory(steps: int) -> np.ndarray:
    """A reach-grasp-lift style path: descend while turning 90 deg about z, close, lift."""
    from scipy.spatial.transform import Rotation, Slerp

    t = np.linspace(0.0, 1.0, steps)
    start, grasp = np.array([0.45, -0.15, 0.40]), np.array([0.60, 0.10, 0.12])
    pos = start + np.minimum(t / 0.7, 1.0)[:, None] * (grasp - start)
    pos[:, 2] += np.clip((t - 0.8) / 0.2, 0, 1) * 0.2
    down = Rotation.from_matrix(np.diag([1.0, -1.0, -1.0]))
    slerp = Slerp([0, 1], Rotation.concatenate([down, Rotation.from_euler("z", 90, degrees=True) * down]))
    quat = slerp(np.minimum(t / 0.7, 1.0)).as_quat()
    grip = (t < 0.75).astype(np.float64)
    return np.concatenate([pos, quat, grip[:, None]], axis=1)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..codec import ActionImageCodec, overlay_action_images
    from ..eval.codec_round_trip import reference_rig
    from ..geometry import load_rig, rotation_angle_deg

    size = args.image_size
    cams = [c.scaled(size, size) for c in load_rig(args.rig)] if args.rig else reference_rig(size, size)
    codec = ActionImageCodec(size, size)
    actions = sample_trajectory(args.steps)
    images = codec.encode(actions, cams)
    decoded, conf = codec.decode(images, cams)
    pos_mm = 1000 * np.linalg.norm(decoded[:, :3] - actions[:, :3], axis=1)
    rot_deg = rotation_angle_deg(decoded[:, 3:7], actions[:, 3:7])
    grip_ok = (decoded[:, 7] > 0.5) == (actions[:, 7] > 0.5)
    print(f"{len(cams)} views at {size}x{size}, {args.steps} steps")
    print(" step  pos err [mm]  rot err [deg]  gripper (true/decoded)  confidence")
    for t in range(args.steps):
        print(f" {t:4d}  {pos_mm[t]:12.3f}  {rot_deg[t]:13.3f}  {actions[t, 7]:.0f} / {decoded[t, 7]:.2f}"
              f"{'':14s}{conf[t]:.3f}")
    print(f"median position error {np.median(pos_mm):.3f} mm, rotation {np.median(rot_deg):.3f} deg, "
          f"gripper {100 * grip_ok.mean():.0f} % correct")

    args.out.mkdir(parents=True, exist_ok=True)
    grey = np.full(images.shape, 235, np.uint8)
    overlay = overlay_action_images(grey, images)
    fig, axes = plt.subplots(len(cams), args.steps, figsize=(1.6 * args.steps, 1.7 * len(cams)), squeeze=False)
    for v, cam in enumerate(cams):
        for t in range(args.steps):
            ax = axes[v, t]
            ax.imshow(overlay[v, t])
            ax.set_xticks([])
            ax.set_yticks([])
            if v == 0:
                ax.set_title(f"t={t} g={actions[t, 7]:.0f}", fontsize=8)
            if t == 0:
                ax.set_ylabel(cam.name, fontsize=8)
    fig.suptitle("action images (R = position, G = tool x, B = approach axis; blue border = open)", fontsize=9)
    fig.tight_layout()
    path = args.out / "action_images.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")
    return 0
