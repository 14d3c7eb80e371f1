"""Per-image quality measures of generated video frames (numpy/scipy, no learned networks),
plus the availability check of the learned ones (LPIPS, FVD), which need network weights.

* :func:`ssim` -- structural similarity (Wang et al. 2004, "Image quality assessment:
  from error visibility to structural similarity"), Gaussian window ``sigma = 1.5``
  truncated at 3.5 sigma (11 x 11), ``K1 = 0.01``, ``K2 = 0.03``, population
  (co)variances, computed per colour channel and averaged over the valid interior
  (the window's half width is cropped at the borders). These are the settings of
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)``, the usual "SSIM" of video papers
  (checked against scikit-image 0.26: equal to 1e-15).
* :func:`psnr_per_image` -- PSNR of each image, capped so identical frames stay finite.
* :func:`motion_mask` -- the moving region of a recorded clip (where the arm and the objects it moves are
  at any of its frames), and the ``mask`` argument of :func:`ssim` and :func:`psnr_per_image` that scores
  only there: most of a frame is a static table that a no-motion guess gets right.
* :func:`lpips_status` / :func:`fvd_status` -- whether the learned metrics can run here
  (never downloads anything), with the reason when they cannot.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  #: window radius = int(3.5 * 1.5 + 0.5) = 5 -> 11 x 11, as in skimage
SSIM_K1 = 0.01
SSIM_K2 = 0.03
PSNR_MAX_DB = 60.0  #: cap of :func:`psnr_per_image` (MSE 1e-6 at data_range 1)

#: torchvision's ImageNet AlexNet checkpoint, the backbone LPIPS("alex") loads from the torch hub cache.
LPIPS_BACKBONE_FILE = "alexnet-owt-7be5be79.pth"


def _pair(pred: np.ndarray, true: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"{name}: pred {pred.shape} and true {true.shape} differ in shape")
    if pred.ndim < 3:
        raise ValueError(f"{name}: images must be (..., H, W, C) channels last, got shape {pred.shape}")
    if not (np.isfinite(pred).all() and np.isfinite(true).all()):
        raise ValueError(f"{name}: images contain NaN or infinite values")
    return pred, true


def ssim(pred: np.ndarray, true: np.ndarray, data_range: float = 1.0, sigma: float = SSIM_SIGMA,
         mask: np.ndarray | None = None) -> np.ndarray:
    """Mean structural similarity of each image pair.

    Args:
        pred, true: images ``(..., H, W, C)`` (channels last) with values in ``[0, data_range]``;
            ``H`` and ``W`` must exceed the window (``2 * int(3.5 sigma + 0.5) + 1``, 11 px).
        data_range: the value span of the images (1 for [0, 1] floats, 255 for uint8 values).
        sigma: standard deviation of the Gaussian window in pixels.

        mask: optional boolean ``(..., H, W)`` broadcastable to the images' leading shape: average the SSIM
            map only over these pixels of the valid interior (NaN for an image whose mask is empty there).

    Returns:
        float64 array of shape ``(...)``: SSIM per image in ``[-1, 1]`` (1 = identical).
    """
    pred, true = _pair(pred, true, "ssim")
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    radius = int(SSIM_TRUNCATE * sigma + 0.5)
    H, W = pred.shape[-3:-1]
    if H <= 2 * radius or W <= 2 * radius:
        raise ValueError(f"ssim: images of {W}x{H} px are smaller than the {2 * radius + 1}-px window")
    # Filter over H and W only (leading axes and channels are independent images).
    sig = (0.0,) * (pred.ndim - 3) + (sigma, sigma, 0.0)

    def blur(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, sigma=sig, truncate=SSIM_TRUNCATE, mode="reflect")

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = blur(pred), blur(true)
    var_x = blur(pred * pred) - mu_x * mu_x
    var_y = blur(true * true) - mu_y * mu_y
    cov = blur(pred * true) - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    smap = num / den
    inner = smap[..., radius:H - radius, radius:W - radius, :]
    if mask is None:
        return inner.mean(axis=(-3, -2, -1))
    m = _mask_for(mask, pred.shape)[..., radius:H - radius, radius:W - radius, :]
    return _masked_mean(inner, m)


def _mask_for(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``mask (..., H, W)`` as a float weight broadcast to images of ``shape (..., H, W, C)``."""
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise ValueError(f"mask must be boolean, got {mask.dtype}")
    if mask.shape[-2:] != tuple(shape[-3:-1]):
        raise ValueError(f"mask of shape {mask.shape} does not match images of {shape[-3]}x{shape[-2]} px")
    return np.broadcast_to(mask[..., None], shape[:-1] + (1,)).astype(np.float64)


