"""Headless multi-view renderer: RGB, metric depth and segmentation from one render pass per view.

Uses MuJoCo's low-level renderer directly (``mujoco.Renderer`` would render twice
for RGB + depth). Shadows, reflections, skybox and multisampling are off.
The OpenGL backend follows ``MUJOCO_GL`` (``egl`` or ``osmesa`` for headless
machines; it must be set before ``mujoco`` is first imported).
"""

from __future__ import annotations

import logging
import weakref
from typing import Sequence

import mujoco
import numpy as np

from .scene import VISIBLE_GROUPS

logger = logging.getLogger(__name__)


class MultiViewRenderer:
    """Renders the model's named cameras at one image size.

    Args:
        model: compiled model; its offscreen buffer must be at least ``width`` x ``height``.
        camera_names: MuJoCo camera names, in output view order.
        width, height: image size in pixels.
        visible_groups: geom groups drawn (collision-only geoms are not).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        camera_names: Sequence[str],
        width: int,
        height: int,
        visible_groups: Sequence[int] = VISIBLE_GROUPS,
    ) -> None:
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ValueError(
                f"image {width}x{height} exceeds the model's offscreen buffer "
                f"{model.vis.global_.offwidth}x{model.vis.global_.offheight}"
            )
        self._model = model
        self.width, self.height = int(width), int(height)
        self.camera_ids = []
        for name in camera_names:
            cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
            if cid < 0:
                raise ValueError(f"camera {name!r} is not in the model")
            self.camera_ids.append(cid)
        try:
            from mujoco.gl_context import GLContext
        except (ImportError, AttributeError) as exc:  # MUJOCO_GL=disable
            raise RuntimeError(f"MuJoCo rendering is unavailable ({exc}); set MUJOCO_GL=egl or osmesa") from exc
        try:
            self._gl = GLContext(self.width, self.height)
            self._gl.make_current()
            self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        except Exception as exc:  # the backends raise assorted error types (mujoco.FatalError, EGLError, ...)
            raise RuntimeError(
                f"could not create an OpenGL context ({type(exc).__name__}: {exc}); on a headless machine set "
                "MUJOCO_GL=egl (or osmesa) and PYOPENGL_PLATFORM to the same before importing mujoco"
            ) from exc
        # Free GL resources on close() or garbage collection, and before interpreter teardown
        # (EGL's own destructor fails once its library is unloaded).
        self._finalizer = weakref.finalize(self, _free_gl, self._ctx, self._gl)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        # Read the depth buffer as rendered (reverse Z: 1 at znear, 0 at zfar): best float precision.
        self._ctx.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=1000)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX, mujoco.mjtRndFlag.mjRND_FOG, mujoco.mjtRndFlag.mjRND_HAZE):
            self._scene.flags[flag] = 0
        self._opt = mujoco.MjvOption()
        self._opt.geomgroup[:] = 0
        for g in visible_groups:
            self._opt.geomgroup[g] = 1
        self._opt.sitegroup[:] = 0
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        extent = model.stat.extent
        self._near = float(model.vis.map.znear * extent)
        self._far = float(model.vis.map.zfar * extent)
        self._rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)
        self._depth = np.empty((self.height, self.width), dtype=np.float32)

    @property
    def num_views(self) -> int:
        return len(self.camera_ids)

    def _draw(self, data: mujoco.MjData, view: int) -> None:
        self._cam.fixedcamid = self.camera_ids[view]
        mujoco.mjv_updateScene(self._model, data, self._opt, None, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._ctx)

    def _depth_to_metres(self, buf: np.ndarray) -> np.ndarray:
        """Reverse-Z depth buffer in [0, 1] -> camera-frame z (metres), as in ``mujoco.Renderer``."""
        near, far = np.float32(self._near), np.float32(self._far)
        c = np.float32(-0.5) * (-(far + near) / (far - near)) - np.float32(0.5)
        d = np.float32(-0.5) * (-(np.float32(2) * far * near) / (far - near))
        return (float(d) / (buf.astype(np.float64) + float(c))).astype(np.float32)

    def _check_open(self) -> None:
        if not self._finalizer.alive:
            raise RuntimeError("the renderer was closed")

    def render(self, data: mujoco.MjData, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Render every view.

        Returns:
            rgb: ``(V, H, W, 3)`` uint8.
            depth: ``(V, H, W)`` float32 camera-frame z in metres (``far`` where nothing was hit),
            or None when ``depth`` is False.
        """
        self._check_open()
        self._gl.make_current()
        V = self.num_views
        rgb = np.empty((V, self.height, self.width, 3), dtype=np.uint8)
        dep = np.empty((V, self.height, self.width), dtype=np.float32) if depth else None
        for v in range(V):
            self._draw(data, v)
            mujoco.mjr_readPixels(self._rgb, self._depth if depth else None, self._rect, self._ctx)
            rgb[v] = self._rgb[::-1]
            if depth:
                dep[v] = self._depth_to_metres(self._depth[::-1])
        return rgb, dep

    def segmentation(self, data: mujoco.MjData) -> np.ndarray:
        """Per-pixel geom ids ``(V, H, W)`` int32, -1 for background / non-geom pixels."""
        self._check_open()
        self._gl.make_current()
        flags = self._scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = 1
        flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = 1
        out = np.empty((self.num_views, self.height, self.width), dtype=np.int32)
        try:
            for v in range(self.num_views):
                self._draw(data, v)
                mujoco.mjr_readPixels(self._rgb, None, self._rect, self._ctx)
                img = self._rgb[::-1].astype(np.int64)
                segid = img[..., 0] + img[..., 1] * 256 + img[..., 2] * 65536  # 0 = background
                lut = np.full(self._scene.ngeom + 1, -1, dtype=np.int32)
                for i in range(self._scene.ngeom):
                    g = self._scene.geoms[i]
                    if g.segid >= 0 and g.objtype == mujoco.mjtObj.mjOBJ_GEOM:
                        lut[g.segid + 1] = g.objid
                n = self._scene.ngeom
                out[v] = np.where(segid <= n, lut[np.minimum(segid, n)], -1)
        finally:
            flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = 0
            flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = 0
        return out

    def close(self) -> None:
        """Free the OpenGL resources (idempotent); the renderer is unusable afterwards."""
        self._finalizer()


def _free_gl(ctx: mujoco.MjrContext, gl) -> None:
    ctx.free()
    gl.free()
