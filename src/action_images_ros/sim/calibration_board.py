"""A ChArUco board in the simulated cell, on the table or on the gripper, rendered at a known pose.

The board is a thin textured box (the texture is ``calibration.board_image``, written to a
temporary PNG that MuJoCo reads while compiling) on an untextured backing plate that hides its
back face. The default scene is untouched: this module builds its own model with
``scene.build_model`` and an ``add_objects`` hook, and renders it with the stack's
``MultiViewRenderer``.

Mounts (``BoardSceneConfig.mount``):

* ``"table"``: a mocap body, placed anywhere with :meth:`BoardCell.place_board`; the arm is
  parked in a posture that keeps it out of the cameras' view of the table centre.
* ``"gripper"``: a body fixed to the hand at ``tcp_board_pose`` (board -> TCP); the arm is put in
  a configuration by :meth:`BoardCell.move_tcp` (IK, kinematics only: no physics is stepped).

Texture mapping (checked by back-projection in ``test/test_calibration.py``): on the box's +z face
the board frame has x = box x, y = -box y, z = -box z, origin at the box corner ``(-hx, +hy, +hz)``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Sequence

import cv2
import mujoco
import numpy as np

from ..calibration.board import CharucoBoardConfig, board_image
from ..calibration.transforms import invert, make_transform, pose7_to_matrix
from ..geometry import Camera, matrix_to_quat, quat_to_matrix
from .cameras import cameras_for_image
from .controller import ArmController, ControllerConfig
from .renderer import MultiViewRenderer
from .scene import GRIPPER_PREFIX, GROUP_SCENE, READY_Q, TCP_SITE, SceneConfig, build_model

BOARD_BODY = "calibration_board"
BOARD_GEOM = "calibration_board"
MOUNTS = ("table", "gripper")
HAND_BODY = GRIPPER_PREFIX + "right_gripper"
#: Arm posture for the table mount: folded up and back, clear of the table centre in every view.
PARK_Q = np.array([0.0, -1.2, 0.0, -2.8, 0.0, 1.7, np.pi / 4])


def _board_in_geom(config: CharucoBoardConfig, thickness: float) -> np.ndarray:
    """``T_geom_board``: the board frame on the textured (+z) face of its box geom."""
    hx, hy = config.size_m[0] / 2, config.size_m[1] / 2
    return make_transform(np.diag([1.0, -1.0, -1.0]), [-hx, hy, thickness / 2])


def default_gripper_mount(config: CharucoBoardConfig, gap_m: float = 0.02) -> tuple[float, ...]:
    """Board -> TCP pose of a board hanging below the fingertips in the tool's y-z plane.

    The printed face looks along -tool x (the Panda hand is thinnest along x, so it hides the
    least of the board), board x along tool y, board y along tool z (down the approach axis), the
    board's top edge ``gap_m`` beyond the TCP, centred on the tool axis.
    """
    R = np.stack([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], axis=1)  # columns: board x, y, z in tool
    origin = np.array([0.0, -config.size_m[0] / 2, gap_m])
    return tuple(float(v) for v in np.concatenate([origin, matrix_to_quat(R)]))


@dataclasses.dataclass
class BoardSceneConfig:
    """The simulated board and how it is held.

    Attributes:
        board: the ChArUco board.
        mount: ``"table"`` or ``"gripper"``.
        tcp_board_pose: board -> TCP ``[x y z qx qy qz qw]`` for the gripper mount; None =
            :func:`default_gripper_mount`.
        texture_px_per_square: texture resolution (pixels per square side).
        thickness_m: printed layer + backing plate thickness (m).
        scene: physics / rendering settings of the cell.
    """

    board: CharucoBoardConfig = dataclasses.field(default_factory=CharucoBoardConfig)
    mount: str = "table"
    tcp_board_pose: tuple[float, ...] | None = None
    texture_px_per_square: int = 256
    thickness_m: float = 0.004
    scene: SceneConfig = dataclasses.field(default_factory=SceneConfig)

    def __post_init__(self) -> None:
        if self.mount not in MOUNTS:
            raise ValueError(f"mount must be one of {list(MOUNTS)}, got {self.mount!r}")
        if not 16 <= self.texture_px_per_square <= 1024:
            raise ValueError(f"texture_px_per_square must be in 16..1024, got {self.texture_px_per_square}")
        if not 0.0005 <= self.thickness_m <= 0.05:
            raise ValueError(f"thickness_m must be in [0.5, 50] mm, got {self.thickness_m}")
        if self.tcp_board_pose is None and self.mount == "gripper":
            self.tcp_board_pose = default_gripper_mount(self.board)


class BoardCell:
    """The cell with a calibration board, rendered by the rig's cameras at ``width`` x ``height``.

    Args:
        rig: cameras (base frame); rendered with their vertical field of view at the image size.
        width, height: image size (px).
        config: board and mount.
    """

    def __init__(self, rig: Sequence[Camera], width: int, height: int, config: BoardSceneConfig) -> None:
        self.config = config
        self.cameras = cameras_for_image(rig, width, height)
        self._thickness_print = min(0.0005, config.thickness_m / 4)
        with tempfile.TemporaryDirectory(prefix="charuco_") as tmp:
            # MuJoCo reads texture files while compiling; the PNG is not needed afterwards.
            png = Path(tmp) / "board.png"
            ppm = config.texture_px_per_square / config.board.square_length_m
            cv2.imwrite(str(png), cv2.cvtColor(board_image(config.board, ppm), cv2.COLOR_GRAY2BGR))
            self.model = build_model(rig, config.scene, lambda spec: self._add_board(spec, png),
                                     offscreen_size=(width, height))
        self.data = mujoco.MjData(self.model)
        self.controller = ArmController(self.model, ControllerConfig(), READY_Q)
        self._geom = self.model.geom(BOARD_GEOM).id
        self._site = self.model.site(TCP_SITE).id
        self._mocap = int(self.model.body(BOARD_BODY).mocapid[0])
        self._T_geom_board = _board_in_geom(config.board, self._thickness_print)
        self.set_joints(PARK_Q if config.mount == "table" else READY_Q)
        self._renderer = MultiViewRenderer(self.model, [c.name for c in self.cameras], int(width), int(height))

    # ------------------------------------------------------------------ model
    def _add_board(self, spec: mujoco.MjSpec, png: Path) -> None:
        cfg = self.config
        hx, hy = cfg.board.size_m[0] / 2, cfg.board.size_m[1] / 2
        t_print, t_back = self._thickness_print, cfg.thickness_m - self._thickness_print
        spec.add_texture(name="charuco", type=mujoco.mjtTexture.mjTEXTURE_2D, file=str(png))
        mat = spec.add_material(name="charuco", texrepeat=[1, 1], texuniform=False, specular=0.0, shininess=0.0,
                                reflectance=0.0)
        mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "charuco"
        if cfg.mount == "table":
            body = spec.worldbody.add_body(name=BOARD_BODY, mocap=True, pos=[0.5, 0.0, t_print / 2])
        else:
            # Body frame = the printed box's frame, placed from the TCP site's pose in the hand.
            site = spec.site(TCP_SITE)
            T_hand_tcp = make_transform(quat_to_matrix(np.roll(np.asarray(site.quat, float), -1)), site.pos)
            T_hand_geom = T_hand_tcp @ pose7_to_matrix(cfg.tcp_board_pose) @ invert(
                _board_in_geom(cfg.board, t_print))
            qx, qy, qz, qw = matrix_to_quat(T_hand_geom[:3, :3])
            body = spec.body(HAND_BODY).add_body(name=BOARD_BODY, pos=T_hand_geom[:3, 3], quat=[qw, qx, qy, qz])
        visual = dict(group=GROUP_SCENE, contype=0, conaffinity=0, mass=1e-4)
        body.add_geom(name=BOARD_GEOM, type=mujoco.mjtGeom.mjGEOM_BOX, size=[hx, hy, t_print / 2],
                      material="charuco", **visual)
        # The backing plate sits behind the printed face and hides the box's (also textured) back.
        body.add_geom(name=BOARD_GEOM + "_backing", type=mujoco.mjtGeom.mjGEOM_BOX, size=[hx, hy, t_back / 2],
                      pos=[0.0, 0.0, -(t_print + t_back) / 2], rgba=[0.8, 0.8, 0.8, 1.0], **visual)

    # ------------------------------------------------------------------ state
    def set_joints(self, q: np.ndarray) -> None:
        """Arm joints ``(7,)`` (rad), fingers open; kinematics updated."""
        self.data.qpos[self.controller.qpos_idx] = np.asarray(q, dtype=np.float64)
        self.data.qpos[self.controller.finger_qpos_idx] = [0.04, -0.04]
        mujoco.mj_forward(self.model, self.data)

    def place_board(self, T_base_board: np.ndarray) -> None:
        """Put the table board's frame at ``T_base_board`` (4, 4), base frame.

        Raises:
            ValueError: the board is mounted on the gripper.
        """
        if self.config.mount != "table" or self._mocap < 0:
            raise ValueError("place_board needs the table mount; move the arm (move_tcp) for the gripper mount")
        T_geom = np.asarray(T_base_board, dtype=np.float64) @ invert(self._T_geom_board)
        qx, qy, qz, qw = matrix_to_quat(T_geom[:3, :3])
        self.data.mocap_pos[self._mocap] = T_geom[:3, 3]
        self.data.mocap_quat[self._mocap] = [qw, qx, qy, qz]
        mujoco.mj_forward(self.model, self.data)

    def move_tcp(self, T_base_tcp: np.ndarray, q_seed: np.ndarray | None = None,
                 pos_tol_m: float = 1e-4, rot_tol_deg: float = 0.01) -> bool:
        """Set the arm by IK so the TCP is at ``T_base_tcp`` (4, 4); False (arm unchanged) if not reachable
        within the tolerances."""
        seed = self.data.qpos[self.controller.qpos_idx].copy() if q_seed is None else q_seed
        T = np.asarray(T_base_tcp, dtype=np.float64)
        ik = self.controller.solve_ik(T[:3, 3], T[:3, :3], seed)
        if ik.pos_err > pos_tol_m or np.degrees(ik.rot_err) > rot_tol_deg:
            return False
        self.set_joints(ik.q)
        return True

    def tcp_pose(self) -> np.ndarray:
        """TCP -> base ``(4, 4)`` of the current configuration (forward kinematics)."""
        return make_transform(self.data.site_xmat[self._site].reshape(3, 3), self.data.site_xpos[self._site])

    def board_pose(self) -> np.ndarray:
        """True board -> base ``(4, 4)`` (from the rendered geom)."""
        T_geom = make_transform(self.data.geom_xmat[self._geom].reshape(3, 3), self.data.geom_xpos[self._geom])
        return T_geom @ self._T_geom_board

    def render(self) -> np.ndarray:
        """RGB views ``(V, H, W, 3)`` uint8 in ``cameras`` order."""
        rgb, _ = self._renderer.render(self.data, depth=False)
        return rgb

    def close(self) -> None:
        self._renderer.close()

    def __enter__(self) -> "BoardCell":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
