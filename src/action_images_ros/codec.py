"""Action images: 7-DoF end-effector trajectories <-> multi-view heatmap images.

The representation (Action Images, arXiv 2604.06168): each action
``[x y z qx qy qz qw g]`` becomes three 3D points,

* R channel: the position ``p``,
* G channel: ``p + L * R @ x_hat`` (tool x axis),
* B channel: ``p - L * R @ z_hat`` (back along the tool z / approach axis),

with ``L = axis_length`` (0.1 m). Every point is projected into every calibrated
view and drawn as an isotropic Gaussian (sigma = ``sigma_frac * min(H, W)``,
peak 1) in its own colour channel. The gripper openness g sets the B-channel
background to ``open_background * g`` (0.25 when open, 0 when closed); the blob
is composited over it (``bg + (1 - bg) * blob``) so its shape survives.

Decoding recovers the full 7-DoF pose (the paper's released decoder keeps only
position + one axis): per view and channel a matched filter (the Gaussian
itself) finds a sub-pixel peak and a visibility confidence; each point is
triangulated over all views that see it (confidence-weighted, with outlier
views dropped by reprojection error); the rotation is rebuilt from both axes
by Gram-Schmidt; g comes from the B background.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

import cv2
import numpy as np

from .geometry import Camera, matrix_to_quat, quat_to_matrix, triangulate, validate_actions

logger = logging.getLogger(__name__)

@dataclasses.dataclass
class DecodeResult:
    """Everything the decoder measured, for diagnostics and visualisation.

    Attributes:
        actions: ``(T, 8)`` decoded poses + gripper (finite everywhere).
        confidence: ``(T,)`` in [0, 1]; 0 where the step could not be recovered.
        points: ``(T, 3, 3)`` triangulated R/G/B points (metres, world).
        peaks_uv: ``(V, T, 3, 2)`` sub-pixel peaks per view and channel.
        view_confidence: ``(V, T, 3)`` per-view visibility weights used.
        reprojection_px: ``(T, 3)`` weighted RMS reprojection error in pixels.
    """

    actions: np.ndarray
    confidence: np.ndarray
    points: np.ndarray
    peaks_uv: np.ndarray
    view_confidence: np.ndarray
    reprojection_px: np.ndarray


class ActionImageCodec:
    """Encode/decode 7-DoF trajectories as multi-view action images.

    Args:
        height, width: image size in pixels (cameras must match it).
        sigma_frac: blob standard deviation as a fraction of ``min(H, W)``.
        axis_length: distance of the G/B points from the position (metres).
        open_background: B-channel background value for a fully open gripper.
        min_visibility: per-view matched-filter peak (relative to a full blob)
            below which a point counts as not visible in that view.
        reprojection_tolerance: RMS reprojection error (in blob sigmas) at which a
            point's confidence drops to 1/e.
        axis_tolerance: relative error of the decoded axis lengths (and cosine of
            the angle between the axes) at which a pose's confidence drops to 1/e.
    """

    def __init__(
        self,
        height: int,
        width: int,
        sigma_frac: float = 0.05,
        axis_length: float = 0.1,
        open_background: float = 0.25,
        min_visibility: float = 0.3,
        reprojection_tolerance: float = 0.5,
        axis_tolerance: float = 0.4,
    ) -> None:
        if int(height) < 8 or int(width) < 8:
            raise ValueError(f"image size must be at least 8x8, got {height}x{width}")
        if not 0.0 < sigma_frac < 0.5:
            raise ValueError(f"sigma_frac must be in (0, 0.5), got {sigma_frac}")
        if axis_length <= 0:
            raise ValueError(f"axis_length must be positive (metres), got {axis_length}")
        if not 0.0 < open_background < 1.0:
            raise ValueError(f"open_background must be in (0, 1), got {open_background}")
        if not 0.0 < min_visibility < 1.0:
            raise ValueError(f"min_visibility must be in (0, 1), got {min_visibility}")
        if reprojection_tolerance <= 0 or axis_tolerance <= 0:
            raise ValueError(f"reprojection_tolerance and axis_tolerance must be positive, got "
                             f"{reprojection_tolerance} and {axis_tolerance}")
        self.reprojection_tolerance = float(reprojection_tolerance)
        self.axis_tolerance = float(axis_tolerance)
        self.height = int(height)
        self.width = int(width)
        self.sigma = float(sigma_frac) * min(self.height, self.width)
        self.sigma_frac = float(sigma_frac)
        self.axis_length = float(axis_length)
        self.open_background = float(open_background)
        self.min_visibility = float(min_visibility)
        self._xs = np.arange(self.width, dtype=np.float32)
        self._ys = np.arange(self.height, dtype=np.float32)
        # The matched filter is a narrower Gaussian: half the blob sigma keeps the
        # smoothed peak exactly Gaussian (so the log-parabola stays exact), cuts
        # noise ~10x at sigma 0.05, and costs a quarter of a full-width kernel.
        self._filter_sigma = 0.5 * self.sigma
        k = int(2 * np.ceil(2.5 * self._filter_sigma) + 1)
        self._ksize = (k, k)
        # Peak of a full unit blob after filtering, and the filter's response to a
        # constant 1 (less than 1 near the zero-padded border) for background removal.
        self._matched_peak = self.sigma**2 / (self.sigma**2 + self._filter_sigma**2)
        ones = np.ones((self.height, self.width), dtype=np.float32)
        self._ones_response = cv2.GaussianBlur(ones, self._ksize, self._filter_sigma, borderType=cv2.BORDER_CONSTANT)

    # ------------------------------------------------------------------ helpers
    def action_points(self, actions: np.ndarray) -> np.ndarray:
        """The R/G/B 3D points ``(T, 3, 3)`` (point index = colour channel) of actions ``(T, 8)``."""
        a = validate_actions(actions)
        R = quat_to_matrix(a[:, 3:7] / np.linalg.norm(a[:, 3:7], axis=1, keepdims=True))
        p = a[:, :3]
        g_pt = p + self.axis_length * R[:, :, 0]
        b_pt = p - self.axis_length * R[:, :, 2]
        return np.stack([p, g_pt, b_pt], axis=1)

    def _check_cameras(self, cameras: Sequence[Camera]) -> None:
        if len(cameras) == 0:
            raise ValueError("at least one camera is required")
        for cam in cameras:
            if not isinstance(cam, Camera):
                raise ValueError(f"cameras must be geometry.Camera objects, got {type(cam).__name__}")
            if (cam.width, cam.height) != (self.width, self.height):
                raise ValueError(
                    f"camera {cam.name!r} is {cam.width}x{cam.height} but the codec works at "
                    f"{self.width}x{self.height}; pass cam.scaled({self.width}, {self.height})"
                )

    # ------------------------------------------------------------------ encode
    def encode(self, actions: np.ndarray, cameras: Sequence[Camera]) -> np.ndarray:
        """Draw action images.

        Args:
            actions: ``(T, 8)`` poses ``[x y z qx qy qz qw g]`` in the cameras' world frame.
            cameras: ``V`` cameras of size ``(width, height)``.

        Returns:
            float32 ``(V, T, H, W, 3)`` in [0, 1].
        """
        self._check_cameras(cameras)
        a = validate_actions(actions)
        pts = self.action_points(a)  # (T, 3, 3)
        T = a.shape[0]
        uv = np.empty((len(cameras), T, 3, 2), dtype=np.float32)
        amp = np.empty((len(cameras), T, 3), dtype=np.float32)
        for v, cam in enumerate(cameras):
            uv_v, _, in_front = cam.project(pts)
            uv[v] = uv_v
            amp[v] = in_front  # a point behind the camera draws nothing
        inv = -0.5 / self.sigma**2
        gx = np.exp(inv * (self._xs - uv[..., 0:1]) ** 2)  # (V, T, 3, W)
        gy = np.exp(inv * (self._ys - uv[..., 1:2]) ** 2) * amp[..., None]  # (V, T, 3, H)
        img = np.einsum("vtch,vtcw->vthwc", gy, gx, optimize=True)
        bg = (self.open_background * np.clip(a[:, 7], 0.0, 1.0)).astype(np.float32)  # (T,)
        img[..., 2] = bg[None, :, None, None] + (1.0 - bg[None, :, None, None]) * img[..., 2]
        return img

    # ------------------------------------------------------------------ decode
    def decode(self, images: np.ndarray, cameras: Sequence[Camera]) -> tuple[np.ndarray, np.ndarray]:
        """Recover 7-DoF actions from action images.

        Args:
            images: ``(V, T, H, W, 3)`` action images (float, roughly [0, 1]).
            cameras: the ``V`` cameras the images were drawn for (V >= 2).

        Returns:
            actions ``(T, 8)`` (finite; unrecoverable steps copy the nearest
            recovered one) and confidence ``(T,)`` in [0, 1] (0 = not recovered).
        """
        res = self.decode_detailed(images, cameras)
        return res.actions, res.confidence

    def decode_detailed(self, images: np.ndarray, cameras: Sequence[Camera]) -> DecodeResult:
        """Like :meth:`decode`, returning a :class:`DecodeResult` with intermediate measurements."""
        imgs = np.asarray(images)
        if imgs.ndim != 5 or imgs.shape[-1] != 3:
            raise ValueError(f"images must have shape (V, T, H, W, 3), got {imgs.shape}")
        V, T, H, W, _ = imgs.shape
        if (H, W) != (self.height, self.width):
            raise ValueError(f"images are {H}x{W} (HxW) but the codec works at {self.height}x{self.width}")
        if len(cameras) != V:
            raise ValueError(f"got {V} views of images but {len(cameras)} cameras; pass one camera per view")
        if V < 2:
            raise ValueError("decoding needs at least 2 views to triangulate")
        self._check_cameras(cameras)
        imgs = imgs.astype(np.float32, copy=False)
        if not np.isfinite(imgs).all():
            imgs = np.nan_to_num(imgs, nan=0.0, posinf=1.0, neginf=0.0)

        # 1. Gripper from the B background (a robust median over a sparse grid).
        bg = np.median(imgs[:, :, ::4, ::4, 2].reshape(V, T, -1), axis=-1)  # (V, T)
        bg = np.clip(bg, 0.0, self.open_background)
        gripper = np.clip(np.median(bg, axis=0) / self.open_background, 0.0, 1.0)  # (T,)

        # 2.-3. Matched filter with the B background removed, then sub-pixel peaks,
        # all views/steps/channels at once.
        peaks_uv, peak_val = self._find_peaks(imgs.reshape(V * T, H, W, 3), bg.reshape(V * T))
        peaks_uv = peaks_uv.reshape(V, T, 3, 2)
        vis = np.clip(peak_val.reshape(V, T, 3) / self._matched_peak, 0.0, 1.0)
        # A blob cut by the image border biases its peak inwards: trust it less.
        margin = np.minimum.reduce(
            [peaks_uv[..., 0], W - 1 - peaks_uv[..., 0], peaks_uv[..., 1], H - 1 - peaks_uv[..., 1]]
        )
        border = np.clip(margin / (1.5 * self.sigma), 0.05, 1.0)
        weights = np.where(vis >= self.min_visibility, vis * border, 0.0)

        # 4. Triangulate each point over the views that see it; drop outlier views.
        uv_flat = peaks_uv.reshape(V, T * 3, 2)
        w_flat = weights.reshape(V, T * 3)
        X, ok = triangulate(cameras, uv_flat, w_flat)
        resid = self._reprojection(cameras, X, uv_flat)  # (V, T*3)
        thresh = np.maximum(0.25 * self.sigma, 3.0 * np.median(np.where(w_flat > 0, resid, np.nan), axis=0)[None])
        thresh = np.where(np.isfinite(thresh), thresh, 0.25 * self.sigma)
        keep = (w_flat > 0) & (resid <= thresh)
        if np.any(keep != (w_flat > 0)):
            w_flat = np.where(keep, w_flat, 0.0)
            X, ok = triangulate(cameras, uv_flat, w_flat)
            resid = self._reprojection(cameras, X, uv_flat)
        X, ok, w_flat, resid = self._drop_disagreeing_view(cameras, uv_flat, w_flat, X, ok, resid)
        rms = _weighted_rms(w_flat, resid)
        second_best = np.sort(w_flat, axis=0)[-2] if V >= 2 else np.zeros(T * 3)
        point_conf = np.where(ok, second_best * np.exp(-((rms / (self.reprojection_tolerance * self.sigma)) ** 2)), 0.0)

        # 5. Poses: position from R, rotation from the G (x) and B (-z) axes.
        pts = X.reshape(T, 3, 3)
        point_conf = point_conf.reshape(T, 3)
        p = pts[:, 0]
        x_axis = pts[:, 1] - p
        z_axis = p - pts[:, 2]
        lx = np.linalg.norm(x_axis, axis=1)
        lz = np.linalg.norm(z_axis, axis=1)
        xh = x_axis / np.maximum(lx, 1e-9)[:, None]
        zh = z_axis - (np.sum(z_axis * xh, axis=1))[:, None] * xh
        lzo = np.linalg.norm(zh, axis=1)
        zh = zh / np.maximum(lzo, 1e-9)[:, None]
        yh = np.cross(zh, xh)
        Rm = np.stack([xh, yh, zh], axis=2)
        cos_xz = np.sum(x_axis * z_axis, axis=1) / np.maximum(lx * lz, 1e-9)
        L = self.axis_length
        tol = self.axis_tolerance
        consistency = np.exp(-(((lx - L) / (tol * L)) ** 2) - (((lz - L) / (tol * L)) ** 2) - (cos_xz / tol) ** 2)
        conf = point_conf.min(axis=1) * consistency
        valid = ok.reshape(T, 3).all(axis=1) & (lx > 1e-6) & (lzo > 1e-6) & np.isfinite(conf)
        conf = np.where(valid, np.clip(conf, 0.0, 1.0), 0.0)

        quat = np.tile(np.array([0.0, 0.0, 0.0, 1.0]), (T, 1))
        if np.any(valid):
            quat[valid] = matrix_to_quat(Rm[valid])
        actions = np.concatenate([np.where(valid[:, None], p, 0.0), quat, gripper[:, None]], axis=1)
        actions = self._fill_invalid(actions, valid)
        return DecodeResult(
            actions=actions,
            confidence=conf,
            points=pts,
            peaks_uv=peaks_uv,
            view_confidence=w_flat.reshape(V, T, 3),
            reprojection_px=rms.reshape(T, 3),
        )

    def _find_peaks(self, frames: np.ndarray, b_background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Matched-filter sub-pixel peaks.

        Args:
            frames: ``(N, H, W, 3)`` action images.
            b_background: ``(N,)`` B-channel background level to remove.

        Returns:
            uv ``(N, 3, 2)`` peak pixel per channel and the filtered peak value ``(N, 3)``.
        """
        N, H, W, _ = frames.shape
        frames = np.ascontiguousarray(frames)
        smooth = np.empty(frames.shape, dtype=np.float32)
        for i in range(N):
            cv2.GaussianBlur(frames[i], self._ksize, self._filter_sigma, dst=smooth[i],
                             borderType=cv2.BORDER_CONSTANT)
        bgn = b_background[:, None, None].astype(np.float32)
        smooth[..., 2] = (smooth[..., 2] - bgn * self._ones_response) / (1.0 - bgn)
        flat = smooth.reshape(N, H * W, 3)
        idx = flat.argmax(axis=1)  # (N, 3)
        n_idx = np.arange(N)[:, None]
        c_idx = np.arange(3)[None, :]
        iy, ix = np.divmod(idx, W)
        val = flat[n_idx, idx, c_idx]

        def at(y, x):
            return smooth[n_idx, y, x, c_idx]

        # Log-parabola through the peak and its neighbours is exact for a Gaussian.
        eps = 1e-6
        c = np.log(np.maximum(val, eps))

        def offset(lo, hi):
            lo, hi = np.log(np.maximum(lo, eps)), np.log(np.maximum(hi, eps))
            den = lo - 2.0 * c + hi
            off = np.where(den < -1e-9, 0.5 * (lo - hi) / np.where(den < -1e-9, den, -1.0), 0.0)
            return np.clip(off, -0.5, 0.5)

        xl, xr = np.clip(ix - 1, 0, W - 1), np.clip(ix + 1, 0, W - 1)
        yu, yd = np.clip(iy - 1, 0, H - 1), np.clip(iy + 1, 0, H - 1)
        dx = np.where((ix > 0) & (ix < W - 1), offset(at(iy, xl), at(iy, xr)), 0.0)
        dy = np.where((iy > 0) & (iy < H - 1), offset(at(yu, ix), at(yd, ix)), 0.0)
        return np.stack([ix + dx, iy + dy], axis=-1), val

    def _drop_disagreeing_view(self, cameras, uv, w, X, ok, resid):
        """Leave-one-view-out for points seen by 3+ views that the views disagree on.

        A generated action image can misplace one view's blob by several pixels; the
        least-squares point is then pulled off and every view's residual grows, so a
        residual threshold cannot tell which view is wrong. Re-triangulating without
        each view in turn finds it: the subset whose RMS drops below the tolerance
        (and to under a third of the full RMS) replaces the full set.
        """
        V = w.shape[0]
        if V < 3:
            return X, ok, w, resid
        tol = self.reprojection_tolerance * self.sigma

        best_rms = _weighted_rms(w, resid)
        todo = ((w > 0).sum(axis=0) >= 3) & (best_rms > 0.1 * self.sigma)
        if not np.any(todo):
            return X, ok, w, resid
        X, ok, w, resid = X.copy(), ok.copy(), w.copy(), resid.copy()
        full_rms = best_rms.copy()
        for v in range(V):
            w_v = w.copy()
            w_v[v] = 0.0
            w_v[:, ~todo] = 0.0
            X_v, ok_v = triangulate(cameras, uv, w_v)
            r_v = self._reprojection(cameras, X_v, uv)
            rms_v = _weighted_rms(w_v, r_v)
            # Generic noise shrinks by dropping a view too, but not to a third: only a lone outlier does.
            better = todo & ok_v & (rms_v < best_rms) & (rms_v < 0.35 * full_rms) & (rms_v <= tol)
            if np.any(better):
                X[better], ok[better] = X_v[better], True
                w[:, better] = w_v[:, better]
                resid[:, better] = r_v[:, better]
                best_rms = np.where(better, rms_v, best_rms)
        return X, ok, w, resid

    @staticmethod
    def _reprojection(cameras: Sequence[Camera], X: np.ndarray, uv: np.ndarray) -> np.ndarray:
        """Pixel distance ``(V, N)`` between projections of ``X (N, 3)`` and peaks ``uv (V, N, 2)``."""
        out = np.empty(uv.shape[:2])
        for v, cam in enumerate(cameras):
            proj, _, in_front = cam.project(X)
            out[v] = np.where(in_front, np.linalg.norm(proj - uv[v], axis=-1), 1e6)
        return out

    @staticmethod
    def _fill_invalid(actions: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Replace poses of unrecovered steps by the nearest recovered step (gripper kept)."""
        if np.all(valid) or not np.any(valid):
            return actions
        good = np.flatnonzero(valid)
        for t in np.flatnonzero(~valid):
            src = good[np.argmin(np.abs(good - t))]
            actions[t, :7] = actions[src, :7]
        return actions


def _weighted_rms(weights: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """Per point ``(N,)`` RMS of the residuals ``(V, N)`` over the views, weighted by ``weights (V, N)``."""
    return np.sqrt((weights * resid**2).sum(axis=0) / np.maximum(weights.sum(axis=0), 1e-9))


def overlay_action_images(rgb: np.ndarray, action_images: np.ndarray, alpha: float = 0.85,
                          open_background: float = 0.25) -> np.ndarray:
    """Draw action images over RGB frames (for RViz and videos).

    Args:
        rgb: uint8 ``(..., H, W, 3)`` frames.
        action_images: float ``(..., H, W, 3)`` action images of the same shape.
        alpha: opacity of a full-strength blob.
        open_background: the codec's gripper background level (removed before drawing).

    Returns:
        uint8 ``(..., H, W, 3)``: red = position, green = tool x axis point,
        blue = approach axis point; a thin border is blue when the gripper is open.
    """
    rgb = np.asarray(rgb)
    act = np.asarray(action_images, dtype=np.float32)
    if rgb.shape != act.shape or rgb.shape[-1] != 3:
        raise ValueError(f"rgb {rgb.shape} and action_images {act.shape} must both be (..., H, W, 3)")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
    act = np.clip(np.nan_to_num(act), 0.0, 1.0).copy()
    bg = np.median(act[..., ::4, ::4, 2].reshape(act.shape[:-3] + (-1,)), axis=-1)
    bg = np.clip(bg, 0.0, open_background)[..., None, None]
    act[..., 2] = np.clip((act[..., 2] - bg) / (1.0 - bg), 0.0, 1.0)
    strength = act.max(axis=-1, keepdims=True)
    colour = act / np.maximum(strength, 1e-6)
    a = alpha * strength
    out = rgb.astype(np.float32) * (1.0 - a) + 255.0 * colour * a
    # Gripper state as a frame border: blue = open, none = closed.
    is_open = (bg[..., 0, 0] > 0.5 * open_background)
    b = max(1, rgb.shape[-2] // 64)
    border = np.zeros(rgb.shape[-3:-1], dtype=bool)
    border[:b, :] = border[-b:, :] = border[:, :b] = border[:, -b:] = True
    sel = border & is_open[..., None, None]
    out[sel] = np.array([40.0, 120.0, 255.0])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