def _masked_mean(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Mean of ``values (..., H, W, C)`` over the pixels where ``weight (..., H, W, 1)`` is 1; NaN where none is."""
    total = (values * weight).sum(axis=(-3, -2, -1))
    count = np.broadcast_to(weight, values.shape).sum(axis=(-3, -2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1.0), np.nan)


def motion_mask(current: np.ndarray, future: np.ndarray, threshold: float = 0.1, dilate_px: int = 2) -> np.ndarray:
    """Where a recorded clip moves: the pixels of each view whose colour changes by more than ``threshold``
    (max over channels, images in [0, 1]) between the current frame and any future frame, grown by
    ``dilate_px``. This covers the arm and any object it moves at every frame of the clip. It is where a
    no-motion guess is wrong by construction, and motion a model invents elsewhere is not scored in it:
    report it beside the whole-frame figures, not instead of them.

    Args:
        current: ``(V, H, W, C)`` the current frames.
        future: ``(V, F, H, W, C)`` the recorded future frames.

    Returns:
        boolean ``(V, H, W)``.
    """
    from scipy.ndimage import binary_dilation

    current = np.asarray(current, dtype=np.float64)
    future = np.asarray(future, dtype=np.float64)
    if current.ndim != 4 or future.ndim != 5 or future.shape[:1] + future.shape[2:] != current.shape:
        raise ValueError(f"motion_mask needs current (V, H, W, C) and future (V, F, H, W, C) of the same views "
                         f"and size, got {current.shape} and {future.shape}")
    if threshold <= 0 or dilate_px < 0:
        raise ValueError(f"threshold must be > 0 and dilate_px >= 0, got {threshold} and {dilate_px}")
    moved = (np.abs(future - current[:, None]).max(axis=-1) > threshold).any(axis=1)
    if dilate_px:
        k = np.ones((1, 2 * dilate_px + 1, 2 * dilate_px + 1), dtype=bool)
        moved = binary_dilation(moved, structure=k)
    return moved


def psnr_per_image(pred: np.ndarray, true: np.ndarray, data_range: float = 1.0,
                   max_db: float = PSNR_MAX_DB, mask: np.ndarray | None = None) -> np.ndarray:
    """Peak signal-to-noise ratio (dB) of each image pair ``(..., H, W, C)`` -> ``(...)``.

    Identical images would give infinity; the value is capped at ``max_db`` instead
    (60 dB by default, i.e. MSE 1e-6 of the squared data range) so means stay finite.
    With a boolean ``mask (..., H, W)`` the mean squared error is taken over those pixels only
    (NaN for an image whose mask is empty).
    """
    pred, true = _pair(pred, true, "psnr_per_image")
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    sq = (pred - true) ** 2
    mse = sq.mean(axis=(-3, -2, -1)) if mask is None else _masked_mean(sq, _mask_for(mask, pred.shape))
    floor = data_range**2 * 10.0 ** (-max_db / 10.0)
    return 10.0 * np.log10(data_range**2 / np.maximum(mse, floor))


def _torch_hub_checkpoints() -> Path | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def lpips_status() -> str | None:
    """``None`` when LPIPS (AlexNet variant) can run offline here, else the reason it cannot.

    LPIPS needs the ``lpips`` package (it ships its small linear heads) plus
    ``torchvision`` and the ImageNet AlexNet weights in the torch hub cache;
    nothing is ever downloaded.
    """
    missing = [m for m in ("lpips", "torchvision") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"LPIPS skipped: the {' and '.join(missing)} package{'s are' if len(missing) > 1 else ' is'} not "
                "installed, and its AlexNet network weights are not available locally (no downloads)")
    ckpt = _torch_hub_checkpoints()
    if ckpt is None or not (ckpt / LPIPS_BACKBONE_FILE).is_file():
        return f"LPIPS skipped: the AlexNet weights {LPIPS_BACKBONE_FILE} are not in {ckpt} (no downloads)"
    return None


def lpips_distance(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """LPIPS (AlexNet) distance per image pair ``(..., H, W, 3)`` in [0, 1] -> ``(...)``.

    Only call when :func:`lpips_status` returns ``None``; raises ``RuntimeError`` otherwise.
    """
    reason = lpips_status()
    if reason is not None:
        raise RuntimeError(reason)
    import lpips
    import torch

    pred, true = _pair(pred, true, "lpips_distance")
    lead = pred.shape[:-3]

    def to_t(x: np.ndarray) -> torch.Tensor:  # (..., H, W, 3) in [0, 1] -> (N, 3, H, W) in [-1, 1]
        return torch.from_numpy(x.reshape((-1,) + x.shape[-3:]).transpose(0, 3, 1, 2).copy()).float() * 2 - 1

    net = lpips.LPIPS(net="alex", verbose=False).eval()
    with torch.no_grad():
        d = net(to_t(pred), to_t(true)).reshape(-1).numpy()
    return d.reshape(lead).astype(np.float64)


def fvd_status(num_frames: int) -> str:
    """Why FVD is not computed: it needs the Kinetics-400 I3D network (weights not shipped, no
    downloads) and clips of at least 16 frames for its standard form; ours have ``num_frames``."""
    short = f"; and our clips have {num_frames} frames, the standard FVD uses 16" if num_frames < 16 else ""
    return f"FVD skipped: the I3D (Kinetics-400) network weights it needs are not available locally{short}"
