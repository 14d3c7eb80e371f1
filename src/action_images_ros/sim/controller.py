"""End-effector control of the simulated arm: damped-least-squares IK + computed-torque joint PD.

A control step takes a TCP target pose (robot base frame), solves inverse
kinematics for a joint goal within the joint limits, and drives the joints
along a straight joint-space reference (rate-limited) with a computed-torque
PD law ``tau = M(q) (qdd_ref + kp e + kd e_dot) + c(q, qd)``, clipped to the
actuator torque limits. The fingers are MuJoCo position actuators.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from .scene import ARM_ACTUATORS, ARM_JOINTS, FINGER_ACTUATORS, FINGER_JOINTS, FINGER_TRAVEL, TCP_SITE


@dataclasses.dataclass
class ControllerConfig:
    """Gains and limits of the arm controller.

    Attributes:
        kp: joint PD stiffness of the computed-torque law (1/s^2).
        kd: joint PD damping (1/s); ``2 sqrt(kp)`` is critical.
        max_joint_speed: rate limit of the joint reference (rad/s).
        ik_damping: DLS damping lambda (m, rad).
        ik_iterations: maximum IK iterations per control step.
        ik_step_limit: largest joint change per IK iteration (rad).
        ik_pos_tol: IK position tolerance (m) below which it stops early.
        ik_rot_tol: IK rotation tolerance (rad).
        nullspace_gain: pull towards the rest posture in the Jacobian null space (0..1 per iteration).
        joint_limit_margin: distance kept from the joint limits (rad).
        unreachable_pos_tol: IK residual (m) above which a target is reported as unreachable.
        unreachable_rot_tol_deg: IK residual (deg) above which a target is reported as unreachable.
    """

    kp: float = 900.0
    kd: float = 60.0
    max_joint_speed: float = 2.0
    ik_damping: float = 0.02
    ik_iterations: int = 60
    ik_step_limit: float = 0.3
    ik_pos_tol: float = 1e-5
    ik_rot_tol: float = 1e-4
    nullspace_gain: float = 0.05
    joint_limit_margin: float = 0.03
    unreachable_pos_tol: float = 0.003
    unreachable_rot_tol_deg: float = 2.0

    def __post_init__(self) -> None:
        for name in ("kp", "kd", "max_joint_speed", "ik_damping", "ik_step_limit", "ik_pos_tol", "ik_rot_tol",
                     "unreachable_pos_tol", "unreachable_rot_tol_deg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ControllerConfig.{name} must be positive, got {getattr(self, name)}")
        if self.ik_iterations < 1:
            raise ValueError(f"ik_iterations must be >= 1, got {self.ik_iterations}")
        if not 0 <= self.nullspace_gain <= 1:
            raise ValueError(f"nullspace_gain must be in [0, 1], got {self.nullspace_gain}")
        if not 0 <= self.joint_limit_margin < 0.2:
            raise ValueError(f"joint_limit_margin must be in [0, 0.2) rad, got {self.joint_limit_margin}")


@dataclasses.dataclass
class IKResult:
    """Joint goal ``q`` (7,) and its TCP residual: ``pos_err`` (m), ``rot_err`` (rad)."""

    q: np.ndarray
    pos_err: float
    rot_err: float


class ArmController:
    """IK and joint-space tracking for the Panda in ``model``.

    Args:
        model: the compiled cell (see ``scene.build_model``).
        config: gains and limits.
        rest_q: ``(7,)`` posture the IK null space is pulled towards.
    """

    def __init__(self, model: mujoco.MjModel, config: ControllerConfig, rest_q: np.ndarray) -> None:
        self.model = model
        self.config = config
        self.rest_q = np.asarray(rest_q, dtype=np.float64).copy()
        jids = [model.joint(n).id for n in ARM_JOINTS]
        self.qpos_idx = np.array([model.jnt_qposadr[j] for j in jids])
        self.dof_idx = np.array([model.jnt_dofadr[j] for j in jids])
        self.act_idx = np.array([model.actuator(n).id for n in ARM_ACTUATORS])
        self.finger_qpos_idx = np.array([model.jnt_qposadr[model.joint(n).id] for n in FINGER_JOINTS])
        self.finger_act_idx = np.array([model.actuator(n).id for n in FINGER_ACTUATORS])
        self.site_id = model.site(TCP_SITE).id
        margin = config.joint_limit_margin
        self.q_lo = model.jnt_range[jids, 0] + margin
        self.q_hi = model.jnt_range[jids, 1] - margin
        self.torque_lo = model.actuator_ctrlrange[self.act_idx, 0]
        self.torque_hi = model.actuator_ctrlrange[self.act_idx, 1]
        self._ik_data = mujoco.MjData(model)
        # Fixed restart postures for IK: the rest posture and deterministic perturbations of it.
        offsets = np.random.default_rng(0).uniform(-0.6, 0.6, size=(4, 7))
        self._restart_seeds = [np.clip(self.rest_q + o, self.q_lo, self.q_hi)
                               for o in np.vstack([np.zeros(7), offsets])]
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._acc = np.zeros(model.nv)
        self._macc = np.zeros(model.nv)

    # ------------------------------------------------------------------ kinematics
    def tcp_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """TCP position ``(3,)`` and rotation matrix ``(3, 3)`` in the base frame (needs kinematics done)."""
        return data.site_xpos[self.site_id].copy(), data.site_xmat[self.site_id].reshape(3, 3).copy()

    def forward_kinematics(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and rotation for arm joints ``q`` (7,)."""
        d = self._ik_data
        d.qpos[self.qpos_idx] = q
        mujoco.mj_kinematics(self.model, d)
        return self.tcp_pose(d)

    def solve_ik(self, target_pos: np.ndarray, target_rot: np.ndarray, q_seed: np.ndarray) -> IKResult:
        """IK from ``q_seed``; if that fails, also from fixed restart postures, keeping the best.

        The restarts get the arm out of joint-limit corners it can wander into
        (the seed's solution is preferred whenever it reaches the target).
        """
        result = self._dls(target_pos, target_rot, q_seed)
        if self._reached(result):
            return result
        for seed in self._restart_seeds:
            other = self._dls(target_pos, target_rot, seed)
            if other.pos_err + 0.1 * other.rot_err < result.pos_err + 0.1 * result.rot_err - 1e-6:
                result = other
            if self._reached(result):
                break
        return result

    def _reached(self, result: IKResult) -> bool:
        cfg = self.config
        return result.pos_err <= cfg.unreachable_pos_tol and np.degrees(result.rot_err) <= cfg.unreachable_rot_tol_deg

    def _dls(self, target_pos: np.ndarray, target_rot: np.ndarray, q_seed: np.ndarray) -> IKResult:
        """Damped least squares from ``q_seed`` towards the TCP pose, within the joint limits.

        Args:
            target_pos: ``(3,)`` metres, base frame.
            target_rot: ``(3, 3)`` rotation of the TCP in the base frame.
            q_seed: ``(7,)`` start joints (rad).

        Returns:
            The best joints found and their residual (the closest reachable pose when unreachable).
        """
        cfg, d, m = self.config, self._ik_data, self.model
        q = np.clip(np.asarray(q_seed, dtype=np.float64), self.q_lo, self.q_hi)
        q_target = np.empty(4)
        mujoco.mju_mat2Quat(q_target, np.asarray(target_rot, dtype=np.float64).ravel())
        q_cur, q_inv, q_err = np.empty(4), np.empty(4), np.empty(4)
        err = np.empty(6)
        lam2 = cfg.ik_damping ** 2
        best = (np.inf, q.copy(), np.inf, np.inf)
        for _ in range(cfg.ik_iterations):
            d.qpos[self.qpos_idx] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            err[:3] = target_pos - d.site_xpos[self.site_id]
            mujoco.mju_mat2Quat(q_cur, d.site_xmat[self.site_id])
            mujoco.mju_negQuat(q_inv, q_cur)
            mujoco.mju_mulQuat(q_err, q_target, q_inv)
            mujoco.mju_quat2Vel(err[3:], q_err, 1.0)
            pos_err, rot_err = float(np.linalg.norm(err[:3])), float(np.linalg.norm(err[3:]))
            score = pos_err + 0.1 * rot_err
            if score < best[0]:
                best = (score, q.copy(), pos_err, rot_err)
            if pos_err < cfg.ik_pos_tol and rot_err < cfg.ik_rot_tol:
                break
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.site_id)
            J = np.vstack([self._jacp[:, self.dof_idx], self._jacr[:, self.dof_idx]])
            JJt = J @ J.T
            JJt[np.diag_indices(6)] += lam2
            J_pinv = J.T @ np.linalg.inv(JJt)
            dq = J_pinv @ err
            dq += cfg.nullspace_gain * (np.eye(7) - J_pinv @ J) @ (self.rest_q - q)
            step = np.max(np.abs(dq))
            if step > cfg.ik_step_limit:
                dq *= cfg.ik_step_limit / step
            q = np.clip(q + dq, self.q_lo, self.q_hi)
        return IKResult(q=best[1], pos_err=best[2], rot_err=best[3])

    # ------------------------------------------------------------------ dynamics
    def set_gripper(self, data: mujoco.MjData, openness: float) -> None:
        """Command the finger position actuators; ``openness`` in [0, 1], 1 = open."""
        g = float(np.clip(openness, 0.0, 1.0))
        data.ctrl[self.finger_act_idx[0]] = FINGER_TRAVEL * g
        data.ctrl[self.finger_act_idx[1]] = -FINGER_TRAVEL * g

    def gripper_openness(self, data: mujoco.MjData) -> float:
        """Measured openness in [0, 1] from the finger joints."""
        q1, q2 = data.qpos[self.finger_qpos_idx]
        return float(np.clip((q1 - q2) / (2 * FINGER_TRAVEL), 0.0, 1.0))

    def track(self, data: mujoco.MjData, q_start: np.ndarray, q_goal: np.ndarray, duration: float) -> None:
        """Simulate ``duration`` seconds following the straight joint reference ``q_start -> q_goal``.

        The reference moves at constant velocity and reaches ``q_goal`` at ``duration``
        (callers rate-limit ``q_goal``). Steps ``data`` in place.
        """
        m, cfg = self.model, self.config
        n = max(1, int(round(duration / m.opt.timestep)))
        q_start = np.asarray(q_start, dtype=np.float64)
        delta = np.asarray(q_goal, dtype=np.float64) - q_start
        qd_ref = delta / (n * m.opt.timestep)
        acc, macc = self._acc, self._macc
        for k in range(1, n + 1):
            q_ref = q_start + delta * (k / n)
            q = data.qpos[self.qpos_idx]
            qd = data.qvel[self.dof_idx]
            acc[self.dof_idx] = cfg.kp * (q_ref - q) + cfg.kd * (qd_ref - qd)
            mujoco.mj_mulM(m, data, macc, acc)
            tau = macc[self.dof_idx] + data.qfrc_bias[self.dof_idx]
            data.ctrl[self.act_idx] = np.clip(tau, self.torque_lo, self.torque_hi)
            mujoco.mj_step(m, data)

    def max_joint_step(self, duration: float) -> float:
        """Largest joint change (rad) the rate limit allows in ``duration`` seconds."""
        return self.config.max_joint_speed * duration
